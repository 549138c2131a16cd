"""LatencyTable: unit latencies measured once, calibrated on whole subnets, summed to predict."""
from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nnabla as nn
import nnabla.functions as F
import numpy as np

from hwnas.io import atomic_write_json
from hwnas.arch import Arch
from hwnas.errors import HwnasError, MeasurementError, RunDirError
from hwnas.costs import LatencyProtocol
from hwnas.hwcost import _gated
from hwnas.hwcost._calibration import Calibration, _calibration_archs
from hwnas.hwcost._gated import PROBE_SHAPE, measure_gated, probe_network
from hwnas.hwcost._profiler import BaseProfiler

if TYPE_CHECKING:  # the supernet package is above hwcost
    from hwnas.supernet import BaseSearchSpace, Supernet

__all__ = ["IncompatibleTableError", "LatencyTable"]

FORMAT, VERSION = "hwnas-lut", 1
#: Protocol fields a table must share with the profiler that uses it.
MATCHED = ("device", "context", "nnabla_version", "batch_size", "statistic")


class IncompatibleTableError(HwnasError):
    """A latency table was measured differently (device, protocol) or for other units."""


class _Overhead(nn.Module):
    """The cheapest network: what every forward pass costs besides its layers."""

    def call(self, x: nn.Variable) -> nn.Variable:
        return F.identity(x)


def _whole(supernet: Supernet | None, space: BaseSearchSpace,
           archs: Sequence[Arch]) -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    """Standalone subnets to measure, by Arch key."""
    return {a.key: (supernet.extract(a), tuple(space.input_shape)) for a in archs}


