"""Tests of the UniformLearner: training steps, fitting, checkpoints and resume, weight files."""
from __future__ import annotations

from pathlib import Path

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pandas as pd
import pytest
from _learner_helpers import Interrupted, crash_at, with_weights
from _supernet_helpers import _archs, make_space
from conftest import group_of, randomize, snapshot

from hwnas.arch import Arch
from hwnas.config import DataConfig, TrainConfig
from hwnas.data import Dataset, load_dataset
from hwnas.errors import RunDirError
from hwnas.supernet.learners import UniformLearner, load_weights, save_weights
from hwnas.supernet.learners._base import CHECKPOINT, LOG, WEIGHTS


@pytest.fixture(scope="module")
def small_data() -> Dataset:
    return load_dataset(DataConfig(name="synthetic", image_size=8, limit=200), seed=0)


#: A smaller space for the tests that write checkpoints (h5 writing dominates their time).
TINY = dict(stages=[(8, 1, 1), (16, 1, 2)], expansions=[2])


# ---------------------------------------------------------------- the learner


def _learner(space, net, data, run_dir=None, **config) -> UniformLearner:
    cfg = TrainConfig(**{"epochs": 1, "batch_size": 20, "lr": 0.1, "momentum": 0.9,
                         "weight_decay": 4e-5, **config})
    return UniformLearner(space=space, supernet=net, data=data, config=cfg, seed=3,
                          run_dir=run_dir, progress=False)


def test_train_step_changes_only_the_active_groups(small_data: Dataset) -> None:
    space = make_space()
    net = space.supernet()
    learner = _learner(space, net, small_data)
    rng = np.random.default_rng(0)
    x, y = small_data.train.x[:20], small_data.train.y[:20]
    actives = set()
    for _ in range(4):
        before = snapshot(net)
        learner.train_step(x, y, rng, lr=0.1)
        after = snapshot(net)
        active = set(net.active_groups())
        actives.add(tuple(sorted(active)))
        for key in before:
            group = group_of(key)
            if group not in active:
                # Weights, momentum and BN statistics of the other options stay put.
                assert np.array_equal(before[key], after[key]), key
        changed = {group_of(k) for k in before if not np.array_equal(before[k], after[k])}
        assert changed == {g for g in active if not g.endswith("/skip")}
    assert len(actives) > 1  # the learner did sample different paths


def test_train_step_uses_the_given_batch(small_data: Dataset) -> None:
    space = make_space()
    net = space.supernet()
    learner = _learner(space, net, small_data)
    x, y = small_data.train.x[:20], small_data.train.y[:20]
    loss, accuracy = learner.train_step(x, y, np.random.default_rng(0), lr=0.0)
    assert np.isfinite(loss) and 0.0 <= accuracy <= 1.0
    # With lr 0 the weights do not move; recompute the loss by hand.
    net.training = True
    logits = net(nn.Variable.from_numpy_array(x))
    ref = F.mean(F.softmax_cross_entropy(logits, nn.Variable.from_numpy_array(y)))
    ref.forward()
    assert loss == pytest.approx(float(ref.d), rel=1e-5)
    assert accuracy == pytest.approx(float(np.mean(np.argmax(logits.d, 1) == y[:, 0])))


def _loss(net, arch: Arch, x: np.ndarray, y: np.ndarray) -> float:
    net.set_active(arch)
    net.training = True  # batch statistics: independent of the running ones
    logits = net(nn.Variable.from_numpy_array(x))
    loss = F.mean(F.softmax_cross_entropy(logits, nn.Variable.from_numpy_array(y)))
    loss.forward(clear_buffer=True)
    return float(loss.d)


