"""Workers sharing one study in an RDB (PostgreSQL): each proposes and evaluates on its own.

The study is created once (``hwnas study RUN --storage URL``), then any number
of ``hwnas worker RUN`` processes, on any machines that can reach the database
and read the run directory, ask their own sampler (their own seed) for the
next subnet and evaluate it. A heartbeat marks each running trial alive; the
trial of a worker that died is failed after the grace period and retried by
the next worker that asks. Workers stop when the study holds ``search.trials``
distinct evaluated subnets: reserving a trial (count, then ask) happens under
a PostgreSQL advisory lock, so the count comes out exact.
"""
from __future__ import annotations

import contextlib
import hashlib
import time
import zlib
from collections.abc import Callable, Iterator

import optuna
from optuna.storages._heartbeat import get_heartbeat_thread
from optuna.trial import TrialState

from hwnas._io import atomic_write_json
from hwnas.errors import HwnasError, MeasurementError, RunDirError
from hwnas.records import Evaluation
from hwnas.strategies import BaseStrategy, OptunaStrategy
from hwnas.studies._storage import STORAGE, masked, open_study, storage_of
from hwnas.arch import Arch

#: Seconds a worker waits while the last trials are still being evaluated elsewhere.
POLL = 1.0


def study_name(config_name: str, config_text: str) -> str:
    """The study's name in the database: the experiment name and a digest of its config."""
    return f"hwnas-{config_name}-{hashlib.sha1(config_text.encode()).hexdigest()[:8]}"


def create(run, url: str) -> tuple[optuna.Study, bool]:
    """Creates (or reopens) the run's study in the RDB at ``url`` and records it in storage.json.

    Returns:
        the study, and whether it was created now.

    Raises:
        RunDirError: the run already uses another storage, or the database
            cannot be reached.
    """
    text = (run / "config.yaml").read_text()
    name = study_name(run.config.name, text)
    recorded = storage_of(run.path)
    if recorded is not None and recorded != (url, name):
        raise RunDirError(f"{run.path} already keeps its study in {masked(recorded[0])} "
                          f"(study {recorded[1]!r}); a run has one study")
    if recorded is None and (run / "study.journal").exists():
        raise RunDirError(f"{run.path} already keeps its study in study.journal; start a new "
                          "run directory to use a database")
    backend = open_study(run.path, run.config.search.objectives, storage=(url, name))
    created = not backend.trials and "config" not in backend.user_attrs
    if created:
        backend.set_user_attr("config", text)
    atomic_write_json(run / STORAGE, {"url": url, "study": name})
    return backend, created


@contextlib.contextmanager
def reservation_lock(study: optuna.Study) -> Iterator[None]:
    """Serialises "count the trials, then ask one" across workers (PostgreSQL advisory lock)."""
    storage = study._storage
    engine = getattr(getattr(storage, "_backend", storage), "engine", None)
    if engine is None or engine.dialect.name != "postgresql":
        yield  # one process (tests on SQLite)
        return
    from sqlalchemy import text
    key = zlib.crc32(study.study_name.encode())
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()


def _keys(study: optuna.Study) -> tuple[set[str], set[str]]:
    """The keys of the study's complete and of its running trials, read from the database.

    Optuna's trial cache only fetches trials with ids above the last finished
    one it saw; a trial another worker inserted with a lower id but committed
    later would never be counted, so the count bypasses the cache.
    """
    storage = getattr(study._storage, "_backend", study._storage)
    keys: dict[TrialState, set[str]] = {TrialState.COMPLETE: set(), TrialState.RUNNING: set()}
    for trial in storage.get_all_trials(study._study_id, deepcopy=False):
        if trial.state in keys and trial.params:
            keys[trial.state].add(trial.user_attrs.get("key") or Arch(trial.params).key)
    return keys[TrialState.COMPLETE], keys[TrialState.RUNNING]


