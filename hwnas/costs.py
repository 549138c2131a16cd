"""Costs of one subnet on one device, with the protocol that measured them."""
from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class LatencyProtocol:
    """How a latency was measured; stored beside every number.

    Attributes:
        context: nnabla extension context name (``cpu``, ``cudnn``).
        device: human-readable description of the device.
        nnabla_version: the nnabla version that ran the graph.
        threads: CPU threads nnabla used.
        batch_size: batch size of the timed forward pass.
        warmup: untimed forward passes before timing.
        repeats: timed forward passes.
        statistic: how the repeats became one number.
        spread: relative spread of the repeats, (p75 - p25) / statistic.
        reliable: whether the spread stayed within the protocol's limit.
    """

    context: str
    device: str
    nnabla_version: str
    threads: int
    batch_size: int
    warmup: int
    repeats: int
    statistic: str
    spread: float
    reliable: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Costs:
    """Hardware demands of one subnet.

    Attributes:
        latency_ms: measured forward latency in milliseconds.
        params: number of parameters.
        macs: multiply-accumulate operations of one forward pass at batch 1.
        memory_bytes: parameter bytes plus peak activation bytes at batch 1.
        protocol: how ``latency_ms`` was measured (for a prediction: how the
            table it comes from was measured).
        latency_source: ``measured`` (the whole subnet was timed) or
            ``predicted`` (from a calibrated latency table).
        latency_uncertainty_ms: one standard deviation of a prediction's error
            (0 for a measurement).
    """

    latency_ms: float
    params: int
    macs: int
    memory_bytes: int
    protocol: LatencyProtocol
    latency_source: str = "measured"
    latency_uncertainty_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Costs:
        fields = dict(data)
        fields["protocol"] = LatencyProtocol(**fields["protocol"])
        return cls(**fields)
