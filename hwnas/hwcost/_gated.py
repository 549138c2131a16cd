"""Latency measurements gated by a probe network: only what ran on an undisturbed device counts."""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence

import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF
from tqdm import tqdm

from hwnas.errors import MeasurementError
from hwnas.costs import LatencyProtocol
from hwnas.hwcost._profiler import BaseProfiler

__all__ = ["PROBE_SHAPE", "Measured", "measure_gated", "probe_network"]

#: The input of the probe network (C, H, W).
PROBE_SHAPE = (16, 8, 8)
#: Defaults of :func:`measure_gated`, read when it is called.
MIN_CLEAN, MAX_ROUNDS, TOLERANCE, PATIENCE = 2, 16, 0.2, 300.0


def gate_tolerance() -> float:
    """How much slower than its fastest the probe may run for a measurement to count."""
    return TOLERANCE


class _Probe(nn.Module):
    def call(self, x: nn.Variable) -> nn.Variable:
        h = F.maximum_scalar(PF.convolution(x, 16, (3, 3), pad=(1, 1), name="conv1"), 0.0)
        return PF.convolution(h, 16, (3, 3), pad=(1, 1), name="conv2")


def probe_network() -> nn.Module:
    """A fixed small network (two 3x3 convolutions on ``PROBE_SHAPE``) whose latency
    tells how fast the device runs right now."""
    return _Probe()


@dataclasses.dataclass(frozen=True)
class Measured:
    """A latency settled by :func:`measure_gated`.

    Attributes:
        ms: the lowest clean measurement.
        spread: the profiler's relative spread of that measurement.
        agreement: relative gap between the two lowest clean measurements.
        clean: measurements taken while the probe ran at its usual speed.
        attempts: measurements taken in all.
    """

    ms: float
    spread: float
    agreement: float
    clean: int
    attempts: int


