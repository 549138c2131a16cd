"""Tests for the latency table: units, gated measurement, calibration, persistence."""
from __future__ import annotations

import dataclasses
import itertools
import json
import math

import nnabla as nn
import numpy as np
import pytest

from _lut_helpers import PROBE_MS, FakeProfiler, protocol, unit_ms
from conftest import SMALL_SPACE
from hwnas.errors import MeasurementError, RunDirError
from hwnas.hwcost import (Calibration, IncompatibleTableError, LatencyTable, inference_output,
                          measure_gated)
from hwnas.hwcost import _gated
from hwnas.supernet import Arch, create_space
from hwnas.supernet._ops import InvertedResidual


@pytest.fixture(scope="module")
def table() -> LatencyTable:
    """A table of the small space on the fake device (read-only: tests share it)."""
    space = create_space("mobilenet", **SMALL_SPACE)
    return LatencyTable.build(space, FakeProfiler(space), supernet=space.supernet(),
                              calibration_samples=8, rng=np.random.default_rng(0),
                              progress=False)


def all_archs(space) -> list[Arch]:
    return [Arch(dict(zip(space.choices, options)))
            for options in itertools.product(*space.choices.values())]


# --- units ----------------------------------------------------------------------------


def test_units_cover_every_option_of_every_block_once(space) -> None:
    units = space.units()
    keys = [u.key for u in units]
    assert len(keys) == len(set(keys))
    assert keys[0].startswith("stem_k3|in=1x8x8|out=8") and keys[-1].startswith("head|")
    # Every (block, option) but skip maps to a unit of the space; equal shapes share it.
    wanted = {u.key for arch in all_archs(space) for u in space.units(arch)}
    assert wanted == set(keys)
    options = {o for opts in space.choices.values() for o in opts if o != "skip"}
    assert {k.split("|")[0] for k in keys[1:-1]} == options
    assert "ir_k5_e3|in=8x8x8|out=16|s=2" in keys
    # b0 and b1 see the same shape: 4 options, b2 another 4; plus stem and head.
    assert len(keys) == 2 + 4 + 4


def test_units_of_an_arch_chain_and_add_up_to_the_subnet(space, supernet) -> None:
    arch = Arch({"b0": "skip", "b1": "ir_k5_e2", "b2": "ir_k3_e3"})
    units = space.units(arch)
    assert [u.key.split("|")[0] for u in units] == ["stem_k3", "ir_k5_e2", "ir_k3_e3", "head"]
    shape = units[0].input_shape
    params = 0
    for unit in units:
        assert unit.input_shape == shape
        module = unit.build()
        y = inference_output(module, nn.Variable((1,) + tuple(shape)))
        shape = tuple(y.shape[1:])
        params += sum(v.size for v in module.get_parameters(grad_only=True).values())
    assert shape == (space.n_classes,)
    subnet = supernet.extract(arch)
    assert params == sum(v.size for v in subnet.get_parameters(grad_only=True).values())
    with pytest.raises(ValueError):
        space.units(Arch({"b0": "skip"}))


# --- gated measurement ----------------------------------------------------------------


def test_measurements_on_a_busy_device_are_discarded(space, strict_latency) -> None:
    """The device runs twice as slow for a stretch; what it measured then is not kept."""
    calls = iter(range(10**6))
    busy = lambda m: 2.0 if 3 <= next(calls) < 12 else 1.0  # noqa: E731
    profiler = FakeProfiler(space, slowdown=busy)
    units = space.units()
    items = {u.key: (u.build(), u.input_shape) for u in units}
    settled, _, stats = measure_gated(profiler, items, progress=False)
    assert stats["probe_ms"] == pytest.approx(PROBE_MS)
    for unit in units:
        assert settled[unit.key].ms == pytest.approx(profiler.true_ms(unit.build(),
                                                                      unit.input_shape))
        assert settled[unit.key].clean >= 2


