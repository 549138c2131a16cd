"""The search step: one set-up of strategy, study and evaluator for ``hwnas search``, its
worker pools and ``hwnas worker``; the loop itself is :mod:`hwnas.driver`."""
from __future__ import annotations

import dataclasses
import hashlib
import re

import optuna
from tqdm import tqdm

from hwnas.driver import (MAX_REPEATS, DaskPool, DriveResult, ProcessPool, drive,
                          failed_subnets, work)
from hwnas.errors import ConfigError, HwnasError, MeasurementError, RunDirError
from hwnas.io import atomic_write_json
from hwnas.objectives import Evaluation
from hwnas.run.files import RunDir
from hwnas.run.train import derived_arch
from hwnas.run.workspace import Workspace, worker_evaluator, workspace
from hwnas.strategies import BaseStrategy, SamplerStrategy, strategy_class
from hwnas.studies import (evaluations, fail_stale_trials, known_evaluations, masked,
                           open_study, storage_of)
from hwnas.supernet import Arch


def _strategy_class(name: str, error: type[HwnasError] = ConfigError) -> type[BaseStrategy]:
    try:
        return strategy_class(name)
    except ValueError as exc:
        raise error(str(exc)) from None


def _open(run: RunDir, cls: type[BaseStrategy], seed: int,
          storage: tuple[str, str] | None = None) -> optuna.Study:
    """The run's study, opened with the strategy's sampler; in the journal, the trials a
    crash left running are failed (and re-queued for an Optuna sampler)."""
    study = open_study(run.path, run.config.search.objectives, sampler=cls.sampler(seed),
                       create=storage is None, storage=storage)
    if storage is None:
        stale = fail_stale_trials(study)
        if issubclass(cls, SamplerStrategy):
            # Re-queued: the sampler's next asks. (Other strategies propose them
            # again by themselves when they replay the study.)
            for params in stale:
                study.enqueue_trial(params)
    return study


def _strategy(run: RunDir, ws: Workspace, cls: type[BaseStrategy], study: optuna.Study,
              seed: int, given: BaseStrategy | None = None) -> BaseStrategy:
    """The strategy (an Optuna sampler's over ``study``), its first proposals queued: the
    learner's derived subnet, then the space's extremes (one the space cannot build is
    recorded as infeasible by the loop, like any proposal).

    Args:
        given: a strategy object to search with instead of a new ``cls``; it must know the
            run's choices, objectives and budgets. An Optuna one is bound to ``study``.
    """
    cfg = run.config
    if given is None:
        over = {"study": study} if issubclass(cls, SamplerStrategy) else {}
        searcher = cls(**over, choices=ws.space.choices, objectives=cfg.search.objectives,
                       budgets=cfg.budgets, seed=seed)
    else:
        searcher = _check_given(given, ws.space.choices, cfg.search.objectives, cfg.budgets)
        if isinstance(searcher, SamplerStrategy):
            searcher.study = study  # it proposes through the run's study, opened with its sampler
    derived = derived_arch(run)
    searcher.enqueue(([ws.space.check_choices(derived)] if derived is not None else [])
                     + ws.space.extremes())
    return searcher


def _check_given(strategy: BaseStrategy, choices: dict[str, tuple[str, ...]],
                 objectives: list[str], budgets: dict[str, float]) -> BaseStrategy:
    """A strategy object given to the search, checked against the run.

    Raises:
        HwnasError: it has no name (its trials would not say who proposed them), or
            other choices, objectives or budgets than the run.
    """
    what = f"the strategy {type(strategy).__name__}"
    if not strategy.name:
        raise HwnasError(f"{what} has no name: set its class attribute 'name'")
    for field, ours in (("choices", choices), ("objectives", list(objectives)),
                        ("budgets", dict(budgets))):
        theirs = getattr(strategy, field)
        if field == "choices":
            theirs, ours = ({n: tuple(o) for n, o in c.items()} for c in (theirs, ours))
        if theirs != ours:
            raise HwnasError(f"{what} was made with other {field} than the run's: {theirs} "
                             f"instead of {ours}")
    return strategy


def _chosen(strategy: str | BaseStrategy | None, default: str,
            error: type[HwnasError] = ConfigError
            ) -> tuple[str, type[BaseStrategy], BaseStrategy | None]:
    """The name, class and (when an object was given) the object of the strategy to run."""
    if isinstance(strategy, BaseStrategy):
        return strategy.name, type(strategy), strategy
    name = strategy or default
    return name, _strategy_class(name, error), None


