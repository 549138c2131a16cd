"""Calibration of latency tables: the subnets to measure whole and the fit of their latencies."""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hwnas.arch import Arch

if TYPE_CHECKING:  # the supernet package is above hwcost
    from hwnas.supernet import BaseSearchSpace

__all__ = ["Calibration", "sample_distinct"]


def sample_distinct(space: BaseSearchSpace, n: int, rng: np.random.Generator,
                    exclude: Sequence[str] = ()) -> list[Arch]:
    """Up to ``n`` distinct random subnets whose keys are not in ``exclude``."""
    excluded = set(exclude)
    archs: dict[str, Arch] = {}
    available = space.size - len(excluded)
    for _ in range(100 * n + 1000):
        if len(archs) >= min(n, available):
            break
        arch = space.sample(rng)
        if arch.key not in excluded:
            archs.setdefault(arch.key, arch)
    return list(archs.values())


def _calibration_archs(space: BaseSearchSpace, n: int,
                       rng: np.random.Generator | None) -> list[Arch]:
    if n < 1:
        raise ValueError(f"calibration needs at least one subnet, got {n}")
    rng = np.random.default_rng() if rng is None else rng
    return sample_distinct(space, min(n, max(2, space.size // 2)), rng)


def _fit_ratio(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    return float(np.exp(np.mean(np.log(y / x)))), 0.0


def _fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``y ~ a x + b`` minimising relative errors; (0, 0) when the sums are all alike."""
    if len(x) < 3 or np.ptp(x) <= 1e-9 * np.max(x):
        return 0.0, 0.0
    design = np.stack([x, np.ones_like(x)], axis=1) / y[:, None]
    (a, b), *_ = np.linalg.lstsq(design, np.ones_like(y), rcond=None)
    return (float(a), float(b)) if math.isfinite(a) and math.isfinite(b) else (0.0, 0.0)


def _loo_error(x: np.ndarray, y: np.ndarray, fit) -> float:
    """Mean squared relative error of predicting each sample from a fit on the others."""
    if len(x) < 4:
        return 0.0
    errors = []
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        a, b = fit(x[keep], y[keep])
        errors.append(((a * x[i] + b) / y[i] - 1.0) ** 2)
    return float(np.mean(errors))


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Whole-subnet latency ~ ``a`` * table sum + ``b``, fitted on measured subnets.

    Attributes:
        a: the systematic ratio between whole subnets and the sum of their units.
        b: the per-network latency the units do not show, in ms.
        residual_std_ms: standard deviation of the fit's residuals.
        relative_std: standard deviation of the residuals relative to the
            prediction; a prediction's uncertainty is this times the prediction.
        samples: per subnet: ``key``, ``table_ms`` (its sum) and ``measured_ms``.

    Raises:
        ValueError: ``a`` is not positive, a number is not finite, a spread is
            negative or a sample is not positive.
    """

    a: float
    b: float
    residual_std_ms: float
    relative_std: float
    samples: tuple[dict[str, Any], ...]

    def __post_init__(self) -> None:
        if not (math.isfinite(self.a) and self.a > 0):
            raise ValueError(f"calibration.a = {self.a} is not a positive finite slope")
        if not math.isfinite(self.b):
            raise ValueError(f"calibration.b = {self.b} is not a finite intercept")
        for name in ("residual_std_ms", "relative_std"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"calibration.{name} = {value} is not a finite number >= 0")
        for i, sample in enumerate(self.samples):
            for name in ("table_ms", "measured_ms"):
                value = sample.get(name)
                if isinstance(value, bool) or not isinstance(value, (int, float)) \
                        or not (math.isfinite(value) and value > 0):
                    raise ValueError(f"calibration.samples[{i}].{name} = {value!r} is not a "
                                     "positive number")

    @property
    def n(self) -> int:
        return len(self.samples)

    def __str__(self) -> str:
        return (f"latency = {self.a:.4g} x table sum {'+' if self.b >= 0 else '-'} "
                f"{abs(self.b):.4g} ms, fitted on {self.n} subnets")

    def check(self, floor_ms: float) -> None:
        """Raises ValueError unless table sums from ``floor_ms`` up predict positive latencies.

        With a positive slope the smallest prediction is the one of the
        smallest table sum, so ``floor_ms`` (the fastest subnet's sum) decides.
        """
        low = self.a * floor_ms + self.b
        if not (math.isfinite(low) and low > 0):
            raise ValueError(f"the calibration ({self}) predicts {low:.4g} ms for the fastest "
                             f"subnet of the space (table sum {floor_ms:.4g} ms)")

    @classmethod
    def fit(cls, samples: Sequence[dict[str, Any]], *,
            floor_ms: float | None = None) -> Calibration:
        """Least squares on relative errors, since every subnet should be predicted equally well.

        Only the ratio is fitted (``b`` = 0) when the line would not rise or
        would go below zero over the samples or at ``floor_ms`` (the smallest
        table sum of the space: no subnet may be predicted at or below zero),
        or when it predicts the samples left out one at a time worse than the
        ratio does: a few noisy subnets of a small space cannot tell an offset.

        Raises:
            ValueError: a sample is not positive, or even the ratio is not a
                positive finite number.
        """
        x = np.array([s["table_ms"] for s in samples], dtype=float)
        y = np.array([s["measured_ms"] for s in samples], dtype=float)
        if len(x) < 1 or not np.all(np.isfinite(x) & np.isfinite(y)) \
                or np.any(x <= 0) or np.any(y <= 0):
            raise ValueError("calibration needs positive table sums and measurements")
        lowest = float(np.min(x)) if floor_ms is None else min(floor_ms, float(np.min(x)))
        with np.errstate(all="ignore"):  # a degenerate fit (0, inf) is refused below
            a, b = _fit_line(x, y)
            if not (a > 0 and a * lowest + b > 0) or \
                    _loo_error(x, y, _fit_ratio) <= _loo_error(x, y, _fit_line):
                a, b = _fit_ratio(x, y)
            fitted = a * x + b
            dof = max(len(x) - (1 if b == 0.0 else 2), 1)
            residual = float(np.sqrt(np.sum((y - fitted) ** 2) / dof))
            relative = float(np.sqrt(np.sum(((y - fitted) / fitted) ** 2) / dof))
        calibration = cls(a=float(a), b=float(b), residual_std_ms=residual,
                          relative_std=relative, samples=tuple(dict(s) for s in samples))
        calibration.check(lowest)
        return calibration

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "residual_std_ms": self.residual_std_ms,
                "relative_std": self.relative_std, "n": self.n, "samples": list(self.samples)}