def test_a_device_that_stays_busy_fails_clearly(space, monkeypatch, strict_latency) -> None:
    monkeypatch.setattr(_gated, "PATIENCE", 0.0)
    probes = itertools.count()  # the device is quiet for two probes, then busy for good
    profiler = FakeProfiler(space, slowdown=lambda m: (1.0 if next(probes) < 2 else 2.0)
                            if isinstance(m, _gated._Probe) else 1.0)
    unit = space.units()[1]
    with pytest.raises(MeasurementError, match="busy"):
        measure_gated(profiler, {unit.key: (unit.build(), unit.input_shape)}, max_rounds=4,
                      min_clean=3, progress=False)


@pytest.mark.parametrize("verdict", ["noisy", "raise"])
def test_a_unit_that_cannot_be_measured_never_becomes_an_entry(space, verdict, tmp_path) -> None:
    bad = lambda m: verdict if isinstance(m, InvertedResidual) and m.depthwise.kernel == 5 \
        else None  # noqa: E731
    with pytest.raises(MeasurementError, match="ir_k5") as info:
        LatencyTable.build(space, FakeProfiler(space, bad=bad), progress=False)
    assert "\n" not in str(info.value)


def test_unreliable_or_failed_attempts_are_measured_again(space) -> None:
    """A unit noisy (with a garbage number) or crashing once gets its true latency."""
    crashed: set[int] = set()

    def bad(module):
        if isinstance(module, InvertedResidual) and module.expand.out_channels == 24:
            if id(module) not in crashed:
                crashed.add(id(module))
                return "raise"
        return "once" if isinstance(module, InvertedResidual) else None

    profiler = FakeProfiler(space, bad=bad)
    table = LatencyTable.build(space, profiler, progress=False)
    for unit in space.units():
        assert table.entries[unit.key] == pytest.approx(unit_ms(unit.build(), unit.input_shape))


# --- calibration and prediction -------------------------------------------------------


def test_calibration_recovers_the_whole_subnet_relation_exactly(table, space, supernet) -> None:
    cal = table.calibration
    assert (cal.a, cal.b) == (pytest.approx(1.25, rel=1e-9), pytest.approx(0.04, rel=1e-9))
    assert cal.n == 8 and len({s["key"] for s in cal.samples}) == 8
    assert cal.relative_std == pytest.approx(0.0, abs=1e-9)
    profiler = FakeProfiler(space)
    for arch in all_archs(space)[::17]:
        predicted, sigma = table.predict(arch)
        assert predicted == pytest.approx(profiler.true_ms(supernet.extract(arch), None))
        assert sigma == pytest.approx(0.0, abs=1e-9)
    # Calibrating the same entries on another linear device finds it too.
    fresh = LatencyTable(space=space, entries=table.entries, overhead_ms=table.overhead_ms,
                         protocol=table.protocol, info=table.info)
    other = FakeProfiler(space, a=0.8, b=0.2)
    cal = fresh.calibrate(supernet, other, 5, np.random.default_rng(1), progress=False)
    assert (cal.a, cal.b) == (pytest.approx(0.8), pytest.approx(0.2))


def test_expected_latency_is_the_mean_over_the_distribution(table, space) -> None:
    rng = np.random.default_rng(0)
    probs = {c: dict(zip(opts, rng.dirichlet(np.ones(len(opts)))))
             for c, opts in space.choices.items()}
    brute = sum(math.prod(probs[c][o] for c, o in arch.items()) * table.predict(arch)[0]
                for arch in all_archs(space))
    assert table.expected_latency(probs) == pytest.approx(brute)
    arch = space.sample(rng)
    one_hot = {c: {arch[c]: 1.0} for c in space.choices}
    assert table.expected_latency(one_hot) == pytest.approx(table.predict(arch)[0])
    fixed, costs = table.option_costs()
    assert all(min(c.values()) == 0.0 for c in costs.values()) and costs["b0"]["skip"] == 0.0
    with pytest.raises(ValueError, match="b1"):
        table.expected_latency({**one_hot, "b1": {"ir_k3_e2": 0.5}})


