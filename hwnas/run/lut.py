"""Run-level latency profiling: the run's latency table (lut.json) and how well it predicts."""
from __future__ import annotations

import math
import time
from typing import Any, Protocol

import numpy as np
from scipy.stats import spearmanr

from hwnas.config import LatencyConfig
from hwnas.errors import HwnasError, RunDirError
from hwnas.hwcost import (BaseProfiler, CommandProfiler, IncompatibleTableError, LatencyTable,
                          NnablaProfiler, gate_tolerance, measure_gated, sample_distinct)
from hwnas.io import atomic_write, atomic_write_json
from hwnas.run.files import RunDir
from hwnas.supernet import BaseSearchSpace, Supernet



class Trained(Protocol):
    """What the table is measured over: a space and its supernet (a run's Workspace)."""

    space: BaseSearchSpace
    supernet: Supernet


#: Subnets a check lists as its worst predictions.
WORST = 5


def make_profiler(config: LatencyConfig) -> BaseProfiler:
    """The profiler of a latency protocol: the user's command when set, else this process."""
    if config.command:
        return CommandProfiler(config)
    return NnablaProfiler(config)


def load_table(run: RunDir, space: BaseSearchSpace, profiler: BaseProfiler) -> LatencyTable:
    """The run's calibrated table, for a step that must not rebuild it (such as the search).

    Raises:
        HwnasError: there is none, it is damaged, uncalibrated, or measured
            differently from ``profiler``; the message says to run ``hwnas lut``.
    """
    if not (run / RunDir.LUT).exists():
        raise RunDirError(f"{run.path} has no latency table; run 'hwnas lut {run.path}'")
    try:
        return _fitting_table(run, space, profiler)
    except (RunDirError, IncompatibleTableError) as exc:
        raise type(exc)(f"{exc}; run 'hwnas lut {run.path}' to rebuild it") from None


def _fitting_table(run: RunDir, space: BaseSearchSpace, profiler: BaseProfiler, *,
                   speed: bool = False) -> LatencyTable:
    # A run's table is rebuilt only on request or when it was measured
    # differently (device, protocol, units): the trials already in the study
    # were predicted with it, so the device's speed of the moment must not
    # swap it silently ('hwnas lut' checks that).
    table = LatencyTable.load(run / RunDir.LUT, space)
    if table.calibration is None:
        raise IncompatibleTableError("the latency table is not calibrated")
    table.check_compatible(profiler, space, speed=speed)
    return table


def ensure_table(run: RunDir, ws: Trained, *, progress: bool = True, rebuild: bool = False,
                 speed: bool = False, repair: bool = False) -> LatencyTable:
    """The run's lut.json when it fits this device and protocol; else builds, calibrates, saves it.

    Prints why an existing table is rebuilt. ``speed`` also rebuilds a table
    measured while the device was busier than now, and ``repair`` one that is
    damaged or holds impossible values (``hwnas lut`` asks for both); without
    ``repair`` such a table is refused, since the study's trials may have
    been predicted with it.

    Raises:
        RunDirError: lut.json is damaged and ``repair`` is off; the message
            says to run ``hwnas lut``.
    """
    cfg = run.config.latency
    profiler = make_profiler(cfg)
    path = run / RunDir.LUT
    if path.exists() and not rebuild:
        try:
            return _fitting_table(run, ws.space, profiler, speed=speed)
        except RunDirError as exc:
            if not repair:
                raise RunDirError(f"{exc}; run 'hwnas lut {run.path}' to rebuild it") from None
            print(f"rebuilding {path}: {exc}")
        except IncompatibleTableError as exc:
            print(f"rebuilding {path}: {exc}")
    table = LatencyTable.build(ws.space, profiler, supernet=ws.supernet,
                               calibration_samples=cfg.calibration_samples,
                               rng=np.random.default_rng(run.config.seed), progress=progress)
    table.save(path)
    return table


