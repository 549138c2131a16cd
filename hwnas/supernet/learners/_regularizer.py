"""Hardware regularizers: a differentiable expected cost added to the architecture loss."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import nnabla as nn
import nnabla.functions as F
import numpy as np

from hwnas.supernet._mixed import constant
from hwnas.supernet._space import Supernet, Unit

#: Objectives a regularizer can hold under a budget.
COST_OBJECTIVES = ("latency_ms", "params", "macs")
#: ``additive``: loss + weight * max(0, E[cost] / budget - 1) (a penalty above the budget);
#: ``multiplicative``: loss * (E[cost] / budget) ** weight (MnasNet's soft constraint).
FORMS = ("additive", "multiplicative")


class Regularizer:
    """The expected cost of the architecture distribution, as an nnabla graph over alphas.

    ``E[cost] = fixed + sum_e share_e * softmax(alpha_e) . cost_e``: every
    architecture parameter ``e`` picks one candidate of each mixed operation
    sharing it, candidate ``k`` adding ``cost_e[k]``; ``share_e`` is the part
    of those operations a derived subnet keeps. The expectation is exact for
    a chain (one operation per parameter, all kept).

    Args:
        objective: the cost it holds (one of ``COST_OBJECTIVES``), for messages and logs.
        fixed: the cost every subnet has.
        costs: per architecture parameter, the cost each candidate adds.
        share: per architecture parameter, the share of its operations a subnet keeps.
        instances: per architecture parameter, how many mixed operations share it.
        budget: the target cost (> 0).
        form: ``additive`` or ``multiplicative``.
        weight: the penalty weight (additive) or exponent (multiplicative), > 0.
    """

    def __init__(self, *, objective: str, fixed: float, costs: Mapping[str, np.ndarray],
                 share: Mapping[str, float], instances: Mapping[str, int], budget: float,
                 form: str = "additive", weight: float = 1.0) -> None:
        if objective not in COST_OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; "
                             f"known: {', '.join(COST_OBJECTIVES)}")
        if form not in FORMS:
            raise ValueError(f"unknown form {form!r}; known: {', '.join(FORMS)}")
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
        if self.form == "additive":
            return F.add2(loss, F.mul_scalar(F.maximum_scalar(F.add_scalar(ratio, -1.0), 0.0),
                                             self.weight))
        return F.mul2(loss, F.pow_scalar(ratio, self.weight))

    def reward(self, accuracy: float, cost: float) -> float:
        """MnasNet's reward for a sampled path (REINFORCE): accuracy scaled by its cost."""
        if self.form == "multiplicative":
            return accuracy * (cost / self.budget) ** (-self.weight)
        return accuracy - self.weight * max(0.0, cost / self.budget - 1.0)