def search(run: RunDir, *, progress: bool = True, ws: Workspace | None = None,
           strategy: str | BaseStrategy | None = None, trials: int | None = None,
           workers: int = 1, dask: str | None = None) -> list[Evaluation]:
    """Runs (or resumes) the search until the study holds ``search.trials`` distinct subnets.

    Args:
        strategy: a registered strategy name instead of the config's, or a strategy
            object made with the run's choices, objectives and budgets (its seed seeds
            its sampler); a study may hold trials of several strategies, each recorded
            as such.
        trials: distinct subnets the study holds at the end, instead of ``search.trials``.
        workers: local processes evaluating each batch (1: this process).
        dask: a Dask scheduler address; its workers evaluate instead.

    Raises:
        HwnasError: ``trials`` < 1, or a strategy object that does not fit the run.
    """
    if trials is not None:
        if trials < 1:
            raise HwnasError(f"trials must be >= 1, got {trials}")
        cfg = run.config
        run = RunDir(run.path, dataclasses.replace(
            cfg, search=dataclasses.replace(cfg.search, trials=trials)))
    if storage_of(run.path) is not None:  # a database study: this process is one worker
        if workers != 1 or dask:
            raise HwnasError("this run's study is in a database: start more 'hwnas worker' "
                             "processes instead of --workers or --dask")
        run_worker(run, strategy=strategy, progress=progress, ws=ws)
        return evaluations(open_study(run.path, run.config.search.objectives, create=False))
    ws = ws or workspace(run, progress=progress)
    cfg = run.config
    name, cls, given = _chosen(strategy, cfg.search.strategy)
    seed = cfg.seed if given is None else given.seed
    study = _open(run, cls, seed)
    searcher = _strategy(run, ws, cls, study, seed, given)
    evaluator = ws.evaluator
    known = known_evaluations(study)
    for key, evaluation in known.items():
        evaluator.cache.setdefault(key, evaluation)
    pool = (DaskPool(run.path, dask, worker_evaluator) if dask else
            ProcessPool(run.path, workers, worker_evaluator) if workers > 1 else None)
    bar = tqdm(total=cfg.search.trials, initial=min(len(known), cfg.search.trials),
               desc=f"search ({name})", disable=not progress)

    def show(evaluation: Evaluation, cached: bool) -> None:
        if not cached:
            bar.update(1)
            bar.set_postfix(error=f"{evaluation.metrics['error']:.3f}",
                            latency_ms=f"{evaluation.costs.latency_ms:.3f}")

    def warn(arch: Arch, reason: str) -> None:
        tqdm.write(f"warning: {reason}; {arch.key} is recorded as failed and not proposed "
                   "again")

    result = DriveResult()
    try:
        drive(searcher, evaluator, cfg.search.trials, study=study, known=known,
              on_result=show, on_failure=warn, batch=cfg.search.batch,
              submit=pool.submit if pool is not None else None, result=result,
              space=ws.space)
    except MeasurementError:
        _write_stats(run, result, name, workers, dask)  # the counts up to the stop
        raise
    finally:
        if pool is not None:
            pool.close()
        bar.close()
    _write_stats(run, result, name, workers, dask)
    if result.infeasible:
        tqdm.write(f"note: {result.infeasible} proposed subnets cannot be built in this space; "
                   "they are recorded as infeasible (failed trials) and not proposed again")
    if result.exhausted:
        tqdm.write(f"note: the space holds only {len(known)} subnets that can be evaluated; "
                   "all are evaluated")
    elif result.stalled:
        tqdm.write(f"warning: the {name} strategy proposed only subnets already evaluated "
                   f"{MAX_REPEATS} times in a row; stopping at {len(known)} subnets "
                   "(the space may be exhausted)")
    return evaluations(study)


def _write_stats(run: RunDir, result: DriveResult, name: str, workers: int,
                 dask: str | None) -> None:
    """search_stats.json: what this search did; a search that did nothing leaves it as it was."""
    if result.evaluated or result.cached or result.failed or result.infeasible:
        atomic_write_json(run / RunDir.SEARCH_STATS,
                          {**dataclasses.asdict(result), "strategy": name,
                           "batch": run.config.search.batch, "workers": workers, "dask": dask})


