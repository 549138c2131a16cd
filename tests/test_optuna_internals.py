"""Every wrapper of Optuna's private API, on real in-memory, journal and SQLite studies.

hwnas.studies._optuna_internals is the one module that reaches into Optuna's
internals; an Optuna upgrade that changes what it relies on must fail here.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from hwnas.studies import (ReadOnlyError, fail_stale_trials, heartbeat, open_running_trial,
                           rdb_engine, read_trials)
from hwnas.studies._optuna_internals import ReadOnlyStorage

pytestmark = [pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
              pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed")]

KINDS = ["memory", "journal", "sqlite"]
DISTRIBUTIONS = {"a": CategoricalDistribution(["x", "y"]), "b": CategoricalDistribution(["u", "v"])}


def storage(kind: str, tmp_path: Path, **rdb) -> optuna.storages.BaseStorage:
    if kind == "memory":
        return optuna.storages.InMemoryStorage()
    if kind == "journal":
        return optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.journal")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}", **rdb)


def new_study(kind: str, tmp_path: Path, store: optuna.storages.BaseStorage | None = None,
              **rdb) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name="s", storage=store or storage(kind, tmp_path, **rdb),
                               directions=["minimize", "minimize"])


@pytest.mark.parametrize("kind", KINDS)
def test_open_running_trial_leaves_the_waiting_trials_alone(kind, tmp_path):
    study = new_study(kind, tmp_path)
    study.enqueue_trial({"a": "y", "b": "v"})
    trial = open_running_trial(study, params={"a": "x", "b": "u"}, distributions=DISTRIBUTIONS,
                               user_attrs={"generation": 3})
    assert isinstance(trial, optuna.Trial)
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.WAITING, TrialState.RUNNING]
    running = study.get_trials()[1]
    assert running.params == {"a": "x", "b": "u"} and running.user_attrs == {"generation": 3}
    trial.set_user_attr("key", "x-u")
    frozen = study.tell(trial, [1.0, 2.0])
    assert frozen.state == TrialState.COMPLETE and frozen.values == [1.0, 2.0]
    assert study.get_trials()[0].state == TrialState.WAITING
    assert study.ask().params == {}  # the waiting trial is still the sampler's to pop
    assert study.get_trials()[0].state == TrialState.RUNNING


@pytest.mark.parametrize("kind", KINDS)
def test_fail_running_trial_and_the_journal_clean_up(kind, tmp_path):
    study = new_study(kind, tmp_path)
    asked = study.ask({"a": DISTRIBUTIONS["a"]})  # then its process died
    assert fail_stale_trials(study) == [{"a": asked.params["a"]}]
    (failed,) = study.get_trials()
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs["fail_reason"] == "left running by a crash"
    assert fail_stale_trials(study) == []


@pytest.mark.parametrize("kind", KINDS)
def test_read_trials_sees_what_the_database_holds(kind, tmp_path):
    study = new_study(kind, tmp_path)
    study.tell(study.ask({"a": DISTRIBUTIONS["a"]}), [0.0, 1.0])
    study.ask({"a": DISTRIBUTIONS["a"]})
    assert [t.number for t in read_trials(study)] == [0, 1]
    assert [t.number for t in read_trials(study, states=(TrialState.RUNNING,))] == [1]
    if kind == "sqlite":
        # Another worker's view of the same database sees this one's new trial.
        other = optuna.load_study(study_name="s", storage=storage(kind, tmp_path))
        assert len(read_trials(other)) == 2
        study.tell(study.ask(), [2.0, 3.0])
        assert [t.state for t in read_trials(other)] == [
            TrialState.COMPLETE, TrialState.RUNNING, TrialState.COMPLETE]


@pytest.mark.parametrize("kind", KINDS)
def test_rdb_engine_only_for_a_database(kind, tmp_path):
    study = new_study(kind, tmp_path)
    engine = rdb_engine(study)
    if kind != "sqlite":
        assert engine is None
        return
    assert engine is not None and engine.dialect.name == "sqlite"
    from sqlalchemy import text
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1


@pytest.mark.parametrize("kind", ["memory", "journal"])
def test_heartbeat_is_a_no_op_without_heartbeats(kind, tmp_path):
    study = new_study(kind, tmp_path)
    trial = study.ask()
    with heartbeat(study, trial):
        pass
    optuna.storages.fail_stale_trials(study)
    assert study.get_trials()[0].state == TrialState.RUNNING


def test_heartbeat_keeps_a_trial_alive_and_a_dead_one_is_failed(tmp_path):
    study = new_study("sqlite", tmp_path, heartbeat_interval=1, grace_period=1)
    beating, silent = study.ask(), study.ask()
    with heartbeat(study, beating):
        time.sleep(2.5)
        optuna.storages.fail_stale_trials(study)
        # Alive while it beats; a trial that never beat is not judged at all.
        assert [t.state for t in study.get_trials()] == [TrialState.RUNNING] * 2
    time.sleep(2.5)  # the worker is gone: its heart stopped beating
    optuna.storages.fail_stale_trials(study)
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.RUNNING]
    assert silent.number == 1


@pytest.mark.parametrize("kind", KINDS)
def test_read_only_storage_reads_everything_and_writes_nothing(kind, tmp_path):
    inner = storage(kind, tmp_path)
    study = new_study(kind, tmp_path, inner)
    study.set_user_attr("objectives", ["error", "latency_ms"])
    study.tell(study.ask({"a": DISTRIBUTIONS["a"]}), [0.5, 1.5])
    view = ReadOnlyStorage(inner, refuse=lambda what: ReadOnlyError(what))
    loaded = optuna.load_study(study_name="s", storage=view)
    assert loaded.user_attrs == study.user_attrs
    assert [t.values for t in loaded.trials] == [[0.5, 1.5]]
    assert loaded.directions == study.directions
    assert [s.study_name for s in optuna.get_all_study_summaries(view)] == ["s"]
    study_id = view.get_study_id_from_name("s")
    trial_id = view.get_trial_id_from_study_id_trial_number(study_id, 0)
    assert view.get_trial(trial_id).values == [0.5, 1.5]
    with pytest.raises(ReadOnlyError, match="add a trial"):
        loaded.ask()
    with pytest.raises(ReadOnlyError, match="change a trial"):
        view.set_trial_user_attr(trial_id, "x", 1)
    with pytest.raises(ReadOnlyError):
        loaded.set_user_attr("x", 1)
    with pytest.raises(ReadOnlyError):
        optuna.create_study(storage=view)
    assert len(study.get_trials()) == 1 and study.get_trials()[0].user_attrs == {}
