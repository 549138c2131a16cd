"""The objectives a search minimises, and Evaluation: what scoring one subnet gave on each."""
from __future__ import annotations

import dataclasses
from typing import Any

from hwnas.costs import Costs
from hwnas.arch import Arch

#: Objectives a config may name; every one is minimised.
OBJECTIVES = ("error", "latency_ms", "params", "macs", "memory_bytes")


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The score of one subnet.

    Attributes:
        arch: the subnet.
        metrics: ``accuracy`` and ``error`` (= 1 - accuracy) on the validation split.
        costs: hardware costs.
    """

    arch: Arch
    metrics: dict[str, float]
    costs: Costs

    def objective(self, name: str) -> float:
        """The value of a named objective (minimised)."""
        if name == "error":
            return float(self.metrics["error"])
        if name in OBJECTIVES:
            return float(getattr(self.costs, name))
        raise ValueError(f"unknown objective {name!r}; known: {', '.join(OBJECTIVES)}")

    def to_dict(self) -> dict[str, Any]:
        return {"arch": dict(self.arch), "key": self.arch.key,
                "metrics": dict(self.metrics), "costs": self.costs.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        return cls(Arch(data["arch"]), dict(data["metrics"]), Costs.from_dict(data["costs"]))
