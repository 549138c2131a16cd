"""Hardware regularizers: a differentiable expected cost added to the architecture loss."""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

import nnabla as nn
import nnabla.functions as F
import numpy as np

from hwnas.arch import Arch
from hwnas.registry import Registry
from hwnas.supernet._mixed import constant
from hwnas.supernet._space import Supernet, Unit

#: A target form derives the most likely subnet predicted in this band of the budget: under
#: it, since the latency table mispredicts whole subnets by up to about 10 %.
LANDING_BAND = (0.85, 0.95)
#: Cost steps per budget in the derivation's dynamic programme (rounding up costs
#: each option at most budget / LANDING_STEPS).
LANDING_STEPS = 4096


@dataclasses.dataclass(frozen=True)
class Form:
    """How a regularizer weighs the task against the cost ratio ``r = E[cost] / budget``.

    Attributes:
        penalize: ``(loss, r, weight)`` -> the regularized architecture loss (nnabla graph).
        reward: ``(accuracy, r, weight)`` -> the reward of a sampled path (REINFORCE).
        in_reward: REINFORCE prices the sampled path in its reward (MnasNet,
            TuNAS); otherwise it adds ``penalize``'s gradient on the expected cost.
        target: the budget is a target, not a cap: the penalty is two-sided and
            the derived subnet is the most likely one predicted within
            ``LANDING_BAND`` of the budget, not the most likely one.
    """

    penalize: Callable[[nn.Variable, nn.Variable, float], nn.Variable]
    reward: Callable[[float, float, float], float]
    in_reward: bool = False
    target: bool = False


#: Objectives a regularizer can hold under a budget: name -> what it prices.
COST_OBJECTIVES: Registry[str] = Registry("regularizer objective")
#: How the expected cost enters the architecture loss: name -> Form.
FORMS: Registry[Form] = Registry("regularizer form")


def register_cost_objective(name: str, description: str) -> str:
    """Registers an objective a regularizer may hold (the run prices each unit's cost).

    Raises:
        ValueError: ``name`` is already registered.
    """
    return COST_OBJECTIVES.register(name, description)


def register_form(name: str, form: Form) -> Form:
    """Registers a way of combining the task loss with the cost ratio.

    Raises:
        ValueError: ``name`` is already registered.
    """
    return FORMS.register(name, form)


register_cost_objective("latency_ms", "latency in ms, from the run's latency table")
register_cost_objective("params", "parameters")
register_cost_objective("macs", "multiply-accumulates")
# TuNAS's absolute reward (Bender et al., 2020), the default: loss + weight * |r - 1|.
# A one-sided penalty is zero under the budget, so the task loss alone decides there
# and cheap candidates that train fast win; the two-sided one pulls up as well.
register_form("absolute", Form(
    penalize=lambda loss, r, w: F.add2(loss, F.mul_scalar(F.abs(F.add_scalar(r, -1.0)), w)),
    reward=lambda accuracy, r, w: accuracy - w * abs(r - 1.0), in_reward=True, target=True))
# A penalty above the budget: loss + weight * max(0, r - 1).
register_form("additive", Form(
    penalize=lambda loss, r, w: F.add2(loss, F.mul_scalar(
        F.maximum_scalar(F.add_scalar(r, -1.0), 0.0), w)),
    reward=lambda accuracy, r, w: accuracy - w * max(0.0, r - 1.0)))
# MnasNet's soft constraint: loss * r ** weight.
register_form("multiplicative", Form(
    penalize=lambda loss, r, w: F.mul2(loss, F.pow_scalar(r, w)),
    reward=lambda accuracy, r, w: accuracy * r ** (-w), in_reward=True))


