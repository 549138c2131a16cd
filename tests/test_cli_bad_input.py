"""Bad input to the ``hwnas`` command: exit status 2, one stderr line, the run left as it was."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from _cli_helpers import HWNAS, assert_changed_nothing, assert_usage_error, cli, snapshot


# --- 5. bad input ---------------------------------------------------------------------

# case -> (text replaced in the tiny config, its replacement, fragments of the message)
BAD_CONFIGS = {
    "unknown_key": ("budgets:", "colour: red\nbudgets:", ["colour"]),
    "wrong_type": ("train: {epochs: 1,", 'train: {epochs: "ten",', ["train.epochs", "ten"]),
    "negative_budget": ("budgets: {params: 100000}", "budgets: {params: -5}",
                        ["budgets.params", "-5"]),
    "cifar10_without_path": ("name: synthetic", "name: cifar10", ["path"]),
}


def edited_config(tiny_config: Path, directory: Path, name: str, old: str, new: str) -> Path:
    """A copy of the tiny config with ``old`` replaced by ``new``."""
    text = tiny_config.read_text()
    assert old in text
    path = directory / name
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_one_line_naming_key_and_file(case, tiny_config, tmp_path, capfd,
                                                    monkeypatch):
    old, new, fragments = BAD_CONFIGS[case]
    monkeypatch.chdir(tmp_path)
    config = edited_config(tiny_config, tmp_path, f"{case}.yaml", old, new)
    out = tmp_path / "out"
    status, _, err = cli(capfd, "run", config, "--out", out, "--quiet")
    assert_usage_error(status, err, f"{case}.yaml", *fragments)
    assert not out.exists()
    assert not (tmp_path / "runs").exists()


def test_missing_config_file(tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    status, _, err = cli(capfd, "run", tmp_path / "missing.yaml", "--out", out, "--quiet")
    assert_usage_error(status, err, "missing.yaml")
    assert not out.exists()


@pytest.mark.parametrize("budget, fragment", [("params=-5", "-5"), ("foo=3", "foo"),
                                              ("params", "params")])
@pytest.mark.parametrize("command", ["run", "select"])
def test_bad_budget_option(command, budget, fragment, run_copy, tiny_config, capfd):
    before = snapshot(run_copy)
    if command == "run":
        argv = ["run", tiny_config, "--out", run_copy, "--quiet"]
    else:
        argv = ["select", run_copy]
    status, _, err = cli(capfd, *argv, "--budget", budget)
    assert_usage_error(status, err, "budget", fragment)
    assert_changed_nothing(before, run_copy)


@pytest.mark.parametrize("command", ["run", "select"])
def test_budget_no_subnet_meets_changes_nothing(command, run_copy, tiny_config, capfd):
    before = snapshot(run_copy)
    if command == "run":
        argv = ["run", tiny_config, "--out", run_copy, "--quiet"]
    else:
        argv = ["select", run_copy]
    status, _, err = cli(capfd, *argv, "--budget", "params=1")
    assert_usage_error(status, err, "no subnet fits")
    assert_changed_nothing(before, run_copy)


def test_missing_dataset_path(tiny_config, tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "nonexistent"
    config = edited_config(tiny_config, tmp_path, "mnist.yaml", "{name: synthetic, image_size: 8}",
                           f"{{name: mnist, path: {missing}}}")
    status, _, err = cli(capfd, "run", config, "--out", tmp_path / "out", "--quiet")
    assert_usage_error(status, err, str(missing))


@pytest.mark.parametrize("argv", [["search", "--trials", "10", "--quiet"], ["export"]],
                         ids=["search", "export"])
def test_truncated_supernet_weights(argv, run_copy, capfd):
    weights = run_copy / "supernet.h5"
    data = weights.read_bytes()
    weights.write_bytes(data[:len(data) // 2])
    before = snapshot(run_copy)
    status, _, err = cli(capfd, argv[0], run_copy, *argv[1:])
    line = assert_usage_error(status, err, "supernet.h5")
    assert "truncated" in line or "unreadable" in line, line
    assert_changed_nothing(before, run_copy)


def test_run_into_a_directory_of_another_experiment(run_copy, tiny_config, tmp_path, capfd):
    other = edited_config(tiny_config, tmp_path, "other.yaml", "seed: 1", "seed: 2")
    before = snapshot(run_copy)
    status, _, err = cli(capfd, "run", other, "--out", run_copy, "--quiet")
    assert_usage_error(status, err, "different experiment", "seed")
    assert_changed_nothing(before, run_copy)


def test_a_new_retraining_recipe_reuses_the_run(run_copy, tiny_config, tmp_path, capfd):
    """The recipe is not part of what was trained and searched: the run directory takes the
    new one and keeps everything else; the finished retraining of the selected subnet is
    not overwritten (one line says to move it away), and then it is retrained with it."""
    import shutil

    from hwnas.run.retrain import retrain_dir
    other = edited_config(tiny_config, tmp_path, "other.yaml", "retrain: {epochs: 2}",
                          "retrain: {epochs: 3}")
    before = snapshot(run_copy)
    status, _, err = cli(capfd, "run", other, "--out", run_copy, "--quiet")
    assert_usage_error(status, err, "epochs=2, not 3", "move it away")
    assert {k: v for k, v in snapshot(run_copy).items() if k != "config.yaml"} == {
        k: v for k, v in before.items() if k != "config.yaml"}
    old = retrain_dir(run_copy, json.loads((run_copy / "selected.json").read_text())["key"])
    shutil.move(old, tmp_path / "old-retraining")
    status, out, err = cli(capfd, "run", other, "--out", run_copy, "--quiet")
    assert status == 0, err
    assert "for 3 epochs" in out
    assert yaml.safe_load((run_copy / "config.yaml").read_text())["retrain"]["epochs"] == 3
    after = snapshot(run_copy)
    for name in ("supernet.h5", "train_state.npz", "study.journal", "selected.json"):
        assert after[name] == before[name], name
    assert {k: v for k, v in after.items() if k.startswith("retrain/")} != {
        k: v for k, v in before.items() if k.startswith("retrain/")}


@pytest.mark.parametrize("argv, fragment", [
    (["frobnicate"], "frobnicate"),
    ([], "hwnas"),
    (["search", "/nonexistent-hwnas-run"], "/nonexistent-hwnas-run"),
    (["front", "/nonexistent-hwnas-run"], "/nonexistent-hwnas-run"),
    (["select", "/nonexistent-hwnas-run"], "/nonexistent-hwnas-run"),
    (["export", "/nonexistent-hwnas-run"], "/nonexistent-hwnas-run"),
], ids=["unknown_command", "no_command", "search", "front", "select", "export"])
def test_bad_command_line(argv, fragment, capfd):
    status, _, err = cli(capfd, *argv)
    assert_usage_error(status, err, fragment)


@pytest.mark.parametrize("trials", ["0", "-3", "ten"])
def test_search_bad_trials(trials, run_copy, capfd):
    before = snapshot(run_copy)
    status, _, err = cli(capfd, "search", run_copy, "--trials", trials)
    assert_usage_error(status, err, "trials")
    assert_changed_nothing(before, run_copy)


def garbage(newlines: bool) -> bytes:
    data = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    return data + b"\n" if newlines else data.replace(b"\n", b"")


@pytest.mark.parametrize("newlines", [True, False], ids=["garbage_lines", "garbage_no_newline"])
def test_front_of_a_corrupted_study(newlines, run_copy, capfd):
    (run_copy / "study.journal").write_bytes(garbage(newlines))
    before = snapshot(run_copy)
    status, _, err = cli(capfd, "front", run_copy)
    assert_usage_error(status, err, "study.journal")
    assert_changed_nothing(before, run_copy)


@pytest.mark.parametrize("command", ["front", "select"])
def test_reading_commands_leave_the_study_unchanged(command, run_copy, capfd):
    journal = (run_copy / "study.journal").read_bytes()
    status, _, err = cli(capfd, command, run_copy)
    assert status == 0, err
    assert (run_copy / "study.journal").read_bytes() == journal


def test_export_an_arch_outside_the_space(run_copy, capfd):
    before = snapshot(run_copy)
    status, _, err = cli(capfd, "export", run_copy, "--arch", "b0=nonsense|b1=x")
    assert_usage_error(status, err, "nonsense")
    assert_changed_nothing(before, run_copy)


@pytest.mark.parametrize("key", ["b0", "b0=ir_k3_e2|b0=ir_k3_e2", ""])
def test_export_a_malformed_arch_key(key, run_copy, capfd):
    before = snapshot(run_copy)
    status, _, err = cli(capfd, "export", run_copy, "--arch", key)
    assert_usage_error(status, err, "arch")
    assert_changed_nothing(before, run_copy)


def test_unwritable_run_directory(run_copy, tmp_path, tiny_config, capfd):
    if os.geteuid() == 0:  # root writes anywhere: use a path below a regular file instead
        blocker = tmp_path / "a_file"
        blocker.write_text("not a directory\n")
        status, _, err = cli(capfd, "run", tiny_config, "--out", blocker / "run", "--quiet")
        assert_usage_error(status, err, str(blocker))
        assert blocker.read_text() == "not a directory\n"
        return
    before = snapshot(run_copy)
    paths = [run_copy, *run_copy.iterdir()]
    modes = {p: p.stat().st_mode for p in paths}
    for p in paths:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        status, _, err = cli(capfd, "search", run_copy, "--trials", 8, "--quiet")
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
    assert_usage_error(status, err)
    assert_changed_nothing(before, run_copy)


@pytest.mark.parametrize("launcher", ["module", "script"])
def test_bad_input_in_a_real_process_prints_one_line(launcher, tmp_path):
    if launcher == "script" and not HWNAS.exists():
        pytest.skip("the hwnas console script is not installed here")
    prefix = [sys.executable, "-m", "hwnas"] if launcher == "module" else [str(HWNAS)]
    proc = subprocess.run([*prefix, "search", str(tmp_path / "nowhere")], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert_usage_error(proc.returncode, proc.stderr, "nowhere")