def check(table: LatencyTable, space: BaseSearchSpace, supernet: Supernet,
          profiler: BaseProfiler, n: int, rng: np.random.Generator, *,
          progress: bool = True) -> dict[str, Any]:
    """Measures ``n`` random subnets whole (none used in calibration) and compares predictions.

    Returns:
        ``n``, ``within_10pct`` (share predicted within 10 % of the
        measurement), ``spearman``, ``rmse_ms``, ``mape``, ``bias`` (mean
        relative error), ``within_2sigma`` (share inside twice the predicted
        uncertainty), the ``worst`` predictions, every sample, and the probe's
        fastest latency now and when the table was built.
    """
    if n < 1:
        raise ValueError(f"a check needs at least one subnet, got {n}")
    used = [s["key"] for s in table.calibration.samples] if table.calibration else []
    archs = sample_distinct(space, n, rng, exclude=used)
    if not archs:
        raise HwnasError(f"the space's {space.size} subnets were all used to calibrate the "
                         "table; none is left to check it on")
    start = time.perf_counter()
    items = {a.key: (supernet.extract(a), tuple(space.input_shape)) for a in archs}
    measured, _, stats = measure_gated(profiler, items, reference_ms=table.probe_ms,
                                       progress=progress, desc="check")
    samples = []
    for arch in archs:
        predicted, sigma = table.predict(arch)
        samples.append({"key": arch.key, "predicted_ms": predicted, "uncertainty_ms": sigma,
                        "measured_ms": measured[arch.key].ms})
    pred = np.array([s["predicted_ms"] for s in samples])
    meas = np.array([s["measured_ms"] for s in samples])
    sigma = np.array([s["uncertainty_ms"] for s in samples])
    error = (pred - meas) / meas
    for s, e in zip(samples, error):
        s["error_pct"] = 100.0 * float(e)
    rho = spearmanr(pred, meas)[0] if len(samples) > 2 else math.nan
    worst = sorted(samples, key=lambda s: -abs(s["error_pct"]))[:WORST]
    faster = (table.probe_ms or 0.0) / stats["probe_ms"] - 1.0
    return {
        "n": len(samples), "within_10pct": float(np.mean(np.abs(error) <= 0.10)),
        "spearman": None if not math.isfinite(rho) else float(rho),
        "rmse_ms": float(np.sqrt(np.mean((pred - meas) ** 2))),
        "mape": float(np.mean(np.abs(error))), "bias": float(np.mean(error)),
        "within_2sigma": float(np.mean(np.abs(pred - meas) <= 2 * sigma)),
        "worst": [{k: s[k] for k in ("key", "predicted_ms", "measured_ms", "error_pct")}
                  for s in worst],
        "device": table.device, "calibration": {k: v for k, v in
                                                table.calibration.to_dict().items()
                                                if k != "samples"},
        "probe_ms": stats["probe_ms"],
        "table_probe_ms": table.probe_ms,
        "measurement": stats,
        "warning": (f"the device ran {faster:.0%} faster during this check than while the "
                    "table was measured: rebuild it ('hwnas lut --rebuild')"
                    if faster > gate_tolerance() else None),
        "seconds": time.perf_counter() - start, "samples": samples,
    }


def plot_check(report: dict[str, Any], path: str) -> None:
    """Scatter of predicted against measured latency, with y = x and +-10 % lines; atomic."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meas = np.array([s["measured_ms"] for s in report["samples"]])
    pred = np.array([s["predicted_ms"] for s in report["samples"]])
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(meas, pred, s=14, alpha=0.7)
    lo, hi = 0.9 * min(meas.min(), pred.min()), 1.1 * max(meas.max(), pred.max())
    line = np.array([lo, hi])
    ax.plot(line, line, color="black", lw=1, label="predicted = measured")
    ax.plot(line, 1.1 * line, color="grey", lw=1, ls="--", label="+-10 %")
    ax.plot(line, 0.9 * line, color="grey", lw=1, ls="--")
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="measured latency (ms)",
           ylabel="predicted latency (ms)",
           title=f"{report['n']} subnets: {report['within_10pct']:.0%} within 10 %, "
                 f"Spearman {report['spearman'] or float('nan'):.3f}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))
    finally:
        plt.close(fig)


def profile(run: RunDir, ws: Trained, n: int, *, progress: bool = True) -> dict[str, Any]:
    """Checks the run's table on ``n`` subnets measured whole; writes profile.json and .png."""
    table = ensure_table(run, ws, progress=progress, repair=True)
    profiler = make_profiler(run.config.latency)
    rng = np.random.default_rng(run.config.seed + 1)
    report = check(table, ws.space, ws.supernet, profiler, n, rng, progress=progress)
    atomic_write_json(run / RunDir.PROFILE, report)
    plot_check(report, run / RunDir.PROFILE_PLOT)
    return report
