"""Tests of the gradient learners (DARTS, ProxylessNAS); the regularizers are in test_regularizers."""
from __future__ import annotations

from pathlib import Path

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pandas as pd
import pytest
from _learner_helpers import VARIANTS, Interrupted, crash_at, make_learner, with_weights
from conftest import randomize, snapshot

from hwnas.data import Dataset
from hwnas.deploy import export_module_nnp, run_nnp
from hwnas.supernet import create_space
from hwnas.supernet.learners._base import ARCH_LOG, LOG

#: Small settings per space: a chain and a DARTS cell space with two cells per type.
SPACES = {
    "mobilenet": dict(input_shape=(1, 8, 8), n_classes=10, stem_channels=8,
                      stages=[(8, 1, 1), (16, 1, 2)], kernels=[3, 5], expansions=[2]),
    "darts": dict(input_shape=(1, 8, 8), n_classes=10, cells=3, channels=4, nodes=2,
                  operations=["zero", "max_k3", "skip", "sep_k3", "dil_k3"]),
}


def alphas_of(net) -> dict[str, np.ndarray]:
    return {k: v.d.copy() for k, v in net.arch_parameters().items()}


# ---------------------------------------------------------------- every learner on every space


@pytest.mark.parametrize("space_name", list(SPACES))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_short_search_moves_the_architecture_and_derives_a_valid_arch(
        space_name: str, variant: str, small_data: Dataset, tmp_path: Path) -> None:
    space = create_space(space_name, **SPACES[space_name])
    net = space.supernet()
    before = alphas_of(net)
    learner = make_learner(space, net, small_data, variant, run_dir=tmp_path)
    history = learner.fit()
    after = alphas_of(net)
    assert set(after) == set(before) and after
    assert all(np.all(np.isfinite(a)) for a in after.values())
    moved = [k for k in after if not np.allclose(after[k], before[k])]
    assert len(moved) == len(after), f"architecture parameters that never moved: " \
                                     f"{sorted(set(after) - set(moved))}"
    assert "arch_loss" in history[0]
    arch = space.validate(net.derive())
    # The architecture log holds distributions, and its last row is the final state.
    log = pd.read_csv(tmp_path / ARCH_LOG)
    sums = log.groupby(["step", "edge"])["prob"].sum()
    assert np.allclose(sums, 1.0, atol=1e-5)
    last = log[log["step"] == log["step"].max()]
    probs = net.probabilities()
    for edge, rows in last.groupby("edge"):
        assert np.allclose(rows["prob"].to_numpy(), probs[edge], atol=1e-6)
    # The derived subnet is a standalone network that exports and computes the same.
    randomize(net, seed=1)
    subnet = net.extract(arch)
    x = np.random.default_rng(0).normal(size=(1,) + space.input_shape).astype(np.float32)
    subnet.training = False
    want = subnet(nn.Variable.from_numpy_array(x))
    want.forward(clear_buffer=True)
    path = tmp_path / "derived.nnp"
    export_module_nnp(subnet, space.input_shape, path)
    assert np.allclose(run_nnp(path, x, batch_size=1), want.d, atol=1e-4)


@pytest.mark.parametrize("space_name", list(SPACES))
@pytest.mark.parametrize("variant", ["darts1", "gate"])
def test_architecture_gradients_reach_every_parameter(space_name: str, variant: str,
                                                      small_data: Dataset) -> None:
    space = create_space(space_name, **SPACES[space_name])
    net = space.supernet()
    randomize(net, seed=3)  # fresh residual blocks are all the identity: alike candidates
    for alpha in net.arch_parameters().values():
        alpha.d = np.random.default_rng(2).normal(0, 0.5, alpha.shape)
    learner = make_learner(space, net, small_data, variant)
    rng = np.random.default_rng(0)
    xa, ya = small_data.train.x[:16], small_data.train.y[:16]
    x, y = small_data.train.x[16:32], small_data.train.y[16:32]
    if variant == "darts1":
        _, grads = learner.arch_gradient(xa, ya, x, y, lr=0.05)
        for name, g in grads.items():
            assert np.abs(g).max() > 0, name
    else:
        weights = snapshot(net)
        learner.arch_step(xa, ya, x, y, rng, lr=0.05)
        for name, alpha in net.arch_parameters().items():
            assert np.abs(alpha.g).max() > 0, name
        # An architecture step leaves weights and BN statistics alone.
        now = snapshot(net)
        assert all(np.array_equal(v, now[k]) for k, v in weights.items())


