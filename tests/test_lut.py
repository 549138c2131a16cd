"""Tests for the latency table: units, gated measurement, calibration, persistence, commands."""
from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib.image
import nnabla as nn
import numpy as np
import pytest

from conftest import SMALL_SPACE
from hwnas import profiling
from hwnas.cli import main
from hwnas.config import LatencyConfig
from hwnas.errors import HwnasError, MeasurementError, RunDirError
from hwnas.hwcost import (BaseProfiler, CommandProfiler, IncompatibleTableError, LatencyProtocol,
                          LatencyTable, NnablaProfiler, count_macs, inference_output,
                          measure_gated)
from hwnas.hwcost import _gated, _lut
from hwnas.pipeline import RunDir
from hwnas.supernet import Arch, ChainSupernet, create_space
from hwnas.supernet._ops import InvertedResidual

OVERHEAD_MS, PROBE_MS = 0.005, 0.1


def protocol(**changes) -> LatencyProtocol:
    fields = dict(context="cpu", device="fake device", nnabla_version=nn.__version__, threads=1,
                  batch_size=1, warmup=0, repeats=1, statistic="cpu_median", spread=0.01,
                  reliable=True)
    return LatencyProtocol(**{**fields, **changes})


def unit_ms(module: nn.Module, shape: Sequence[int]) -> float:
    """The fake device's latency of a piece of network: 10 us plus 1 ns per MAC."""
    y = module(nn.Variable((1,) + tuple(shape)))
    return 0.01 + 1e-6 * count_macs(y)


class FakeProfiler(BaseProfiler):
    """A deterministic device: units cost ``unit_ms`` (plus the overhead), a whole subnet
    ``a * (overhead + sum of its units) + b``; the probe ``PROBE_MS`` times ``slowdown()``.

    Args:
        space: the space whose subnets it measures whole.
        a, b: the whole-subnet relation.
        bad: module -> None (measure normally), ``"raise"``, ``"noisy"`` (reliable
            False, with an absurdly low number) or ``"once"`` (noisy the first time).
        slowdown: called with the module of every measurement; the latency is multiplied
            by what it returns.
    """

    def __init__(self, space, *, a: float = 1.25, b: float = 0.04,
                 bad: Callable[[nn.Module], str | None] = lambda m: None,
                 slowdown: Callable[[nn.Module], float] = lambda m: 1.0, **changes) -> None:
        super().__init__(LatencyConfig())
        self.space, self.a, self.b, self.bad, self.slowdown = space, a, b, bad, slowdown
        self.changes = changes
        self.seen: set[int] = set()
        self.calls = 0
        self._units: dict[str, float] = {}

    @property
    def device(self) -> str:
        return self.changes.get("device", "fake device")

    def true_ms(self, module: nn.Module, shape: Sequence[int]) -> float:
        if isinstance(module, _gated._Probe):
            return PROBE_MS
        if isinstance(module, _lut._Overhead):
            return OVERHEAD_MS
        if isinstance(module, ChainSupernet):
            units = self.space.units(module.active_arch())
            for u in units:
                if u.key not in self._units:
                    self._units[u.key] = unit_ms(u.build(), u.input_shape)
            return self.a * (OVERHEAD_MS + sum(self._units[u.key] for u in units)) + self.b
        return OVERHEAD_MS + unit_ms(module, shape)

    def measure(self, module, input_shape):
        self.calls += 1
        factor = self.slowdown(module)
        verdict = self.bad(module)
        if verdict == "raise":
            raise MeasurementError("the fake device crashed")
        if verdict == "noisy" or (verdict == "once" and id(module) not in self.seen):
            self.seen.add(id(module))
            return 1e-6, protocol(reliable=False, spread=5.0, **self.changes)
        return factor * self.true_ms(module, input_shape), protocol(**self.changes)


@pytest.fixture
def space():
    return create_space("mobilenet", **SMALL_SPACE)


@pytest.fixture
def supernet(space):
    nn.seed(0)
    return space.supernet()


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


# --- on the real CPU ------------------------------------------------------------------


def test_predictions_follow_real_measurements(space, supernet, monkeypatch) -> None:
    monkeypatch.setattr(_gated, "PATIENCE", 20.0)
    profiler = NnablaProfiler(LatencyConfig(repeats=15, warmup=2, statistic="wall_p10",
                                            max_spread=2.0))
    # A table built while a shared machine ran slow for the whole build predicts
    # too much once it runs fast again; the check says so (its warning) and the
    # user rebuilds the table. So does this test, a few times, before it gives up.
    reports = []
    for attempt in range(3):
        try:
            table = LatencyTable.build(space, profiler, supernet=supernet,
                                       calibration_samples=6,
                                       rng=np.random.default_rng(attempt), progress=False)
            report = profiling.check(table, space, supernet, profiler, 4,
                                     np.random.default_rng(100 + attempt), progress=False)
        except MeasurementError as exc:
            pytest.skip(f"this machine is too busy to measure: {exc}")
        reports.append(report)
        if report["warning"] is None:
            break
    else:
        pytest.skip("the machine's speed changed between every build and its check: "
                    + "; ".join(f"probe {r['table_probe_ms']:.4f} -> {r['probe_ms']:.4f} ms"
                                for r in reports))
    assert table.device == profiler.device and table.calibration.a > 0
    assert report["probe_ms"] >= report["table_probe_ms"] / (1.0 + _gated.TOLERANCE)
    assert report["n"] == 4 and report["mape"] < 0.5, (report["worst"], report["probe_ms"],
                                                       report["table_probe_ms"])


