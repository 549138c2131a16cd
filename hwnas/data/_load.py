"""load_dataset: pool a source's examples, subsample, split, scale, resize and normalise."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np

from hwnas.data._dataset import SPLITS, Dataset, RawData, Split
from hwnas.data._memory import CHUNK_PIXELS
from hwnas.data._sources import DATASETS
from hwnas.errors import DataError

if TYPE_CHECKING:  # annotation only: the data package needs nothing of the config at run time
    from hwnas.config import DataConfig


def _chunk(x: np.ndarray) -> int:
    """How many images of ``x`` are converted, resized or summed at a time: 2048 of up to
    3 x 32 x 32 pixels, fewer of larger ones, so that the float temporaries stay within
    ``WORKING_BYTES``."""
    pixels = max(1, int(np.prod(x.shape[1:])))
    return max(1, min(2048, CHUNK_PIXELS // pixels))


def load_dataset(cfg: DataConfig, seed: int) -> Dataset:
    """Loads a dataset and splits it into train, val and test.

    Every example the registered source provides is pooled (for cifar10 and mnist, the
    official test files too); ``cfg.limit`` > 0 keeps a stratified subsample of
    that size (the whole pool when it is smaller); the pool is then split, stratified by class, into test
    (``cfg.test_fraction``), val (``cfg.val_fraction``) and train (the rest). A source
    that gives ``groups`` (copies of one image) is split by group: the fractions count
    groups and a group's examples share a split. A source that gives splits (``RawData.split``:
    the folder's ``train/``, ``val/``, ``test/``, separate CSVs) keeps them; a val or test
    split it does not give is drawn from its train examples the same way, and ``cfg.limit``
    subsamples each given split in proportion.
    Every class needs 3 examples where its splits are drawn (see ``check_classes``).
    Pixels are scaled to [0, 1], converted to ``cfg.channels`` (when given), resized to
    ``cfg.image_size`` squared (bilinear) and normalised per channel with the train split's mean and std.

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
    if cfg.channels is not None and x.shape[1] not in (1, 3):
        raise DataError(f"{where}: images have {x.shape[1]} channels; data.channels converts "
                        "only between 1 (grey) and 3 (RGB)")
    groups, given = raw.groups, raw.split
    for name, values in (("group", groups), ("split", given)):
        if values is not None and np.shape(values) != y.shape:
            raise DataError(f"{where}: expected one {name} per example, got {np.shape(values)}")
    check_classes(y, given, raw, where)
    rng = np.random.default_rng(seed)
    # The pool stays as the source gave it (uint8 for the user's images); ``pool`` indexes it.
    pool = np.arange(len(y))
    if 0 < cfg.limit < len(y):
        strata = y if given is None else given * raw.n_classes + y
        pool = np.sort(stratified_order(strata, rng)[:cfg.limit])
        y = y[pool]
        groups = None if groups is None else groups[pool]
        given = None if given is None else given[pool]
    fractions = {"test": cfg.test_fraction, "val": cfg.val_fraction}
    if given is None:
        index = _split(y, groups, fractions, rng, where)
    else:
        index = _given_split(y, groups, np.asarray(given), fractions, rng, where)
    images = {}
    for name, idx in index.items():
        idx.sort()
        images[name] = _to_unit_size(x, pool[idx], raw.peak, cfg.image_size, cfg.channels)
    mean, std = channel_stats(images["train"])
    shift = mean.astype(np.float32)[None, :, None, None]
    scale = std.astype(np.float32)[None, :, None, None]
    splits = {}
    for name, idx in index.items():
        images[name] -= shift
        images[name] /= scale
        splits[name] = Split(x=images[name], y=y[idx].astype(np.int32)[:, None])
    dataset = Dataset(name=cfg.name, train=splits["train"], val=splits["val"],
                      test=splits["test"], n_classes=raw.n_classes,
                      mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std))
    for note in raw.notes:  # only once the data loaded: bad input stays one line on stderr
        note_once(note)
    return dataset


_noted: set[str] = set()


def note_once(message: str) -> None:
    """Prints ``hwnas: note: message`` on stderr the first time in this process (every
    step of ``hwnas run`` loads the data again)."""
    if message not in _noted:
        _noted.add(message)
        print(f"hwnas: note: {message}", file=sys.stderr)