class LatencyTable:
    """Latency of every unit of a search space on one device, under one protocol.

    An entry is a unit's own time: its measured latency less the per-forward
    overhead (the latency of an identity network at the space's input). A
    subnet's table sum is the overhead plus its units' entries; the
    calibration maps table sums to whole-subnet latencies. Build one with
    :meth:`build` and :meth:`calibrate`, or :meth:`load` a saved one.

    Args:
        space: the search space whose units the entries are.
        entries: unit key -> its own latency in ms, every one positive.
        overhead_ms: the per-forward overhead in ms.
        protocol: how the entries were measured; its ``spread`` is the widest
            of the entries'.
        details: unit key -> record of its measurement (raw ms, spreads, counts).
        calibration: the fit of whole subnets, or None before :meth:`calibrate`.
        info: how the table was measured: ``build`` and ``calibration``, each
            with the probe's fastest latency (``probe_ms``), rounds and seconds.
    """

    def __init__(self, *, space: BaseSearchSpace, entries: Mapping[str, float],
                 overhead_ms: float, protocol: LatencyProtocol,
                 details: Mapping[str, Mapping[str, Any]] | None = None,
                 calibration: Calibration | None = None,
                 info: Mapping[str, Any] | None = None) -> None:
        bad = {k: v for k, v in entries.items() if not (math.isfinite(v) and v > 0)}
        if bad or not (math.isfinite(overhead_ms) and overhead_ms >= 0):
            raise ValueError(f"latencies must be positive, got overhead {overhead_ms} and {bad}")
        self.space = space
        self.entries = dict(entries)
        self.overhead_ms = float(overhead_ms)
        self.protocol = protocol
        self.details = {k: dict(v) for k, v in (details or {}).items()}
        self.info = dict(info or {})
        self._sums: tuple[float, dict[str, dict[str, float]]] | None = None
        self._costs: tuple[float, dict[str, dict[str, float]]] | None = None
        self._calibration: Calibration | None = None
        self.calibration = calibration

    @property
    def calibration(self) -> Calibration | None:
        """The fit of whole subnets; a new one must predict every subnet of the space above 0 ms.

        Raises:
            ValueError: on setting one that predicts 0 ms or less for a subnet.
        """
        return self._calibration

    @calibration.setter
    def calibration(self, calibration: Calibration | None) -> None:
        # A table of another space lacks units; check_compatible names them instead.
        if calibration is not None and all(u.key in self.entries for u in self.space.units()):
            calibration.check(self.min_table_ms())
        self._calibration = calibration
        self._costs = None

    @property
    def device(self) -> str:
        return self.protocol.device

    @property
    def probe_ms(self) -> float | None:
        """The probe network's fastest latency while the units were measured."""
        return self.info.get("build", {}).get("probe_ms")

    @classmethod
    def build(cls, space: BaseSearchSpace, profiler: BaseProfiler, *,
              supernet: Supernet | None = None, calibration_samples: int = 20,
              rng: np.random.Generator | None = None, progress: bool = True) -> LatencyTable:
        """Measures every distinct unit of ``space`` (fresh random weights, inference mode).

        Args:
            space: the search space.
            profiler: measures on the target device.
            supernet: when given, the table is also calibrated on
                ``calibration_samples`` random subnets extracted from it,
                measured in the same session as the units, so that both are
                held to the same quiet device (see :func:`measure_gated`).
            calibration_samples: subnets to calibrate on (at most half the space).
            rng: draws the calibration subnets.
            progress: show a progress bar.

        Raises:
            MeasurementError: a unit could not be measured reliably, or not
                slower than the per-forward overhead; nothing is stored then.
        """
        start = time.perf_counter()
        items = {"overhead": (_Overhead(), tuple(space.input_shape))}
        items.update({u.key: (u.build(), u.input_shape) for u in space.units()})
        archs = [] if supernet is None else _calibration_archs(space, calibration_samples, rng)
        items.update(_whole(supernet, space, archs))
        settled, protocol, stats = measure_gated(profiler, items, progress=progress,
                                                 desc="latency table")
        overhead = settled.pop("overhead").ms
        whole = {a.key: settled.pop(a.key).ms for a in archs}
        low = [k for k, m in settled.items() if m.ms <= overhead]
        if low:
            raise MeasurementError(f"unit {low[0]} measured no slower than an empty network "
                                   f"({settled[low[0]].ms:.4f} <= {overhead:.4f} ms)")
        protocol = dataclasses.replace(protocol, reliable=True,
                                       spread=max(m.spread for m in settled.values()))
        table = cls(space=space, entries={k: m.ms - overhead for k, m in settled.items()},
                    overhead_ms=overhead, protocol=protocol,
                    details={k: {"measured_ms": m.ms, "spread": m.spread,
                                 "agreement": m.agreement, "clean": m.clean,
                                 "attempts": m.attempts} for k, m in settled.items()},
                    info={"build": {**stats, "seconds": time.perf_counter() - start}})
        if archs:
            table._fit(archs, whole)
        return table

    def calibrate(self, supernet: Supernet, profiler: BaseProfiler, n: int,
                  rng: np.random.Generator, *, progress: bool = True) -> Calibration:
        """Measures ``n`` random subnets of ``supernet`` whole and fits the table sums to them.

        At most half the space is used, so that subnets remain to check it
        on. The measurements wait for the device to run as fast as when the
        units were measured.
        """
        start = time.perf_counter()
        archs = _calibration_archs(self.space, n, rng)
        settled, _, stats = measure_gated(profiler, _whole(supernet, self.space, archs),
                                          reference_ms=self.probe_ms, progress=progress,
                                          desc="calibration")
        self.info["calibration"] = {**stats, "seconds": time.perf_counter() - start}
        return self._fit(archs, {k: m.ms for k, m in settled.items()})

    def _fit(self, archs: Sequence[Arch], measured: Mapping[str, float]) -> Calibration:
        try:
            self.calibration = Calibration.fit(
                [{"key": a.key, "table_ms": self.table_ms(a), "measured_ms": measured[a.key]}
                 for a in archs], floor_ms=self.min_table_ms())
        except ValueError as exc:
            raise MeasurementError(
                f"latency calibration refused: {exc}; measure more subnets whole "
                "(latency.calibration_samples) or each one longer (latency.repeats), or "
                "predict nothing (latency.predictor: measure)") from None
        return self.calibration

    def table_ms(self, arch: Arch) -> float:
        """The uncalibrated prediction: overhead plus the entries of ``arch``'s units."""
        try:
            return self.overhead_ms + sum(self.entries[u.key] for u in self.space.units(arch))
        except KeyError as exc:
            raise IncompatibleTableError(f"the latency table has no entry for unit {exc}; "
                                         "it was built for another search space") from None

    def predict(self, arch: Arch) -> tuple[float, float]:
        """Predicted latency of ``arch`` and one standard deviation of its error, in ms."""
        cal = self._calibrated()
        ms = cal.a * self.table_ms(arch) + cal.b
        return ms, cal.relative_std * ms

    def _table_sums(self) -> tuple[float, dict[str, dict[str, float]]]:
        """Table sums as the fastest subnet's sum + per-option extra ms (0 for the cheapest).

        Exact for spaces whose units of a choice do not depend on other
        choices (the contract of ``units``).
        """
        if self._sums is None:
            base = {c: options[0] for c, options in self.space.choices.items()}
            base_ms = self.table_ms(Arch(base))
            floor, extra = base_ms, {}
            for choice, options in self.space.choices.items():
                delta = {o: self.table_ms(Arch({**base, choice: o})) - base_ms for o in options}
                low = min(delta.values())
                floor += low
                extra[choice] = {o: d - low for o, d in delta.items()}
            self._sums = (floor, extra)
        return self._sums

    def min_table_ms(self) -> float:
        """The smallest table sum of any subnet of the space (its fastest subnet's)."""
        return self._table_sums()[0]

    def option_costs(self) -> tuple[float, dict[str, dict[str, float]]]:
        """Calibrated latency as fixed part + per-option costs: ``fixed + sum cost[c][arch[c]]``.

        The cheapest option of every choice costs 0. Exact for spaces whose
        units of a choice do not depend on other choices (the contract of
        ``units``), because the calibration is linear.
        """
        if self._costs is None:
            cal = self._calibrated()
            floor, extra = self._table_sums()
            self._costs = (cal.a * floor + cal.b,
                           {c: {o: cal.a * d for o, d in opts.items()}
                            for c, opts in extra.items()})
        return self._costs

    def expected_latency(self, probabilities: Mapping[str, Mapping[str, float]]) -> float:
        """Expected calibrated latency when every choice picks its options with these probabilities.

        Args:
            probabilities: choice -> option -> probability, for every choice;
                options left out have probability 0; each choice's sum is 1.
        """
        fixed, costs = self.option_costs()
        if set(probabilities) != set(costs):
            raise ValueError(f"probabilities must cover the choices {list(costs)}, "
                             f"got {list(probabilities)}")
        total = fixed
        for choice, probs in probabilities.items():
            unknown = set(probs) - set(costs[choice])
            p = np.array([probs.get(o, 0.0) for o in costs[choice]], dtype=float)
            if unknown or np.any(p < 0) or not np.isclose(p.sum(), 1.0, atol=1e-6):
                raise ValueError(f"probabilities of {choice!r} must be a distribution over "
                                 f"{list(costs[choice])}, got {dict(probs)}")
            total += float(p @ np.array(list(costs[choice].values())))
        return total

    def _calibrated(self) -> Calibration:
        if self.calibration is None:
            raise IncompatibleTableError("the latency table is not calibrated yet")
        return self.calibration

    def check_compatible(self, against: BaseProfiler | LatencyProtocol,
                         space: BaseSearchSpace | None = None, *, speed: bool = True) -> None:
        """Raises unless the table stands for measurements by ``against`` on ``space``.

        Args:
            against: a profiler or the protocol of a measurement. A profiler
                measures the probe network thrice, which tells its protocol and
                whether the device now runs clearly faster than while the
                table was built (then it was busy, and the table is too slow).
            space: a search space whose every unit must have an entry.
            speed: also refuse a table measured while the device was busy.

        Raises:
            IncompatibleTableError: naming every difference.
        """
        protocol, probe = against, None
        if isinstance(against, BaseProfiler):
            network = probe_network()
            # The fastest of a few: a busy moment must not hide that the table is too slow.
            probe, protocol = min((against.measure(network, PROBE_SHAPE) for _ in range(3)),
                                  key=lambda measured: measured[0])
        diffs = [f"{f} {getattr(self.protocol, f)!r} there, {getattr(protocol, f)!r} here"
                 for f in MATCHED if getattr(self.protocol, f) != getattr(protocol, f)]
        if speed and not diffs and probe and self.probe_ms and \
                probe * (1.0 + _gated.TOLERANCE) < self.probe_ms:
            diffs.append(f"the device runs the probe network {1 - probe / self.probe_ms:.0%} "
                         "faster than while the table was measured, so it was busy then")
        if space is not None:
            missing = [u.key for u in space.units() if u.key not in self.entries]
            if missing:
                diffs.append(f"{len(missing)} of the space's units have no entry "
                             f"(e.g. {missing[0]})")
        if diffs:
            raise IncompatibleTableError("the latency table was measured differently: "
                                         + "; ".join(diffs))

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "device": self.device,
                "protocol": self.protocol.to_dict(), "overhead_ms": self.overhead_ms,
                "entries": {k: {"ms": v, **self.details.get(k, {})}
                            for k, v in self.entries.items()},
                "calibration": None if self.calibration is None else self.calibration.to_dict(),
                "info": self.info}

    def save(self, path: str | Path) -> None:
        """Writes the table as JSON, atomically."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path, space: BaseSearchSpace) -> LatencyTable:
        """Reads a table written by :meth:`save`.

        Raises:
            RunDirError: the file is missing, corrupt or not a latency table, holds
                a number that is not finite or is negative (the calibration's
                intercept ``b`` aside), or a calibration that predicts 0 ms or
                less for a subnet of ``space``.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise RunDirError(f"{path}: no latency table") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise RunDirError(f"{path} is not a readable latency table ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise RunDirError(f"{path} is not an hwnas latency table")
        if data.get("version") != VERSION:
            raise RunDirError(f"{path}: latency table version {data.get('version')!r}, "
                              f"this hwnas reads {VERSION}")
        bad = _bad_number(data)
        if bad:
            raise RunDirError(f"{path}: {bad}")
        try:
            cal = data["calibration"]
            return cls(space=space,
                       entries={k: float(v["ms"]) for k, v in data["entries"].items()},
                       overhead_ms=float(data["overhead_ms"]),
                       protocol=LatencyProtocol(**data["protocol"]),
                       details={k: {f: x for f, x in v.items() if f != "ms"}
                                for k, v in data["entries"].items()},
                       calibration=None if cal is None else Calibration(
                           a=float(cal["a"]), b=float(cal["b"]),
                           residual_std_ms=float(cal["residual_std_ms"]),
                           relative_std=float(cal["relative_std"]),
                           samples=tuple(dict(s) for s in cal["samples"])),
                       info=dict(data.get("info") or {}))
        except (KeyError, TypeError, AttributeError) as exc:
            raise RunDirError(f"{path} is a damaged latency table ({type(exc).__name__}: "
                              f"{exc})") from None
        except ValueError as exc:
            raise RunDirError(f"{path}: {exc}") from None


#: The one number of a table that may be negative: a fit's intercept.
_SIGNED = ("calibration", "b")


def _bad_number(data: Any) -> str | None:
    """What is wrong with the first number in ``data`` that is not finite, or is negative
    though only ``calibration.b`` may be; None when every number is fine."""
    stack: list[tuple[tuple[str, ...], Any]] = [((), data)]
    while stack:  # not recursive: a hostile file may nest as deep as json parses
        where, value = stack.pop()
        if isinstance(value, dict):
            stack.extend(((*where, str(k)), v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend(((*where, f"[{i}]"), v) for i, v in reversed(list(enumerate(value))))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            field = "".join(w if w.startswith("[") else "." + w for w in where).lstrip(".")
            if not math.isfinite(value):
                return f"{field} is {value}, not a finite number"
            if value < 0 and where != _SIGNED:
                return f"{field} is negative ({value})"
    return None
