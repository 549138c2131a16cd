"""ParetoFront: the feasible non-dominated evaluations, with tables, CSV and hypervolume."""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence

import moocore
import numpy as np
import pandas as pd

from hwnas.io import atomic_write
from hwnas.budgets import check_budgets
from hwnas.pareto._sorting import (check_matrix, check_objectives,
                                   feasible_mask, non_dominated, objective_matrix,
                                   unique_by_key)
from hwnas.objectives import OBJECTIVES, Evaluation

#: Columns of every table and of ``front.csv``, in order.
TABLE_COLUMNS = ("key", *OBJECTIVES, "accuracy", "feasible", "on_front")


def reference_point(F: np.ndarray | Sequence[Sequence[float]], margin: float = 0.1) -> np.ndarray:
    """A hypervolume reference point just beyond the worst value of each objective.

    Per column: ``max + margin * (max - min)``; where a column is constant the
    span used is ``max(|max|, 1)`` instead, so that the reference still lies
    strictly beyond every point. Compute it from *all* evaluations of a run
    (not only the front) over the front's objectives, and keep it fixed when
    comparing hypervolumes: a hypervolume is only comparable to another one
    computed with the same reference point.

    Args:
        F: objective values of all evaluations, shape ``(n_points, n_objectives)``.
        margin: fraction of each column's span added beyond its maximum; > 0.

    Returns:
        the reference point, shape ``(n_objectives,)``.
    """
    matrix = check_matrix(F)
    if len(matrix) == 0:
        raise ValueError("a reference point needs at least one point, F is empty")
    if not np.isfinite(margin) or margin <= 0:
        raise ValueError(f"margin must be a positive finite number, got {margin!r}")
    high, low = matrix.max(axis=0), matrix.min(axis=0)
    span = high - low
    span = np.where(span > 0, span, np.maximum(np.abs(high), 1.0))
    return high + margin * span


def _table(evaluations: Sequence[Evaluation], feasible: np.ndarray,
           on_front: np.ndarray) -> pd.DataFrame:
    rows = []
    for evaluation, fits, front in zip(evaluations, feasible, on_front):
        error = evaluation.objective("error")
        row: dict[str, object] = {"key": evaluation.arch.key}
        row.update({name: evaluation.objective(name) for name in OBJECTIVES})
        row["accuracy"] = float(evaluation.metrics.get("accuracy", 1.0 - error))
        row["feasible"] = bool(fits)
        row["on_front"] = bool(front)
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    return table.astype({"feasible": bool, "on_front": bool})


class ParetoFront:
    """The feasible, non-dominated evaluations over a set of objectives.

    Budgets are hard constraints: an evaluation over any budget never enters
    the front, even when it dominates every feasible one. Evaluations are
    deduplicated by ``arch.key`` (the first of each key is kept). All
    objectives are minimised.

    Args:
        evaluations: every evaluation of a run.
        objectives: the objective names the front is taken over.
        budgets: objective name -> hard upper limit; ``None``: no budget.
    """

    def __init__(self, evaluations: Iterable[Evaluation], objectives: Sequence[str],
                 budgets: Mapping[str, float] | None = None) -> None:
        self._objectives = check_objectives(objectives)
        self._budgets = check_budgets(budgets)
        unique = unique_by_key(evaluations)
        fits = feasible_mask(unique, self._budgets)
        candidates = [e for e, ok in zip(unique, fits) if ok]
        on_front = non_dominated(objective_matrix(candidates, self._objectives))
        front = [e for e, keep in zip(candidates, on_front) if keep]
        front.sort(key=lambda e: (*(e.objective(n) for n in self._objectives), e.arch.key))
        self._evaluations = tuple(front)

    @classmethod
    def from_evaluations(cls, evaluations: Iterable[Evaluation], objectives: Sequence[str],
                         budgets: Mapping[str, float] | None = None) -> ParetoFront:
        """Builds the front of ``evaluations``; see the class docstring."""
        return cls(evaluations, objectives, budgets)

    @property
    def evaluations(self) -> tuple[Evaluation, ...]:
        """The front, sorted by the first objective, then the others, then the Arch key."""
        return self._evaluations

    @property
    def objectives(self) -> tuple[str, ...]:
        """The objective names, in the column order of ``F``."""
        return self._objectives

    @property
    def budgets(self) -> dict[str, float]:
        """The budgets the front respects (a copy)."""
        return dict(self._budgets)

    @property
    def F(self) -> np.ndarray:
        """The front's objective values, shape ``(len(self), len(self.objectives))``."""
        return objective_matrix(self._evaluations, self._objectives)

    def __len__(self) -> int:
        return len(self._evaluations)

    def __iter__(self) -> Iterator[Evaluation]:
        return iter(self._evaluations)

    def __repr__(self) -> str:
        return f"ParetoFront({len(self)} points, objectives={list(self._objectives)})"

    def table(self) -> pd.DataFrame:
        """The front as a table with the columns of ``TABLE_COLUMNS``, one row per point."""
        n = len(self._evaluations)
        return _table(self._evaluations, np.ones(n, dtype=bool), np.ones(n, dtype=bool))

    def write_csv(self, path: str | os.PathLike[str]) -> None:
        """Writes ``table()`` as CSV, atomically (temp file in the same directory, then rename).

        Args:
            path: the CSV file; its directory must exist.
        """
        table = self.table()
        atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))

    def hypervolume(self, reference: np.ndarray | Sequence[float]) -> float:
        """The volume the front dominates, bounded by ``reference`` (moocore).

        Points that do not strictly dominate ``reference`` add nothing. Use one
        fixed ``reference_point`` of all evaluations when comparing fronts.

        Args:
            reference: one value per objective, in the order of ``objectives``.

        Returns:
            the hypervolume; 0.0 for an empty front.
        """
        ref = np.asarray(reference, dtype=float)
        if ref.shape != (len(self._objectives),):
            raise ValueError(f"reference must have shape ({len(self._objectives)},) for "
                             f"objectives {list(self._objectives)}, got shape {ref.shape}")
        if not np.all(np.isfinite(ref)):
            raise ValueError(f"reference must be finite, got {ref.tolist()}")
        if not self._evaluations:
            return 0.0
        return float(moocore.hypervolume(self.F, ref=ref))


def evaluations_table(evaluations: Iterable[Evaluation], objectives: Sequence[str],
                      budgets: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Every evaluation (one per Arch key, first kept, in input order) as a table.

    Args:
        evaluations: every evaluation of a run.
        objectives: the objectives the front is taken over.
        budgets: objective name -> hard upper limit; ``None``: no budget.

    Returns:
        a table with the columns of ``TABLE_COLUMNS``; ``feasible`` says whether
        a row is within every budget, ``on_front`` whether it is on the front.
    """
    unique = unique_by_key(evaluations)
    front = ParetoFront(unique, objectives, budgets)
    front_keys = {e.arch.key for e in front}
    on_front = np.array([e.arch.key in front_keys for e in unique], dtype=bool)
    return _table(unique, feasible_mask(unique, budgets), on_front)