def check_classes(y: np.ndarray, given: np.ndarray | None, raw: RawData, where: str) -> None:
    """Refuses a class too small to split: one that a drawn split needs 3 examples of
    (one for each split), or one with given val or test examples but none to train on.

    Raises:
        DataError: naming the class (its folder name where the source has one).
    """
    def name(c: int) -> str:
        return repr(raw.class_names[c]) if raw.class_names else str(c)

    drawn = y if given is None else y[given == 0]
    if given is not None:
        trained = set(drawn.tolist())
        for code in (1, 2):
            orphans = sorted(set(y[given == code].tolist()) - trained)
            if orphans:
                raise DataError(f"{where}: class {name(orphans[0])} has {SPLITS[code]} examples "
                                "but none in train, so the network never learns it")
        if (given == 1).any() and (given == 2).any():
            return  # nothing is drawn: every split is given
    counts = np.bincount(drawn, minlength=raw.n_classes)
    small = np.flatnonzero((counts > 0) & (counts < 3))
    if len(small):
        c = int(small[0])
        raise DataError(f"{where}: class {name(c)} has {counts[c]} example(s), too few to split "
                        "into train, val and test (each class needs at least 3)")


def _given_split(y: np.ndarray, groups: np.ndarray | None, given: np.ndarray,
                 fractions: dict[str, float], rng: np.random.Generator,
                 where: str) -> dict[str, np.ndarray]:
    """Example indices of the splits the source gave; a missing val or test split is
    drawn (stratified, with its fraction) from the given train examples."""
    index = {name: np.flatnonzero(given == code) for code, name in enumerate(SPLITS)}
    if not len(index["train"]):
        raise DataError(f"{where}: no training examples (the train split is empty)")
    missing = {name: f for name, f in fractions.items() if not len(index[name])}
    if missing:
        train = index["train"]
        drawn = _split(y[train], None if groups is None else groups[train], missing, rng, where)
        index.update({name: train[idx] for name, idx in drawn.items()})
    return {name: index[name] for name in ("test", "val", "train")}


def _split(y: np.ndarray, groups: np.ndarray | None, fractions: dict[str, float],
           rng: np.random.Generator, where: str) -> dict[str, np.ndarray]:
    """Example indices of each split of ``fractions`` (in its order) and of train, the
    rest, stratified by class.

    With ``groups``, whole groups are dealt out (stratified by the class of their
    first member) and the fractions count groups, so no group straddles two splits.
    """
    if groups is None:
        units, labels = None, y
    else:
        units, first = np.unique(groups, return_index=True)
        labels = y[first]
    n = len(labels)
    counts = {name: max(1, round(n * f)) for name, f in fractions.items()}
    if n - sum(counts.values()) < 1:
        what = "examples" if groups is None else "groups"
        parts = ["train", *reversed(list(counts))]
        raise DataError(f"{where}: {n} {what} are too few to split into "
                        f"{', '.join(parts[:-1])} and {parts[-1]}")
    order = stratified_order(labels, rng)
    index, start = {}, 0
    for name, count in counts.items():
        index[name] = order[start:start + count]
        start += count
    index["train"] = order[start:]
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
    step = _chunk(x)
    for start in range(0, len(x), step):
        chunk = x[start:start + step].astype(np.float64)
        sums += chunk.sum(axis=(0, 2, 3))
        squares += np.square(chunk).sum(axis=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = sums / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    std[std < 1e-6] = 1.0
    return mean, std


def _to_unit_size(x: np.ndarray, idx: np.ndarray, peak: float, size: int,
                  channels: int | None) -> np.ndarray:
    """Images ``x[idx]`` as float32 in [0, 1], with ``channels`` channels (None: as they
    are) and resized to size x size; gathered a chunk at a time, so the pool is never copied."""
    c = x.shape[1] if channels is None else channels
    out = np.empty((len(idx), c, size, size), dtype=np.float32)
    step = max(1, min(_chunk(x), CHUNK_PIXELS // (c * size * size)))
    for start in range(0, len(idx), step):
        chunk = x[idx[start:start + step]].astype(np.float32)
        chunk /= np.float32(peak)
        chunk = convert_channels(chunk, c)
        if chunk.shape[2:] != (size, size):
            chunk = resize_bilinear(chunk, size)
        out[start:start + len(chunk)] = chunk
    return out


def convert_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """(N, C, H, W) images with ``channels`` channels: grey repeated to RGB, or RGB to
    grey with the ITU-R 601 luma weights that Pillow's ``convert("L")`` uses."""
    if x.shape[1] == channels:
        return x
    if channels == 3:
        return np.repeat(x, 3, axis=1)
    luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.einsum("nchw,c->nhw", x, luma)[:, None]


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
