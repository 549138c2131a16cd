"""Measured forward latency, with the protocol that produced each number.

Every timed call is read on two clocks: ``time.thread_time_ns`` (CPU time of
the calling thread, which is where nnabla's CPU backend does its work, so
other processes on the machine barely disturb it) and
``time.perf_counter_ns`` (wall time, which GPU contexts need, with a forward
that synchronizes). A measurement that fails in any way raises
:class:`~hwnas.errors.MeasurementError`; it never turns into 0 ms.
"""
from __future__ import annotations

import dataclasses
import math
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import nnabla as nn
import numpy as np

from hwnas.errors import MeasurementError
from hwnas.costs import LatencyProtocol

__all__ = ["STATISTICS", "describe_device", "measure_graph_latency", "measure_latency"]

#: Statistic name -> (clock, percentile of that clock's per-call times).
STATISTICS: dict[str, tuple[str, float]] = {
    "cpu_median": ("cpu", 50.0),
    "wall_p10": ("wall", 10.0),
    "wall_median": ("wall", 50.0),
}


@dataclasses.dataclass(frozen=True)
class _Attempt:
    value_ns: float
    spread: float


def describe_device(context: str = "cpu") -> str:
    """Describes the device a context runs on, for the record beside a latency.

    Args:
        context: nnabla extension context name, such as ``cpu`` or ``cudnn``.

    Returns:
        The CPU model name (from ``/proc/cpuinfo`` where there is one) for CPU
        contexts, the context and its device otherwise.
    """
    if not context.startswith("cpu"):
        return f"{context} device {nn.get_current_context().device_id}"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def _check_protocol(*, batch_size: int, warmup: int, repeats: int, statistic: str,
                    max_spread: float, retries: int, threads: int) -> None:
    if repeats < 1:
        raise MeasurementError(f"latency repeats must be at least 1, got {repeats}")
    if warmup < 0:
        raise MeasurementError(f"latency warmup must be at least 0, got {warmup}")
    if retries < 0:
        raise MeasurementError(f"latency retries must be at least 0, got {retries}")
    if batch_size < 1:
        raise MeasurementError(f"latency batch_size must be at least 1, got {batch_size}")
    if threads < 1:
        raise MeasurementError(f"latency threads must be at least 1, got {threads}")
    if statistic not in STATISTICS:
        raise MeasurementError(
            f"unknown latency statistic {statistic!r}; known: {', '.join(STATISTICS)}")
    if not (math.isfinite(max_spread) and max_spread > 0):
        raise MeasurementError(f"latency max_spread must be a positive number, got {max_spread}")


def _call(forward: Callable[[], None]) -> None:
    try:
        forward()
    except Exception as exc:  # any failure of the timed code is a failed measurement
        raise MeasurementError(
            f"forward pass failed during latency measurement: {type(exc).__name__}: {exc}"
        ) from exc


def _attempt(forward: Callable[[], None], repeats: int, statistic: str) -> _Attempt:
    """Times ``repeats`` calls and reduces them to one value and its spread."""
    cpu = np.empty(repeats)
    wall = np.empty(repeats)
    for i in range(repeats):
        cpu_start, wall_start = time.thread_time_ns(), time.perf_counter_ns()
        _call(forward)
        wall[i] = time.perf_counter_ns() - wall_start
        cpu[i] = time.thread_time_ns() - cpu_start
    clock, percentile = STATISTICS[statistic]
    series = cpu if clock == "cpu" else wall
    value = float(np.percentile(series, percentile))
    if not (math.isfinite(value) and value > 0):
        raise MeasurementError(
            f"latency statistic {statistic} is {value} ns over {repeats} repeats; "
            "the clock did not advance, so the forward pass cannot be timed")
    # The interquartile range: robust to the few calls a shared machine
    # interrupts, while a bimodal or drifting series still shows as wide.
    p25, p75 = np.percentile(series, [25.0, 75.0])
    return _Attempt(value_ns=value, spread=float((p75 - p25) / value))


