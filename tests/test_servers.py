"""The test servers work: Optuna shares a study through PostgreSQL, Dask runs work on 2 workers."""
from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import optuna
import pytest
import servers
from optuna.storages import RDBStorage
from optuna.trial import TrialState

import hwnas

# The heartbeat that marks trials of dead processes failed is still experimental in Optuna.
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _storage(url: str) -> RDBStorage:
    return RDBStorage(url, heartbeat_interval=1, grace_period=2)


def _optimize(url: str, study_name: str, n_trials: int) -> None:
    """One search process: loads the shared study and completes ``n_trials`` trials."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=_storage(url))
    study.optimize(lambda trial: trial.suggest_float("x", -1.0, 1.0) ** 2, n_trials=n_trials)


def test_fresh_database_is_empty_and_separate(postgres_url: str):
    first, second = servers.fresh_database(postgres_url), servers.fresh_database(postgres_url)
    assert first != second
    optuna.create_study(study_name="s", storage=_storage(first))
    assert optuna.get_all_study_names(_storage(first)) == ["s"]
    assert optuna.get_all_study_names(_storage(second)) == []


def test_two_processes_share_an_optuna_study(fresh_postgres_url: str):
    optuna.create_study(study_name="shared", storage=_storage(fresh_postgres_url))
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_optimize, args=(fresh_postgres_url, "shared", 5))
             for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0]
    trials = optuna.load_study(study_name="shared", storage=_storage(fresh_postgres_url)).trials
    assert len(trials) == 10
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.number for t in trials}) == 10


def test_dask_runs_on_two_worker_processes_that_import_hwnas(dask_address: str):
    from distributed import Client

    # Local functions, so that cloudpickle sends them by value: workers cannot import
    # this test module, only installed packages.
    def pid(_: int) -> int:
        time.sleep(0.05)  # keeps both workers busy, so that both answer
        return os.getpid()

    def hwnas_file() -> str:
        import hwnas

        return hwnas.__file__

    with Client(dask_address, timeout=60) as client:
        pids = set(client.gather(client.map(pid, range(40), pure=False)))
        assert len(pids) == 2
        assert os.getpid() not in pids
        assert pids == set(client.run(os.getpid).values())
        location = client.submit(hwnas_file, pure=False).result(timeout=60)
    assert Path(location).resolve() == Path(hwnas.__file__).resolve()


def test_missing_program_skips_outside_ci_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        servers.skip_or_fail("X is not installed")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="must run"):
        servers.skip_or_fail("X is not installed")