def test_weight_and_architecture_splits_are_disjoint(small_data: Dataset) -> None:
    space = create_space("mobilenet", **SPACES["mobilenet"])
    learner = make_learner(space, space.supernet(), small_data, "darts1", arch_fraction=0.25)
    w, a = learner.weight_split, learner.arch_split
    assert len(w) + len(a) == len(small_data.train)
    assert len(a) == round(0.25 * len(small_data.train))
    rows = {r.tobytes() for r in small_data.train.x.reshape(len(small_data.train), -1)}
    seen_w = {r.tobytes() for r in w.x.reshape(len(w), -1)}
    seen_a = {r.tobytes() for r in a.x.reshape(len(a), -1)}
    assert not seen_w & seen_a and seen_w | seen_a == rows


# ---------------------------------------------------------------- resume


@pytest.mark.parametrize("space_name,variant", [
    ("mobilenet", "darts1"), ("mobilenet", "darts2"), ("mobilenet", "gate"),
    ("mobilenet", "reinforce"), ("darts", "darts1"), ("darts", "darts2"), ("darts", "gate"),
    ("darts", "reinforce")])
def test_resumed_search_equals_straight_search(space_name: str, variant: str,
                                               small_data: Dataset, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    space = create_space(space_name, **SPACES[space_name])
    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    straight_dir.mkdir()
    resumed_dir.mkdir()
    init = snapshot(space.supernet())
    straight = with_weights(space, init)
    make_learner(space, straight, small_data, variant, straight_dir, epochs=2).fit()

    first = with_weights(space, init)
    learner = make_learner(space, first, small_data, variant, resumed_dir, epochs=2)
    steps = len(learner.weight_split) // learner.config.batch_size
    crash_at(monkeypatch, learner, steps + 1)  # killed in the middle of epoch 2
    with pytest.raises(Interrupted):
        learner.fit()

    resumed = space.supernet()  # fresh weights and alphas: the checkpoint replaces both
    make_learner(space, resumed, small_data, variant, resumed_dir, epochs=2).fit()
    want, got = snapshot(straight), snapshot(resumed)
    assert all(np.array_equal(want[k], got[k]) for k in want)
    wa, ga = alphas_of(straight), alphas_of(resumed)
    assert all(np.array_equal(wa[k], ga[k]) for k in wa)
    for name in (LOG, ARCH_LOG):
        a, b = pd.read_csv(straight_dir / name), pd.read_csv(resumed_dir / name)
        pd.testing.assert_frame_equal(a.drop(columns=["seconds"], errors="ignore"),
                                      b.drop(columns=["seconds"], errors="ignore"))


# ---------------------------------------------------------------- DARTS second order


def _darts_loss(net, x, y) -> nn.Variable:
    net.set_mode("darts")
    net.training = True
    logits = net(nn.Variable.from_numpy_array(x))
    return F.mean(F.softmax_cross_entropy(logits, nn.Variable.from_numpy_array(y)))


def test_second_order_gradient_agrees_with_finite_differences(small_data: Dataset) -> None:
    space = create_space("mobilenet", **{**SPACES["mobilenet"], "kernels": [3]})
    net = space.supernet()
    randomize(net, seed=4)
    for key, param in net.get_parameters(grad_only=True).items():
        param.d *= 0.5
    rng = np.random.default_rng(1)
    for alpha in net.arch_parameters().values():
        alpha.d = rng.normal(0, 1.0, alpha.shape)
    lr, wd = 0.1, 4e-5
    learner = make_learner(space, net, small_data, "darts2", weight_decay=wd)
    xa, ya = small_data.train.x[:16], small_data.train.y[:16]
    x, y = small_data.train.x[16:32], small_data.train.y[16:32]
    weights = net.get_parameters(grad_only=True)
    w0 = {k: v.d.astype(np.float64) for k, v in weights.items()}
    train_loss, val_loss = _darts_loss(net, x, y), _darts_loss(net, xa, ya)

    def unrolled_val_loss() -> float:
        for k, w in weights.items():
            w.d = w0[k]
            w.grad.zero()
        train_loss.forward()
        train_loss.backward()
        for k, w in weights.items():
            w.d = w0[k] - lr * (w.g + wd * w0[k])
        val_loss.forward()
        return float(val_loss.d)

    _, second = learner.arch_gradient(xa, ya, x, y, lr)
    learner.config = learner.config.__class__(**{**learner.config.__dict__, "order": 1})
    _, first = learner.arch_gradient(xa, ya, x, y, lr)
    # The loss is piecewise smooth (ReLUs): a step too small crosses kinks at random.
    h = 5e-2
    numeric, analytic, naive = [], [], []
    for name, alpha in net.arch_parameters().items():
        for i in range(alpha.shape[0]):
            base = alpha.d.copy()
            values = []
            for sign in (1, -1):
                alpha.d = base + sign * h * np.eye(alpha.shape[0])[i]
                values.append(unrolled_val_loss())
            alpha.d = base
            numeric.append((values[0] - values[1]) / (2 * h))
            analytic.append(second[name][i])
            naive.append(first[name][i])
    numeric, analytic, naive = map(np.array, (numeric, analytic, naive))
    err2 = np.linalg.norm(analytic - numeric) / np.linalg.norm(numeric)
    err1 = np.linalg.norm(naive - numeric) / np.linalg.norm(numeric)
    assert err2 < 0.15, (err2, numeric, analytic)
    # The second-order term matters here, and the unrolled step captures it.
    assert err1 > 3 * err2, (err1, err2)


# ---------------------------------------------------------------- ProxylessNAS


def test_binary_gate_gradient_is_the_proxylessnas_estimator() -> None:
    space = create_space("mobilenet", **SPACES["mobilenet"])
    net = space.supernet()
    randomize(net, seed=2)
    net.training = False
    block = net.submodules["b0"]
    block.alpha.d = np.array([0.3, -0.2, 0.1], np.float32)
    x = nn.Variable.from_numpy_array(
        np.random.default_rng(0).normal(size=(2, 8, 8, 8)).astype(np.float32))
    w = np.random.default_rng(1).normal(size=(2, 8, 8, 8)).astype(np.float32)
    outputs = []
    for option in block.options:
        o = block.submodules[option](x)
        if o is not x:  # skip is the identity: no graph to run
            o.forward()
        outputs.append(o.d.copy())
    dl_dg = np.array([np.sum(w * o) for o in outputs])  # L = sum(w * sum_j g_j o_j)
    block.mode = "proxyless"
    block.sample_gates(np.random.default_rng(3))
    y = block(x)
    loss = F.sum(F.mul2(y, nn.Variable.from_numpy_array(w)))
    block.alpha.grad.zero()
    loss.forward()
    loss.backward()
    assert np.allclose(y.d, outputs[block.sampled[block.chosen]], atol=1e-5)
    p = np.exp(block.alpha.d[list(block.sampled)])
    p /= p.sum()
    want = np.zeros(3)
    for a, i in enumerate(block.sampled):
        want[i] = sum(dl_dg[j] * p[b] * ((a == b) - p[a]) for b, j in enumerate(block.sampled))
    assert np.allclose(block.alpha.g, want, rtol=1e-3, atol=1e-3)


def test_binary_gate_step_keeps_the_unsampled_probabilities(small_data: Dataset) -> None:
    space = create_space("darts", **SPACES["darts"])
    net = space.supernet()
    learner = make_learner(space, net, small_data, "gate", arch_weight_decay=0.0)
    before = net.probabilities()
    learner.arch_step(small_data.train.x[:16], small_data.train.y[:16],
                      small_data.train.x[16:32], small_data.train.y[16:32],
                      np.random.default_rng(0), lr=0.05)
    after = net.probabilities()
    changed = 0
    for name, ops in net.mixed_ops().items():
        sampled = sorted({i for op in ops for i in op.sampled})
        others = [i for i in range(len(before[name])) if i not in sampled]
        assert np.allclose(after[name][others], before[name][others], atol=1e-6)
        assert np.isclose(after[name][sampled].sum(), before[name][sampled].sum(), atol=1e-6)
        changed += not np.allclose(after[name], before[name])
    assert changed > 0


def test_reinforce_raises_the_probability_of_a_rewarded_path(small_data: Dataset) -> None:
    space = create_space("mobilenet", **SPACES["mobilenet"])
    net = space.supernet()
    learner = make_learner(space, net, small_data, "reinforce")
    learner.baseline = -1.0  # every reward beats it: the drawn path must become likelier
    learner.arch_step(small_data.train.x[:16], small_data.train.y[:16],
                      small_data.train.x[16:32], small_data.train.y[16:32],
                      np.random.default_rng(0), lr=0.05)
    for name, ops in net.mixed_ops().items():
        drawn = ops[0].options.index(ops[0].active)
        p = net.probabilities()[name]
        assert p[drawn] > 1.0 / len(p), name
    assert learner.baseline > -1.0
