"""Run files under crashes and damage: an export killed between its renames, leftovers of
killed writers, a retraining claim that trained nothing, and the shape check of the loaders."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _cli_helpers import cli, load_trials
from hwnas.deploy import mismatched_models, read_record
from hwnas.io import shape_error, temporary_prefix
from hwnas.run.retrain import retrain_dir

#: Runs ``hwnas ARGV[3:]`` and SIGKILLs it just before its ARGV[2]-th rename into the run
#: directory ARGV[1]: the real signal, at the one moment a timer could hardly hit.
KILLED_AT_RENAME = """
import os, signal, sys
from pathlib import Path
run, k, renames, real = Path(sys.argv[1]).resolve(), int(sys.argv[2]), [], os.replace
def replace(src, dst, *args, **kwargs):
    if Path(dst).resolve().parent == run:
        renames.append(dst)
        if len(renames) == k:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *args, **kwargs)
os.replace = replace
from hwnas.cli import main
sys.exit(main(sys.argv[3:]))
"""


def leftovers(run: Path) -> list[str]:
    """Temporaries and staging directories of this host's writers under ``run``."""
    mark = temporary_prefix("x").split(".")[2].split("@")[1]
    return sorted(str(p.relative_to(run)) for p in run.rglob(".*") if f"@{mark}." in p.name)


def test_export_killed_at_each_rename_leaves_a_complete_or_a_flagged_export(run_copy: Path,
                                                                              capfd) -> None:
    run = run_copy
    old = read_record(run)
    old_bytes = {name: (run / name).read_bytes() for name in ("model.nnp", "model.onnx")}
    selected = json.loads((run / "selected.json").read_text())["key"]
    new_key = sorted({t.user_attrs["key"] for t in load_trials(run)} - {selected})[0]
    # Rename 1 puts model.nnp in place, 2 model.onnx, 3 export.json.
    for k, flagged in ((1, []), (2, ["model.nnp"]), (3, ["model.nnp", "model.onnx"])):
        proc = subprocess.run([sys.executable, "-c", KILLED_AT_RENAME, str(run), str(k),
                               "export", str(run), "--arch", new_key],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
        assert any(name.startswith(".export.") for name in leftovers(run)), k
        record = read_record(run)
        assert record == old  # export.json, written last, still describes the old export ...
        # ... and says which files no longer are the ones it describes.
        assert mismatched_models(run, record) == flagged, k
        if not flagged:
            assert {n: (run / n).read_bytes() for n in old_bytes} == old_bytes
        if flagged:  # and hwnas says so
            status, _, err = cli(capfd, "report", run)
            assert status == 2 and f"{run / flagged[0]}" in err and "hwnas export" in err, err
    # The same command again completes the new export and removes what the killed ones left.
    status, _, err = cli(capfd, "export", run, "--arch", new_key)
    assert status == 0, err
    record = read_record(run)
    assert record["key"] == new_key and mismatched_models(run, record) == []
    assert set(record["formats"]) == {"nnp", "onnx"} and all(
        "sha256" in entry for entry in record["formats"].values())
    assert leftovers(run) == []
    assert cli(capfd, "report", run)[0] == 0


def test_the_next_command_removes_leftovers_of_dead_writers_only(run_copy: Path, capfd) -> None:
    run = run_copy
    child = subprocess.Popen(["true"])
    child.wait()
    dead, live = child.pid, os.getpid()
    host = temporary_prefix("x").split("@")[1].rstrip(".")
    retraining = retrain_dir(run, json.loads((run / "selected.json").read_text())["key"])
    gone = [run / f".export.{dead}@{host}.abcd1234", run / f".supernet.{dead}@{host}.k2j4h5g6.h5",
            retraining / f".weights.{dead}@{host}.q1w2e3r4.h5", run / ".export-zxcv5678"]
    kept = [run / f".export.{live}@{host}.poiu0987", run / f".supernet.{dead}@elsewhere.mnbv1234.h5",
            run / ".weights.lkjh4321.h5", run / ".notes"]
    for path in gone + kept:
        if "export" in path.name:
            path.mkdir()
            (path / "model.nnp").write_bytes(b"half a model")
        else:
            path.write_bytes(b"half a file")
    old = time.time() - 2 * 24 * 3600  # an older hwnas's staging, two days old
    os.utime(run / ".export-zxcv5678", (old, old))
    status, _, err = cli(capfd, "select", run)
    assert status == 0, err
    assert [p for p in gone if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []


def test_a_claim_that_trained_nothing_takes_a_corrected_recipe(run_copy: Path, capfd) -> None:
    """A claim an older hwnas wrote before refusing its recipe: nothing was trained under it."""
    key = "b0=skip|b1=ir_k3_e2"
    where = retrain_dir(run_copy, key)
    where.mkdir(parents=True)
    claim = {"key": key, "arch": dict(p.split("=") for p in key.split("|")),
             "recipe": {"epochs": 1, "batch_size": 100000, "lr": 0.05, "momentum": 0.9,
                        "weight_decay": 0.0005, "augmentation": "shift"}, "seed": 1}
    (where / "arch.json").write_text(json.dumps(claim))
    status, _, err = cli(capfd, "retrain", run_copy, "--arch", key, "--epochs", 1, "--quiet")
    assert status == 0, err
    assert json.loads((where / "arch.json").read_text())["recipe"]["batch_size"] == 32
    assert (where / "result.json").exists()
    # Once trained under it, a claim is guarded: another recipe is refused.
    status, _, err = cli(capfd, "retrain", run_copy, "--arch", key, "--epochs", 2, "--quiet")
    assert status == 2 and "epochs=1" in err, err


@pytest.mark.parametrize("value, shape, problem", [
    ([], {str: float}, "holds a list, not a mapping"),
    ({"key": "a=b"}, {"key": str, "arch": {str: str}}, "'arch' missing"),
    ({"formats": 3}, {"formats?": {str: dict}}, "'formats' is an integer, not a mapping"),
    ({"a": {"ms": "x"}}, {str: {"ms": float}}, "'a.ms' is a string, not a number"),
    ({"n": True}, {"n": int}, "'n' is true/false, not an integer"),
    ({"l": [1, "2"]}, {"l": [int]}, "'l[1]' is a string, not an integer"),
    ({"x": "y"}, {"x": (float, None)}, "'x' is a string, not a number or null"),
])
def test_shape_error_names_the_field(value, shape, problem) -> None:
    assert shape_error(value, shape) == problem


@pytest.mark.parametrize("value, shape", [
    ({"a": 1, "extra": [1]}, {"a": float}), ({"x": None}, {"x": (float, None)}),
    ({}, {"opt?": int}), ({"k": {"a": 1.5}}, {str: {str: float}}), ([1, 2], [int]),
])
def test_shape_error_accepts_what_fits(value, shape) -> None:
    assert shape_error(value, shape) is None
