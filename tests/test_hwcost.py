"""Tests of hwnas.hwcost: counters checked against hand arithmetic, and the latency protocol."""
from __future__ import annotations

import math

import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF
import numpy as np
import pytest

from hwnas.errors import MeasurementError
from hwnas.hwcost import (
    LatencyProtocol,
    count_graph_params,
    count_macs,
    count_params,
    describe_device,
    measure_graph_latency,
    measure_latency,
    param_bytes,
    peak_activation_bytes,
)
from hwnas.hwcost import _latency

PROTOCOL = dict(context="cpu", device="test cpu", batch_size=1, warmup=1, repeats=5,
                statistic="cpu_median", max_spread=1.0, retries=0)


# ---------------------------------------------------------------- parameters and MACs


@pytest.mark.parametrize("with_bias", [True, False])
def test_conv3x3(with_bias: bool) -> None:
    x = nn.Variable((1, 8, 10, 10))
    y = PF.convolution(x, 16, (3, 3), pad=(1, 1), with_bias=with_bias, name="c")
    assert y.shape == (1, 16, 10, 10)
    assert count_graph_params(y) == 16 * 8 * 3 * 3 + (16 if with_bias else 0)
    # Bias additions are not MACs: the count is the same with and without.
    assert count_macs(y) == (16 * 10 * 10) * (8 * 3 * 3)


def test_conv_macs_are_per_example() -> None:
    x = nn.Variable((4, 8, 10, 10))
    y = PF.convolution(x, 16, (3, 3), pad=(1, 1), stride=(2, 2), name="c")
    assert y.shape == (4, 16, 5, 5)
    assert count_macs(y) == (16 * 5 * 5) * (8 * 3 * 3)
    assert count_macs(y, batch_size=1) == 4 * (16 * 5 * 5) * (8 * 3 * 3)


def test_dilated_conv() -> None:
    x = nn.Variable((1, 4, 12, 12))
    y = PF.convolution(x, 6, (3, 3), dilation=(2, 2), name="c")
    # A 3x3 kernel with dilation 2 spans 5 pixels: 12 - 5 + 1 = 8.
    assert y.shape == (1, 6, 8, 8)
    assert count_graph_params(y) == 6 * 4 * 3 * 3 + 6
    assert count_macs(y) == (6 * 8 * 8) * (4 * 3 * 3)


def test_grouped_conv() -> None:
    x = nn.Variable((1, 8, 6, 6))
    y = PF.convolution(x, 16, (3, 3), pad=(1, 1), group=2, name="c")
    # Each output channel reads 8 / 2 = 4 input channels.
    assert count_graph_params(y) == 16 * 4 * 3 * 3 + 16
    assert count_macs(y) == (16 * 6 * 6) * (4 * 3 * 3)


def test_depthwise_conv_both_ways_agree() -> None:
    x = nn.Variable((1, 8, 6, 6))
    dw = PF.depthwise_convolution(x, (3, 3), pad=(1, 1), name="dw")
    grouped = PF.convolution(x, 8, (3, 3), pad=(1, 1), group=8, name="g")
    for y in (dw, grouped):
        assert y.shape == (1, 8, 6, 6)
        assert count_graph_params(y) == 8 * 3 * 3 + 8
        assert count_macs(y) == (8 * 6 * 6) * (3 * 3)


def test_a_weight_read_only_through_slices_counts_its_largest_slice() -> None:
    # Nested weight sharing: a 3x3 kernel on 4 channels and a 5x5 one on 6, both cut from
    # one (8, 5, 5) weight.
    x4, x6, x8 = (nn.Variable((1, c, 6, 6)) for c in (4, 6, 8))
    data = [x4, x6, x8]
    w = nn.Variable.from_numpy_array(np.ones((8, 5, 5), np.float32), need_grad=True)
    small = F.depthwise_convolution(x4, F.slice(w, (0, 1, 1), (4, 4, 4)), pad=(1, 1))
    large = F.depthwise_convolution(x6, F.slice(w, (0, 0, 0), (6, 5, 5)), pad=(2, 2))
    assert count_graph_params(small, inputs=data) == 4 * 3 * 3
    both = F.add2(small, F.slice(large, (0, 0, 0, 0), (1, 4, 6, 6)))
    assert count_graph_params(both, inputs=data) == 6 * 5 * 5
    # Read whole anywhere: all of it.
    whole = F.depthwise_convolution(x8, w, pad=(2, 2))
    mixed = F.add2(small, F.slice(whole, (0, 0, 0, 0), (1, 4, 6, 6)))
    assert count_graph_params(mixed, inputs=data) == 8 * 5 * 5


