"""Tests for the ``hwnas`` command: the whole pipeline, resuming, selection, export, bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from hwnas.cli import main

ARTIFACTS = ("config.yaml", "supernet.h5", "study.journal", "front.csv", "front.png",
             "selected.json", "model.nnp", "model.onnx", "export.json")
OBJECTIVES = ("error", "latency_ms", "params")
BUDGET = 100000.0  # the tiny config's params budget
COMMANDS = ("run", "train", "search", "front", "select", "export")
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


def assert_usage_error(status: int, err: str, *fragments: str) -> str:
    """Exit status 2 and one clear line on stderr naming every fragment; returns the line."""
    assert status == 2, f"exit status {status}, stderr: {err!r}"
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"expected one stderr line, got {err!r}"
    line = lines[0]
    assert line.startswith("hwnas"), line
    for fragment in fragments:
        assert fragment.lower() in line.lower(), f"{fragment!r} not in {line!r}"
    return line


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
    from hwnas import pipeline
    ws = pipeline.workspace(pipeline.RunDir.open(run), trained=False)
    return {name: list(options) for name, options in ws.space.choices.items()}


# --- 1. the whole pipeline ------------------------------------------------------------


def test_run_writes_every_artifact(finished_run):
    for name in ARTIFACTS:
        assert (finished_run / name).is_file(), name
        assert (finished_run / name).stat().st_size > 0, name
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    assert config["name"] == "tiny" and config["seed"] == 1
    assert config["search"]["trials"] == 6 and config["train"]["epochs"] == 1
    assert config["budgets"] == {"params": BUDGET}


def test_run_prints_front_and_selected_key(finished, finished_run):
    out = finished.stdout
    front = pd.read_csv(finished_run / "front.csv")
    assert f"Pareto front: {len(front)} subnets" in out, out
    for key in front["key"]:
        assert key in out
    key = json.loads((finished_run / "selected.json").read_text())["key"]
    assert "selected" in out
    assert key in out.split("selected", 1)[1], out
    assert "Traceback" not in finished.stderr


def test_study_holds_one_complete_trial_per_evaluation(finished_run):
    trials = load_trials(finished_run)
    fresh = [t for t in trials if not t.user_attrs["cached"]]
    assert len(fresh) == len({t.user_attrs["key"] for t in trials}) == 6
    # A repeated proposal is answered from the study: a trial marked cached,
    # with the values of the subnet's first trial.
    first = {t.user_attrs["key"]: t for t in reversed(fresh)}
    for trial in trials:
        if trial.user_attrs["cached"]:
            assert trial.values == first[trial.user_attrs["key"]].values
    choices = space_choices(finished_run)
    for trial in trials:
        check_trial(trial, choices)


def test_selected_is_the_most_accurate_feasible_subnet(finished_run):
    trials = load_trials(finished_run)
    selected = json.loads((finished_run / "selected.json").read_text())
    assert selected["budgets"] == {"params": BUDGET}
    fits = [t for t in trials if feasible(t)]
    by_key = {t.user_attrs["key"]: t for t in fits}
    assert selected["key"] in by_key
    best = min(objective(t, "error") for t in fits)
    assert selected["metrics"]["error"] == pytest.approx(best)
    trial = by_key[selected["key"]]
    assert selected["arch"] == trial.params
    assert selected["metrics"] == pytest.approx(trial.user_attrs["metrics"])
    assert selected["costs"]["params"] == trial.user_attrs["costs"]["params"]
    assert selected["costs"]["latency_ms"] == pytest.approx(trial.user_attrs["costs"]["latency_ms"])


def test_front_csv_is_the_feasible_non_dominated_set(finished_run):
    trials = load_trials(finished_run)
    front = pd.read_csv(finished_run / "front.csv")
    assert len(front) == len(set(front["key"]))
    assert set(front["key"]) == brute_force_front(trials)
    selected = json.loads((finished_run / "selected.json").read_text())
    assert selected["key"] in set(front["key"])
    for _, row in front.iterrows():
        trial = next(t for t in trials if t.user_attrs["key"] == row["key"])
        assert [row[o] for o in OBJECTIVES] == pytest.approx([objective(trial, o) for o in OBJECTIVES])


def test_run_export_json_describes_the_selected_subnet(finished_run):
    info = json.loads((finished_run / "export.json").read_text())
    selected = json.loads((finished_run / "selected.json").read_text())
    assert info["key"] == selected["key"]
    assert (info["network"], info["input"], info["output"]) == ("net", "x", "y")
    assert list(info["formats"]) == ["nnp", "onnx"] and info["test_examples"] > 0
    for name, entry in info["formats"].items():
        assert entry["model"] == f"model.{name}"
        assert 0.0 <= entry["test_accuracy"] <= 1.0
        assert entry["max_abs_diff"] <= 1e-5


# --- 2. resuming ----------------------------------------------------------------------


@pytest.mark.skipif(not HWNAS.exists(), reason="the hwnas console script is not installed here")
def test_run_again_resumes_without_retraining_or_new_trials(run_copy, tiny_config):
    weights = run_copy / "supernet.h5"
    data, mtime = weights.read_bytes(), weights.stat().st_mtime_ns
    before = [(t.number, t.params, t.values) for t in load_trials(run_copy)]
    proc = subprocess.run([str(HWNAS), "run", str(tiny_config), "--out", str(run_copy), "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert weights.read_bytes() == data
    assert weights.stat().st_mtime_ns == mtime
    assert [(t.number, t.params, t.values) for t in load_trials(run_copy)] == before
    key = json.loads((run_copy / "selected.json").read_text())["key"]
    assert "Pareto front:" in proc.stdout and key in proc.stdout.split("selected", 1)[1]


def test_search_with_more_trials_adds_exactly_the_difference(run_copy, capfd):
    before = [(t.number, t.params, t.values) for t in load_trials(run_copy)]
    status, out, err = cli(capfd, "search", run_copy, "--trials", 8, "--quiet")
    assert status == 0, err
    trials = load_trials(run_copy)
    assert len({t.user_attrs["key"] for t in trials}) == 8
    assert [(t.number, t.params, t.values) for t in trials[:len(before)]] == before
    choices = space_choices(run_copy)
    for trial in trials:
        check_trial(trial, choices)
    assert f"8 subnets evaluated ({len(trials)} trials)" in out


# --- 3. selection ---------------------------------------------------------------------


def test_select_within_a_params_budget(run_copy, capfd):
    trials = load_trials(run_copy)
    sizes = sorted({int(objective(t, "params")) for t in trials})
    assert len(sizes) >= 2, "the tiny study needs subnets of different sizes"
    limit = (sizes[0] + sizes[1]) // 2  # only the smallest subnets fit
    latency = max(objective(t, "latency_ms") for t in trials) * 2
    status, out, err = cli(capfd, "select", run_copy, "--budget", f"latency_ms={latency}",
                           "--budget", f"params={limit}")
    assert status == 0, err
    selected = json.loads((run_copy / "selected.json").read_text())
    assert selected["budgets"] == {"latency_ms": pytest.approx(latency), "params": limit}
    assert selected["costs"]["params"] <= limit
    fits = [t for t in trials if objective(t, "params") <= limit]
    assert selected["key"] in {t.user_attrs["key"] for t in fits}
    assert selected["metrics"]["error"] == pytest.approx(min(objective(t, "error") for t in fits))
    assert selected["key"] in out


def test_select_with_no_subnet_within_budget_names_the_nearest(run_copy, capfd):
    trials = unique_by_key(load_trials(run_copy))
    # The nearest subnet: smallest relative excess over params=1, then lowest error, then key.
    nearest = min(trials, key=lambda t: (objective(t, "params") - 1, objective(t, "error"),
                                         t.user_attrs["key"]))
    selected = (run_copy / "selected.json").read_bytes()
    status, _, err = cli(capfd, "select", run_copy, "--budget", "params=1")
    assert_usage_error(status, err, "no subnet fits", nearest.user_attrs["key"])
    assert (run_copy / "selected.json").read_bytes() == selected


# --- 4. export ------------------------------------------------------------------------

# Loads the .nnp with nnabla alone: this process never imports hwnas.
NNP_SCRIPT = """\
import sys
import numpy as np
from nnabla.utils.nnp_graph import NnpLoader
path, pixels, logits = sys.argv[1:4]
x = np.load(pixels)
net = NnpLoader(path).get_network('net', batch_size=len(x))
net.inputs['x'].d = x
y = net.outputs['y']
y.forward(clear_buffer=True)
np.save(logits, y.d)
imported = [m for m in sys.modules if m == 'hwnas' or m.startswith('hwnas.')]
assert not imported, imported
"""


@pytest.mark.parametrize("which", ["selected", "other"])
def test_export_loads_with_nnabla_alone_and_matches_the_subnet(run_copy, capfd, tmp_path, which):
    import nnabla as nn

    from hwnas import pipeline
    from hwnas.arch import Arch
    from hwnas.export import pixels

    selected = json.loads((run_copy / "selected.json").read_text())["key"]
    if which == "selected":
        key, extra = selected, []
    else:
        key = sorted({t.user_attrs["key"] for t in load_trials(run_copy)} - {selected})[0]
        extra = ["--arch", key]
    (run_copy / "model.nnp").unlink()
    (run_copy / "export.json").unlink()
    status, out, err = cli(capfd, "export", run_copy, *extra)
    assert status == 0, err
    assert (run_copy / "model.nnp").is_file()
    info = json.loads((run_copy / "export.json").read_text())
    assert info["key"] == key

    # The selected subnet was retrained by 'hwnas run': its retrained weights are exported.
    assert info["weights"] == ("retrained" if which == "selected" else "supernet")
    run = pipeline.RunDir.open(run_copy)
    ws = pipeline.workspace(run)
    arch = Arch.from_key(key)
    subnet, weights = pipeline._deploy_subnet(run, ws, arch)
    assert weights == info["weights"]
    subnet.training = False
    test = ws.data.test
    y = subnet(nn.Variable.from_numpy_array(test.x))
    y.forward(clear_buffer=True)
    reference = y.d.copy()
    images = pixels(ws.data, test.x)
    assert images.min() >= -1e-5 and images.max() <= 1 + 1e-5

    np.save(tmp_path / "pixels.npy", images)
    proc = subprocess.run([sys.executable, "-c", NNP_SCRIPT, str(run_copy / "model.nnp"),
                           str(tmp_path / "pixels.npy"), str(tmp_path / "logits.npy")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    logits = np.load(tmp_path / "logits.npy")
    assert logits.shape == reference.shape == (len(test), ws.data.n_classes)
    np.testing.assert_allclose(logits, reference, rtol=0, atol=1e-5)
    accuracy = float(np.mean(np.argmax(logits, axis=1) == test.y[:, 0]))
    assert info["formats"]["nnp"]["test_accuracy"] == pytest.approx(accuracy, abs=1e-9)
    assert info["test_examples"] == len(test)
    assert info["formats"]["nnp"]["max_abs_diff"] <= 1e-5


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

    from hwnas.retrain import retrain_dir
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


# --- 6. help ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help(command, capfd):
    argv = [command, "--help"] if command else ["--help"]
    capfd.readouterr()
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse exits after printing help
        status = exc.code
    out, err = capfd.readouterr()
    assert status in (0, None), err
    assert out.startswith(f"usage: hwnas {command}".rstrip()), out
    assert "--help" in out
    assert err == ""


@pytest.mark.skipif(not HWNAS.exists(), reason="the hwnas console script is not installed here")
def test_help_of_the_console_script():
    proc = subprocess.run([str(HWNAS), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: hwnas")
    for command in COMMANDS:
        assert command in proc.stdout
