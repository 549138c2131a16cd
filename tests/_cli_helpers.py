"""Helpers shared by the tests of the ``hwnas`` command line: running it, snapshots, checks."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from hwnas.cli import main

OBJECTIVES = ("error", "latency_ms", "params")
BUDGET = 100000.0  # the tiny config's params budget
HWNAS = Path(sys.executable).parent / "hwnas"  # the console script of this environment


# --- helpers --------------------------------------------------------------------------


def cli(capfd: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    """Runs ``hwnas ARGV`` in-process; returns (status, stdout, stderr)."""
    capfd.readouterr()
    status = main([str(a) for a in argv])
    out, err = capfd.readouterr()
    return status, out, err


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory``: relative path -> bytes."""
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def assert_changed_nothing(before: dict[str, bytes], directory: Path) -> None:
    after = snapshot(directory)
    assert sorted(after) == sorted(before), "files were added to or removed from the run directory"
    changed = [name for name in before if after[name] != before[name]]
    assert not changed, f"bad input changed {changed} in the run directory"


def assert_one_line(status: int, err: str, expected: int, *fragments: str) -> str:
    """Exit status ``expected`` and one clear line on stderr naming every fragment, no
    traceback; returns the line."""
    assert status == expected, f"exit status {status}, not {expected}; stderr: {err!r}"
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"expected one stderr line, got {err!r}"
    line = lines[0]
    assert line.startswith("hwnas"), line
    for fragment in fragments:
        assert fragment.lower() in line.lower(), f"{fragment!r} not in {line!r}"
    return line


def assert_usage_error(status: int, err: str, *fragments: str) -> str:
    """Exit status 2 and one clear line on stderr naming every fragment; returns the line."""
    return assert_one_line(status, err, 2, *fragments)


def assert_interrupted(status: int, err: str, *fragments: str) -> str:
    """What Ctrl-C ends with: exit status 130 and one line naming every fragment."""
    return assert_one_line(status, err, 130, "interrupted", *fragments)


def load_trials(run: Path) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run / "study.journal")))
    study = optuna.load_study(study_name="hwnas", storage=storage)
    return study.get_trials(deepcopy=True)


def objective(trial: optuna.trial.FrozenTrial, name: str) -> float:
    attrs = trial.user_attrs
    return float(attrs["metrics"]["error"] if name == "error" else attrs["costs"][name])


def unique_by_key(trials):
    seen = {}
    for t in trials:
        seen.setdefault(t.user_attrs["key"], t)
    return list(seen.values())


def feasible(trial: optuna.trial.FrozenTrial) -> bool:
    return all(v <= 0 for v in trial.constraints.values())


def brute_force_front(trials) -> set[str]:
    """Keys of the feasible non-dominated subnets over the three objectives."""
    points = {t.user_attrs["key"]: np.array([objective(t, o) for o in OBJECTIVES])
              for t in unique_by_key(trials) if feasible(t)}
    return {k for k, f in points.items()
            if not any(np.all(g <= f) and np.any(g < f) for g in points.values())}


def check_trial(trial: optuna.trial.FrozenTrial, choices: dict[str, list[str]],
                strategy: str = "tpe-ls") -> None:
    """One trial records one evaluation the way DESIGN.md says."""
    assert trial.state == TrialState.COMPLETE
    attrs = trial.user_attrs
    assert {"key", "arch", "metrics", "costs", "strategy"} <= set(attrs)
    assert set(trial.params) == set(choices)
    for name, option in trial.params.items():
        assert option in choices[name]
    assert attrs["arch"] == trial.params
    assert attrs["key"] == "|".join(f"{n}={trial.params[n]}" for n in choices)
    assert attrs["strategy"] == strategy
    metrics, costs = attrs["metrics"], attrs["costs"]
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert metrics["error"] == pytest.approx(1.0 - metrics["accuracy"])
    assert costs["latency_ms"] > 0 and costs["params"] > 0 and costs["macs"] > 0
    protocol = costs["protocol"]
    assert protocol["repeats"] == 10 and protocol["warmup"] == 2  # the config's protocol
    assert protocol["context"] == "cpu" and protocol["reliable"] is True
    assert len(trial.values) == 3
    assert trial.values == pytest.approx([objective(trial, o) for o in OBJECTIVES])
    assert trial.constraints == pytest.approx({"params": costs["params"] - BUDGET})


def space_choices(run: Path) -> dict[str, list[str]]:
    from hwnas import run as steps
    ws = steps.workspace(steps.RunDir.open(run), trained=False)
    return {name: list(options) for name, options in ws.space.choices.items()}
