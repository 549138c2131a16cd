"""Choosing the one subnet to deploy under budgets."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from hwnas.errors import BudgetError
from hwnas.budgets import check_budgets
from hwnas.pareto._sorting import check_objectives, violation
from hwnas.objectives import Evaluation

# Counted objectives print as whole numbers; fractions and milliseconds with decimals.
_FORMATS = {"error": "{:.3f}", "latency_ms": "{:.2f}", "params": "{:.0f}",
            "macs": "{:.0f}", "memory_bytes": "{:.0f}"}


def _fmt(name: str, value: float) -> str:
    return _FORMATS[name].format(value)


def _percent(excess: float) -> str:
    pct = 100.0 * excess
    return f"+{pct:.0f}%" if pct >= 1 else f"+{pct:.2g}%"


@dataclasses.dataclass(frozen=True)
class Selection:
    """The outcome of ``best_within``.

    Attributes:
        chosen: the selected evaluation, or ``None`` when no subnet fits the budgets.
        nearest: when nothing fits, the evaluation closest to fitting; else ``None``.
        budgets: the budgets the selection was made under.
        objective: the objective that was minimised among the feasible evaluations.
    """

    chosen: Evaluation | None
    nearest: Evaluation | None
    budgets: dict[str, float]
    objective: str = "error"

    def message(self) -> str:
        """One line for the user: what was chosen, or why nothing was."""
        if self.chosen is not None:
            parts = [f"{self.objective} {_fmt(self.objective, self.chosen.objective(self.objective))}"]
            parts += [f"{name} {_fmt(name, self.chosen.objective(name))} <= {_fmt(name, limit)}"
                      for name, limit in self.budgets.items() if name != self.objective]
            return f"selected {self.chosen.arch.key}: " + ", ".join(parts)
        if self.nearest is None:
            return "no subnet fits the budgets: there are no evaluations to select from"
        excess = violation(self.nearest, self.budgets)
        parts = [f"{name} {_fmt(name, self.nearest.objective(name))} > "
                 f"{_fmt(name, self.budgets[name])} ({_percent(rel)})"
                 for name, rel in excess.items()]
        return (f"no subnet fits the budgets; the nearest is {self.nearest.arch.key}: "
                + ", ".join(parts))

    def require(self) -> Evaluation:
        """The chosen evaluation.

        Raises:
            BudgetError: no subnet fits the budgets; the message names the nearest one.
        """
        if self.chosen is None:
            raise BudgetError(self.message())
        return self.chosen


def best_within(evaluations: Iterable[Evaluation], budgets: Mapping[str, float] | None, *,
           objective: str = "error") -> Selection:
    """Chooses the feasible evaluation with the lowest ``objective``.

    Ties are broken by lower ``latency_ms``, then lower ``params``, then the
    Arch key in alphabetical order, so the choice is deterministic. When no
    evaluation is within every budget, ``chosen`` is ``None`` and ``nearest``
    is the evaluation with the smallest total relative violation (the sum over
    budgets of ``(value - budget) / budget``), ties broken by lower error and
    then the Arch key.

    Args:
        evaluations: the candidates.
        budgets: objective name -> hard upper limit (a value equal to it fits).
        objective: the objective to minimise among feasible evaluations.

    Returns:
        the selection; ``Selection.message()`` explains it.
    """
    (objective,) = check_objectives([objective])
    limits = check_budgets(budgets)
    candidates = list(evaluations)
    excess = [violation(e, limits) for e in candidates]
    feasible = [e for e, over in zip(candidates, excess) if not over]
    if feasible:
        chosen = min(feasible, key=lambda e: (e.objective(objective), e.objective("latency_ms"),
                                              e.objective("params"), e.arch.key))
        return Selection(chosen=chosen, nearest=None, budgets=limits, objective=objective)
    nearest = None
    if candidates:
        ranked = zip(candidates, (sum(over.values()) for over in excess))
        nearest = min(ranked, key=lambda pair: (pair[1], pair[0].objective("error"),
                                                pair[0].arch.key))[0]
    return Selection(chosen=None, nearest=nearest, budgets=limits, objective=objective)
