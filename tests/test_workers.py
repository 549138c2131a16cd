"""Workers sharing a study in PostgreSQL: exact counts, heartbeats, retries of dead workers."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from _cli_helpers import (HWNAS, assert_changed_nothing, assert_usage_error, cli, snapshot,
                            space_choices)

pytestmark = [pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
              pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed")]

STUDY_FILES = ("study.journal", "front.csv", "front.png", "hv.png", "selected.json", "model.nnp",
               "export.json", "measured.json")


@pytest.fixture
def trained(run_copy: Path) -> Path:
    """A trained run without a study yet."""
    for name in STUDY_FILES:
        (run_copy / name).unlink(missing_ok=True)
    return run_copy


def study_of(run: Path) -> optuna.Study:
    from hwnas.studies import open_study
    return open_study(run, ["error", "latency_ms", "params"], create=False)


def distinct_complete(study: optuna.Study) -> set[str]:
    return {t.user_attrs["key"] for t in study.get_trials(states=(TrialState.COMPLETE,))}


def run_workers_exactly(trained, seeds: tuple[int, ...], trials: int) -> None:
    """Runs one real ``hwnas worker`` per seed at once on the run's study, and checks that
    together they evaluated exactly ``trials`` distinct subnets, none twice, none left running."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    workers = [subprocess.Popen([str(HWNAS), "worker", str(trained), "--seed", str(seed),
                                 "--quiet"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for seed in seeds]
    outputs = [w.communicate(timeout=300) for w in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err
        assert "Traceback" not in err
    study = study_of(trained)
    assert len(distinct_complete(study)) == trials
    assert not [t for t in study.get_trials()
                if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    fresh = [t for t in study.get_trials()
             if t.state == TrialState.COMPLETE and not t.user_attrs["cached"]]
    assert len(fresh) == trials  # none evaluated twice
    # Each worker counts what it evaluated; together, every subnet once.
    assert sum(int(out.split("evaluated ")[1].split()[0]) for out, _ in outputs) == trials


def test_two_workers_share_a_postgres_study_exactly(trained, fresh_postgres_url, capfd):
    status, out, err = cli(capfd, "study", trained, "--storage", fresh_postgres_url)
    assert status == 0, err
    assert "created study" in out and (trained / "storage.json").is_file()
    run_workers_exactly(trained, seeds=(1, 2), trials=6)  # the tiny config's search.trials
    # The reading commands follow the study into the database.
    status, out, err = cli(capfd, "compare", trained, "--out", trained / "cmp")
    assert status == 0, err
    assert pd.read_csv(trained / "cmp" / "compare.csv")["evaluated"].tolist() == [6]


def test_three_workers_share_an_sqlite_study_exactly(trained, tmp_path, capfd):
    # SQLite has no advisory lock: the workers reserve trials under a file lock beside
    # the database. Without it, 3 workers evaluated extra subnets, some twice, and one
    # died with UpdateFinishedTrialError.
    config = trained / "config.yaml"
    config.write_text(config.read_text().replace("trials: 6", "trials: 16"))
    database = tmp_path / "study.db"
    status, out, err = cli(capfd, "study", trained, "--storage", f"sqlite:///{database}")
    assert status == 0, err
    run_workers_exactly(trained, seeds=(1, 2, 3), trials=16)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("study.db")) \
        == ["study.db"]  # the reservation lock's file is gone with its last holder


def test_the_trial_of_a_dead_worker_is_retried(trained, fresh_postgres_url, capfd, monkeypatch):
    from hwnas import run as steps
    from hwnas.studies import _store
    monkeypatch.setattr(_store, "HEARTBEAT_INTERVAL", 1)
    monkeypatch.setattr(_store, "GRACE_PERIOD", 2)
    assert cli(capfd, "study", trained, "--storage", fresh_postgres_url)[0] == 0
    # A worker starts a trial, beats once, then dies without a word.
    study = study_of(trained)
    params = {"b0": "skip", "b1": "ir_k3_e2"}
    study.enqueue_trial(params)
    dead = study.ask()
    for name, options in space_choices(trained).items():
        dead.suggest_categorical(name, options)
    study._storage.record_heartbeat(dead._trial_id)
    time.sleep(3)
    run = steps.RunDir.open(trained)
    assert steps.run_worker(run, seed=3, progress=False) == 6
    trials = study_of(trained).get_trials()
    assert trials[dead.number].state == TrialState.FAIL
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].params == {**trials[dead.number].params}
    assert len(distinct_complete(study_of(trained))) == 6


def test_workers_need_a_study_in_a_database(trained, run_copy, fresh_postgres_url, capfd):
    before = snapshot(trained)
    status, _, err = cli(capfd, "worker", trained)
    assert_usage_error(status, err, "study.journal", "hwnas study")
    assert_changed_nothing(before, trained)
    status, _, err = cli(capfd, "worker", trained, "--storage", fresh_postgres_url)
    assert_usage_error(status, err, "does not exist", "hwnas study")
    status, _, err = cli(capfd, "study", trained, "--storage",
                         "postgresql+psycopg2://nobody@127.0.0.1:1/none")
    assert_usage_error(status, err, "cannot open the study storage", "127.0.0.1:1")
    assert_changed_nothing(before, trained)


def test_a_run_with_a_journal_study_stays_on_it(run_copy, fresh_postgres_url, capfd):
    before = snapshot(run_copy)
    status, _, err = cli(capfd, "study", run_copy, "--storage", fresh_postgres_url)
    assert_usage_error(status, err, "study.journal", "new run directory")
    assert_changed_nothing(before, run_copy)


def test_a_worker_leaves_what_another_evaluates_and_waits_for_it(tmp_path, monkeypatch):
    # The loop of `hwnas worker` on an SQLite study: no server, one process playing two.
    from hwnas.arch import Arch
    from hwnas.driver import DatabaseSharing, work
    from hwnas.errors import HwnasError
    from hwnas.strategies import RandomSearch, TPEStrategy
    from hwnas.studies import known_evaluations, open_study, record
    from tests.test_study import CHOICES, OBJECTIVES, fake_evaluation

    study = open_study(tmp_path, OBJECTIVES, sampler=TPEStrategy.sampler(0),
                       storage=(f"sqlite:///{tmp_path / 'study.db'}", "hwnas"))
    busy = Arch({name: options[0] for name, options in CHOICES.items()})
    study.enqueue_trial(dict(busy))
    other = study.ask()  # another worker is evaluating it...
    for name, options in CHOICES.items():
        other.suggest_categorical(name, list(options))
    study.enqueue_trial(dict(busy))  # ...when this worker's sampler proposes it too
    waits = []

    def the_other_finishes(self) -> bool:
        waits.append(len(known_evaluations(study)))
        if len(waits) == 1:
            record(study, other, fake_evaluation(busy), OBJECTIVES, {}, strategy="tpe")
        return True

    monkeypatch.setattr(DatabaseSharing, "wait", the_other_finishes)
    strategy = TPEStrategy(study=study, choices=CHOICES, objectives=OBJECTIVES, seed=0)
    result = work(strategy, fake_evaluation, 5, study=study)
    assert (result.evaluated, result.stalled) == (4, False)
    assert waits == [4]  # the last subnet was the other worker's: it waited once
    trials = study.get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed and failed[0].user_attrs["key"] == busy.key
    assert {t.user_attrs["fail_reason"] for t in failed} == {"being evaluated by another worker"}
    assert len(known_evaluations(study)) == 5
    with pytest.raises(HwnasError, match="keeps its state in one process"):
        work(RandomSearch(choices=CHOICES, objectives=OBJECTIVES), fake_evaluation, 5, study=study)
