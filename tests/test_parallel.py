"""Parallel evaluation: local worker processes and a Dask cluster give a serial run's results."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from _cli_helpers import assert_usage_error, cli, load_trials, snapshot, assert_changed_nothing


def history(run: Path) -> list[tuple]:
    return [(t.state, t.params, t.values, t.user_attrs.get("cached")) for t in load_trials(run)]


@pytest.mark.parametrize("strategy", ["tpe-ls", "deap-nsga2"])
def test_two_workers_give_the_serial_result(strategy, run_copy, tmp_path, capfd):
    serial = Path(shutil.copytree(run_copy, tmp_path / "serial"))
    status, _, err = cli(capfd, "search", serial, "--trials", 14, "--strategy", strategy,
                         "--quiet")
    assert status == 0, err
    status, _, err = cli(capfd, "search", run_copy, "--trials", 14, "--strategy", strategy,
                         "--workers", 2, "--quiet")
    assert status == 0, err
    assert history(run_copy) == history(serial)
    assert len({t.user_attrs["key"] for t in load_trials(run_copy)}) == 14


def test_a_dask_cluster_gives_the_serial_result(dask_address, run_copy, tmp_path, capfd):
    serial = Path(shutil.copytree(run_copy, tmp_path / "serial"))
    assert cli(capfd, "search", serial, "--trials", 12, "--quiet")[0] == 0
    status, _, err = cli(capfd, "search", run_copy, "--trials", 12, "--dask", dask_address,
                         "--quiet")
    assert status == 0, err
    assert history(run_copy) == history(serial)


@pytest.mark.parametrize("argv, fragments", [
    (["--workers", "0"], ["--workers must be >= 1"]),
    (["--workers", "2", "--dask", "tcp://127.0.0.1:1"], ["either --workers or --dask"]),
    (["--dask", "tcp://127.0.0.1:1"], ["cannot reach the Dask scheduler", "127.0.0.1:1"]),
])
def test_bad_parallel_options_are_one_line(argv, fragments, run_copy, capfd):
    before = snapshot(run_copy)
    status, _, err = cli(capfd, "search", run_copy, "--trials", 9, *argv)
    assert_usage_error(status, err, *fragments)
    assert_changed_nothing(before, run_copy)
