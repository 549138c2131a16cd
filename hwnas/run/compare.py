"""``hwnas compare``: runs (strategies, seeds) side by side, one table and one plot."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hwnas.errors import RunDirError
from hwnas.io import atomic_write_text
from hwnas.pareto import (ParetoFront, hypervolume_history, objective_matrix, plot_hypervolume,
                          reference_point, unique_by_key)
from hwnas.run.files import RunDir
from hwnas.run.select import strategies_of
from hwnas.studies import evaluations, open_study

#: Columns of compare.csv, in order.
COLUMNS = ("run", "strategy", "seed", "evaluated", "front_size", "hypervolume",
           "hv_share", "hv_share_at_common", "evaluations_to_95")


def compare(paths: Sequence[str | Path], out: str | Path) -> pd.DataFrame:
    """Compares the searches of several runs with one reference point.

    The runs must trade off the same objectives under the same budgets. The
    reference point is ``reference_point`` of every evaluation of every run;
    ``hv_share`` is a run's hypervolume over that of the front of all runs
    together (the best front known), ``hv_share_at_common`` the same after the
    number of evaluations every run reached, and ``evaluations_to_95`` the
    evaluations a run needed to reach 95% of the best known hypervolume
    (empty when it never did).

    Writes ``out/compare.csv`` and ``out/compare.png`` (hypervolume share
    against evaluations, one line per run).

    Raises:
        RunDirError: a run is missing, has no evaluation, or its objectives or
            budgets differ from the first run's.
    """
    if len({Path(p).resolve() for p in paths}) != len(paths):
        raise RunDirError("a run directory is named twice")
    runs = [RunDir.open(p) for p in paths]
    first = runs[0].config
    evs, proposers = {}, {}
    for run in runs:
        cfg = run.config
        for what, mine, theirs in (("objectives", cfg.search.objectives, first.search.objectives),
                                   ("budgets", cfg.budgets, first.budgets)):
            if mine != theirs:
                raise RunDirError(f"{run.path}: its {what} {mine} differ from {runs[0].path}'s "
                                  f"{theirs}; only runs over the same objectives and budgets "
                                  "compare")
        study = open_study(run.path, cfg.search.objectives, create=False)
        found = unique_by_key(evaluations(study))
        if not found:
            raise RunDirError(f"{run.path}: the study holds no completed evaluation yet")
        evs[run] = found
        proposers[run] = strategies_of(study, cfg.search.strategy)
    objectives, budgets = first.search.objectives, first.budgets
    everything = [e for found in evs.values() for e in found]
    ref = reference_point(objective_matrix(everything, objectives))
    best = ParetoFront(everything, objectives, budgets).hypervolume(ref)
    common = min(len(found) for found in evs.values())
    rows, curves = [], {}
    for run, found in evs.items():
        history = hypervolume_history(found, objectives, budgets, ref)
        share = history / best if best > 0 else np.zeros_like(history)
        reached = np.flatnonzero(share >= 0.95)
        label = f"{run.path.name} ({proposers[run]}, seed {run.config.seed})"
        curves[label] = share
        rows.append({"run": str(run.path), "strategy": proposers[run],
                     "seed": run.config.seed, "evaluated": len(found),
                     "front_size": len(ParetoFront(found, objectives, budgets)),
                     "hypervolume": float(history[-1]), "hv_share": float(share[-1]),
                     "hv_share_at_common": float(share[common - 1]),
                     "evaluations_to_95": int(reached[0]) + 1 if len(reached) else None})
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"{out}: cannot write the comparison ({exc.strerror})") from None
    atomic_write_text(out / "compare.csv", table.to_csv(index=False))
    plot_hypervolume(curves, out / "compare.png", ylabel="Share of the best known hypervolume",
                     title=f"{', '.join(objectives)}: hypervolume / that of all runs' front")
    return table
