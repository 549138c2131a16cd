"""Real SIGINTs sent to real ``python -m hwnas`` processes in every phase, a closed stdout,
and a console that cannot encode the run's path.

A Ctrl-C ends a command with status 130 and one stderr line, whether it lands in Python code,
inside nnabla's C++ callbacks (where nnabla turns it into ``SystemError``), during the
imports or while a plot is drawn; the same command then resumes. Each test interrupts the
same run a few times at random moments after the process shows it reached the phase.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from optuna.trial import TrialState

import hwnas
from _cli_helpers import load_trials

ROOT = Path(hwnas.__file__).resolve().parent.parent
RESUME_LINE = "hwnas: interrupted; run the same command again to resume"
TRIES = 2
rng = random.Random(15)


def start(*argv: object, **env: str) -> subprocess.Popen:
    """``python -m hwnas ARGV`` from this checkout, in its own session (a Ctrl-C typed at
    the test run does not reach it)."""
    return subprocess.Popen([sys.executable, "-m", "hwnas", *map(str, argv)],
                            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_until(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 120.0) -> bool:
    """Whether ``ready()`` became true while ``proc`` still ran."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if ready():
            return proc.poll() is None
        time.sleep(0.01)
    return False


def interrupt(proc: subprocess.Popen, after: float) -> tuple[int, str, str]:
    """SIGINT ``after`` seconds from now (unless the process ended); its status and output."""
    time.sleep(after)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=180)
    return proc.returncode, out, err


def assert_interrupted(status: int, err: str, line: str = RESUME_LINE) -> None:
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert status == 130, f"exit status {status}, stderr: {err[-3000:]!r}"
    assert err.splitlines() == [line], err


def rows(path: Path) -> int:
    """Lines of a file that may not exist yet."""
    try:
        return path.read_text().count("\n")
    except OSError:
        return 0


def loaded(proc: subprocess.Popen, library: str) -> bool:
    """Whether the process has mapped a shared library whose path holds ``library``."""
    try:
        return library in Path(f"/proc/{proc.pid}/maps").read_text()
    except OSError:
        return False


def finish(*argv: object) -> str:
    proc = start(*argv)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out


def test_ctrl_c_while_training_the_supernet_exits_130_and_training_resumes(run_copy: Path):
    config = run_copy / "config.yaml"
    config.write_text(config.read_text().replace("  epochs: 1\n", f"  epochs: {TRIES + 2}\n"))
    log = run_copy / "train_log.csv"
    for _ in range(TRIES):
        before = rows(log)
        proc = start("train", run_copy, "--quiet")
        # An epoch finished in this process: it is in the training loop.
        assert wait_until(proc, lambda: rows(log) > before), proc.communicate()
        assert_interrupted(*interrupt(proc, rng.uniform(0.0, 0.4))[::2])
    finish("train", run_copy, "--quiet")
    with np.load(run_copy / "train_state.npz") as state:
        assert int(state["epochs_done"]) == TRIES + 2
    assert list(pd.read_csv(log)["epoch"]) == list(range(1, TRIES + 3))


def test_ctrl_c_while_searching_exits_130_and_the_search_resumes(run_copy: Path):
    journal = run_copy / "study.journal"
    old = [(t.number, t.values) for t in load_trials(run_copy)]
    for _ in range(TRIES):
        size = journal.stat().st_size
        proc = start("search", run_copy, "--trials", 12, "--quiet")
        # The study grew in this process: it evaluates subnets.
        assert wait_until(proc, lambda: journal.stat().st_size > size), proc.communicate()
        assert_interrupted(*interrupt(proc, rng.uniform(0.0, 0.3))[::2])
    finish("search", run_copy, "--trials", 12, "--quiet")
    trials = load_trials(run_copy)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert len({t.user_attrs["key"] for t in trials if t.state == TrialState.COMPLETE}) == 12
    assert [(t.number, t.values) for t in trials[:len(old)]] == old


def test_ctrl_c_while_retraining_exits_130_and_the_retraining_resumes(run_copy: Path):
    import shutil
    shutil.rmtree(run_copy / "retrain")
    for _ in range(TRIES):
        before = sum(rows(p) for p in run_copy.glob("retrain/*/log.csv"))
        proc = start("retrain", run_copy, "--epochs", 8, "--quiet")
        assert wait_until(proc, lambda: sum(rows(p) for p in run_copy.glob(
            "retrain/*/log.csv")) > before), proc.communicate()
        assert_interrupted(*interrupt(proc, rng.uniform(0.0, 0.3))[::2])
    finish("retrain", run_copy, "--epochs", 8, "--quiet")
    (log,) = run_copy.glob("retrain/*/log.csv")
    assert list(pd.read_csv(log)["epoch"]) == list(range(1, 9))
    assert json.loads(next(run_copy.glob("retrain/*/result.json")).read_text())["recipe"]


@pytest.mark.parametrize("after", [0.0, 0.02, 0.1, 0.3])
def test_ctrl_c_during_the_imports_exits_130_without_a_traceback(finished_run: Path, after):
    proc = start("front", finished_run, "--help")
    # numpy is imported only once the hwnas command has begun: the heavy imports are on.
    assert wait_until(proc, lambda: loaded(proc, "numpy"), 60), proc.communicate()
    status, _, err = interrupt(proc, after)
    assert_interrupted(status, err, "hwnas: interrupted before the command started")


def test_ctrl_c_while_plotting_exits_130_or_finishes(run_copy: Path):
    """Every outcome is either a complete report (status 0) or status 130 and the line."""
    outcomes = set()
    for after in (0.0, 0.1, 0.4):
        (run_copy / "report.html").unlink(missing_ok=True)
        proc = start("report", run_copy)
        assert wait_until(proc, lambda: loaded(proc, "ft2font")), proc.communicate()
        status, out, err = interrupt(proc, after)
        if status == 0:
            assert "wrote" in out and "</html>" in (run_copy / "report.html").read_text()
        else:
            assert_interrupted(status, err, RESUME_LINE)
            if (run_copy / "report.html").exists():  # renamed into place just before
                assert "</html>" in (run_copy / "report.html").read_text()
        outcomes.add(status)
    assert 130 in outcomes


def test_a_closed_stdout_ends_quietly_with_status_141():
    proc = start("--help")
    proc.stdout.close()  # the reader has gone, as `hwnas --help | head -0` leaves it
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, err
    assert err == ""


def test_an_ascii_console_shows_a_non_ascii_path_escaped(run_copy: Path):
    run = run_copy.rename(run_copy.parent / "läuft-α")
    proc = start("select", run, PYTHONIOENCODING="ascii")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "l\\xe4uft-\\u03b1" in out and "selected.json" in out


def test_ctrl_c_is_how_a_dashboard_ends_with_status_0(run_copy: Path):
    proc = start("dashboard", run_copy, "--port", 0)
    line = proc.stdout.readline()  # printed once it listens
    assert "optuna-dashboard on http://" in line, proc.communicate()
    status, out, err = interrupt(proc, 0.0)
    assert (status, out, err) == (0, "dashboard stopped\n", "")
