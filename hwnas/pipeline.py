"""The pipeline steps after training: search, front, select, export (run directory: _rundir)."""
from __future__ import annotations

import dataclasses
import functools
import json
import math
from typing import Any

import nnabla as nn
import optuna
import numpy as np
from tqdm import tqdm

from hwnas._io import atomic_write_json, atomic_write_text
from hwnas._rundir import CONFIG, RunDir
from hwnas.data import Dataset, load_dataset
from hwnas.errors import ConfigError, HwnasError, MeasurementError, RunDirError
from hwnas.evaluate import Evaluator
from hwnas.export import FORMATS, export_checked, weights_digest, write_record
from hwnas.hwcost import measure_gated
from hwnas.pareto import (ParetoFront, Selection, hypervolume_history, plot_front,
                          plot_hypervolume, reference_point, select as select_subnet)
from hwnas.pareto._sorting import objective_matrix
from hwnas.records import Evaluation
from hwnas.strategies import OptunaStrategy, drive, strategy_class
from hwnas.strategies._driver import MAX_REPEATS
from hwnas.studies import evaluations, fail_stale_trials, known_evaluations, open_study
from hwnas.studies._parallel import DaskPool, ProcessPool
from hwnas.studies._storage import storage_of
from hwnas.studies._workers import work_on
from hwnas.supernet import Arch, BaseSearchSpace, Supernet, create_space, space_arguments
from hwnas.supernet.learners import load_weights
from hwnas.supernet.learners._base import CHECKPOINT, WEIGHTS

MEASURED = "measured.json"
#: What the last search call did: counts and wall times.
SEARCH_STATS = "search_stats.json"


@dataclasses.dataclass
class Workspace:
    """What the steps after training share: data, space, trained supernet."""

    run: RunDir
    data: Dataset
    space: BaseSearchSpace
    supernet: Supernet

    progress: bool = True

    @functools.cached_property
    def evaluator(self) -> Evaluator:
        from hwnas import profiling
        cfg = self.run.config
        table = None
        if cfg.latency.predictor == "lut":
            table = profiling.ensure_table(self.run, self, progress=self.progress)
        return Evaluator(space=self.space, supernet=self.supernet, data=self.data,
                         latency=cfg.latency, bn_samples=cfg.search.bn_samples,
                         profiler=profiling.make_profiler(cfg.latency), table=table)


def _set_context(context: str) -> None:
    import logging

    from nnabla.ext_utils import get_extension_context
    from nnabla.logger import logger
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # nnabla logs a missing extension: one line is ours
    try:
        nn.set_default_context(get_extension_context(context))
    except Exception as exc:  # the extension is not installed or no device
        raise ConfigError(f"latency.context {context!r} is not available here ({exc}); "
                          "install nnabla-ext-cuda for 'cudnn' or use 'cpu'") from None
    finally:
        logger.setLevel(level)


def workspace(run: RunDir, *, trained: bool = True, progress: bool = True) -> Workspace:
    """Loads the data, builds the space and supernet, and loads trained weights."""
    cfg = run.config
    _set_context(cfg.latency.context)
    data = load_dataset(cfg.data, seed=cfg.seed)
    space_cfg = cfg.space
    try:
        given = {**dataclasses.asdict(space_cfg), "input_shape": data.input_shape,
                 "n_classes": data.n_classes,
                 "stages": [(s.channels, s.blocks, s.stride) for s in space_cfg.stages]}
        # Each space takes the keys it knows (darts: cells, channels, nodes, operations).
        space = create_space(space_cfg.name, **{k: v for k, v in given.items()
                                                if k in space_arguments(space_cfg.name)})
    except ValueError as exc:
        raise ConfigError(f"{run / CONFIG}: 'space' {exc}") from None
    nn.seed(cfg.seed)
    np.random.seed(cfg.seed)
    supernet = space.supernet()
    if trained:
        _check_trained(run)
        load_weights(supernet, run / WEIGHTS)
    return Workspace(run, data, space, supernet, progress)


def _check_trained(run: RunDir) -> None:
    ckpt = run / CHECKPOINT
    if not ckpt.exists():
        raise RunDirError(f"{run.path}: the supernet is not trained yet; run 'hwnas train {run.path}'")
    try:
        with np.load(ckpt) as state:
            done = int(state["epochs_done"])
    except Exception as exc:
        raise RunDirError(f"{ckpt}: unreadable training checkpoint ({exc})") from None
    if done < run.config.train.epochs:
        raise RunDirError(f"{run.path}: supernet training stopped after {done} of "
                          f"{run.config.train.epochs} epochs; rerun 'hwnas train {run.path}'")