class Regularizer:
    """The expected cost of the architecture distribution, as an nnabla graph over alphas.

    ``E[cost] = fixed + sum_e share_e * softmax(alpha_e) . cost_e``: every
    architecture parameter ``e`` picks one candidate of each mixed operation
    sharing it, candidate ``k`` adding ``cost_e[k]``; ``share_e`` is the part
    of those operations a derived subnet keeps. The expectation is exact for
    a chain (one operation per parameter, all kept).

    Args:
        objective: the cost it holds (a name in ``COST_OBJECTIVES``), for messages and logs.
        fixed: the cost every subnet has.
        costs: per architecture parameter, the cost each candidate adds.
        share: per architecture parameter, the share of its operations a subnet keeps.
        instances: per architecture parameter, how many mixed operations share it.
        budget: the target cost (> 0).
        form: a name in ``FORMS`` (``absolute``, ``additive`` or ``multiplicative``).
        weight: the penalty weight (absolute, additive) or exponent (multiplicative), > 0.
    """

    def __init__(self, *, objective: str, fixed: float, costs: Mapping[str, np.ndarray],
                 share: Mapping[str, float], instances: Mapping[str, int], budget: float,
                 form: str = "absolute", weight: float = 1.0) -> None:
        COST_OBJECTIVES.get(objective)
        self._form = FORMS.get(form)
        if not budget > 0:
            raise ValueError(f"budget must be > 0, got {budget}")
        if not weight > 0:
            raise ValueError(f"weight must be > 0, got {weight}")
        if set(costs) != set(share) or set(costs) != set(instances):
            raise ValueError("costs, share and instances must name the same parameters")
        self.objective, self.budget, self.form, self.weight = objective, budget, form, weight
        self.fixed = float(fixed)
        self.costs = {k: np.asarray(v, dtype=np.float64) for k, v in costs.items()}
        self.share = {k: float(v) for k, v in share.items()}
        self.instances = {k: int(v) for k, v in instances.items()}

    @classmethod
    def for_supernet(cls, supernet: Supernet, unit_cost: Callable[[Unit], float], *,
                     fixed_extra: float = 0.0, **kwargs) -> Regularizer:
        """Builds the cost vectors from the space's units, each priced by ``unit_cost``.

        Args:
            supernet: the supernet whose architecture parameters are regularized.
            unit_cost: the cost of one unit (its latency from the table, its params, ...).
            fixed_extra: cost every subnet has besides its units (a latency offset).
            kwargs: ``objective``, ``budget``, ``form``, ``weight``.
        """
        fixed_units, edges, share = supernet.space.arch_units()
        options = supernet.arch_options()
        if set(edges) != set(options):
            raise ValueError("the space's cost units do not match the supernet's "
                             "architecture parameters")
        priced: dict[str, float] = {}

        def price(unit: Unit) -> float:
            if unit.key not in priced:
                priced[unit.key] = float(unit_cost(unit))
            return priced[unit.key]

        costs = {name: np.array([sum(price(u) for u in edges[name][o]) for o in opts])
                 for name, opts in options.items()}
        instances = {name: len(ops) for name, ops in supernet.mixed_ops().items()}
        return cls(fixed=fixed_extra + sum(price(u) for u in fixed_units), costs=costs,
                   share=share, instances=instances, **kwargs)

    def expected(self, alphas: Mapping[str, nn.Variable]) -> nn.Variable:
        """E[cost] under softmax(alphas), as a scalar variable differentiable in the alphas."""
        terms = [F.sum(F.mul2(F.softmax(alphas[name], axis=0),
                              constant(self.share[name] * cost)))
                 for name, cost in self.costs.items()]
        total = F.add_n(*terms) if len(terms) > 1 else terms[0]
        return F.add_scalar(total, self.fixed)

    def expected_value(self, probabilities: Mapping[str, np.ndarray]) -> float:
        """E[cost] for given softmax probabilities (numbers, no graph)."""
        return self.fixed + sum(self.share[n] * float(np.asarray(probabilities[n]) @ c)
                                for n, c in self.costs.items())

    def path_cost(self, counts: Mapping[str, np.ndarray]) -> float:
        """Cost of one sampled path: ``counts[e][k]`` operations of parameter ``e`` picked ``k``."""
        return self.fixed + sum(
            self.share[n] * float(np.asarray(counts[n]) @ c) / self.instances[n]
            for n, c in self.costs.items())

    def apply(self, loss: nn.Variable, alphas: Mapping[str, nn.Variable]) -> nn.Variable:
        """The regularized architecture loss."""
        ratio = F.mul_scalar(self.expected(alphas), 1.0 / self.budget)
        return self._form.penalize(loss, ratio, self.weight)

    @property
    def in_reward(self) -> bool:
        """Whether REINFORCE prices the sampled path in its reward (``reward``)."""
        return self._form.in_reward

    def reward(self, accuracy: float, cost: float) -> float:
        """The reward of a sampled path of cost ``cost`` (REINFORCE), MnasNet's or TuNAS's."""
        return self._form.reward(accuracy, cost / self.budget, self.weight)

    def derive(self, supernet: Supernet) -> Arch:
        """The subnet the regularized search derives.

        A target form (``absolute``) derives, on a space whose choices are its
        architecture parameters (a chain), the most likely subnet whose
        predicted cost lies in ``LANDING_BAND`` of the budget; with none there,
        the costliest under the band (the cheapest subnet if none is under it).
        The expected cost can sit on the budget while the most likely subnet is
        far from it, so the derivation has to look at the budget too. Other
        forms, and other spaces (a DARTS cell keeps two edges per node), derive
        the most likely subnet.
        """
        choices = _chain_choices(supernet) if self._form.target else None
        if choices is None or any(self.share[n] != 1.0 or self.instances[n] != 1
                                  for n in self.costs):
            return supernet.derive()
        names = list(self.costs)
        logp = {n: _log_softmax(supernet.arch_parameters()[n].d) for n in names}
        picks = _most_likely_within(
            [logp[n] for n in names], [self.costs[n] for n in names],
            low=LANDING_BAND[0] * self.budget - self.fixed,
            high=LANDING_BAND[1] * self.budget - self.fixed)
        options = supernet.arch_options()
        chosen = {n: options[n][k] for n, k in zip(names, picks)}
        return Arch({n: chosen.get(n, opts[0]) for n, opts in choices.items()})

    def arch_cost(self, supernet: Supernet, arch: Arch) -> float:
        """The predicted cost of a subnet of a chain space (a path of its supernet)."""
        options = supernet.arch_options()
        return self.path_cost({n: np.array([o == arch[n] for o in options[n]], float)
                               for n in self.costs})


