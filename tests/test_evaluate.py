"""Tests of hwnas.evaluate: accuracy with recalibrated BN, costs, caching, failed measurements."""
from __future__ import annotations

import math

import nnabla as nn
import numpy as np
import pytest
from conftest import SMALL_SPACE, group_of, randomize, snapshot

import hwnas.hwcost._profiler as profiler_module
from hwnas.arch import Arch
from hwnas.config import LatencyConfig
from hwnas.errors import MeasurementError
from hwnas.evaluate import Evaluator, split_accuracy
from hwnas.hwcost import LatencyProtocol, count_graph_params, describe_device, inference_output
from hwnas.objectives import Evaluation

INPUT_SHAPE = (1, 8, 8)
SMALL = SMALL_SPACE
LATENCY = LatencyConfig(context="cpu", batch_size=2, warmup=1, repeats=3,
                        statistic="cpu_median", max_spread=1e6, retries=0)
BN_SAMPLES = 64
EPS = 1e-5  # nnabla's batch-normalization default

SMALLEST = Arch({"b0": "skip", "b1": "skip", "b2": "ir_k3_e2"})
MIDDLE = Arch({"b0": "ir_k3_e2", "b1": "skip", "b2": "ir_k3_e3"})
BIGGEST = Arch({"b0": "ir_k5_e3", "b1": "ir_k5_e3", "b2": "ir_k5_e3"})


@pytest.fixture
def supernet(space):
    """The conftest ``space``'s supernet with random weights and BN statistics."""
    net = space.supernet()
    randomize(net)
    return net


def make_evaluator(space, supernet, data, latency: LatencyConfig = LATENCY) -> Evaluator:
    return Evaluator(space=space, supernet=supernet, data=data, latency=latency,
                     bn_samples=BN_SAMPLES)


def logits(net, x: np.ndarray) -> np.ndarray:
    v = nn.Variable.from_numpy_array(x)
    y = net(v)
    y.forward(clear_buffer=True)
    return y.d.copy()


