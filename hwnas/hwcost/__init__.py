"""Hardware costs: counters (params, MACs, memory) and measured latency.

Names load on first use, so that ``Costs`` (which evaluation records and
strategies carry) comes without importing nnabla.
"""
from __future__ import annotations

import importlib

# The cost record is a plain value (hwnas.costs); hwcost names it as the package that measures it.
from hwnas.costs import Costs, LatencyProtocol

_MODULES = {
    "_counters": ("BYTES_PER_ELEMENT", "count_graph_params", "count_macs", "count_params",
                  "param_bytes", "peak_activation_bytes"),
    "_profiler": ("BaseProfiler", "NnablaProfiler", "inference_output"),
    "_command": ("CommandProfiler", "parse_latency_output"),
    "_gated": ("Measured", "gate_tolerance", "measure_gated", "probe_network"),
    "_optimize": ("bn_statistics", "optimize_inference_graph"),
    "_nnp": ("INPUT", "NETWORK", "OUTPUT", "export_module_nnp", "optimize_into", "save_nnp"),
    "_calibration": ("Calibration", "sample_distinct"),
    "_lut": ("IncompatibleTableError", "LatencyTable"),
    "_latency": ("STATISTICS", "describe_device", "measure_graph_latency", "measure_latency"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


__all__ = ["Costs", "LatencyProtocol"]
__all__ += sorted(_WHERE)