def _chain_choices(supernet: Supernet) -> dict[str, tuple[str, ...]] | None:
    """The space's choices when each is an architecture parameter (or has one option)."""
    choices = {n: tuple(o) for n, o in supernet.space.choices.items()}
    options = supernet.arch_options()
    if any(choices.get(n) != tuple(o) for n, o in options.items()):
        return None
    if any(len(o) != 1 for n, o in choices.items() if n not in options):
        return None
    return choices


def _log_softmax(alpha: np.ndarray) -> np.ndarray:
    a = np.asarray(alpha, np.float64)
    m = float(a.max())
    return a - (m + math.log(float(np.sum(np.exp(a - m)))))


def _most_likely_within(logp: list[np.ndarray], costs: list[np.ndarray], *, low: float,
                        high: float) -> list[int]:
    """One option per parameter maximising the summed log-probability with summed cost in
    ``[low, high]``; with none there, the costliest under ``high``; with none under it, the
    cheapest options.

    A knapsack solved by dynamic programming over each option's cost above its
    parameter's cheapest, rounded up to steps of ``1 / LANDING_STEPS`` of the room
    under ``high``: a pick that fits in steps fits in cost.
    """
    cheapest = [int(np.argmin(c)) for c in costs]
    base = sum(float(np.min(c)) for c in costs)
    room = high - base
    if not room > 0:
        return cheapest
    unit = room / LANDING_STEPS
    steps = [np.ceil((np.asarray(c, np.float64) - np.min(c)) / unit - 1e-9).astype(int)
             for c in costs]
    best = np.full(LANDING_STEPS + 1, -np.inf)
    best[0] = 0.0
    back = []
    for lp, st in zip(logp, steps):
        new = np.full_like(best, -np.inf)
        arg = np.zeros(len(best), int)
        for k, (s, p) in enumerate(zip(st, lp)):
            if s > LANDING_STEPS:
                continue
            shifted = np.full_like(best, -np.inf)
            shifted[s:] = best[:len(best) - s] + p
            better = shifted > new
            new[better], arg[better] = shifted[better], k
        best = new
        back.append(arg)
    reachable = np.flatnonzero(np.isfinite(best))  # holds step 0: the cheapest pick
    band = reachable[reachable >= math.ceil((low - base) / unit - 1e-9)]
    end = int(band[np.argmax(best[band])]) if len(band) else int(reachable[-1])
    picks = []
    for arg, st in zip(reversed(back), reversed(steps)):
        picks.append(int(arg[end]))
        end -= int(st[picks[-1]])
    return picks[::-1]