def failed_subnets_of(run: RunDir) -> dict[str, str]:
    """Key -> reason of every subnet the run's study records as never evaluable."""
    return failed_subnets(open_study(run.path, run.config.search.objectives, create=False))


def study_name(config_name: str, config_text: str) -> str:
    """The study's name in a database: the experiment name and a digest of its config."""
    return f"hwnas-{config_name}-{hashlib.sha1(config_text.encode()).hexdigest()[:8]}"


def create_study(run: RunDir, url: str) -> tuple[optuna.Study, bool]:
    """Creates (or reopens) the run's study in the RDB at ``url`` and records it in storage.json.

    Returns:
        the study, and whether it was created now.

    Raises:
        RunDirError: the run already uses another storage, or the database
            cannot be reached.
    """
    if re.fullmatch(r"sqlite(\+\w+)?:///?(:memory:)?(\?.*)?", url.strip()):
        raise RunDirError(f"{masked(url)} is an SQLite database in memory, which no other "
                          "process sees; give a file the workers share: sqlite:///PATH")
    text = (run / RunDir.CONFIG).read_text()
    name = study_name(run.config.name, text)
    recorded = storage_of(run.path)
    if recorded is not None and recorded != (url, name):
        raise RunDirError(f"{run.path} already keeps its study in {masked(recorded[0])} "
                          f"(study {recorded[1]!r}); a run has one study")
    if recorded is None and (run / RunDir.JOURNAL).exists():
        raise RunDirError(f"{run.path} already keeps its study in study.journal; start a new "
                          "run directory to use a database")
    study = open_study(run.path, run.config.search.objectives, storage=(url, name))
    created = not study.trials and "config" not in study.user_attrs
    if created:
        study.set_user_attr("config", text)
    atomic_write_json(run / RunDir.STORAGE, {"url": url, "study": name})
    return study, created


def run_worker(run: RunDir, *, url: str | None = None, seed: int | None = None,
               strategy: str | BaseStrategy | None = None, progress: bool = True,
               ws: Workspace | None = None) -> int:
    """Runs one worker of a run whose study lives in a database; returns what it evaluated.

    Args:
        url: the database, when this copy of the run directory does not record it.
        seed: this worker's seed (default: the config's, or a strategy object's own);
            give each worker its own.
        strategy: an Optuna strategy (name or object, see ``search``) instead of the
            config's.
    """
    recorded = storage_of(run.path)
    if url is not None:
        target = (url, study_name(run.config.name, (run / RunDir.CONFIG).read_text()))
        if recorded is not None and recorded != target:
            raise RunDirError(f"{run.path} keeps its study in {masked(recorded[0])}, "
                              f"not in {masked(url)}")
    elif recorded is not None:
        target = recorded
    else:
        raise RunDirError(f"{run.path} keeps its study in study.journal, which workers on other "
                          f"machines cannot share: create it in a database first with 'hwnas "
                          f"study {run.path} --storage URL' (for processes on this machine, "
                          "use 'hwnas search --workers N')")
    cfg = run.config
    if cfg.latency.predictor == "lut" and not (run / RunDir.LUT).exists():
        # Workers must not all measure the device at once to build it.
        raise RunDirError(f"{run.path} has no latency table yet: build it once with "
                          f"'hwnas lut {run.path}' before starting workers")
    name, cls, given = _chosen(strategy, cfg.search.strategy, HwnasError)
    if seed is None:
        seed = cfg.seed if given is None else given.seed
    study = _open(run, cls, seed, storage=target)
    ws = ws or workspace(run, progress=progress)
    searcher = _strategy(run, ws, cls, study, seed, given)
    evaluator = ws.evaluator
    bar = tqdm(desc=f"worker ({name}, seed {seed})", unit="subnet", disable=not progress)

    def show(evaluation: Evaluation, cached: bool) -> None:
        if not cached:
            bar.update(1)

    try:
        result = work(searcher, evaluator, cfg.search.trials, study=study, on_result=show,
                      space=ws.space)
    finally:
        bar.close()
    if result.stalled:
        tqdm.write(f"warning: the {name} strategy proposed only subnets already evaluated "
                   f"{MAX_REPEATS} times in a row; this worker stops")
    return result.evaluated
