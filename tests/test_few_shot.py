"""Tests of few-shot supernets (train.split_epochs): after the one-shot epochs, one copy of the
weights per option of the split choice, trained with that option fixed and scored with."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from _cli_helpers import cli
from _learner_helpers import Interrupted, crash_at, with_weights
from conftest import SMALL_SPACE, TINY_CONFIG, snapshot

from hwnas.arch import Arch
from hwnas.config import LatencyConfig, TrainConfig
from hwnas.data import Dataset
from hwnas.evaluate import Evaluator
from hwnas.run import RunDir, make_evaluator, retrain, worker_evaluator, workspace
from hwnas.supernet import SplitWeights, create_space, split_choice
from hwnas.supernet.learners import DartsLearner, UniformLearner, trained_split
from hwnas.supernet.learners._base import CHECKPOINT, LOG, SPLIT_WEIGHTS, WEIGHTS

GOLDEN = Path(__file__).resolve().parent / "golden"


def _learner(space, net, data, run_dir, **config) -> UniformLearner:
    cfg = TrainConfig(**{"epochs": 1, "batch_size": 16, "lr": 0.05, **config})
    return UniformLearner(space=space, supernet=net, data=data, config=cfg, seed=5,
                          run_dir=run_dir, progress=False)


def _stored(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        stored = {}
        f.visititems(lambda name, obj: stored.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
    return stored


@pytest.fixture(scope="module")
def space():
    return create_space("mobilenet", **SMALL_SPACE)


@pytest.fixture(scope="module")
def init(space) -> dict[str, np.ndarray]:
    return snapshot(space.supernet())


@pytest.fixture(scope="module")
def one_shot(space, init, small_data: Dataset, tmp_path_factory) -> Path:
    """A finished one-shot training (one epoch) of the small space."""
    where = tmp_path_factory.mktemp("one_shot")
    _learner(space, with_weights(space, init), small_data, where).fit()
    return where


@pytest.fixture(scope="module")
def split_run(space, one_shot: Path, small_data: Dataset, tmp_path_factory):
    """The one-shot training resumed into a few-shot one (split_epochs 1), with every path
    each epoch trained, by epoch."""
    where = Path(shutil.copytree(one_shot, tmp_path_factory.mktemp("split") / "run"))
    net = space.supernet()
    learner = _learner(space, net, small_data, where, split_epochs=1)
    paths: list[list[Arch]] = []
    real = net.set_active

    def set_active(arch):
        while len(paths) <= len(learner.history):
            paths.append([])
        paths[len(learner.history)].append(arch)
        return real(arch)

    net.set_active = set_active
    learner.fit()
    net.set_active = real
    return where, net, learner, paths


def test_auto_splits_on_the_first_choice_with_the_most_options_and_names_the_known_ones(space):
    most = max(len(o) for o in space.choices.values())
    choice = split_choice(space, "auto")
    assert len(space.choices[choice]) == most
    before = list(space.choices)[:list(space.choices).index(choice)]
    assert all(len(space.choices[c]) < most for c in before)
    assert split_choice(space, "b2") == "b2"
    with pytest.raises(ValueError, match="known: auto, b0, b1, b2"):
        split_choice(space, "b9")


def test_a_split_epoch_trains_only_paths_with_its_option_and_keeps_the_one_shot_weights(
        space, one_shot: Path, split_run, small_data: Dataset) -> None:
    where, net, learner, paths = split_run
    choice = split_choice(space, "auto")
    options = space.choices[choice]
    # The resumed training ran only the split: one epoch per option, after the one-shot one.
    assert [row.get("phase") for row in learner.history[1:]] == [f"split:{o}" for o in options]
    assert len(paths) == 1 + len(options)
    for option, trained in zip(options, paths[1:]):
        assert trained and all(arch[choice] == option for arch in trained)
        # The other choices are still sampled.
        assert len({arch.key for arch in trained}) > 1
    log = pd.read_csv(where / LOG)
    assert list(log["phase"][1:]) == [f"split:{o}" for o in options]
    # supernet.h5 (and the supernet after fit) keep the one-shot weights.
    want, got = _stored(one_shot / WEIGHTS), _stored(where / WEIGHTS)
    assert set(want) == set(got) and all(np.array_equal(want[k], got[k]) for k in want)
    live = snapshot(net)
    assert all(np.array_equal(want[k], live[k]) for k in live)
    # Each copy moved away from them, each its own way.
    copies = learner.few_shot.split.copies
    assert list(copies) == list(options)
    for option, copy in copies.items():
        assert any(not np.array_equal(copy[k], live[k]) for k in live), option
    a, b = (copies[o] for o in options[:2])
    assert any(not np.array_equal(a[k], b[k]) for k in a)
    # The file holds the same copies, and the checkpoint's fingerprint pairs them.
    loaded = trained_split(space, space.supernet(), learner.config, where / SPLIT_WEIGHTS,
                           where / CHECKPOINT)
    assert all(np.array_equal(copies[o][k], loaded.copies[o][k]) for o in options for k in live)


def test_a_split_epoch_restarts_the_learning_rate_and_the_momentum(
        space, one_shot: Path, small_data: Dataset, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    where = Path(shutil.copytree(one_shot, tmp_path / "run"))
    learner = _learner(space, space.supernet(), small_data, where, split_epochs=2, split_choice="b2")
    rates: list[tuple[int, float]] = []
    fresh: list[int] = []
    real_step, real_solvers = learner.train_step, learner._weight_solvers

    def step(x, y, rng, lr, warmup=False):
        rates.append((len(learner.history), lr))
        return real_step(x, y, rng, lr, warmup)

    def solvers():
        fresh.append(len(learner.history))
        return real_solvers()

    monkeypatch.setattr(learner, "train_step", step)
    monkeypatch.setattr(learner, "_weight_solvers", solvers)
    learner.fit()
    options = learner.few_shot.options
    # Every option's first epoch (epochs 1, 3, ...) starts without momentum, at lr.
    assert fresh == [1 + 2 * k for k in range(len(options))]
    for k in range(len(options)):
        first = [lr for e, lr in rates if e == 1 + 2 * k]
        second = [lr for e, lr in rates if e == 2 + 2 * k]
        assert first[0] == pytest.approx(0.05) and first[-1] > second[0] > second[-1]


def test_scoring_uses_the_copy_of_the_subnets_option(space, split_run,
                                                      small_data: Dataset) -> None:
    where, net, learner, _ = split_run
    choice = split_choice(space, "auto")
    first, second = space.choices[choice][:2]
    rng = np.random.default_rng(3)
    archs = [learner.pin(space.sample(rng)) for _ in range(4)]
    on_first = [Arch({**a, choice: first}) for a in archs]
    on_second = [Arch({**a, choice: second}) for a in archs]
    split = SplitWeights(choice, {o: dict(c) for o, c in learner.few_shot.split.copies.items()})

    def scores(split_weights):
        evaluator = Evaluator(space=space, supernet=net, data=small_data,
                              latency=LatencyConfig(), bn_samples=64, split=split_weights)
        return [evaluator.accuracy(a, small_data.val) for a in on_first + on_second]

    before = scores(split)
    one_shot = scores(None)
    assert before != one_shot  # the copies score otherwise than the one-shot weights
    # Perturbing the first option's copy changes its subnets' accuracies, not the others'.
    perturbed = np.random.default_rng(0)
    split.copies[first] = {k: v + perturbed.normal(0, 0.5, v.shape).astype(v.dtype)
                           if not k.endswith(("/mean", "/var")) else v
                           for k, v in split.copies[first].items()}
    after = scores(split)
    assert after[len(archs):] == before[len(archs):]
    assert after[:len(archs)] != before[:len(archs)]
    # Without a split the evaluator leaves the supernet's weights as they are.
    live = snapshot(net)
    Evaluator(space=space, supernet=net, data=small_data, latency=LatencyConfig(),
              bn_samples=64).accuracy(on_first[0], small_data.val)
    after_scoring = snapshot(net)
    unchanged = [k for k in live if not k.endswith(("/mean", "/var"))]
    assert all(np.array_equal(live[k], after_scoring[k]) for k in unchanged)


def test_without_a_split_the_estimates_are_the_recorded_ones(tmp_path: Path) -> None:
    """The golden run (trained before few-shot supernets) scores its recorded subnets to the
    recorded accuracies: no swap, no other change, when the run has no split."""
    run = RunDir.open(shutil.copytree(GOLDEN / "run", tmp_path / "run"))
    ws = workspace(run, progress=False)
    assert ws.split is None
    evaluator = make_evaluator(ws)
    recorded = json.loads((GOLDEN / "trials.json").read_text())
    trials = {t["key"]: t["metrics"]["accuracy"] for t in next(iter(recorded.values()))}
    for key, accuracy in list(trials.items())[:4]:
        assert evaluator.accuracy(Arch.from_key(key), ws.data.val) == accuracy


def test_resumed_after_an_interruption_mid_split_equals_straight_through(
        space, init, small_data: Dataset, tmp_path: Path, monkeypatch) -> None:
    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    straight_dir.mkdir()
    resumed_dir.mkdir()
    straight = with_weights(space, init)
    done = _learner(space, straight, small_data, straight_dir, split_epochs=2, split_choice="b2")
    done.fit()

    first = with_weights(space, init)
    learner = _learner(space, first, small_data, resumed_dir, split_epochs=2, split_choice="b2")
    steps = len(small_data.train) // learner.config.batch_size
    crash_at(monkeypatch, learner, 3 * steps + 2)  # in the second option's first epoch
    with pytest.raises(Interrupted):
        learner.fit()
    assert int(np.load(resumed_dir / CHECKPOINT)["epochs_done"]) == 3

    resumed_net = space.supernet()  # fresh weights: the checkpoint and the copies replace them
    resumed = _learner(space, resumed_net, small_data, resumed_dir, split_epochs=2, split_choice="b2")
    resumed.fit()
    want, got = snapshot(straight), snapshot(resumed_net)
    assert all(np.array_equal(want[k], got[k]) for k in want)
    a, b = done.few_shot.split.copies, resumed.few_shot.split.copies
    assert list(a) == list(b)
    assert all(np.array_equal(a[o][k], b[o][k]) for o in a for k in want)
    pd.testing.assert_frame_equal(
        pd.read_csv(straight_dir / LOG).drop(columns=["seconds"]),
        pd.read_csv(resumed_dir / LOG).drop(columns=["seconds"]))


def test_the_cli_trains_searches_and_reports_a_few_shot_supernet(
        tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    config = tmp_path / "few_shot.yaml"
    config.write_text(TINY_CONFIG.replace(
        "train: {epochs: 1, batch_size: 32}",
        "train: {epochs: 1, batch_size: 32, split_epochs: 1, split_choice: b1}"))
    run = tmp_path / "run"
    status, _, err = cli(capfd, "train", config, "--out", run, "--quiet")
    assert status == 0, err
    ws = workspace(RunDir.open(run), progress=False)
    options = ws.space.choices["b1"]
    log = pd.read_csv(run / LOG)
    assert list(log["phase"]) == ["one-shot"] + [f"split:{o}" for o in options]
    assert ws.split is not None and list(ws.split.copies) == list(options)
    status, out, err = cli(capfd, "search", run, "--trials", "3", "--quiet")
    assert status == 0, err
    status, _, err = cli(capfd, "report", run)
    assert status == 0, err
    html = (run / "report.html").read_text()
    assert "then split on b1, 1 epoch per option" in html
    assert f"{1 + len(options)} of {1 + len(options)}" in html

    # A worker's evaluator scores with the copies too: the same estimate as in-process.
    arch = Arch({"b0": ws.space.choices["b0"][0], "b1": options[-1]})
    in_process = make_evaluator(ws).accuracy(arch, ws.data.val)
    assert worker_evaluator(str(run)).accuracy(arch, ws.data.val) == in_process
    one_shot = make_evaluator(workspace(RunDir.open(run), progress=False))
    one_shot.split = None
    assert one_shot.accuracy(arch, ws.data.val) != in_process
    # So does retrain's "supernet estimate" beside the subnet trained alone.
    result = retrain(RunDir.open(run), arch, epochs=1, progress=False, ws=ws)
    assert result["supernet_val_accuracy"] == in_process


@pytest.mark.parametrize("remedy", [{"sampling": "sandwich"}, {"distill": True}])
def test_the_remedies_train_paths_of_the_copy_being_trained(remedy, space,
                                                            small_data: Dataset) -> None:
    learner = _learner(space, space.supernet(), small_data, None, split_epochs=1,
                       split_choice="b1", **remedy)
    rng = np.random.default_rng(0)
    unpinned = learner.step_paths(rng)
    assert len({a["b1"] for _ in range(8) for a in learner.step_paths(rng)}) > 1
    for option in space.choices["b1"]:
        learner.few_shot.active = option
        paths = learner.step_paths(rng)
        assert len(paths) == len(unpinned) and all(a["b1"] == option for a in paths)


def test_only_the_uniform_learner_splits(space, small_data: Dataset) -> None:
    net = space.supernet()
    with pytest.raises(ValueError, match="split_epochs"):
        DartsLearner(space=space, supernet=net, data=small_data, progress=False,
                     config=TrainConfig(learner="darts", batch_size=16, split_epochs=1))
