"""Tests for the ``hwnas`` command: the whole pipeline, resuming, selection, export, help."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from _cli_helpers import (BUDGET, HWNAS, OBJECTIVES, assert_usage_error, brute_force_front,
                          check_trial, cli, feasible, load_trials, objective, space_choices,
                          unique_by_key)

from hwnas.cli import main

ARTIFACTS = ("config.yaml", "supernet.h5", "study.journal", "front.csv", "front.png",
             "selected.json", "model.nnp", "model.onnx", "export.json")
COMMANDS = ("run", "train", "search", "front", "select", "export")


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

    from hwnas import run as steps
    from hwnas.arch import Arch
    from hwnas.deploy import pixels

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
    run = steps.RunDir.open(run_copy)
    ws = steps.workspace(run)
    arch = Arch.from_key(key)
    subnet, weights = steps.deploy_subnet(run, ws, arch)
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
