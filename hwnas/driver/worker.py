"""The loop of a worker sharing one study in an RDB (PostgreSQL): it proposes and evaluates on its own.

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
import time
import zlib
from collections.abc import Callable, Iterator

import optuna
from optuna.storages._heartbeat import get_heartbeat_thread
from optuna.trial import TrialState

from hwnas.arch import Arch
from hwnas.errors import HwnasError, MeasurementError
from hwnas.records import Evaluation
from hwnas.strategies import BaseStrategy, OptunaStrategy
from hwnas.studies import evaluations

#: Seconds a worker waits while the last trials are still being evaluated elsewhere.
POLL = 1.0


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
    return (e for e in evaluations(study) if e.arch.key == key)