def conv2d(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Stride-1, 'same' cross-correlation of (N, C, H, W) with (O, C, k, k), by hand."""
    k = w.shape[-1]
    p = k // 2
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p, p), (p, p)))
    h, wd = x.shape[2:]
    out = np.zeros((x.shape[0], w.shape[0], h, wd))
    for dy in range(k):
        for dx in range(k):
            out += np.einsum("nchw,oc->nohw", xp[:, :, dy:dy + h, dx:dx + wd], w[:, :, dy, dx])
    return out


# ---------------------------------------------------------------- accuracy


def test_evaluation_accuracy_matches_the_supernet_outputs(space, supernet, data) -> None:
    ev = make_evaluator(space, supernet, data)
    result = ev(MIDDLE)
    assert isinstance(result, Evaluation) and result.arch == MIDDLE
    accuracy = result.metrics["accuracy"]
    assert 0.0 <= accuracy <= 1.0
    assert result.metrics["error"] == 1.0 - accuracy
    assert result.objective("error") == result.metrics["error"]
    # By hand: recalibrate, then the supernet's own outputs on the whole val split.
    ev.recalibrate(MIDDLE)
    supernet.set_active(MIDDLE)
    supernet.training = False
    out = logits(supernet, data.val.x)
    by_hand = float(np.mean(np.argmax(out, axis=1) == data.val.y[:, 0]))
    assert accuracy == by_hand
    assert round(accuracy * len(data.val)) == pytest.approx(accuracy * len(data.val))


def test_split_accuracy_handles_a_partial_last_batch(space, supernet, data) -> None:
    supernet.set_active(MIDDLE)
    supernet.training = False
    out = logits(supernet, data.val.x)
    by_hand = float(np.mean(np.argmax(out, axis=1) == data.val.y[:, 0]))
    assert len(data.val) % 7 != 0
    assert split_accuracy(supernet, data.val, batch_size=7) == pytest.approx(by_hand)
    assert split_accuracy(supernet, data.val, batch_size=1000) == pytest.approx(by_hand)


def test_evaluation_does_not_depend_on_what_was_evaluated_before(space, data) -> None:
    first, second = space.supernet(), space.supernet()
    randomize(first)
    randomize(second)
    alone = make_evaluator(space, first, data)(MIDDLE)
    ev = make_evaluator(space, second, data)
    ev(BIGGEST)
    ev(SMALLEST)
    after_others = ev(MIDDLE)
    assert after_others.metrics == alone.metrics


# ---------------------------------------------------------------- BN recalibration


def test_recalibration_sets_the_active_path_statistics(space, supernet, data) -> None:
    ev = make_evaluator(space, supernet, data)
    params = supernet.net_parameters()
    calibration = data.train.x[:BN_SAMPLES]
    before = snapshot(supernet)
    ev.recalibrate(MIDDLE)
    after = snapshot(supernet)

    # The stem BN: its input is the stem convolution of the calibration batch.
    h = conv2d(calibration, params["@stem/conv/conv/W"].d)
    np.testing.assert_allclose(after["@stem/bn/bn/mean"].ravel(), h.mean(axis=(0, 2, 3)),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(after["@stem/bn/bn/var"].ravel(),
                               h.var(axis=(0, 2, 3), ddof=1), rtol=1e-3, atol=1e-5)

    # The first BN of block b0's chosen option: batch-normalised (batch
    # statistics), ReLU'd stem output through the 1x1 expansion.
    mu = h.mean(axis=(0, 2, 3), keepdims=True)
    var = h.var(axis=(0, 2, 3), keepdims=True)
    gamma, beta = before["@stem/bn/bn/gamma"], before["@stem/bn/bn/beta"]
    stem_out = np.maximum((h - mu) / np.sqrt(var + EPS) * gamma + beta, 0.0)
    option = MIDDLE["b0"]
    w = params[f"@b0/@{option}/@expand/conv/conv/W"].d
    expanded = conv2d(stem_out, w)
    np.testing.assert_allclose(after[f"@b0/@{option}/@expand/bn/bn/mean"].ravel(),
                               expanded.mean(axis=(0, 2, 3)), rtol=1e-3, atol=1e-4)

    active = {"stem", "head"} | {f"{n}/{o}" for n, o in MIDDLE.items()}
    changed_groups = set()
    for key in before:
        statistic = key.endswith("/mean") or key.endswith("/var")
        if group_of(key) not in active or not statistic:
            # Other paths' statistics and every trainable weight stay put.
            assert np.array_equal(before[key], after[key]), key
        elif not np.array_equal(before[key], after[key]):
            changed_groups.add(group_of(key))
    assert changed_groups == {g for g in active if not g.endswith("/skip")}
    assert supernet.training is False


def test_recalibration_is_repeatable(space, supernet, data) -> None:
    ev = make_evaluator(space, supernet, data)
    ev.recalibrate(BIGGEST)
    first = snapshot(supernet)
    ev.recalibrate(SMALLEST)
    ev.recalibrate(BIGGEST)
    again = snapshot(supernet)
    active = {"stem", "head"} | {f"{n}/{o}" for n, o in BIGGEST.items()}
    for key in first:
        if group_of(key) in active:  # recalibrating SMALLEST changed other options
            np.testing.assert_allclose(again[key], first[key], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- caching


def test_cached_by_arch_key(space, supernet, data, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = profiler_module.measure_graph_latency

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(profiler_module, "measure_graph_latency", counting)
    ev = make_evaluator(space, supernet, data)
    first = ev(MIDDLE)
    assert len(calls) == 1
    assert ev(MIDDLE) is first
    assert ev(Arch.from_key(MIDDLE.key)) is first
    assert len(calls) == 1
    ev(SMALLEST)
    assert len(calls) == 2


def test_invalid_arch_raises_and_is_not_cached(space, supernet, data) -> None:
    ev = make_evaluator(space, supernet, data)
    bad = Arch({**MIDDLE, "b2": "skip"})  # skip is not offered where the stride is 2
    with pytest.raises(ValueError):
        ev(bad)
    assert ev.cache == {}


# ---------------------------------------------------------------- costs


def _ir_params(cin: int, cout: int, kernel: int, expansion: int) -> int:
    hidden = cin * expansion
    # Deployed, BN folded: every conv keeps its W and gains a bias per output channel.
    return (cin * hidden + hidden) + (hidden * kernel * kernel + hidden) + (hidden * cout + cout)


def _hand_params(arch: Arch) -> int:
    shapes = {"b0": (8, 8), "b1": (8, 8), "b2": (8, 16)}
    total = (8 * 1 * 9 + 8) + (16 * 16 + 16) + (16 * 10 + 10)  # stem, head
    for name, option in arch.items():
        if option != "skip":
            k, e = int(option[4]), int(option[-1])
            total += _ir_params(*shapes[name], k, e)
    return total


def _hand_macs(arch: Arch) -> int:
    # (cin, cout, input side, output side) of each block on 8x8 inputs.
    shapes = {"b0": (8, 8, 8, 8), "b1": (8, 8, 8, 8), "b2": (8, 16, 8, 4)}
    total = 8 * 8 * 8 * (1 * 9) + 4 * 4 * 16 * 16 + 16 * 10  # stem, head conv, classifier
    for name, option in arch.items():
        if option != "skip":
            k, e = int(option[4]), int(option[-1])
            cin, cout, side, out = shapes[name]
            hidden = cin * e
            total += side * side * hidden * cin + out * out * hidden * k * k \
                + out * out * cout * hidden
    return total


@pytest.mark.parametrize("arch", [SMALLEST, MIDDLE, BIGGEST], ids=lambda a: a.key)
def test_params_and_macs_by_hand(space, supernet, data, arch: Arch) -> None:
    costs = make_evaluator(space, supernet, data).costs(arch)
    subnet = supernet.extract(arch)
    x = nn.Variable((1,) + INPUT_SHAPE)
    assert costs.params == count_graph_params(inference_output(subnet, x), inputs=[x])
    held = subnet.get_parameters(grad_only=True)
    bn_channels = sum(int(np.prod(p.shape)) for k, p in held.items() if k.endswith("/beta"))
    # beta and gamma (2C per BN) fold into one bias (C).
    assert costs.params == sum(int(np.prod(p.shape)) for p in held.values()) - bn_channels
    assert costs.params == _hand_params(arch)
    assert costs.macs == _hand_macs(arch)
    assert costs.memory_bytes > 4 * costs.params
    assert math.isfinite(costs.latency_ms) and costs.latency_ms > 0


def test_bigger_options_cost_more(space, supernet, data) -> None:
    ev = make_evaluator(space, supernet, data)
    small = ev.costs(Arch({"b0": "ir_k3_e2", "b1": "ir_k3_e2", "b2": "ir_k3_e2"}))
    wider = ev.costs(Arch({"b0": "ir_k3_e3", "b1": "ir_k3_e2", "b2": "ir_k3_e2"}))
    larger_kernel = ev.costs(Arch({"b0": "ir_k5_e2", "b1": "ir_k3_e2", "b2": "ir_k3_e2"}))
    skipped = ev.costs(Arch({"b0": "skip", "b1": "ir_k3_e2", "b2": "ir_k3_e2"}))
    assert skipped.macs > 0
    for bigger in (wider, larger_kernel):
        assert bigger.macs > small.macs
        assert bigger.params > small.params
        assert bigger.memory_bytes > small.memory_bytes
    assert skipped.macs < small.macs and skipped.params < small.params


def test_latency_protocol_is_recorded(space, supernet, data) -> None:
    costs = make_evaluator(space, supernet, data).costs(MIDDLE)
    protocol = costs.protocol
    assert protocol.context == "cpu"
    assert protocol.batch_size == LATENCY.batch_size == 2
    assert protocol.warmup == LATENCY.warmup
    assert protocol.repeats == LATENCY.repeats
    assert protocol.statistic == LATENCY.statistic
    assert protocol.nnabla_version == nn.__version__
    assert protocol.device == describe_device("cpu")
    assert protocol.reliable is True and protocol.spread >= 0
    assert protocol.threads >= 1


def test_evaluation_costs_equal_the_costs_method(space, supernet, data) -> None:
    ev = make_evaluator(space, supernet, data)
    result = ev(MIDDLE)
    again = ev.costs(MIDDLE)
    assert (result.costs.params, result.costs.macs, result.costs.memory_bytes) == \
        (again.params, again.macs, again.memory_bytes)
    assert result.objective("params") == float(again.params)
    assert result.objective("latency_ms") == result.costs.latency_ms


# ---------------------------------------------------------------- failed measurements


def _protocol(reliable: bool) -> LatencyProtocol:
    return LatencyProtocol(context="cpu", device="test", nnabla_version=nn.__version__,
                           threads=1, batch_size=2, warmup=1, repeats=3,
                           statistic="cpu_median", spread=5.0, reliable=reliable)


def test_unreliable_measurement_raises_and_is_not_cached(space, supernet, data,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profiler_module, "measure_graph_latency",
                        lambda *a, **k: (1.0, _protocol(reliable=False)))
    ev = make_evaluator(space, supernet, data)
    with pytest.raises(MeasurementError, match="unreliable"):
        ev(MIDDLE)
    assert ev.cache == {}
    with pytest.raises(MeasurementError):
        ev(MIDDLE)  # still not cached: measured again, fails again
    monkeypatch.undo()
    result = ev(MIDDLE)
    assert result.costs.protocol.reliable and result.costs.latency_ms > 0


def test_failed_measurement_propagates_and_is_never_zero(space, supernet, data,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args, **kwargs):
        raise MeasurementError("forward pass failed")

    monkeypatch.setattr(profiler_module, "measure_graph_latency", fail)
    ev = make_evaluator(space, supernet, data)
    with pytest.raises(MeasurementError, match="forward pass failed"):
        ev(MIDDLE)
    with pytest.raises(MeasurementError):
        ev.costs(MIDDLE)
    assert ev.cache == {}


def test_bn_samples_must_be_positive(space, supernet, data) -> None:
    with pytest.raises(ValueError):
        Evaluator(space=space, supernet=supernet, data=data, latency=LATENCY, bn_samples=0)