def test_the_fastest_subnets_table_sum_is_exact(table, space) -> None:
    assert table.min_table_ms() == pytest.approx(min(map(table.table_ms, all_archs(space))),
                                                 rel=1e-12)


def test_an_offset_that_would_predict_zero_or_less_falls_back_to_the_ratio(table, space,
                                                                          supernet) -> None:
    """Issue 15, item 7: a line through the calibration subnets (all predicted right) that
    goes below 0 ms before the space's fastest subnet: the front listed one at -0.031 ms."""
    sums = sorted(table.table_ms(arch) for arch in all_archs(space))
    a, b = 3.0, -3.0 * 1.5 * sums[0]  # the line is below 0 for the fastest few subnets
    assert sum(a * x + b <= 0 for x in sums) >= 3
    fresh = LatencyTable(space=space, entries=table.entries, overhead_ms=table.overhead_ms,
                         protocol=table.protocol, info=table.info)
    # Seed 0 draws none of them (the fake device would measure them at or below 0 ms).
    cal = fresh.calibrate(supernet, FakeProfiler(space, a=a, b=b), 6,
                          np.random.default_rng(0), progress=False)
    line = Calibration.fit(cal.samples)  # the samples alone ask for the line
    assert (line.a, line.b) == (pytest.approx(a), pytest.approx(b))
    assert cal.b == 0.0 and cal.a > 0
    assert min(fresh.predict(arch)[0] for arch in all_archs(space)) > 0
    assert fresh.option_costs()[0] == pytest.approx(cal.a * sums[0]) and sums[0] > 0


def test_a_calibration_predicting_zero_or_less_is_refused(table) -> None:
    cal, floor = table.calibration, table.min_table_ms()
    fresh = LatencyTable(space=table.space, entries=table.entries,
                         overhead_ms=table.overhead_ms, protocol=table.protocol, calibration=cal)
    for b in (-cal.a * floor, -cal.a * floor - 1.0):
        with pytest.raises(ValueError, match="fastest subnet"):
            fresh.calibration = dataclasses.replace(cal, b=b)
        assert fresh.calibration is cal
    fresh.calibration = dataclasses.replace(cal, b=-0.99 * cal.a * floor)
    assert fresh.option_costs()[0] == pytest.approx(0.01 * cal.a * floor)
    for a in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="calibration.a"):
            dataclasses.replace(cal, a=a)


def test_a_degenerate_calibration_is_refused_with_what_to_do(table, space, supernet) -> None:
    fresh = LatencyTable(space=space, entries=table.entries, overhead_ms=table.overhead_ms,
                         protocol=table.protocol, info=table.info)
    with pytest.raises(MeasurementError, match="calibration refused: calibration.residual_std_ms"
                                               " = inf.*calibration_samples.*repeats"):
        fresh.calibrate(supernet, FakeProfiler(space, a=1e300), 6, np.random.default_rng(1),
                        progress=False)
    assert fresh.calibration is None


# --- persistence and compatibility ----------------------------------------------------


def test_save_load_round_trip(table, space, tmp_path) -> None:
    path = tmp_path / "lut.json"
    table.save(path)
    loaded = LatencyTable.load(path, space)
    assert loaded.entries == table.entries and loaded.overhead_ms == table.overhead_ms
    assert loaded.protocol == table.protocol and loaded.calibration == table.calibration
    arch = space.sample(np.random.default_rng(3))
    assert loaded.predict(arch) == table.predict(arch)
    data = json.loads(path.read_text())
    assert data["device"] == "fake device" and data["calibration"]["n"] == 8
    assert all(e["ms"] > 0 for e in data["entries"].values())


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", '{"format": "other"}',
                                  '{"format": "hwnas-lut", "version": 1}',
                                  '{"format": "hwnas-lut", "version": 99}',
                                  "[" * 100_000 + "]" * 100_000])