def work(strategy: BaseStrategy, evaluate: Callable[[Arch], Evaluation], target: int, *,
         on_result: Callable[[Evaluation, bool], None] | None = None,
         max_failures: int = 3) -> int:
    """One worker's loop over a shared study; returns the subnets it evaluated.

    Args:
        strategy: an Optuna strategy over the shared study (its own seed).
        evaluate: scores one subnet.
        target: distinct evaluated subnets the study must hold.
    """
    if not isinstance(strategy, OptunaStrategy):
        raise HwnasError(f"the {strategy.name} strategy keeps its state in one process; "
                         "workers sharing a database need an Optuna strategy "
                         "(tpe-ls, tpe, nsga2, nsga3, optuna-random, qmc), or use --dask")
    study = strategy.study
    done = failures = 0
    while True:
        optuna.storages.fail_stale_trials(study)  # dead workers' trials: failed, re-queued
        with reservation_lock(study):
            complete, running = _keys(study)
            if len(complete) >= target:
                return done
            arch = None
            if len(complete | running) < target:
                (arch,) = strategy.ask(1)
        if arch is None:  # the last subnets are being evaluated elsewhere
            time.sleep(POLL)
            continue
        if arch.key in complete:
            first = next(e for e in _evaluations_of(study, arch.key))
            strategy.tell(arch, first, cached=True)
            if on_result is not None:
                on_result(first, True)
            continue
        if arch.key in running:
            strategy.abandon(arch, reason="being evaluated by another worker")
            continue
        trial = strategy.trial(arch)
        try:
            with get_heartbeat_thread(trial._trial_id, study._storage):
                evaluation = evaluate(arch)
        except MeasurementError as exc:
            strategy.abandon(arch, reason=str(exc))
            failures += 1
            if failures >= max_failures:
                raise MeasurementError(f"{failures} measurements in a row failed; last: {exc}") from None
            continue
        except BaseException:
            strategy.abandon(arch, reason="interrupted")
            raise
        failures = 0
        strategy.tell(arch, evaluation)
        done += 1
        if on_result is not None:
            on_result(evaluation, False)


def _evaluations_of(study: optuna.Study, key: str) -> Iterator[Evaluation]:
    from hwnas.studies._storage import evaluations
    return (e for e in evaluations(study) if e.arch.key == key)


def work_on(run, *, url: str | None = None, seed: int | None = None, strategy: str | None = None,
            progress: bool = True, ws=None) -> int:
    """Runs one worker of a run whose study lives in a database; returns what it evaluated.

    Args:
        run: the run directory (a ``pipeline.RunDir``).
        url: the database, when this copy of the run directory does not record it.
        seed: this worker's seed (default: the config's); give each worker its own.
        strategy: an Optuna strategy instead of the config's.
    """
    from tqdm import tqdm

    from hwnas.pipeline import workspace
    from hwnas.strategies import strategy_class
    from hwnas.training import derived_arch

    recorded = storage_of(run.path)
    if url is not None:
        target = (url, study_name(run.config.name, (run / "config.yaml").read_text()))
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
    if cfg.latency.predictor == "lut" and not (run / "lut.json").exists():
        # Workers must not all measure the device at once to build it.
        raise RunDirError(f"{run.path} has no latency table yet: build it once with "
                          f"'hwnas lut {run.path}' before starting workers")
    name = strategy or cfg.search.strategy
    try:
        cls = strategy_class(name)
    except ValueError as exc:
        raise HwnasError(str(exc)) from None
    seed = cfg.seed if seed is None else seed
    study = open_study(run.path, cfg.search.objectives, sampler=cls.sampler(seed), create=False,
                       storage=target)
    ws = ws or workspace(run, progress=progress)
    searcher = cls(study=study, choices=ws.space.choices, objectives=cfg.search.objectives,
                   budgets=cfg.budgets, seed=seed)
    derived = derived_arch(run)
    searcher.enqueue(([ws.space.validate(derived)] if derived is not None else [])
                     + ws.space.extremes())
    evaluator = ws.evaluator
    bar = tqdm(desc=f"worker ({name}, seed {seed})", unit="subnet", disable=not progress)

    def show(evaluation: Evaluation, cached: bool) -> None:
        if not cached:
            bar.update(1)

    try:
        return work(searcher, evaluator, cfg.search.trials, on_result=show)
    finally:
        bar.close()
