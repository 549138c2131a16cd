"""Tests of retraining: augmentation, from-scratch training of the chosen subnet, resume,
the estimate beside it, and the refusals that protect a finished retraining."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hwnas import run as steps
from hwnas.studies import evaluations, open_study
from hwnas.data import augment, default_augmentation
from hwnas.evaluate import split_accuracy
from hwnas.run.retrain import (RetrainLearner, fresh_subnet, read_arch_json, retrain_dir,
                           retrained_subnet)
from hwnas.supernet import Arch
from hwnas.supernet.learners import load_weights
from _cli_helpers import assert_interrupted, assert_usage_error, cli, snapshot

# --- augmentation -------------------------------------------------------------------------


def dot_images(n: int, size: int = 8, y: int = 3, x: int = 2) -> np.ndarray:
    """n one-channel images, zero but for a 1 at (y, x)."""
    images = np.zeros((n, 1, size, size), np.float32)
    images[:, 0, y, x] = 1.0
    return images


def test_shift_moves_every_image_by_at_most_the_pad_and_fills_the_border():
    x = dot_images(400)
    out = augment(x, np.random.default_rng(0), "shift", fill=np.array([-5.0]), pad=1)
    assert out.shape == x.shape and x[:, 0, 3, 2].min() == 1.0  # the input is untouched
    moves = set()
    for image in out:
        ys, xs = np.nonzero(image[0] == 1.0)
        assert len(ys) == 1, "the dot must survive a shift of one pixel"
        moves.add((int(ys[0]) - 3, int(xs[0]) - 2))
        # Values are the image's or the fill, nothing else.
        assert set(np.unique(image)) <= {0.0, 1.0, -5.0}
    assert moves == {(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    # A shift to the right brings fill in on the left edge.
    assert (out[:, 0, :, 0] == -5.0).any() and (out[:, 0, :, 7] == -5.0).any()


def test_crop_flip_mirrors_about_half_and_none_is_the_identity():
    x = dot_images(400, y=4, x=4)
    out = augment(x, np.random.default_rng(1), "crop-flip", pad=0)
    flipped = np.sum(out[:, 0, 4, 3] == 1.0)  # column 4 of 8 mirrors to 3
    assert np.sum(out[:, 0, 4, 4] == 1.0) + flipped == 400
    assert 150 < flipped < 250
    assert augment(x, np.random.default_rng(1), "none") is x
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment(x, np.random.default_rng(1), "rotate")


def test_augmentation_is_reproducible_and_chosen_per_data_set():
    x = np.random.default_rng(2).normal(size=(16, 3, 32, 32)).astype(np.float32)
    a = augment(x, np.random.default_rng(5), "crop-flip")
    b = augment(x, np.random.default_rng(5), "crop-flip")
    c = augment(x, np.random.default_rng(6), "crop-flip")
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert default_augmentation("cifar10") == "crop-flip"
    assert default_augmentation("digits") == default_augmentation("mnist") == "shift"


# --- retraining end to end -------------------------------------------------------------------


def selected_dir(run: Path) -> Path:
    """The retraining directory of the run's selected subnet."""
    return retrain_dir(run, json.loads((run / "selected.json").read_text())["key"])


def test_the_finished_run_retrained_its_selected_subnet_from_scratch(finished_run):
    """``hwnas run`` retrains the selected subnet; the reported numbers are the weights'."""
    run = steps.RunDir.open(finished_run)
    result = json.loads((selected_dir(finished_run) / "result.json").read_text())
    selected = json.loads((finished_run / "selected.json").read_text())
    assert result["key"] == selected["key"]
    assert result["epochs"] == run.config.retrain.epochs == len(
        pd.read_csv(selected_dir(finished_run) / "log.csv"))
    assert finished_run / result["weights"] == selected_dir(finished_run) / "weights.h5"
    ws = steps.workspace(run, progress=False)
    arch = Arch(result["arch"])
    subnet = retrained_subnet(run, ws.supernet, arch)
    assert split_accuracy(subnet, ws.data.test) == pytest.approx(result["test_accuracy"])
    # From scratch: nothing of the supernet's weights, which give the estimate.
    inherited = ws.supernet.extract(arch).get_parameters(grad_only=True)
    retrained = subnet.get_parameters(grad_only=True)
    assert inherited.keys() == retrained.keys()
    assert all(not np.allclose(inherited[k].d, retrained[k].d) for k in retrained)
    # 'hwnas run' exported the retrained weights, not the supernet's.
    exported = json.loads((finished_run / "export.json").read_text())
    assert exported["key"] == result["key"] and exported["weights"] == "retrained"
    for fmt in ("nnp", "onnx"):
        assert exported["formats"][fmt]["test_accuracy"] == pytest.approx(result["test_accuracy"])
    # The estimate is the search's own number for the subnet (the same recalibration).
    trial = next(e for e in evaluations(open_study(
        run.path, run.config.search.objectives, create=False)) if e.arch.key == arch.key)
    assert result["supernet_val_accuracy"] == pytest.approx(trial.metrics["accuracy"])


