"""One writer per run directory: a second command that writes it is refused (exit 2, naming
the holder), workers of a database study share it, and a killed holder's lock is taken over.

The commands run as real processes; a holder is paused with SIGSTOP (not a patched method)
so that the second command surely meets it mid-evaluation.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from _cli_helpers import HWNAS, assert_usage_error, cli, load_trials
from hwnas.cli import build_parser
from hwnas.io import FileLock, LockHeld
from hwnas.run import RunDir, Writer

pytestmark = pytest.mark.skipif(not HWNAS.exists(),
                                reason="the hwnas console script is not installed here")

#: Commands that only read run directories (``compare --out`` writes its own directory;
#: ``check-space`` reads a config, not a run).
READ_ONLY = {"check-space", "compare", "dashboard"}


def distinct(run: Path) -> set[str]:
    return {t.user_attrs["key"] for t in load_trials(run) if t.state == TrialState.COMPLETE}


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"{what}: the process ended ({process.returncode}) " \
                                       f"{process.stderr.read() if process.stderr else ''}"
        assert time.monotonic() < deadline, f"{what}: timed out"
        time.sleep(0.05)


def test_a_second_search_is_refused_while_the_first_evaluates(run_copy, capfd):
    # The reproduction: two `hwnas search` on one run directory at once.
    journal = run_copy / RunDir.JOURNAL
    size = journal.stat().st_size
    argv = [str(HWNAS), "search", str(run_copy), "--trials", "19", "--quiet"]
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Once the journal grows, the first holds running trials; paused, it keeps them.
        wait_for(lambda: journal.stat().st_size > size, first, "the first search")
        os.kill(first.pid, signal.SIGSTOP)
        try:
            second = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        finally:
            os.kill(first.pid, signal.SIGCONT)
        _, first_err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert_usage_error(second.returncode, second.stderr, f"{run_copy} is in use by 'hwnas search'",
                       f"pid {first.pid} on", "wait for it or stop it")
    assert first.returncode == 0, first_err
    assert "Traceback" not in first_err
    trials = load_trials(run_copy)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert not [t for t in trials if "left running" in t.user_attrs.get("fail_reason", "")]
    assert len(distinct(run_copy)) == 19
    assert not (run_copy / RunDir.LOCK).exists()  # removed on release
    # The refused command, run again, goes on from where the first stopped.
    status, _, err = cli(capfd, "search", run_copy, "--trials", 20, "--quiet")
    assert status == 0, err
    assert len(distinct(run_copy)) == 20


HOLDER = """\
import sys, time
from hwnas.run import Writer
Writer("hwnas search").hold(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


def test_a_lock_left_by_a_killed_holder_is_taken_over(run_copy, capfd):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_copy)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        status, _, err = cli(capfd, "select", run_copy)
        assert_usage_error(status, err, "in use by 'hwnas search'", f"pid {holder.pid} on")
    finally:
        holder.kill()  # SIGKILL: no clean-up in the holder
        holder.wait(timeout=30)
    assert (run_copy / RunDir.LOCK).exists()  # left behind by the dead holder...
    status, out, err = cli(capfd, "select", run_copy)
    assert status == 0, err  # ...and taken over
    assert "selected" in out
    assert not (run_copy / RunDir.LOCK).exists()


def test_workers_share_the_lock_and_other_writers_wait_for_them(run_copy, capfd):
    (run_copy / RunDir.STORAGE).write_text("{}")  # a database study: search is one worker
    workers = [FileLock(run_copy / RunDir.LOCK), FileLock(run_copy / RunDir.LOCK)]
    workers[0].acquire(shared=True, command="hwnas worker")
    try:
        status, _, err = cli(capfd, "train", run_copy, "--quiet")
        assert_usage_error(status, err, "in use by 'hwnas worker'", f"pid {os.getpid()}")
        search = Writer("hwnas search", shared=None)
        search.hold(run_copy)  # shared beside a worker: no error
        search.release()
        workers[1].acquire(shared=True)
        workers[0].release()
        assert (run_copy / RunDir.LOCK).exists()  # the other worker still holds it
        with pytest.raises(LockHeld):
            FileLock(run_copy / RunDir.LOCK).acquire()
    finally:
        for lock in workers:
            lock.release()
    assert not (run_copy / RunDir.LOCK).exists()  # the last one out removes it


def test_every_writing_command_takes_the_lock():
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    writes = {name: p.get_default("writes") for name, p in commands.items()}
    assert {name for name, mode in writes.items() if mode is None} == READ_ONLY
    # A study already in a database is reopened (to print its counts) beside its workers.
    assert writes["worker"] == "shared"
    assert writes["search"] == writes["study"] == "shared-on-database"
    assert {mode for name, mode in writes.items()
            if name not in READ_ONLY | {"worker", "search", "study"}} == {"exclusive"}