def test_a_corrupt_or_foreign_file_is_a_run_dir_error(space, tmp_path, text) -> None:
    path = tmp_path / "lut.json"
    path.write_text(text)
    with pytest.raises(RunDirError, match="lut.json"):
        LatencyTable.load(path, space)


def _set(data: dict, field: str, value) -> None:
    *path, last = field.split(".")
    for key in path:
        data = data[int(key)] if isinstance(data, list) else data[key]
    data[last] = value


@pytest.mark.parametrize("field, value, message", [
    ("calibration.a", math.nan, "calibration.a is nan"),
    ("calibration.b", math.inf, "calibration.b is inf"),
    ("calibration.a", -1.25, "calibration.a is negative"),
    ("calibration.a", 0, "calibration.a = 0.0 is not a positive"),
    ("calibration.b", -1e6, "predicts .* ms for the fastest subnet"),
    ("calibration.relative_std", -0.1, "calibration.relative_std is negative"),
    ("calibration.samples.2.measured_ms", -0.2, r"calibration.samples\[2\].measured_ms"),
    ("overhead_ms", -math.inf, "overhead_ms is -inf"),
    ("info.build.probe_ms", -0.1, "info.build.probe_ms is negative"),
    ("protocol.spread", math.nan, "protocol.spread is nan"),
    ("calibration.a", "nan", "calibration.a = nan is not a positive"),
])
def test_a_table_with_an_impossible_number_is_refused_naming_it(table, space, tmp_path, field,
                                                                value, message) -> None:
    path = tmp_path / "lut.json"
    table.save(path)
    data = json.loads(path.read_text())
    _set(data, field, value)
    path.write_text(json.dumps(data))  # NaN and Infinity as Python's json writes them
    with pytest.raises(RunDirError, match=f"lut.json: .*{message}"):
        LatencyTable.load(path, space)


def test_an_entry_that_is_not_finite_is_refused(table, space, tmp_path) -> None:
    path = tmp_path / "lut.json"
    table.save(path)
    key = next(iter(table.entries))
    path.write_text(path.read_text().replace(f'"ms": {table.entries[key]!r}', '"ms": Infinity',
                                             1))
    with pytest.raises(RunDirError, match=r"lut.json: entries\..*\.ms is inf"):
        LatencyTable.load(path, space)


def test_a_negative_offset_that_keeps_every_subnet_above_zero_loads(table, space,
                                                                    tmp_path) -> None:
    path = tmp_path / "lut.json"
    table.save(path)
    data = json.loads(path.read_text())
    data["calibration"]["b"] = -0.5 * table.calibration.a * table.min_table_ms()
    path.write_text(json.dumps(data))
    loaded = LatencyTable.load(path, space)
    assert min(loaded.predict(arch)[0] for arch in all_archs(space)) > 0


@pytest.mark.parametrize("field, value", [("device", "another CPU"), ("context", "cudnn"),
                                          ("batch_size", 8), ("statistic", "wall_p10"),
                                          ("nnabla_version", "0.0.1")])
def test_a_table_refuses_another_protocol(table, field, value) -> None:
    with pytest.raises(IncompatibleTableError) as info:
        table.check_compatible(protocol(**{field: value}))
    message = str(info.value)
    assert field in message and repr(value) in message
    table.check_compatible(protocol(repeats=99, warmup=7))  # not what it measures


def test_a_table_refuses_a_profiler_of_another_device_or_a_faster_one(table, space,
                                                                    strict_latency) -> None:
    with pytest.raises(IncompatibleTableError, match="'other' here"):
        table.check_compatible(FakeProfiler(space, device="other"))
    table.check_compatible(FakeProfiler(space), space)
    with pytest.raises(IncompatibleTableError, match="faster"):
        table.check_compatible(FakeProfiler(space, slowdown=lambda m: 0.5))


def test_a_table_refuses_a_space_with_units_it_lacks(table) -> None:
    bigger = create_space("mobilenet", **{**SMALL_SPACE, "kernels": [3, 7]})
    with pytest.raises(IncompatibleTableError, match="no entry"):
        table.check_compatible(protocol(), bigger)
