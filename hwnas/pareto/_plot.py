"""Plots of every evaluation, the Pareto front and the budgets, for every pair of objectives."""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from hwnas.io import atomic_write
from hwnas.pareto._front import ParetoFront
from hwnas.budgets import check_budgets
from hwnas.pareto._sorting import (check_objectives, feasible_mask,
                                   non_dominated, objective_matrix, unique_by_key)
from hwnas.objectives import Evaluation

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Axis labels in plain words with units.
AXIS_LABELS = {
    "error": "Error (%)",
    "latency_ms": "Latency (ms)",
    "params": "Parameters (count)",
    "macs": "Multiply-accumulates per image (count)",
    "memory_bytes": "Memory (bytes)",
}
_TITLES = {"error": "error", "latency_ms": "latency", "params": "parameters", "macs": "multiply-accumulates",
           "memory_bytes": "memory"}


def objective_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """Every pair of objectives as (y, x): ``error`` always on y, otherwise config order."""
    pairs = []
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            pairs.append((second, first) if second == "error" else (first, second))
    return pairs


def _axis(evaluations: Sequence[Evaluation], name: str) -> np.ndarray:
    values = objective_matrix(evaluations, [name])[:, 0]
    return 100.0 * values if name == "error" else values


def plot_front(evaluations: Iterable[Evaluation], objectives: Sequence[str],
               budgets: Mapping[str, float] | None, path: str | os.PathLike[str]) -> None:
    """Draws the front (``front_figure``) and saves it as a PNG, atomically.

    Args:
        evaluations, objectives, budgets: see ``front_figure``.
        path: the PNG file; its directory must exist.

    Raises:
        ValueError: no evaluations, or fewer than two objectives.
    """
    fig = front_figure(evaluations, objectives, budgets)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


def front_figure(evaluations: Iterable[Evaluation], objectives: Sequence[str],
                 budgets: Mapping[str, float] | None) -> Figure:
    """Draws every pair of objectives as one matplotlib Figure.

    One panel per pair (error on the vertical axis where it is one of the
    two): every evaluated subnet in grey, those over a budget as red crosses, the Pareto front (taken over all
    ``objectives``, within the budgets) highlighted and joined by a step line,
    and each budget on a plotted axis as a dashed line.

    Args:
        evaluations: every evaluation of a run.
        objectives: the front's objectives, at least two.
        budgets: objective name -> hard upper limit; ``None``: no budget.

    Returns:
        the figure (not attached to pyplot: show it in a notebook, or ``savefig``).

    Raises:
        ValueError: no evaluations, or fewer than two objectives.
    """
    names = check_objectives(objectives)
    limits = check_budgets(budgets)
    if len(names) < 2:
        raise ValueError(f"plot_front needs at least two objectives, got {list(names)}")
    unique = unique_by_key(evaluations)
    if not unique:
        raise ValueError("plot_front needs at least one evaluation, got none")

    # Imported here so that commands which never plot do not pay for matplotlib.
    import seaborn as sns
    from matplotlib.figure import Figure

    front = ParetoFront(unique, names, limits)
    front_keys = {e.arch.key for e in front}
    fits = feasible_mask(unique, limits)
    on_front = np.array([e.arch.key in front_keys for e in unique], dtype=bool)
    pairs = objective_pairs(names)
    columns = min(3, len(pairs))
    rows = -(-len(pairs) // columns)

    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(5.0 * columns, 4.2 * rows), layout="constrained")
        axes = fig.subplots(rows, columns, squeeze=False).ravel()
        for ax in axes[len(pairs):]:
            ax.set_visible(False)
        for ax, (y_name, x_name) in zip(axes, pairs):
            x, y = _axis(unique, x_name), _axis(unique, y_name)
            others = fits & ~on_front
            sns.scatterplot(x=x[others], y=y[others], ax=ax, color="0.6", s=22,
                            edgecolor="none", label="evaluated subnet")
            if np.any(~fits):
                sns.scatterplot(x=x[~fits], y=y[~fits], ax=ax, color="tab:red", marker="X",
                                s=30, edgecolor="none", label="over budget")
            if np.any(on_front):
                fx, fy = x[on_front], y[on_front]
                # The step joins only the points not dominated in this panel's two objectives.
                step = non_dominated(np.column_stack([fx, fy]))
                order = np.argsort(fx[step], kind="stable")
                ax.step(fx[step][order], fy[step][order], where="post", color="tab:blue",
                        linewidth=1.4, zorder=3)
                sns.scatterplot(x=fx, y=fy, ax=ax, color="tab:blue", s=46, edgecolor="black",
                                linewidth=0.6, zorder=4, label="Pareto front")
            for name, line in ((x_name, ax.axvline), (y_name, ax.axhline)):
                if name in limits:
                    scale = 100.0 if name == "error" else 1.0
                    line(scale * limits[name], color="black", linestyle="--", linewidth=1.0,
                         label=f"{_TITLES[name]} budget")
            ax.set_xlabel(AXIS_LABELS[x_name])
            ax.set_ylabel(AXIS_LABELS[y_name])
            ax.set_title(f"{_TITLES[y_name].capitalize()} vs {_TITLES[x_name]}")
            ax.legend(loc="best", fontsize="small")
        # One panel is too narrow for the title on one line.
        fig.suptitle(f"{len(unique)} evaluated subnets, {len(front)} on the Pareto front"
                     f"{chr(10) if columns == 1 else ' '}over {', '.join(names)}")

    return fig