def test_affine() -> None:
    x = nn.Variable((1, 20))
    y = PF.affine(x, 10, name="fc")
    assert count_graph_params(y) == 20 * 10 + 10
    assert count_macs(y) == 20 * 10


def test_affine_flattens_feature_map() -> None:
    x = nn.Variable((2, 3, 4, 4))
    y = PF.affine(x, 5, name="fc")
    assert count_graph_params(y) == (3 * 4 * 4) * 5 + 5
    assert count_macs(y) == (3 * 4 * 4) * 5


def test_batch_norm_counts_beta_gamma_only() -> None:
    x = nn.Variable((1, 8, 5, 5))
    y = PF.batch_normalization(x, batch_stat=False, name="bn")
    assert count_graph_params(y) == 8 + 8  # beta, gamma; not mean, var
    assert param_bytes(y) == 4 * (8 + 8 + 8 + 8)  # the forward pass reads all four
    assert count_macs(y) == 0


@pytest.mark.parametrize("pool", [F.max_pooling, F.average_pooling])
def test_pooling_has_no_macs_or_params(pool) -> None:
    x = nn.Variable((1, 8, 8, 8))
    y = pool(x, (2, 2))
    assert y.shape == (1, 8, 4, 4)
    assert count_macs(y) == 0
    assert count_graph_params(y) == 0


def test_global_average_pool_then_affine() -> None:
    x = nn.Variable((1, 8, 7, 7))
    y = PF.affine(F.global_average_pooling(x), 10, name="fc")
    assert count_graph_params(y) == 8 * 10 + 10
    assert count_macs(y) == 8 * 10


def _composite(batch: int) -> tuple[nn.Variable, nn.Variable]:
    x = nn.Variable((batch, 3, 16, 16))
    h = PF.convolution(x, 8, (3, 3), pad=(1, 1), with_bias=False, name="stem")
    h = F.relu(PF.batch_normalization(h, batch_stat=False, name="bn"))
    h = F.max_pooling(h, (2, 2))
    h = PF.depthwise_convolution(h, (3, 3), pad=(1, 1), name="dw")
    h = PF.convolution(h, 16, (1, 1), name="pw")
    y = PF.affine(F.global_average_pooling(h), 10, name="fc")
    return x, y


COMPOSITE_PARAMS = (8 * 3 * 3 * 3) + (8 + 8) + (8 * 3 * 3 + 8) + (16 * 8 + 16) + (16 * 10 + 10)
COMPOSITE_MACS = ((8 * 16 * 16) * (3 * 3 * 3)  # stem
                  + (8 * 8 * 8) * (3 * 3)  # depthwise, after the 2x2 pool
                  + (16 * 8 * 8) * 8  # pointwise
                  + 16 * 10)  # classifier


@pytest.mark.parametrize("batch", [1, 3])
def test_composite_net(batch: int) -> None:
    x, y = _composite(batch)
    assert count_graph_params(y) == COMPOSITE_PARAMS == 626
    assert count_graph_params(y, inputs=[x]) == COMPOSITE_PARAMS
    assert count_macs(y) == COMPOSITE_MACS == 68256
    # nnabla's trainable parameters (grad_only) are exactly what the graph counts.
    assert count_params(nn.get_parameters()) == COMPOSITE_PARAMS
    assert param_bytes(y, [x]) == 4 * (COMPOSITE_PARAMS + 8 + 8)


def test_frozen_parameters_count_when_inputs_are_given() -> None:
    x, y = _composite(1)
    for variable in nn.get_parameters().values():
        variable.need_grad = False
    assert count_graph_params(y, inputs=x) == COMPOSITE_PARAMS


def test_shared_weights_count_once() -> None:
    x = nn.Variable((1, 6))
    h = PF.affine(x, 6, name="shared")
    y = PF.affine(h, 6, name="shared")
    assert count_graph_params(y) == 6 * 6 + 6
    assert count_macs(y) == 2 * 6 * 6


