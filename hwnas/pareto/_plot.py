"""Plot of every evaluation, the Pareto front and the budgets: error against each cost."""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from hwnas._io import atomic_write
from hwnas.pareto._front import ParetoFront
from hwnas.pareto._sorting import (check_budgets, check_objectives, feasible_mask,
                                   non_dominated, objective_matrix, unique_by_key)
from hwnas.records import Evaluation

#: Axis labels in plain words with units.
AXIS_LABELS = {
    "error": "Error (%)",
    "latency_ms": "Latency (ms)",
    "params": "Parameters (count)",
    "macs": "Multiply-accumulates per image (count)",
    "memory_bytes": "Memory (bytes)",
}
_TITLES = {"latency_ms": "latency", "params": "parameters", "macs": "multiply-accumulates",
           "memory_bytes": "memory"}


def plot_front(evaluations: Iterable[Evaluation], objectives: Sequence[str],
               budgets: Mapping[str, float] | None, path: str | os.PathLike[str]) -> None:
    """Draws error against each other objective and saves it as a PNG, atomically.

    One panel per objective other than ``error``: every evaluated subnet in
    grey, those over a budget as red crosses, the Pareto front (taken over all
    ``objectives``, within the budgets) highlighted and joined by a step line,
    and each budget on a plotted axis as a dashed line.

    Args:
        evaluations: every evaluation of a run.
        objectives: the front's objectives; must hold ``error`` and at least one other.
        budgets: objective name -> hard upper limit; ``None``: no budget.
        path: the PNG file; its directory must exist.

    Raises:
        ValueError: no evaluations, or ``objectives`` lacks ``error`` or a cost objective.
    """
    names = check_objectives(objectives)
    limits = check_budgets(budgets)
    costs = [n for n in names if n != "error"]
    if "error" not in names or not costs:
        raise ValueError(f"plot_front needs 'error' and at least one other objective, "
                         f"got {list(names)}")
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
    error = 100.0 * objective_matrix(unique, ["error"])[:, 0]

    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(5.0 * len(costs), 4.2), layout="constrained")
        axes = fig.subplots(1, len(costs), squeeze=False)[0]
        for ax, cost in zip(axes, costs):
            x = objective_matrix(unique, [cost])[:, 0]
            others = fits & ~on_front
            sns.scatterplot(x=x[others], y=error[others], ax=ax, color="0.6", s=22,
                            edgecolor="none", label="evaluated subnet")
            if np.any(~fits):
                sns.scatterplot(x=x[~fits], y=error[~fits], ax=ax, color="tab:red", marker="X",
                                s=30, edgecolor="none", label="over budget")
            if np.any(on_front):
                fx, fy = x[on_front], error[on_front]
                # The step joins only the points not dominated in this panel's two objectives.
                step = non_dominated(np.column_stack([fx, fy]))
                order = np.argsort(fx[step], kind="stable")
                ax.step(fx[step][order], fy[step][order], where="post", color="tab:blue",
                        linewidth=1.4, zorder=3)
                sns.scatterplot(x=fx, y=fy, ax=ax, color="tab:blue", s=46, edgecolor="black",
                                linewidth=0.6, zorder=4, label="Pareto front")
            if cost in limits:
                ax.axvline(limits[cost], color="black", linestyle="--", linewidth=1.0,
                           label=f"{_TITLES[cost]} budget")
            if "error" in limits:
                ax.axhline(100.0 * limits["error"], color="dimgray", linestyle="--",
                           linewidth=1.0, label="error budget")
            ax.set_xlabel(AXIS_LABELS[cost])
            ax.set_ylabel(AXIS_LABELS["error"])
            ax.set_title(f"Error vs {_TITLES[cost]}")
            ax.legend(loc="best", fontsize="small")
        fig.suptitle(f"{len(unique)} evaluated subnets, {len(front)} on the Pareto front")

    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