def test_a_check_on_a_device_faster_than_at_build_time_says_rebuild(space) -> None:
    slow = FakeProfiler(space, slowdown=lambda m: 2.0)
    table = LatencyTable.build(space, slow, supernet=space.supernet(), calibration_samples=6,
                               rng=np.random.default_rng(0), progress=False)
    supernet = space.supernet()
    same = profiling.check(table, space, supernet, slow, 4, np.random.default_rng(1),
                           progress=False)
    assert same["warning"] is None and same["mape"] < 1e-6
    fast = profiling.check(table, space, supernet, FakeProfiler(space), 4,
                           np.random.default_rng(1), progress=False)
    assert "faster" in fast["warning"] and "hwnas lut --rebuild" in fast["warning"]
    assert fast["bias"] == pytest.approx(1.0, rel=1e-6)  # predicted twice the measurement
    assert fast["table_probe_ms"] == pytest.approx(2 * fast["probe_ms"])


def test_make_profiler_picks_the_command_when_set() -> None:
    assert isinstance(profiling.make_profiler(LatencyConfig()), NnablaProfiler)
    command = LatencyConfig(command="echo 1.0 {model}")
    assert isinstance(profiling.make_profiler(command), CommandProfiler)


# --- run level and commands -----------------------------------------------------------


def cli(capfd, *argv: object) -> tuple[int, str, str]:
    capfd.readouterr()
    status = main([str(a) for a in argv])
    out, err = capfd.readouterr()
    return status, out, err


@pytest.fixture
def lenient(monkeypatch):
    """Accept every measurement: these tests are about the commands, not this machine's noise."""
    monkeypatch.setattr(_gated, "TOLERANCE", 1e6)


def test_lut_and_profile_commands(run_copy: Path, capfd, lenient) -> None:
    (run_copy / "lut.json").unlink(missing_ok=True)
    status, out, err = cli(capfd, "lut", run_copy, "--quiet")
    assert status == 0, err
    table = json.loads((run_copy / "lut.json").read_text())
    assert f"{len(table['entries'])} units on {table['device']}" in out
    assert "calibration on" in out and f"wrote {run_copy / 'lut.json'}" in out
    status, out, err = cli(capfd, "lut", run_copy, "--quiet")
    assert status == 0 and f"reused {run_copy / 'lut.json'}" in out, err

    status, out, err = cli(capfd, "profile", run_copy, "--check", 3, "--quiet")
    assert status == 0, err
    report = json.loads((run_copy / "profile.json").read_text())
    assert report["n"] == 3 and len(report["samples"]) == 3 and len(report["worst"]) == 3
    calibrated = {s["key"] for s in table["calibration"]["samples"]}
    assert not calibrated & {s["key"] for s in report["samples"]}
    assert "within +-10 %" in out and "Spearman" in out and "worst predictions" in out
    image = matplotlib.image.imread(run_copy / "profile.png")
    assert image.ndim == 3 and image.shape[0] > 100


def test_lut_rebuilds_a_mismatched_or_corrupt_table_and_says_why(run_copy: Path, capfd,
                                                                  lenient) -> None:
    path = run_copy / "lut.json"
    assert cli(capfd, "lut", run_copy, "--quiet", "--rebuild")[0] == 0
    data = json.loads(path.read_text())
    data["protocol"]["device"] = data["device"] = "a board in another lab"
    path.write_text(json.dumps(data))
    status, out, err = cli(capfd, "lut", run_copy, "--quiet")
    assert status == 0, err
    assert "'a board in another lab' there" in out and "rebuilding" in out
    assert json.loads(path.read_text())["device"] != "a board in another lab"
    path.write_text("{ not json")
    status, out, _ = cli(capfd, "lut", run_copy, "--quiet")
    assert status == 0 and "not a readable latency table" in out and "rebuilding" in out


def test_a_search_refuses_a_mismatched_table(run_copy: Path, space, lenient) -> None:
    run = RunDir.open(run_copy)
    with pytest.raises(RunDirError, match="hwnas lut"):
        (run_copy / "lut.json").unlink(missing_ok=True)
        profiling.load_table(run, space, FakeProfiler(space))
    main(["lut", str(run_copy), "--quiet"])
    from hwnas.pipeline import workspace
    ws = workspace(run, trained=False, progress=False)
    with pytest.raises(HwnasError, match="device .*run 'hwnas lut"):
        profiling.load_table(run, ws.space, FakeProfiler(ws.space, device="elsewhere"))
    assert profiling.load_table(run, ws.space, profiling.make_profiler(run.config.latency))


@pytest.mark.parametrize("argv, fragments", [
    (["profile", "{run}", "--check", "0"], ["--check", "0"]),
    (["profile", "{missing}", "--check", "3"], ["no such run directory"]),
    (["lut", "{missing}"], ["no such run directory"]),
    (["lut"], ["run"]),
])
def test_bad_input_is_one_line_and_status_2(run_copy, tmp_path, capfd, argv, fragments) -> None:
    argv = [a.format(run=run_copy, missing=tmp_path / "nope") for a in argv]
    status, out, err = cli(capfd, *argv)
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hwnas") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("command", ["lut", "profile"])
def test_help(capfd, command) -> None:
    status, out, _ = cli(capfd, command, "--help")
    assert status == 0 and f"hwnas {command}" in out and "--quiet" in out