def test_unreached_parameters_are_not_counted() -> None:
    x = nn.Variable((1, 4))
    PF.affine(x, 100, name="unused")
    y = PF.affine(x, 3, name="used")
    assert count_graph_params(y) == 4 * 3 + 3
    assert count_params(nn.get_parameters()) == 4 * 3 + 3 + 4 * 100 + 100


# ---------------------------------------------------------------- activation memory


def test_peak_activation_of_a_chain() -> None:
    x = nn.Variable((1, 2, 8, 8))  # 128 elements
    h1 = PF.convolution(x, 8, (1, 1), name="c")  # 512
    h2 = F.relu(h1)  # 512
    h3 = F.max_pooling(h2, (2, 2))  # 128
    y = PF.affine(h3, 10, name="fc")  # 10
    # Live after each step: conv x+h1 = 640, relu h1+h2 = 1024 (x freed),
    # pool h2+h3 = 640, affine h3+y = 138. Weights are not activations.
    assert peak_activation_bytes(y, [x]) == 4 * (512 + 512)


def _branch_add(batch: int) -> tuple[nn.Variable, nn.Variable]:
    x = nn.Variable((batch, 2, 4, 4))  # 32 per example
    left = PF.convolution(x, 8, (1, 1), name="left")  # 128
    right = PF.convolution(x, 8, (1, 1), name="right")  # 128
    return x, F.add2(left, right)  # 128


@pytest.mark.parametrize("batch", [1, 2])
def test_peak_activation_of_branch_and_add(batch: int) -> None:
    x, y = _branch_add(batch)
    # left: x+left = 160; right: x+left+right = 288, then x is freed;
    # add: left+right+y = 384.
    assert peak_activation_bytes(y, x) == 4 * (128 + 128 + 128)


def test_peak_activation_needs_inputs() -> None:
    x, y = _branch_add(1)
    with pytest.raises(ValueError):
        peak_activation_bytes(y, [])


# ---------------------------------------------------------------- latency


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


class _FakeClock:
    """Stands in for the ``time`` module: each forward call advances it by a set duration."""

    def __init__(self, durations_ms: list[float]) -> None:
        self.durations = [int(d * 1_000_000) for d in durations_ms]
        self.now = 0
        self.calls = 0

    def forward(self) -> None:
        self.now += self.durations[self.calls]
        self.calls += 1

    def thread_time_ns(self) -> int:
        return self.now

    def perf_counter_ns(self) -> int:
        return self.now


def _small_graph() -> tuple[nn.Variable, nn.Variable]:
    x = nn.Variable((2, 3, 16, 16))
    y = PF.affine(F.relu(PF.convolution(x, 8, (3, 3), pad=(1, 1), name="c")), 10, name="fc")
    return x, y


@pytest.mark.parametrize("statistic", ["cpu_median", "wall_p10", "wall_median"])
def test_graph_latency_is_positive_with_full_protocol(statistic: str) -> None:
    x, y = _small_graph()
    ms, protocol = measure_graph_latency(y, [x], warmup=2, repeats=7, statistic=statistic,
                                         max_spread=1000.0, retries=0)
    assert math.isfinite(ms) and ms > 0
    assert protocol == LatencyProtocol(
        context="cpu", device=describe_device("cpu"), nnabla_version=nn.__version__,
        threads=1, batch_size=2, warmup=2, repeats=7, statistic=statistic,
        spread=protocol.spread, reliable=True)
    assert math.isfinite(protocol.spread) and protocol.spread >= 0
    assert np.all(np.isfinite(y.d))


def test_wildly_varying_forward_is_flagged_unreliable() -> None:
    calls = []

    def forward() -> None:
        calls.append(None)
        _spin(3000 * (20 if len(calls) % 2 else 1))

    ms, protocol = measure_latency(forward, **{**PROTOCOL, "repeats": 10, "warmup": 2,
                                                "max_spread": 0.5, "retries": 1})
    assert ms > 0
    assert not protocol.reliable
    assert protocol.spread > 0.5
    assert len(calls) == 2 + 2 * 10  # warm-up, then the first attempt and one retry