def search(run: RunDir, *, progress: bool = True, ws: Workspace | None = None,
           strategy: str | None = None, workers: int = 1,
           dask: str | None = None) -> list[Evaluation]:
    """Runs (or resumes) the search until the study holds ``search.trials`` distinct subnets.

    Args:
        strategy: a registered strategy name instead of the config's; a study
            may hold trials of several strategies, each recorded as such.
        workers: local processes evaluating each batch (1: this process).
        dask: a Dask scheduler address; its workers evaluate instead.
    """
    if storage_of(run.path) is not None:  # a database study: this process is one worker
        if workers != 1 or dask:
            raise HwnasError("this run's study is in a database: start more 'hwnas worker' "
                             "processes instead of --workers or --dask")
        work_on(run, strategy=strategy, progress=progress, ws=ws)
        return evaluations(open_study(run.path, run.config.search.objectives, create=False))
    ws = ws or workspace(run, progress=progress)
    cfg = run.config
    name = strategy or cfg.search.strategy
    try:
        strategy_cls = strategy_class(name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    study = open_study(run.path, cfg.search.objectives, sampler=strategy_cls.sampler(cfg.seed))
    stale = fail_stale_trials(study)
    if issubclass(strategy_cls, OptunaStrategy):
        # Re-queued: the sampler's next asks. (Other strategies propose them
        # again by themselves when they replay the study.)
        for params in stale:
            study.enqueue_trial(params)
    evaluator = ws.evaluator
    known = known_evaluations(study)
    for key, evaluation in known.items():
        evaluator.cache.setdefault(key, evaluation)
    searcher = strategy_cls(study=study, choices=ws.space.choices,
                            objectives=cfg.search.objectives, budgets=cfg.budgets, seed=cfg.seed)
    from hwnas.training import derived_arch
    derived = derived_arch(run)
    searcher.enqueue(([ws.space.validate(derived)] if derived is not None else [])
                     + ws.space.extremes())
    pool = (DaskPool(run.path, dask) if dask else
            ProcessPool(run.path, workers) if workers > 1 else None)
    bar = tqdm(total=cfg.search.trials, initial=min(len(known), cfg.search.trials),
               desc=f"search ({name})", disable=not progress)

    def show(evaluation: Evaluation, cached: bool) -> None:
        if not cached:
            bar.update(1)
            bar.set_postfix(error=f"{evaluation.metrics['error']:.3f}",
                            latency_ms=f"{evaluation.costs.latency_ms:.3f}")

    def warn_and_evaluate(arch: Arch) -> Evaluation:
        try:
            return evaluator(arch)
        except MeasurementError as exc:
            tqdm.write(f"warning: {exc}; the trial is marked failed")
            raise

    try:
        result = drive(searcher, warn_and_evaluate, cfg.search.trials, known=known,
                       on_result=show, batch=cfg.search.batch,
                       submit=pool.submit if pool is not None else None)
    finally:
        if pool is not None:
            pool.close()
    bar.close()
    if result.evaluated or result.cached or result.failed:  # a finished search stays as it was
        atomic_write_json(run / SEARCH_STATS, {**dataclasses.asdict(result), "strategy": name,
                                               "batch": cfg.search.batch, "workers": workers,
                                               "dask": dask})
    if result.exhausted:
        tqdm.write(f"note: the space holds only {len(known)} subnets; all are evaluated")
    elif result.stalled:
        tqdm.write(f"warning: the {name} strategy proposed only subnets already evaluated "
                   f"{MAX_REPEATS} times in a row; stopping at {len(known)} subnets "
                   "(the space may be exhausted)")
    return evaluations(study)


def front(run: RunDir, *, ws: Workspace | None = None) -> ParetoFront:
    """The feasible Pareto front of the study; writes front.csv, front.png and hv.png.

    When latencies were predicted from the table, every subnet on the front
    is also measured whole; front.csv gains ``latency_ms_measured``.
    """
    cfg = run.config
    study = open_study(run.path, cfg.search.objectives, create=False)
    evs = evaluations(study)
    if not evs:
        raise RunDirError(f"{run.path}: the study holds no completed evaluation yet")
    pareto = ParetoFront.from_evaluations(evs, cfg.search.objectives, cfg.budgets)
    table = pareto.table()
    if any(e.costs.latency_source == "predicted" for e in pareto.evaluations):
        measured = remeasure(run, ws or workspace(run), [e.arch for e in pareto.evaluations])
        table["latency_ms_measured"] = [measured[k]["latency_ms"] for k in table["key"]]
    atomic_write_text(run / "front.csv", table.to_csv(index=False))
    plot_front(evs, cfg.search.objectives, cfg.budgets, run / "front.png")
    ref = reference_point(objective_matrix(evs, cfg.search.objectives))
    history = hypervolume_history(evs, cfg.search.objectives, cfg.budgets, ref)
    plot_hypervolume({strategies_of(study, cfg.search.strategy): history}, run / "hv.png",
                     title="Hypervolume of the feasible front (reference: 10% beyond "
                     "the worst evaluation)")
    return pareto


def strategies_of(study: optuna.Study, default: str) -> str:
    """The strategies that proposed a study's trials, in order of first appearance
    ("tpe-ls then random"); ``default`` when no trial says."""
    names: list[str] = []
    for trial in study.get_trials(deepcopy=False):
        name = trial.user_attrs.get("strategy")
        if name and name not in names:
            names.append(name)
    return " then ".join(names or [default])


def remeasure(run: RunDir, ws: Workspace, archs: list[Arch]) -> dict[str, dict[str, Any]]:
    """Whole-subnet latencies of ``archs``, each measured once and kept in measured.json."""
    path = run / MEASURED
    try:
        cache = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        cache = {}  # a cache only: measure again
    todo = {a.key: (ws.supernet.extract(a), ws.data.input_shape)
            for a in archs if a.key not in cache}
    if todo:
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
        selection = select_subnet([e for e in evs if e.arch.key not in rejected], budgets)
        chosen = selection.require()
        if chosen.costs.latency_source != "predicted":
            measured = None
            break
        ws = ws or workspace(run)
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
    atomic_write_json(run / "selected.json", record)
    return selection


def selected_arch(run: RunDir) -> Arch:
    """The Arch in selected.json."""
    path = run / "selected.json"
    if not path.exists():
        raise RunDirError(f"{path}: nothing selected yet; run 'hwnas select {run.path}'")
    try:
        return Arch(json.loads(path.read_text())["arch"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RunDirError(f"{path} is damaged ({exc})") from None


def export(run: RunDir, arch: Arch | None = None, *, ws: Workspace | None = None,
           formats: tuple[str, ...] = ("nnp", "onnx")) -> dict[str, Any]:
    """Writes the selected subnet (or ``arch``) as model.nnp and/or model.onnx, checks each file
    against the in-process subnet on the test split, and writes export.json (see
    :func:`hwnas.export.export_checked` and :func:`hwnas.export.write_record`).

    Returns:
        What export.json records: the subnet, its input and, per format, the file, its
        runtime, test accuracy and round-trip error.
    """
    for name in formats or [""]:
        if name not in FORMATS:
            raise HwnasError(f"unknown export format {name!r}; known: {', '.join(FORMATS)}")
    if arch is None:
        arch = selected_arch(run)
    ws = ws or workspace(run)
    try:
        ws.space.validate(arch)
    except ValueError as exc:
        raise HwnasError(str(exc)) from None
    subnet, weights = _deploy_subnet(run, ws, arch)
    written = export_checked(subnet, ws.data, run.path, [f for f in FORMATS if f in formats])
    return write_record(run.path, arch, weights, weights_digest(subnet), ws.data, written)


def _deploy_subnet(run: RunDir, ws: Workspace, arch: Arch) -> tuple[nn.Module, str]:
    """The subnet that export writes, and where its weights come from: "retrained" when
    ``hwnas retrain`` finished for this subnet, else "supernet" (shared weights, BN
    statistics recalibrated)."""
    from hwnas.retrain import retrained_subnet
    subnet = retrained_subnet(run, ws.supernet, arch)
    if subnet is not None:
        return subnet, "retrained"
    ws.evaluator.recalibrate(arch)
    return ws.supernet.extract(arch), "supernet"
