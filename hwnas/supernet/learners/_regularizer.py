"""Hardware regularizers: a differentiable expected cost added to the architecture loss."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import nnabla as nn
import nnabla.functions as F
import numpy as np

from hwnas.registry import Registry
from hwnas.supernet._mixed import constant
from hwnas.supernet._space import Supernet, Unit


@dataclasses.dataclass(frozen=True)
class Form:
    """How a regularizer weighs the task against the cost ratio ``r = E[cost] / budget``.

    Attributes:
        penalize: ``(loss, r, weight)`` -> the regularized architecture loss (nnabla graph).
        reward: ``(accuracy, r, weight)`` -> the reward of a sampled path (REINFORCE).
    """

    penalize: Callable[[nn.Variable, nn.Variable, float], nn.Variable]
    reward: Callable[[float, float, float], float]


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
# A penalty above the budget: loss + weight * max(0, r - 1).
register_form("additive", Form(
    penalize=lambda loss, r, w: F.add2(loss, F.mul_scalar(
        F.maximum_scalar(F.add_scalar(r, -1.0), 0.0), w)),
    reward=lambda accuracy, r, w: accuracy - w * max(0.0, r - 1.0)))
# MnasNet's soft constraint: loss * r ** weight.
register_form("multiplicative", Form(
    penalize=lambda loss, r, w: F.mul2(loss, F.pow_scalar(r, w)),
    reward=lambda accuracy, r, w: accuracy * r ** (-w)))


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
        form: a name in ``FORMS`` (``additive`` or ``multiplicative``).
        weight: the penalty weight (additive) or exponent (multiplicative), > 0.
    """

    def __init__(self, *, objective: str, fixed: float, costs: Mapping[str, np.ndarray],
                 share: Mapping[str, float], instances: Mapping[str, int], budget: float,
                 form: str = "additive", weight: float = 1.0) -> None:
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

    def reward(self, accuracy: float, cost: float) -> float:
        """MnasNet's reward for a sampled path (REINFORCE): accuracy scaled by its cost."""
        return self._form.reward(accuracy, cost / self.budget, self.weight)