def measure_gated(profiler: BaseProfiler,
                  items: Mapping[str, tuple[nn.Module, Sequence[int]]], *,
                  min_clean: int | None = None, max_rounds: int | None = None,
                  tolerance: float | None = None, patience: float | None = None,
                  reference_ms: float | None = None,
                  progress: bool = True, desc: str = "latency",
                  ) -> tuple[dict[str, Measured], LatencyProtocol, dict[str, float]]:
    """Measures every item until it has ``min_clean`` measurements on an undisturbed device.

    A shared machine runs everything up to twice as slow for stretches of
    seconds (another tenant's work on the same physical core; thread CPU
    time does not show it), which no statistic over the repeats of one
    measurement removes. So every measurement is taken between two of a
    fixed probe network, and counts as clean when it is reliable and both
    probes ran within ``tolerance`` of the session's fastest probe (the
    second fastest, so that one lucky outlier does not stop everything):
    quiet phases can be as short as tens of milliseconds, so a quiet device
    before a measurement alone says little. Before each measurement the
    probe is repeated until it is that fast (for at most ``patience``
    seconds in all). Items are measured in rounds until each has
    ``min_clean`` clean measurements, and the lowest is kept. On a quiet
    device this costs ``min_clean`` measurements and probes per item.

    Args:
        profiler: measures each item and the probe.
        items: name -> (module, input shape (C, H, W)).
        min_clean: clean measurements wanted per item (default ``MIN_CLEAN``).
        max_rounds: rounds before giving up (default ``MAX_ROUNDS``).
        tolerance: how much slower than its fastest a probe may be (default
            ``TOLERANCE``).
        patience: seconds spent in all waiting for the device to be quiet
            (default ``PATIENCE``).
        reference_ms: the probe's fastest latency in an earlier session (when
            the latency table was built): measurements compared with that
            session's wait until the device is as fast as it was then.
        progress: show a progress bar of settled items.
        desc: the progress bar's label.

    Returns:
        The settled latencies by name; the protocol of the measurements (its
        ``spread`` that of the last probe); and how it went: ``probe_ms``
        (the probe's fastest latency), ``probes`` (probe measurements),
        ``waited_s`` (seconds spent waiting for quiet), ``rounds``,
        ``measurements`` and ``busy_after`` (measurements a slow probe followed).

    Raises:
        MeasurementError: an item's measurement failed twice, or some items
            had too few clean measurements after ``max_rounds`` rounds.
    """
    min_clean = MIN_CLEAN if min_clean is None else min_clean
    max_rounds = MAX_ROUNDS if max_rounds is None else max_rounds
    tolerance = TOLERANCE if tolerance is None else tolerance
    patience = PATIENCE if patience is None else patience
    if min_clean < 1 or max_rounds < 1:
        raise ValueError(f"min_clean and max_rounds must be >= 1, got {min_clean}, {max_rounds}")
    probe = probe_network()
    probes = 0
    # The two fastest probes: one lucky outlier sets no floor.
    lowest = [math.inf, math.inf] if reference_ms is None else [reference_ms, reference_ms]
    seen: dict[str, list[tuple[float, float, bool, float]]] = {k: [] for k in items}
    failures = dict.fromkeys(items, 0)
    protocol: LatencyProtocol | None = None
    deadline = time.monotonic() + patience
    stats = {"waited_s": 0.0, "rounds": 0, "measurements": 0, "busy_after": 0}

    def probe_ms() -> float:
        nonlocal protocol, probes
        ms, protocol = profiler.measure(probe, PROBE_SHAPE)
        probes += 1
        ms = ms if protocol.reliable else math.inf
        lowest[:] = sorted([*lowest, ms])[:2]
        return ms

    def floor() -> float:
        return lowest[1] if math.isfinite(lowest[1]) else lowest[0]

    def quiet(ms: float) -> bool:
        return math.isfinite(ms) and ms <= floor() * (1.0 + tolerance)

    def clean(key: str) -> list[tuple[float, float]]:
        return sorted((ms, spread) for ms, spread, ok, busiest in seen[key]
                      if ok and quiet(busiest))

    pending = list(items)
    bar = tqdm(total=len(items), desc=desc, disable=not progress, leave=False)
    try:
        before = probe_ms()
        for round_ in range(max_rounds):
            for key in pending:
                waiting = time.monotonic()
                while not quiet(before) and time.monotonic() < deadline:
                    before = probe_ms()
                stats["waited_s"] += time.monotonic() - waiting
                module, shape = items[key]
                try:
                    ms, measured = profiler.measure(module, shape)
                except MeasurementError as exc:
                    failures[key] += 1
                    if failures[key] >= 2:
                        raise MeasurementError(f"measuring {key} failed twice: {exc}") from exc
                    before = probe_ms()
                    continue
                after = probe_ms()
                seen[key].append((ms, measured.spread, measured.reliable, max(before, after)))
                stats["measurements"] += 1
                stats["busy_after"] += quiet(before) and not quiet(after)
                before = after
            # The fastest probe may still improve: every item is judged again against it.
            pending = [k for k in items if len(clean(k)) < min_clean]
            stats["rounds"] = round_ + 1
            bar.n = len(items) - len(pending)
            bar.set_postfix(round=round_ + 1)
            bar.refresh()
            if not pending:
                break
    finally:
        bar.close()
    if pending:
        example = pending[0]
        unreliable = sum(not ok for _, _, ok, _ in seen[example])
        raise MeasurementError(
            f"{len(pending)} of {len(items)} latencies stayed unsettled after {max_rounds} "
            f"rounds (e.g. {example}: {len(clean(example))} of {min_clean} clean "
            f"measurements, {unreliable} too noisy): the device was busy (the probe network "
            f"ran more than {tolerance:.0%} slower than its fastest) or its measurements "
            "spread wider than latency.max_spread; measure on a quieter machine")
    result = {}
    for key in items:
        good = clean(key)
        result[key] = Measured(ms=good[0][0], spread=good[0][1],
                               agreement=good[1][0] / good[0][0] - 1.0 if len(good) > 1 else 0.0,
                               clean=len(good), attempts=len(seen[key]))
    return result, protocol, {"probe_ms": floor(), "probes": probes, **stats}