def test_retraining_learns(run_copy, capfd):
    status, out, _ = cli(capfd, "retrain", run_copy, "--arch-json", run_copy / "selected.json",
                         "--quiet")
    assert status == 0 and "test accuracy" in out  # the finished retraining, reported again
    log = pd.read_csv(selected_dir(run_copy) / "log.csv")
    assert {"epoch", "loss", "train_accuracy", "val_accuracy", "lr"} <= set(log.columns)
    assert log["loss"].iloc[-1] < log["loss"].iloc[0]
    assert log["lr"].is_monotonic_decreasing  # cosine annealing


def interrupt_after(monkeypatch, steps: int) -> None:
    """Makes the retraining's ``steps``-th weight update raise KeyboardInterrupt."""
    calls = {"n": 0}
    original = RetrainLearner.train_step

    def step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == steps:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RetrainLearner, "train_step", step)


def test_resumed_retraining_equals_an_uninterrupted_one(finished_run, tmp_path, capfd,
                                                        monkeypatch):
    import shutil
    straight, resumed = (Path(shutil.copytree(finished_run, tmp_path / n)) for n in "ab")
    for run in (straight, resumed):
        shutil.rmtree(run / "retrain")
    assert cli(capfd, "retrain", straight, "--epochs", "3", "--quiet")[0] == 0
    with monkeypatch.context() as patch:
        interrupt_after(patch, 25)  # inside the third epoch (11 steps each)
        status, _, err = cli(capfd, "retrain", resumed, "--epochs", "3", "--quiet")
    assert_interrupted(status, err, "same command again")
    assert not (selected_dir(resumed) / "result.json").exists()
    assert len(pd.read_csv(selected_dir(resumed) / "log.csv")) == 2
    assert cli(capfd, "retrain", resumed, "--epochs", "3", "--quiet")[0] == 0
    a = json.loads((selected_dir(straight) / "result.json").read_text())
    b = json.loads((selected_dir(resumed) / "result.json").read_text())
    for key in ("test_accuracy", "val_accuracy", "supernet_test_accuracy", "key", "recipe"):
        assert a[key] == b[key], key
    log_a, log_b = (pd.read_csv(selected_dir(r) / "log.csv").drop(columns="seconds")
                    for r in (straight, resumed))
    pd.testing.assert_frame_equal(log_a, log_b)
    run = steps.RunDir.open(straight)
    space = steps.workspace(run, trained=False, progress=False).space
    nets = []
    for r in (straight, resumed):
        net = fresh_subnet(space, Arch(a["arch"]), 99)
        load_weights(net, selected_dir(r) / "weights.h5")
        nets.append(net.net_parameters())
    assert all(np.array_equal(nets[0][k].d, nets[1][k].d) for k in nets[0])


def test_each_subnet_keeps_its_own_retraining(run_copy, capfd):
    before = snapshot(run_copy)
    status, out, _ = cli(capfd, "retrain", run_copy, "--quiet")
    assert status == 0 and "test accuracy" in out
    assert snapshot(run_copy) == before  # finished: nothing trained again, nothing rewritten
    result = json.loads((selected_dir(run_copy) / "result.json").read_text())
    # The same subnet with another recipe would mix two trainings: refused.
    status, _, err = cli(capfd, "retrain", run_copy, "--epochs", "7")
    assert_usage_error(status, err, f"epochs={result['epochs']}", "not 7")
    assert snapshot(run_copy) == before
    # Another subnet trains beside it; the selected one's retraining stays what it was.
    other = dict(result["arch"])
    block = next(iter(other))
    other[block] = next(o for o in ("ir_k3_e2", "ir_k5_e2", "ir_k3_e3") if o != other[block])
    other = Arch(other)
    status, out, _ = cli(capfd, "retrain", run_copy, "--arch", other.key, "--quiet")
    assert status == 0 and other.key in out
    after = snapshot(run_copy)
    assert {k: v for k, v in after.items() if k in before} == before
    assert json.loads((retrain_dir(run_copy, other.key) / "result.json").read_text())["key"] == \
        other.key
    # Export picks each subnet's own retraining.
    assert cli(capfd, "export", run_copy, "--arch", other.key, "--format", "nnp")[0] == 0
    exported = json.loads((run_copy / "export.json").read_text())
    assert exported["key"] == other.key and exported["weights"] == "retrained"


def test_arch_json_accepts_choices_or_a_record(tmp_path):
    (tmp_path / "a.json").write_text('{"b0": "skip", "b1": "ir_k3_e2"}')
    (tmp_path / "b.json").write_text('{"key": "x", "arch": {"b0": "skip", "b1": "ir_k3_e2"}}')
    assert read_arch_json(tmp_path / "a.json") == read_arch_json(tmp_path / "b.json")
    assert read_arch_json(tmp_path / "a.json").key == "b0=skip|b1=ir_k3_e2"