def measure_latency(forward: Callable[[], None], *, context: str, device: str,
                    batch_size: int, warmup: int, repeats: int, statistic: str,
                    max_spread: float, retries: int,
                    threads: int = 1) -> tuple[float, LatencyProtocol]:
    """Measures the latency of ``forward`` under a recorded protocol.

    Runs ``warmup`` untimed calls, then attempts of ``repeats`` timed calls.
    An attempt whose spread, ``(p75 - p25) / statistic``, exceeds
    ``max_spread`` is repeated, up to ``retries`` more times; the attempt with
    the smallest spread is kept. If even that one is too wide it is returned
    with ``reliable=False``, and the caller decides what to do with it.

    Args:
        forward: one forward pass; it must finish its work before returning.
        context: nnabla extension context name, recorded.
        device: description of the device, recorded (see :func:`describe_device`).
        batch_size: batch size of the forward pass, recorded.
        warmup: untimed calls before the first attempt.
        repeats: timed calls per attempt.
        statistic: ``cpu_median`` (median thread CPU time), ``wall_p10``
            (10th percentile of wall time) or ``wall_median``.
        max_spread: largest relative spread of a reliable measurement.
        retries: further attempts when the spread is too wide.
        threads: CPU threads the forward uses, recorded; nnabla's CPU backend
            uses one.

    Returns:
        The latency in milliseconds and the protocol that measured it.

    Raises:
        MeasurementError: if the protocol is invalid, ``forward`` raises, or
            the statistic is not a positive finite number.
    """
    _check_protocol(batch_size=batch_size, warmup=warmup, repeats=repeats,
                    statistic=statistic, max_spread=max_spread, retries=retries,
                    threads=threads)
    for _ in range(warmup):
        _call(forward)
    best = _attempt(forward, repeats, statistic)
    for _ in range(retries):
        if best.spread <= max_spread:
            break
        attempt = _attempt(forward, repeats, statistic)
        if attempt.spread < best.spread:
            best = attempt
    protocol = LatencyProtocol(
        context=context, device=device, nnabla_version=nn.__version__, threads=threads,
        batch_size=batch_size, warmup=warmup, repeats=repeats, statistic=statistic,
        spread=best.spread, reliable=best.spread <= max_spread)
    return best.value_ns / 1e6, protocol


def measure_graph_latency(output: nn.Variable, inputs: Sequence[nn.Variable], *,
                          warmup: int, repeats: int, statistic: str, max_spread: float,
                          retries: int, threads: int = 1, context: str | None = None,
                          device: str | None = None, batch_size: int | None = None,
                          seed: int = 0) -> tuple[float, LatencyProtocol]:
    """Measures ``output.forward(clear_buffer=True)`` of a built graph.

    The inputs are filled once with standard-normal data, so every timed call
    computes the same thing.

    Args:
        output: the graph's output.
        inputs: the graph's data inputs.
        warmup: see :func:`measure_latency`.
        repeats: see :func:`measure_latency`.
        statistic: see :func:`measure_latency`.
        max_spread: see :func:`measure_latency`.
        retries: see :func:`measure_latency`.
        threads: see :func:`measure_latency`.
        context: recorded context name; defaults to the backend of nnabla's
            current context (``cpu:float`` -> ``cpu``).
        device: recorded device; defaults to :func:`describe_device`.
        batch_size: recorded batch size; defaults to the first input's
            leading dimension.
        seed: seed of the input data.

    Returns:
        The latency in milliseconds and the protocol that measured it.

    Raises:
        MeasurementError: as :func:`measure_latency`, or if ``inputs`` is empty.
    """
    if not inputs:
        raise MeasurementError("measure_graph_latency needs at least one input variable")
    if context is None:
        context = nn.get_current_context().backend[0].split(":")[0]
    if device is None:
        device = describe_device(context)
    if batch_size is None:
        shape = inputs[0].shape
        batch_size = shape[0] if shape else 1
    rng = np.random.default_rng(seed)
    for variable in inputs:
        variable.d = rng.standard_normal(variable.shape)

    def forward() -> None:
        output.forward(clear_buffer=True)

    return measure_latency(forward, context=context, device=device, batch_size=batch_size,
                           warmup=warmup, repeats=repeats, statistic=statistic,
                           max_spread=max_spread, retries=retries, threads=threads)