def test_a_short_fit_lowers_the_loss(data: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    # nnabla's initializers draw from its global generator: seed it, so the
    # test does not depend on what ran before.
    monkeypatch.setattr(nn.random, "prng", np.random.RandomState(0))
    space = make_space()
    net = space.supernet()
    x, y = data.train.x[:64], data.train.y[:64]
    archs = _archs(space, 2, seed=11)
    before = np.mean([_loss(net, a, x, y) for a in archs])
    learner = _learner(space, net, data, epochs=2, batch_size=32, lr=0.1)
    history = learner.fit()
    assert [row["epoch"] for row in history] == [1, 2]
    after = np.mean([_loss(net, a, x, y) for a in archs])
    assert after < before - 0.05
    assert history[-1]["loss"] < history[0]["loss"]


# ---------------------------------------------------------------- checkpoints


def _log(path: Path) -> pd.DataFrame:
    return pd.read_csv(path).drop(columns=["seconds"])


def test_resumed_training_equals_straight_training(small_data: Dataset, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    space = make_space(**TINY)
    init = snapshot(space.supernet())
    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    straight_dir.mkdir()
    resumed_dir.mkdir()

    straight = with_weights(space, init)
    _learner(space, straight, small_data, straight_dir, epochs=2, batch_size=40).fit()

    # The same 2-epoch run, killed at the first step of epoch 2 (after the
    # epoch-1 checkpoint was written).
    first = with_weights(space, init)
    learner = _learner(space, first, small_data, resumed_dir, epochs=2, batch_size=40)
    steps = len(small_data.train) // learner.config.batch_size
    crash_at(monkeypatch, learner, steps)
    with pytest.raises(Interrupted):
        learner.fit()
    assert (resumed_dir / CHECKPOINT).exists() and (resumed_dir / WEIGHTS).exists()
    assert len(pd.read_csv(resumed_dir / LOG)) == 1

    resumed = space.supernet()  # fresh weights: the checkpoint must replace them
    history = _learner(space, resumed, small_data, resumed_dir, epochs=2,
                       batch_size=40).fit()
    assert [row["epoch"] for row in history] == [1, 2]

    want, got = snapshot(straight), snapshot(resumed)
    assert set(want) == set(got)
    for key in want:
        assert np.array_equal(want[key], got[key]), key
    pd.testing.assert_frame_equal(_log(resumed_dir / LOG), _log(straight_dir / LOG))

    # supernet.h5 holds the final weights too.
    loaded = space.supernet()
    load_weights(loaded, resumed_dir / WEIGHTS)
    final = snapshot(loaded)
    assert all(np.array_equal(v, final[k]) for k, v in want.items())


def test_fit_is_a_no_op_once_done(small_data: Dataset, tmp_path: Path) -> None:
    space = make_space(**TINY)
    net = space.supernet()
    _learner(space, net, small_data, tmp_path, epochs=1, batch_size=40).fit()
    done = snapshot(net)
    again = space.supernet()
    history = _learner(space, again, small_data, tmp_path, epochs=1, batch_size=40).fit()
    assert len(history) == 1
    assert all(np.array_equal(done[k], v) for k, v in snapshot(again).items())


def test_corrupt_checkpoint_raises(small_data: Dataset, tmp_path: Path) -> None:
    space = make_space(**TINY)
    (tmp_path / CHECKPOINT).write_bytes(b"not an npz file")
    with pytest.raises(RunDirError):
        _learner(space, space.supernet(), small_data, tmp_path).fit()


def test_checkpoint_of_another_space_raises(small_data: Dataset, tmp_path: Path) -> None:
    other = make_space(**{**TINY, "stages": [(8, 1, 1)]})
    _learner(other, other.supernet(), small_data, tmp_path, epochs=1, batch_size=40).fit()
    space = make_space(**TINY)
    with pytest.raises(RunDirError):
        _learner(space, space.supernet(), small_data, tmp_path, epochs=2, batch_size=40).fit()


def test_weights_round_trip(tmp_path: Path) -> None:
    space = make_space(**TINY)
    net = space.supernet()
    randomize(net, seed=4)
    save_weights(net, tmp_path / WEIGHTS)
    other = space.supernet()
    load_weights(other, tmp_path / WEIGHTS)
    want = snapshot(net)
    assert all(np.array_equal(want[k], v) for k, v in snapshot(other).items())


def test_load_weights_of_a_truncated_file_raises(tmp_path: Path) -> None:
    space = make_space(**TINY)
    net = space.supernet()
    path = tmp_path / WEIGHTS
    save_weights(net, path)
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(RunDirError, match=str(path.name)):
        load_weights(space.supernet(), path)
    path.write_bytes(b"")
    with pytest.raises(RunDirError):
        load_weights(space.supernet(), path)


def test_load_weights_of_another_space_raises(tmp_path: Path) -> None:
    path = tmp_path / WEIGHTS
    other = make_space(**{**TINY, "stages": [(8, 1, 1), (16, 2, 2)]})
    save_weights(other.supernet(), path)
    with pytest.raises(RunDirError):
        load_weights(make_space(**TINY).supernet(), path)
    # Same parameter names, other shapes.
    wider = make_space(**TINY, head_channels=24)
    save_weights(wider.supernet(), path)
    with pytest.raises(RunDirError):
        load_weights(make_space(**TINY).supernet(), path)


def test_load_weights_of_a_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(RunDirError):
        load_weights(make_space(**TINY).supernet(), tmp_path / "none.h5")