def test_retries_keep_the_attempt_with_the_smallest_spread(monkeypatch) -> None:
    clock = _FakeClock([1, 1, 1, 10, 10]  # median 1, p25 1, p75 10: spread 9
                       + [2, 2, 2, 3, 3]  # median 2, p25 2, p75 3: spread 0.5
                       + [1, 1, 1, 30, 30])  # median 1, p75 30: spread 29
    monkeypatch.setattr(_latency, "time", clock)
    ms, protocol = measure_latency(clock.forward, **{**PROTOCOL, "warmup": 0,
                                                     "max_spread": 0.1, "retries": 2})
    assert ms == pytest.approx(2.0)
    assert protocol.spread == pytest.approx(0.5)
    assert not protocol.reliable
    assert clock.calls == 15


def test_one_interrupted_call_does_not_make_a_measurement_unreliable(monkeypatch) -> None:
    clock = _FakeClock([4, 4, 4, 4, 4, 4, 4, 4, 4, 90])  # one call hit by another process
    monkeypatch.setattr(_latency, "time", clock)
    ms, protocol = measure_latency(clock.forward, **{**PROTOCOL, "warmup": 0, "repeats": 10,
                                                     "max_spread": 0.1, "retries": 0})
    assert ms == pytest.approx(4.0)
    assert protocol.reliable and protocol.spread == 0.0


def test_retries_stop_once_reliable(monkeypatch) -> None:
    clock = _FakeClock([1, 1, 1, 10, 10] + [5, 5, 5, 5, 5] + [7] * 10)
    monkeypatch.setattr(_latency, "time", clock)
    ms, protocol = measure_latency(clock.forward, **{**PROTOCOL, "warmup": 0,
                                                     "max_spread": 0.1, "retries": 3})
    assert ms == pytest.approx(5.0)
    assert protocol.reliable and protocol.spread == 0.0
    assert clock.calls == 10


def test_noop_forward_is_positive_or_an_error() -> None:
    try:
        ms, _ = measure_latency(lambda: None, **PROTOCOL)
    except MeasurementError:
        return
    assert ms > 0


def _raise_on_call(n: int):
    calls = []

    def forward() -> None:
        calls.append(None)
        if len(calls) == n:
            raise RuntimeError("kernel exploded")

    return forward


@pytest.mark.parametrize("case", ["warmup raises", "timed call raises", "clock stands still",
                                  "no repeats", "unknown statistic", "graph raises"])
def test_failures_raise_and_are_never_zero(case: str, monkeypatch) -> None:
    protocol = dict(PROTOCOL)
    forward = lambda: _spin(100)  # noqa: E731
    if case == "warmup raises":
        forward = _raise_on_call(1)
    elif case == "timed call raises":
        forward = _raise_on_call(4)
    elif case == "clock stands still":
        clock = _FakeClock([0] * 10)
        monkeypatch.setattr(_latency, "time", clock)
        forward = clock.forward
    elif case == "no repeats":
        protocol["repeats"] = 0
    elif case == "unknown statistic":
        protocol["statistic"] = "mean"
    else:
        x = nn.Variable((1, 4))
        y = F.reshape(x, (4,))
        x.reset_shape((1, 5), force=True)  # the graph no longer fits its input

        def forward() -> None:
            y.forward()

    with pytest.raises(MeasurementError) as info:
        measure_latency(forward, **protocol)
    assert str(info.value)
    if case.endswith("raises"):
        assert isinstance(info.value.__cause__, RuntimeError)


def test_describe_device_names_the_cpu() -> None:
    assert describe_device("cpu").strip()


# --- the package's lazy names ----------------------------------------------------------


def test_records_strategies_and_studies_load_without_nnabla() -> None:
    import subprocess
    import sys
    code = ("import sys, hwnas.objectives, hwnas.strategies, hwnas.studies, hwnas.pareto, "
            "hwnas.driver.worker, hwnas.driver.pools\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'nnabla'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_every_public_name_of_hwcost_resolves() -> None:
    import hwnas.hwcost as hwcost
    for name in hwcost.__all__:
        value = getattr(hwcost, name)
        assert value is not None and name in dir(hwcost)
        module = getattr(value, "__module__", None)
        # Costs and LatencyProtocol are plain values, defined below every package (hwnas.costs).
        assert module is None or module.startswith(("hwnas.hwcost.", "hwnas.costs", "builtins")), (name, module)
    with pytest.raises(AttributeError, match="no_such_name"):
        getattr(hwcost, "no_such_name")
