"""A search killed with SIGKILL at random moments resumes to the uninterrupted result."""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from optuna.trial import TrialState

from hwnas.studies import repair_journal
from _cli_helpers import HWNAS, cli, load_trials

TRIALS = 18
KILLS = 5
#: Kills that must land before the search ends (each lets at most a few subnets through,
#: and the finished tiny run leaves 12 to evaluate; a loaded machine changes how many).
MIN_KILLS = 3


def search_process(run: Path, strategy: str) -> subprocess.Popen:
    return subprocess.Popen([str(HWNAS), "search", str(run), "--strategy", strategy,
                             "--trials", str(TRIALS), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for_progress(run: Path, before: int, proc: subprocess.Popen,
                      timeout: float = 120.0) -> None:
    """Returns once the search evaluated another subnet, ended, or ``timeout`` s passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if len(set(fresh_evaluations(run))) > before:
            return
        time.sleep(0.1)


def fresh_evaluations(run: Path) -> list[str]:
    return [t.user_attrs["key"] for t in load_trials(run)
            if t.state == TrialState.COMPLETE and not t.user_attrs["cached"]]


@pytest.mark.skipif(not HWNAS.exists(), reason="the hwnas console script is not installed here")
@pytest.mark.parametrize("strategy", ["deap-nsga2"])
def test_sigkill_at_random_moments_then_resume(strategy, run_copy, tmp_path, capfd):
    straight = Path(shutil.copytree(run_copy, tmp_path / "straight"))
    assert cli(capfd, "search", straight, "--strategy", strategy, "--trials", TRIALS,
               "--quiet")[0] == 0
    rng = random.Random(0)
    kills = 0
    while kills < KILLS:
        before = len(set(fresh_evaluations(run_copy)))
        proc = search_process(run_copy, strategy)
        if kills % 2:  # during start-up (or as its first evaluation lands), or at a
            # random moment after it made progress
            wait_for_progress(run_copy, before, proc, timeout=rng.uniform(0.5, 2.5))
        else:
            wait_for_progress(run_copy, before, proc)
            time.sleep(rng.uniform(0.0, 0.2))
        if proc.poll() is not None:  # it finished before the kill: not a kill
            assert proc.returncode == 0, proc.stderr.read()
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        assert len(set(fresh_evaluations(run_copy))) >= before  # nothing lost
    proc = search_process(run_copy, strategy)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert kills >= MIN_KILLS, f"the search finished after {kills} kills"
    keys = fresh_evaluations(run_copy)
    assert len(keys) == len(set(keys)) == TRIALS  # none lost, none evaluated twice
    assert not [t for t in load_trials(run_copy) if t.state == TrialState.RUNNING]
    assert cli(capfd, "front", run_copy)[0] == 0
    assert cli(capfd, "front", straight)[0] == 0
    front = pd.read_csv(run_copy / "front.csv").drop(columns=["latency_ms_measured"],
                                                      errors="ignore")
    expected = pd.read_csv(straight / "front.csv").drop(columns=["latency_ms_measured"],
                                                         errors="ignore")
    pd.testing.assert_frame_equal(front, expected)
    assert set(keys) == set(fresh_evaluations(straight))


def test_a_half_written_journal_record_is_dropped(tmp_path):
    path = tmp_path / "study.journal"
    path.write_bytes(b'{"op": 1}\n{"op": 2}\n{"op": 3, "tr')
    assert repair_journal(path)
    assert path.read_bytes() == b'{"op": 1}\n{"op": 2}\n'
    assert not repair_journal(path)
    assert path.read_bytes() == b'{"op": 1}\n{"op": 2}\n'
    # Not a journal at all (no complete line): left alone.
    path.write_bytes(b"garbage without a newline")
    assert not repair_journal(path)
    assert path.read_bytes() == b"garbage without a newline"
    # Nor is a file whose first line is no record (another program's file is never cut).
    path.write_bytes(b"SQLite format 3\x00\n\x01\x02\n\x03")
    assert not repair_journal(path)
    assert path.read_bytes() == b"SQLite format 3\x00\n\x01\x02\n\x03"
    # A whole last record that only lacks its newline is completed, not dropped.
    path.write_bytes(b'{"op": 1}\n{"op": 2}')
    assert repair_journal(path)
    assert path.read_bytes() == b'{"op": 1}\n{"op": 2}\n'


def test_a_trial_left_running_by_a_crash_is_failed_and_asked_again(run_copy, capfd):
    from hwnas.driver import Books
    from hwnas.strategies import create_strategy, strategy_class
    from hwnas.studies import known_evaluations, open_study
    from _cli_helpers import space_choices

    choices = space_choices(run_copy)
    study = open_study(run_copy, ["error", "latency_ms", "params"],
                       sampler=strategy_class("random").sampler(0))
    known = known_evaluations(study)
    crashed = Books(study=study, strategy=create_strategy(
        "random", choices=choices, objectives=["error", "latency_ms", "params"], seed=99))
    arch = next(a for a in crashed.ask(20) if a.key not in known)  # then the process died
    status, _, err = cli(capfd, "search", run_copy, "--trials", 7, "--quiet")
    assert status == 0, err
    trials = load_trials(run_copy)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 20 and all(t.user_attrs["fail_reason"] == "left running by a crash"
                                      for t in failed)
    # The default (Optuna) strategy evaluates the re-queued subnets first.
    last = max(t.number for t in failed)
    new = [t for t in trials if t.number > last and t.state == TrialState.COMPLETE
           and not t.user_attrs["cached"]]
    assert new[0].user_attrs["key"] == arch.key
