"""Hypervolume against evaluations: how fast a search finds the front, and its plot."""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import moocore
import numpy as np

from hwnas.io import atomic_write
from hwnas.budgets import check_budgets
from hwnas.pareto._sorting import (check_objectives, feasible_mask,
                                   objective_matrix, unique_by_key)
from hwnas.objectives import Evaluation


def hypervolume_history(evaluations: Iterable[Evaluation], objectives: Sequence[str],
                        budgets: Mapping[str, float] | None,
                        reference: Sequence[float]) -> np.ndarray:
    """The hypervolume of the feasible front after each distinct evaluation.

    Args:
        evaluations: a search's evaluations in the order they were made;
            repeats of a key are skipped (a cached answer is no new evaluation).
        objectives: the front's objectives, all minimised.
        budgets: hard limits; subnets over any budget add nothing.
        reference: the fixed reference point (``reference_point`` of all the
            evaluations compared), one value per objective.

    Returns:
        ``hv[i]``: the hypervolume of the first ``i + 1`` distinct evaluations.
    """
    names = check_objectives(objectives)
    ref = np.asarray(reference, dtype=float)
    if ref.shape != (len(names),):
        raise ValueError(f"reference must have one value per objective {list(names)}, "
                         f"got {ref.tolist()}")
    unique = unique_by_key(evaluations)
    F = objective_matrix(unique, names)
    fits = feasible_mask(unique, check_budgets(budgets))
    history = np.zeros(len(unique))
    front = np.empty((0, len(names)))
    hv = 0.0
    for i, (point, ok) in enumerate(zip(F, fits)):
        # A point adds volume only when feasible, inside the reference box and
        # not weakly dominated by the front so far.
        if ok and np.all(point < ref) and not np.any(np.all(front <= point, axis=1)):
            front = np.vstack([front[~np.all(point <= front, axis=1)], point])
            hv = float(moocore.hypervolume(front, ref=ref))
        history[i] = hv
    return history


def plot_hypervolume(curves: Mapping[str, np.ndarray], path: str | os.PathLike[str], *,
                     title: str, ylabel: str = "Hypervolume") -> None:
    """Hypervolume against distinct evaluations, one line per label, saved as a PNG atomically.

    Args:
        curves: label -> ``hypervolume_history`` of one search.
        path: the PNG file; its directory must exist.
        title: the figure's title (say which reference point the values use).
        ylabel: the vertical axis label.
    """
    if not curves:
        raise ValueError("plot_hypervolume needs at least one curve")
    import seaborn as sns
    from matplotlib.figure import Figure

    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(7.0, 4.4), layout="constrained")
        ax = fig.subplots()
        palette = sns.color_palette("tab10", n_colors=max(len(curves), 1))
        for color, (label, hv) in zip(palette, curves.items()):
            ax.step(np.arange(1, len(hv) + 1), hv, where="post", color=color, linewidth=1.5,
                    label=label)
        ax.set_xlabel("Distinct subnets evaluated")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(loc="lower right", fontsize="small")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


