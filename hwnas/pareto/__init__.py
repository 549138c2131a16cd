"""Pareto fronts: non-dominated sorting, budgets, hypervolume, selection and plots."""
from __future__ import annotations

from hwnas.pareto._front import ParetoFront, evaluations_table, reference_point
from hwnas.pareto._history import hypervolume_history, plot_hypervolume
from hwnas.pareto._plot import front_figure, objective_pairs, plot_front
from hwnas.budgets import check_budgets, parse_budgets
from hwnas.pareto._select import Selection, best_within
from hwnas.pareto._sorting import (feasible_mask, non_dominated, objective_matrix,
                                   unique_by_key, violation)

__all__ = [
    "ParetoFront",
    "Selection",
    "best_within",
    "check_budgets",
    "evaluations_table",
    "feasible_mask",
    "front_figure",
    "hypervolume_history",
    "non_dominated",
    "objective_matrix",
    "objective_pairs",
    "parse_budgets",
    "plot_front",
    "plot_hypervolume",
    "reference_point",
    "unique_by_key",
    "violation",
]
