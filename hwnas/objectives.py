"""The objectives a search minimises, and Evaluation: what scoring one subnet gave on each."""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

from hwnas.costs import Costs
from hwnas.arch import Arch
from hwnas.errors import MeasurementError

#: Objectives a config may name; every one is minimised.
OBJECTIVES = ("error", "latency_ms", "params", "macs", "memory_bytes")
#: The metrics that are fractions, in [0, 1].
FRACTIONS = ("accuracy", "error")
#: The costs that count something, >= 0 (latency must be > 0).
COUNTS = ("params", "macs", "memory_bytes", "latency_uncertainty_ms")


_RANGES = {"": lambda x: True, "> 0": lambda x: x > 0, ">= 0": lambda x: x >= 0,
           "in [0, 1]": lambda x: 0.0 <= x <= 1.0}


def _in_range(value: Any, wanted: str) -> bool:
    """Whether ``value`` is a real finite number (not a bool) within ``wanted`` (a _RANGES key)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return math.isfinite(value) and _RANGES[wanted](value)


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

    def problem(self) -> str | None:
        """What is wrong with the numbers, or None when every one is finite and in range.

        ``error`` and ``accuracy`` in [0, 1], every other metric finite,
        ``latency_ms`` > 0, the counts (``params``, ``macs``, ``memory_bytes``,
        ``latency_uncertainty_ms``) >= 0. The search loop asks before anything
        enters the study (``check``).
        """
        if "error" not in self.metrics:
            return f"{self.arch.key}: the evaluation has no error metric"
        numbers = [(name, value, "in [0, 1]" if name in FRACTIONS else "")
                   for name, value in self.metrics.items()]
        numbers.append(("latency_ms", self.costs.latency_ms, "> 0"))
        numbers.extend((name, getattr(self.costs, name), ">= 0") for name in COUNTS)
        for name, value, wanted in numbers:
            if not _in_range(value, wanted):
                return (f"{self.arch.key}: {name} is {value!r}, not a finite number "
                        f"{wanted}".rstrip())
        return None

    def check(self) -> Evaluation:
        """Returns the evaluation when its numbers are finite and in range (``problem``).

        Raises:
            MeasurementError: a number is not; the message names it and the subnet.
        """
        problem = self.problem()
        if problem is not None:
            raise MeasurementError(problem)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"arch": dict(self.arch), "key": self.arch.key,
                "metrics": dict(self.metrics), "costs": self.costs.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        return cls(Arch(data["arch"]), dict(data["metrics"]), Costs.from_dict(data["costs"]))
