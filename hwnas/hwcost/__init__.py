"""Hardware costs: counters (params, MACs, memory) and measured latency."""
from __future__ import annotations

from hwnas.hwcost._costs import Costs, LatencyProtocol
from hwnas.hwcost._counters import (
    BYTES_PER_ELEMENT,
    count_graph_params,
    count_macs,
    count_params,
    param_bytes,
    peak_activation_bytes,
)
from hwnas.hwcost._profiler import BaseProfiler, NnablaProfiler, inference_output
from hwnas.hwcost._command import CommandProfiler, parse_latency_output
from hwnas.hwcost._gated import Measured, measure_gated, probe_network
from hwnas.hwcost._lut import Calibration, IncompatibleTableError, LatencyTable, sample_distinct
from hwnas.hwcost._latency import (
    STATISTICS,
    describe_device,
    measure_graph_latency,
    measure_latency,
)

__all__ = [
    "Calibration",
    "IncompatibleTableError",
    "LatencyTable",
    "Measured",
    "measure_gated",
    "probe_network",
    "sample_distinct",
    "BYTES_PER_ELEMENT",
    "BaseProfiler",
    "CommandProfiler",
    "NnablaProfiler",
    "inference_output",
    "Costs",
    "LatencyProtocol",
    "STATISTICS",
    "count_graph_params",
    "count_macs",
    "count_params",
    "describe_device",
    "measure_graph_latency",
    "measure_latency",
    "param_bytes",
    "parse_latency_output",
    "peak_activation_bytes",
]
