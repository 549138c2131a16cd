"""Hardware costs: counters (params, MACs, memory) and measured latency."""
from __future__ import annotations

from hwnas.hwcost._costs import Costs, LatencyProtocol

__all__ = ["Costs", "LatencyProtocol"]
