"""Choosing the subnet to deploy: the front (re-measured whole), and selection under budgets."""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import optuna
import pandas as pd

from hwnas.arch import Arch
from hwnas.errors import RunDirError
from hwnas.hwcost import measure_gated
from hwnas.io import atomic_write_json, atomic_write_text
from hwnas.objectives import Evaluation
from hwnas.pareto import (ParetoFront, Selection, best_within, hypervolume_history,
                          objective_matrix, plot_front, plot_hypervolume, reference_point)
from hwnas.run.files import RunDir
from hwnas.run.records import read_measured, read_selected
from hwnas.run.workspace import Workspace, workspace
from hwnas.studies import evaluations, open_study


def front(run: RunDir, *, ws: Workspace | None = None) -> ParetoFront:
    """The feasible Pareto front of the study; writes front.csv, front.png and hv.png.

    When latencies were predicted from the table, every subnet on the front
    is also measured whole; front.csv gains ``latency_ms_measured``.
    """
    cfg = run.config
    study = open_study(run.path, cfg.search.objectives, create=False)
    evs = evaluations(study)
    pareto, table = front_table(run, evs, ws=ws)
    atomic_write_text(run / RunDir.FRONT, table.to_csv(index=False))
    plot_front(evs, cfg.search.objectives, cfg.budgets, run / RunDir.FRONT_PLOT)
    ref = reference_point(objective_matrix(evs, cfg.search.objectives))
    history = hypervolume_history(evs, cfg.search.objectives, cfg.budgets, ref)
    plot_hypervolume({strategies_of(study, cfg.search.strategy): history}, run / RunDir.HV_PLOT,
                     title="Hypervolume of the feasible front (reference: 10% beyond "
                     "the worst evaluation)")
    return pareto


def _pareto(run: RunDir, evs: list[Evaluation]) -> ParetoFront:
    if not evs:
        raise RunDirError(f"{run.path}: the study holds no completed evaluation yet")
    return ParetoFront.from_evaluations(evs, run.config.search.objectives, run.config.budgets)


def _predicted(pareto: ParetoFront) -> bool:
    """Whether a latency on the front was predicted (the front is then measured whole)."""
    return any(e.costs.latency_source == "predicted" for e in pareto.evaluations)


def front_table(run: RunDir, evs: list[Evaluation], *, ws: Workspace | None = None
                ) -> tuple[ParetoFront, pd.DataFrame]:
    """The feasible Pareto front of ``evs`` (the study's evaluations) and its table, as
    front.csv holds it: when latencies were predicted, every subnet on the front is also
    measured whole (once, kept in measured.json: see ``unmeasured``) and the table gains
    ``latency_ms_measured``.

    Raises:
        RunDirError: ``evs`` is empty.
    """
    pareto = _pareto(run, evs)
    table = pareto.table()
    if _predicted(pareto):
        measured = remeasure(run, ws, [e.arch for e in pareto.evaluations])
        table["latency_ms_measured"] = [measured[k]["latency_ms"] for k in table["key"]]
    return pareto, table


def unmeasured(run: RunDir, evs: list[Evaluation]) -> list[Arch]:
    """The subnets on the front of ``evs`` that ``front_table`` still has to measure whole
    (and to write into measured.json); none when every latency was measured."""
    pareto = _pareto(run, evs)
    if not _predicted(pareto):
        return []
    cache = read_measured(run)
    return [e.arch for e in pareto.evaluations if e.arch.key not in cache]


def strategies_of(study: optuna.Study, default: str) -> str:
    """The strategies that proposed a study's trials, in order of first appearance
    ("tpe-ls then random"); ``default`` when no trial says."""
    names: list[str] = []
    for trial in study.get_trials(deepcopy=False):
        name = trial.user_attrs.get("strategy")
        if name and name not in names:
            names.append(name)
    return " then ".join(names or [default])


def remeasure(run: RunDir, ws: Workspace | None, archs: list[Arch]) -> dict[str, dict[str, Any]]:
    """Whole-subnet latencies of ``archs``, each measured once and kept in measured.json
    (``ws``: the run's workspace, loaded here if None and something is to be measured)."""
    path = run / RunDir.MEASURED
    cache = read_measured(run)
    missing = [a for a in archs if a.key not in cache]
    if missing:
        ws = ws or workspace(run)
        todo = {a.key: (ws.supernet.extract(a), ws.data.input_shape) for a in missing}
        # Gated by the probe network like the table, so that the numbers
        # compared with its predictions come from an equally quiet device.
        evaluator = ws.evaluator
        reference = evaluator.table.probe_ms if evaluator.table is not None else None
        settled, protocol, _ = measure_gated(evaluator.profiler, todo, reference_ms=reference,
                                             progress=ws.progress, desc="re-measure")
        for key, result in settled.items():
            cache[key] = {"latency_ms": result.ms,
                          "protocol": dataclasses.replace(protocol, spread=result.spread).to_dict()}
        atomic_write_json(path, cache)
    return cache


def select(run: RunDir, budgets: dict[str, float] | None = None, *,
           ws: Workspace | None = None) -> Selection:
    """Chooses the most accurate evaluated subnet within every budget; writes selected.json.

    A subnet whose latency was predicted is measured whole before it is
    chosen; if the measurement breaks the latency budget, the next best
    subnet is considered. selected.json records both numbers.

    Raises:
        BudgetError: nothing fits; the message names the nearest subnet.
    """
    cfg = run.config
    budgets = dict(cfg.budgets if budgets is None else budgets)
    evs = evaluations(open_study(run.path, cfg.search.objectives, create=False))
    rejected: dict[str, float] = {}
    while True:
        selection = best_within([e for e in evs if e.arch.key not in rejected], budgets)
        chosen = selection.require()
        if chosen.costs.latency_source != "predicted":
            measured = None
            break
        if ws is None and chosen.arch.key not in read_measured(run):
            ws = workspace(run)  # loaded once for every subnet measured here
        measured = remeasure(run, ws, [chosen.arch])[chosen.arch.key]
        if measured["latency_ms"] <= budgets.get("latency_ms", math.inf):
            break
        rejected[chosen.arch.key] = measured["latency_ms"]
    record = {"key": chosen.arch.key, "arch": dict(chosen.arch), "budgets": budgets,
              "metrics": chosen.metrics, "costs": chosen.costs.to_dict()}
    if measured is not None:
        record["latency_ms_predicted"] = chosen.costs.latency_ms
        record["latency_ms_measured"] = measured["latency_ms"]
        record["measured_protocol"] = measured["protocol"]
    if rejected:
        record["rejected_after_measurement"] = rejected
    atomic_write_json(run / RunDir.SELECTED, record)
    return selection


def selected_arch(run: RunDir) -> Arch:
    """The Arch in selected.json."""
    record = read_selected(run)
    if record is None:
        raise RunDirError(f"{run / RunDir.SELECTED}: nothing selected yet; "
                          f"run 'hwnas select {run.path}'")
    return Arch(record["arch"])
