"""Non-dominated sorting, budget feasibility and budget violation of evaluations."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import moocore
import numpy as np

from hwnas.budgets import check_budgets, excess
from hwnas.objectives import OBJECTIVES, Evaluation


def check_matrix(F: np.ndarray | Sequence[Sequence[float]], name: str = "F") -> np.ndarray:
    """Returns ``F`` as a float matrix after checking it is 2-D, has columns and is finite.

    Args:
        F: objective values, shape ``(n_points, n_objectives)``.
        name: what to call the matrix in error messages.

    Returns:
        ``F`` as a float ``np.ndarray``.

    Raises:
        ValueError: ``F`` is not 2-D, has no objective columns, or holds a NaN or infinity.
    """
    try:
        matrix = np.asarray(F, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric matrix, got {F!r}") from exc
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_points, n_objectives), got shape {matrix.shape}")
    if matrix.shape[1] == 0:
        raise ValueError(f"{name} must have at least one objective column, got shape {matrix.shape}")
    bad = np.argwhere(~np.isfinite(matrix))
    if len(bad):
        row, col = bad[0]
        raise ValueError(f"{name}[{row}, {col}] = {matrix[row, col]} is not finite")
    return matrix


def check_objectives(objectives: Iterable[str]) -> tuple[str, ...]:
    """Returns ``objectives`` as a tuple after checking they are known and distinct.

    Raises:
        ValueError: the list is empty, names an unknown objective or repeats one.
    """
    names = tuple(objectives)
    if not names:
        raise ValueError("at least one objective is needed, got none")
    for name in names:
        if name not in OBJECTIVES:
            raise ValueError(f"unknown objective {name!r}; known: {', '.join(OBJECTIVES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"objectives must be distinct, got {list(names)}")
    return names


def objective_matrix(evaluations: Sequence[Evaluation], objectives: Sequence[str]) -> np.ndarray:
    """The checked matrix ``F`` of ``evaluations`` over ``objectives``, shape ``(n, m)``."""
    names = check_objectives(objectives)
    F = np.array([[e.objective(n) for n in names] for e in evaluations], dtype=float)
    return check_matrix(F.reshape(len(evaluations), len(names)))


def unique_by_key(evaluations: Iterable[Evaluation]) -> list[Evaluation]:
    """The evaluations with one per ``arch.key``, keeping the first of each, in order."""
    seen: dict[str, Evaluation] = {}
    for evaluation in evaluations:
        seen.setdefault(evaluation.arch.key, evaluation)
    return list(seen.values())


def non_dominated(F: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """Marks the rows of ``F`` that no other row dominates (all objectives minimised).

    Row ``a`` dominates row ``b`` when it is no worse in every objective and
    better in at least one. Equal rows do not dominate each other, so every
    copy of a non-dominated point is kept.

    Args:
        F: objective values, shape ``(n_points, n_objectives)``.

    Returns:
        a boolean mask of shape ``(n_points,)``.

    Raises:
        ValueError: ``F`` is not a finite 2-D matrix.
    """
    matrix = check_matrix(F)
    if len(matrix) == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(moocore.is_nondominated(matrix, keep_weakly=True), dtype=bool)


def feasible_mask(evaluations: Sequence[Evaluation],
                  budgets: Mapping[str, float] | None) -> np.ndarray:
    """Marks the evaluations within every budget (a value equal to its budget fits).

    Args:
        evaluations: the evaluations to check.
        budgets: objective name -> hard upper limit; ``None`` or empty: all fit.

    Returns:
        a boolean mask of shape ``(len(evaluations),)``.

    Raises:
        ValueError: a budget is invalid or an evaluation's value is not finite.
    """
    limits = check_budgets(budgets)
    if not limits:
        return np.ones(len(evaluations), dtype=bool)
    F = objective_matrix(evaluations, list(limits))
    return np.all(F <= np.array(list(limits.values())), axis=1)


def violation(evaluation: Evaluation, budgets: Mapping[str, float] | None) -> dict[str, float]:
    """How far ``evaluation`` exceeds each budget it violates, relative to the budget.

    Args:
        evaluation: the evaluation to check.
        budgets: objective name -> hard upper limit.

    Returns:
        objective name -> ``value / budget - 1`` for the violated budgets only
        (:func:`hwnas.budgets.excess`), e.g. ``{'latency_ms': 0.25}`` for 25% over;
        empty when it fits.
    """
    limits = check_budgets(budgets)
    try:
        return excess({name: evaluation.objective(name) for name in limits}, limits)
    except ValueError as exc:
        raise ValueError(f"{evaluation.arch.key}: {exc}") from None
