"""load_dataset: pool a source's examples, subsample, split, scale, resize and normalise."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hwnas.data._dataset import Dataset, Split
from hwnas.data._sources import DATASETS
from hwnas.errors import DataError

if TYPE_CHECKING:  # annotation only: the data package needs nothing of the config at run time
    from hwnas.config import DataConfig

# Images are converted and resized this many at a time, to bound the float temporaries.
_CHUNK = 2048


def load_dataset(cfg: DataConfig, seed: int) -> Dataset:
    """Loads a dataset and splits it into train, val and test.

    Every example the registered source provides is pooled (for cifar10 and mnist, the
    official test files too); ``cfg.limit`` > 0 keeps a stratified subsample of
    that size (the whole pool when it is smaller); the pool is then split, stratified by class, into test
    (``cfg.test_fraction``), val (``cfg.val_fraction``) and train (the rest). A source
    that gives ``groups`` (copies of one image) is split by group: the fractions count
    groups and a group's examples share a split.
    Pixels are scaled to [0, 1], resized to ``cfg.image_size`` squared
    (bilinear) and normalised per channel with the train split's mean and std.

    Args:
        cfg: which dataset, where it lives and how to split it.
        seed: fixes the subsample and the split; the same seed gives the same splits.

    Returns:
        The dataset, splits in pool order.

    Raises:
        DataError: the source is not registered (see ``DATASETS``), its files are
            missing or malformed, or it has too few examples to split.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    try:
        source = DATASETS.resolve(cfg.name)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    if source.needs_path and not cfg.path:
        raise DataError(f"dataset {cfg.name!r} needs the path of your local copy")
    raw = source.load(cfg)
    where = cfg.path or cfg.name
    x, y = raw.x, np.asarray(raw.y).astype(np.int64)
    if x.ndim != 4 or len(x) != len(y):
        raise DataError(f"{where}: expected images of shape (N, C, H, W) and N labels, "
                        f"got {x.shape} and {len(y)}")
    groups = raw.groups
    if groups is not None and np.shape(groups) != y.shape:
        raise DataError(f"{where}: expected one group per example, got {np.shape(groups)}")
    rng = np.random.default_rng(seed)
    if 0 < cfg.limit < len(y):
        keep = np.sort(stratified_order(y, rng)[:cfg.limit])
        x, y = x[keep], y[keep]
        groups = None if groups is None else groups[keep]
    index = _split(y, groups, cfg, rng, where)
    images = {}
    for name, idx in index.items():
        idx.sort()
        images[name] = _to_unit_size(x[idx], raw.peak, cfg.image_size)
    mean, std = channel_stats(images["train"])
    shift = mean.astype(np.float32)[None, :, None, None]
    scale = std.astype(np.float32)[None, :, None, None]
    splits = {}
    for name, idx in index.items():
        images[name] -= shift
        images[name] /= scale
        splits[name] = Split(x=images[name], y=y[idx].astype(np.int32)[:, None])
    return Dataset(name=cfg.name, train=splits["train"], val=splits["val"], test=splits["test"],
                   n_classes=raw.n_classes, mean=tuple(float(m) for m in mean),
                   std=tuple(float(s) for s in std))


def _split(y: np.ndarray, groups: np.ndarray | None, cfg: DataConfig,
           rng: np.random.Generator, where: str) -> dict[str, np.ndarray]:
    """Example indices of test, val and train, stratified by class.

    With ``groups``, whole groups are dealt out (stratified by the class of their
    first member) and the fractions count groups, so no group straddles two splits.
    """
    if groups is None:
        units, labels = None, y
    else:
        units, first = np.unique(groups, return_index=True)
        labels = y[first]
    n = len(labels)
    n_test = max(1, round(n * cfg.test_fraction))
    n_val = max(1, round(n * cfg.val_fraction))
    if n - n_test - n_val < 1:
        what = "examples" if groups is None else "groups"
        raise DataError(f"{where}: {n} {what} are too few to split into train, val and test")
    order = stratified_order(labels, rng)
    index = {"test": order[:n_test], "val": order[n_test:n_test + n_val],
             "train": order[n_test + n_val:]}
    if groups is not None:
        index = {name: np.flatnonzero(np.isin(groups, units[chosen]))
                 for name, chosen in index.items()}
    return index


def stratified_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Orders the examples randomly so that every prefix is stratified by class.

    Each class's members, in random order, are spread evenly over [0, 1) with a
    random offset; sorting by that position interleaves the classes, so the
    first k examples hold each class within one of its share of k.

    Args:
        y: class labels of shape (N,).
        rng: fixes the order.

    Returns:
        A permutation of ``range(N)``.
    """
    perm = rng.permutation(len(y))
    position = np.empty(len(y), dtype=np.float64)
    labels = y[perm]
    for c in np.unique(y):
        members = perm[labels == c]
        position[members] = (np.arange(len(members)) + rng.random()) / len(members)
    return perm[np.argsort(position[perm], kind="stable")]


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of (N, C, H, W) images, accumulated in float64.

    A constant channel gets std 1, so normalising it cannot divide by zero.
    """
    sums = np.zeros(x.shape[1])
    squares = np.zeros(x.shape[1])
    for start in range(0, len(x), _CHUNK):
        chunk = x[start:start + _CHUNK].astype(np.float64)
        sums += chunk.sum(axis=(0, 2, 3))
        squares += np.square(chunk).sum(axis=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = sums / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    std[std < 1e-6] = 1.0
    return mean, std


def _to_unit_size(x: np.ndarray, peak: float, size: int) -> np.ndarray:
    """Scales pixels to [0, 1] float32 and resizes the images to size x size."""
    if x.shape[2:] == (size, size):
        out = x.astype(np.float32)
        out /= np.float32(peak)
        return out
    out = np.empty((len(x), x.shape[1], size, size), dtype=np.float32)
    for start in range(0, len(x), _CHUNK):
        chunk = x[start:start + _CHUNK].astype(np.float32) / np.float32(peak)
        out[start:start + _CHUNK] = resize_bilinear(chunk, size)
    return out


def resize_bilinear(x: np.ndarray, size: int) -> np.ndarray:
    """Resizes (N, C, H, W) images to (N, C, size, size) by bilinear interpolation.

    Pixel centres are aligned as in PIL and OpenCV (half-pixel offsets, edges
    replicated); downsampling does not low-pass first, so it suits the modest
    factors used here.
    """
    rows_lo, rows_hi, rows_w = _axis_weights(x.shape[2], size)
    cols_lo, cols_hi, cols_w = _axis_weights(x.shape[3], size)
    x = x[:, :, rows_lo, :] * (1 - rows_w)[:, None] + x[:, :, rows_hi, :] * rows_w[:, None]
    return x[..., cols_lo] * (1 - cols_w) + x[..., cols_hi] * cols_w


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    source = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    lo = np.floor(source).astype(np.intp)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (source - lo).astype(np.float32)
