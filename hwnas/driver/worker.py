"""A worker sharing one study in an RDB (PostgreSQL): the search loop plus a lock and heartbeats.

The study is created once (``hwnas study RUN --storage URL``), then any number
of ``hwnas worker RUN`` processes, on any machines that can reach the database
and read the run directory, ask their own sampler (their own seed) for the
next subnet and evaluate it, in the same loop as ``hwnas search``
(:func:`hwnas.driver.drive`). A heartbeat marks each running trial alive; the
trial of a worker that died is failed after the grace period and retried by
the next worker that asks. Workers stop when the study holds ``search.trials``
distinct evaluated subnets: reserving a trial (count, then ask) happens under
a lock (PostgreSQL: an advisory lock; SQLite: a file lock beside the database
file), so the count comes out exact.
"""
from __future__ import annotations

import contextlib
import time
import zlib
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path

import optuna
from optuna.trial import TrialState

from hwnas.arch import Arch
from hwnas.driver.books import Rules
from hwnas.driver.loop import MAX_REPEATS, DriveResult, Sharing, drive
from hwnas.errors import HwnasError
from hwnas.io import FileLock
from hwnas.objectives import Evaluation
from hwnas.strategies import BaseStrategy, SamplerStrategy
from hwnas.studies import heartbeat, rdb_engine, read_trials, trial_evaluation

#: Seconds a worker waits while the last trials are still being evaluated elsewhere.
POLL = 1.0


#: Beside an SQLite study's database file: the lock its workers reserve trials under.
SQLITE_LOCK_SUFFIX = ".hwnas-lock"


@contextlib.contextmanager
def reservation_lock(study: optuna.Study) -> Iterator[None]:
    """Serialises "count the trials, then ask one" across workers: a PostgreSQL advisory
    lock, or for SQLite an flock on a file beside the database (its workers share
    one machine, or one file system)."""
    engine = rdb_engine(study)
    if engine is not None and engine.dialect.name == "sqlite":
        database = engine.url.database
        if database and database != ":memory:":
            with FileLock(Path(database).resolve().with_name(
                    Path(database).name + SQLITE_LOCK_SUFFIX)):
                yield
            return
    if engine is None or engine.dialect.name != "postgresql":
        yield  # one process: a journal, or an SQLite database in memory
        return
    from sqlalchemy import text  # only a PostgreSQL study needs it
    key = zlib.crc32(study.study_name.encode())
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()


class DatabaseSharing(Sharing):
    """The loop's hooks for a study other workers write at the same time.

    Before each ask, the trials of dead workers are failed (and re-queued by
    the storage's retry callback); counting the study's subnets and asking
    happen under ``reservation_lock``, counting from the database itself; each
    evaluation beats its trial's heart.

    Args:
        study: the shared study, in an RDB storage with heartbeats.
    """

    def __init__(self, *, study: optuna.Study) -> None:
        self.study = study

    @contextlib.contextmanager
    def reserve(self) -> Iterator[None]:
        optuna.storages.fail_stale_trials(self.study)  # dead workers' trials: failed, re-queued
        with reservation_lock(self.study):
            yield

    def refresh(self, known: MutableMapping[str, Evaluation]) -> set[str]:
        running: set[str] = set()
        for trial in read_trials(self.study, states=(TrialState.COMPLETE, TrialState.RUNNING)):
            if not trial.params:
                continue
            if trial.state == TrialState.RUNNING:
                running.add(trial.user_attrs.get("key") or Arch(trial.params).key)
            else:
                evaluation = trial_evaluation(trial)
                known.setdefault(evaluation.arch.key, evaluation)
        return running - set(known)

    def evaluating(self, trials: list[optuna.Trial]) -> contextlib.ExitStack:
        beats = contextlib.ExitStack()
        for trial in trials:
            beats.enter_context(heartbeat(self.study, trial))
        return beats

    def wait(self) -> bool:
        time.sleep(POLL)
        return True


def work(strategy: BaseStrategy, evaluate: Callable[[Arch], Evaluation], target: int, *,
         study: optuna.Study, on_result: Callable[[Evaluation, bool], None] | None = None,
         max_repeats: int = MAX_REPEATS, space: Rules | None = None) -> DriveResult:
    """One worker's search over a shared study: one subnet at a time, until the study
    holds ``target`` distinct evaluated subnets.

    Args:
        strategy: a ``SamplerStrategy`` over ``study`` (its own seed): the study is its
            memory, which every worker shares.
        evaluate: scores one subnet.
        target: distinct evaluated subnets the study must hold.
        study: the shared study.
        on_result: called with each evaluation and whether it was cached.
        max_repeats: stop after this many cached answers in a row.
        space: which encodings are one network and which cannot be built (see ``drive``).

    Raises:
        HwnasError: the strategy keeps its state in this process.
        MeasurementError: ``MAX_FAILURES`` distinct subnets in a row failed.
    """
    if not isinstance(strategy, SamplerStrategy):
        raise HwnasError(f"the {strategy.name} strategy keeps its state in one process; "
                         "workers sharing a database need an Optuna strategy "
                         "(tpe-ls, tpe, nsga2, nsga3, optuna-random, qmc), or use --dask")
    return drive(strategy, evaluate, target, study=study, known={}, on_result=on_result,
                 max_repeats=max_repeats, batch=1, depth=1,
                 sharing=DatabaseSharing(study=study), space=space)
