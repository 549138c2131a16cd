"""How far one ranking of subnets predicts another: rank correlations with bootstrap
intervals, top-k overlap, the regret of a selection, seed noise, and their plot.

Pure functions of numbers (higher is better: accuracies), used by ``hwnas rank-check`` to
compare the supernet's estimates with accuracies of the same subnets trained alone.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np
from scipy import stats

from hwnas.io import atomic_write

#: The bootstrap of ``hwnas rank-check``: resamples, their seed, the interval's level.
RESAMPLES, BOOTSTRAP_SEED, LEVEL = 2000, 0, 0.95

Statistic = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _pair(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"two equally long vectors needed, got shapes {x.shape} and {y.shape}")
    return x, y


def tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's τ-b along the last axis (rows: resamples): (C − D) / sqrt((n0 − n1)(n0 − n2)),
    pairs tied in x (n1) or y (n2) left out of either side as scipy does; NaN where either
    row is constant."""
    sx = np.sign(x[..., :, None] - x[..., None, :])
    sy = np.sign(y[..., :, None] - y[..., None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sx * sy).sum((-2, -1)) / np.sqrt(np.abs(sx).sum((-2, -1))
                                                 * np.abs(sy).sum((-2, -1)))


def rho(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's ρ along the last axis: Pearson's r of the average ranks; NaN where either
    row is constant."""
    rx = stats.rankdata(x, axis=-1)
    ry = stats.rankdata(y, axis=-1)
    rx -= rx.mean(-1, keepdims=True)
    ry -= ry.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(-1) / np.sqrt((rx * rx).sum(-1) * (ry * ry).sum(-1))


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's τ-b of two vectors (ties as scipy's ``kendalltau``); NaN when one is constant."""
    return float(tau_b(*_pair(x, y)))


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ of two vectors; NaN when one is constant."""
    return float(rho(*_pair(x, y)))


def bootstrap_interval(statistic: Statistic, x: Sequence[float], y: Sequence[float], *,
                       resamples: int = RESAMPLES, level: float = LEVEL,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | None:
    """The percentile bootstrap interval of ``statistic`` (``tau_b`` or ``rho``: computed
    along the last axis), resampling pairs (subnets) with replacement; resamples where it
    is undefined (NaN: all one subnet, say) are left out.

    Returns:
        (low, high); None when no resample gives a number.
    """
    x, y = _pair(x, y)
    if not 0.0 < level < 1.0 or resamples < 1:
        raise ValueError(f"level in (0, 1) and resamples >= 1 needed, got {level}, {resamples}")
    picks = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    values = np.concatenate([statistic(x[block], y[block])
                             for block in np.array_split(picks, max(1, resamples // 250))])
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def top(values: Sequence[float], k: int) -> list[int]:
    """Indices of the ``k`` highest values; of equal values, the one listed first wins."""
    order = sorted(range(len(values)), key=lambda i: (-float(values[i]), i))
    return order[:k]


def top_k_overlap(estimate: Sequence[float], actual: Sequence[float], k: int) -> float:
    """The share of the estimate's top ``k`` that is also in the actual top ``k``."""
    if not 1 <= k <= len(estimate) or len(estimate) != len(actual):
        raise ValueError(f"k in 1..{len(estimate)} and equally long vectors needed, got k={k}")
    return len(set(top(estimate, k)) & set(top(actual, k))) / k


def regret(actual: Sequence[float], chosen: int) -> float:
    """How much better the best of ``actual`` is than the chosen one's (>= 0)."""
    return float(max(actual) - actual[chosen])


def pooled_sd(replicates: Sequence[Sequence[float]]) -> float | None:
    """The pooled standard deviation of groups of repeated measurements (each subnet's
    accuracies over seeds): sqrt(Σ (n_i − 1) s_i² / Σ (n_i − 1)); None without repeats."""
    dof = sum(len(r) - 1 for r in replicates if len(r) > 1)
    if dof == 0:
        return None
    squares = sum(float(np.sum((np.asarray(r, float) - np.mean(r)) ** 2))
                  for r in replicates if len(r) > 1)
    return math.sqrt(squares / dof)


def seed_ceiling(actual: Sequence[float], sd: float | None, *, draws: int = RESAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> float | None:
    """About the Kendall τ that a second training of the same subnets would reach against
    ``actual``: the mean τ of ``actual`` against ``actual`` moved by independent normal
    noise of sd ``sd * sqrt(2)`` (the difference of two trainings with seed noise ``sd``),
    over ``draws`` draws. No estimate ranks the subnets much better than this; a model,
    taking ``actual`` for the truth. None when ``sd`` is unknown or not positive."""
    if sd is None or not sd > 0:
        return None
    actual = np.asarray(actual, float)
    noise = np.random.default_rng(seed).normal(0.0, sd * math.sqrt(2), (draws, len(actual)))
    values = np.concatenate([tau_b(actual, actual + block)
                             for block in np.array_split(noise, max(1, draws // 250))])
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else None


def trust_gap(estimate: Sequence[float], actual: Sequence[float]) -> float:
    """The largest difference of estimates between two subnets that training put the other
    way round (0 when none was): estimate differences above it all kept their order."""
    gaps = [abs(estimate[i] - estimate[j]) for i, j in combinations(range(len(estimate)), 2)
            if (estimate[i] - estimate[j]) * (actual[i] - actual[j]) < 0]
    return float(max(gaps, default=0.0))


def stratified(values: Sequence[float], n: int, keep: int | None = None) -> list[int]:
    """``n`` indices spread evenly over the ranks of ``values`` (the highest and the lowest
    included), with ``keep`` in place of the pick nearest to it in rank; highest first.

    Raises:
        ValueError: ``n`` is not in 2..len(values).
    """
    if not 2 <= n <= len(values):
        raise ValueError(f"n must be in 2..{len(values)}, got {n}")
    order = top(values, len(values))
    ranks = [int(r) for r in np.round(np.linspace(0, len(values) - 1, n))]
    if keep is not None and keep not in [order[r] for r in ranks]:
        at = order.index(keep)
        ranks[min(range(n), key=lambda j: (abs(ranks[j] - at), j))] = at
    return [order[r] for r in sorted(ranks)]


#: Below this many subnets a bootstrap interval of τ says little: the verdict says so.
FEW = 6


def verdict(tau: float, interval: tuple[float, float] | None, gap: float,
            noise: float | None, n: int, ceiling: float | None = None) -> str:
    """One honest line on whether the estimates rank the ``n`` subnets, and how far to
    trust them (``ceiling``: ``seed_ceiling``, what no estimate can much exceed)."""
    if interval is None or not math.isfinite(tau):
        return "cannot tell: the estimates or the stand-alone accuracies are all equal"
    low, high = interval
    where = f"Kendall τ {tau:.2f}, 95 % interval {low:.2f} to {high:.2f}"
    if n < FEW:
        return f"too few subnets to tell ({n}; {where}): check {FEW} or more"
    if low <= 0.0:
        return f"does not rank: {where} includes 0"
    line = (f"ranks ({where}): estimate differences above {100 * gap:.2f} points kept their "
            "order after training" if gap > 0 else
            f"ranks ({where}): no pair changed order after training")
    if noise is not None:
        line += f"; stand-alone differences below {100 * noise:.2f} points are seed noise"
    if ceiling is not None:
        line += (f"; a second training of these subnets would rank them at about τ "
                 f"{ceiling:.2f}")
    return line


def plot_rank_check(estimate: Sequence[float], val: Sequence[float], test: Sequence[float],
                    path: str | os.PathLike[str], *, val_sd: Sequence[float] | None = None,
                    chosen: int | None = None, title: str = "") -> None:
    """Stand-alone accuracy against the estimate, one point per subnet (error bars: the sd
    over seeds; the chosen subnet ringed), saved as a PNG atomically."""
    # Imported here so that commands which never plot do not pay for matplotlib.
    import seaborn as sns
    from matplotlib.figure import Figure

    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(6.4, 4.8), layout="constrained")
        ax = fig.subplots()
        ax.errorbar(estimate, val, yerr=val_sd, fmt="o", color="tab:blue", capsize=3,
                    label="validation" + (" (mean ± sd over seeds)" if val_sd is not None
                                          else ""))
        ax.plot(estimate, test, "s", color="tab:orange", markerfacecolor="none",
                label="test" + (" (mean over seeds)" if val_sd is not None else ""))
        if chosen is not None:
            ax.plot([estimate[chosen]], [val[chosen]], "o", markersize=16, color="tab:red",
                    markerfacecolor="none", markeredgewidth=2, label="selected subnet")
        ax.set_xlabel("Estimate: validation accuracy with inherited supernet weights")
        ax.set_ylabel("Accuracy trained alone")
        ax.set_title(title, fontsize="medium")
        ax.legend(loc="best", fontsize="small")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
