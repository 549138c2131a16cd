"""Helpers shared by the latency table test files: a fake device and its protocol."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import nnabla as nn

from hwnas.config import LatencyConfig
from hwnas.errors import MeasurementError
from hwnas.hwcost import BaseProfiler, LatencyProtocol, count_macs
from hwnas.hwcost import _gated, _lut
from hwnas.supernet import ChainSupernet

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
