"""Tests for the latency table: units, gated measurement, calibration, persistence."""
from __future__ import annotations

import itertools
import json
import math

import nnabla as nn
import numpy as np
import pytest

from _lut_helpers import PROBE_MS, FakeProfiler, protocol, unit_ms
from conftest import SMALL_SPACE
from hwnas.errors import MeasurementError, RunDirError
from hwnas.hwcost import IncompatibleTableError, LatencyTable, inference_output, measure_gated
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


def test_measurements_on_a_busy_device_are_discarded(space) -> None:
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


def test_a_device_that_stays_busy_fails_clearly(space, monkeypatch) -> None:
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
                                  '{"format": "hwnas-lut", "version": 99}'])
def test_a_corrupt_or_foreign_file_is_a_run_dir_error(space, tmp_path, text) -> None:
    path = tmp_path / "lut.json"
    path.write_text(text)
    with pytest.raises(RunDirError, match="lut.json"):
        LatencyTable.load(path, space)


@pytest.mark.parametrize("field, value", [("device", "another CPU"), ("context", "cudnn"),
                                          ("batch_size", 8), ("statistic", "wall_p10"),
                                          ("nnabla_version", "0.0.1")])
def test_a_table_refuses_another_protocol(table, field, value) -> None:
    with pytest.raises(IncompatibleTableError) as info:
        table.check_compatible(protocol(**{field: value}))
    message = str(info.value)
    assert field in message and repr(value) in message
    table.check_compatible(protocol(repeats=99, warmup=7))  # not what it measures


def test_a_table_refuses_a_profiler_of_another_device_or_a_faster_one(table, space) -> None:
    with pytest.raises(IncompatibleTableError, match="'other' here"):
        table.check_compatible(FakeProfiler(space, device="other"))
    table.check_compatible(FakeProfiler(space), space)
    with pytest.raises(IncompatibleTableError, match="faster"):
        table.check_compatible(FakeProfiler(space, slowdown=lambda m: 0.5))


def test_a_table_refuses_a_space_with_units_it_lacks(table) -> None:
    bigger = create_space("mobilenet", **{**SMALL_SPACE, "kernels": [3, 7]})
    with pytest.raises(IncompatibleTableError, match="no entry"):
        table.check_compatible(protocol(), bigger)
