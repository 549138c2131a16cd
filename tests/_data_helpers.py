"""Helpers shared by the data test files: random images and labels, and checks on loaded datasets."""
from __future__ import annotations

import collections

import numpy as np

from hwnas.config import DataConfig
from hwnas.data import Dataset, Split


def _images(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 256, size=(n,) + shape, dtype=np.uint8)


def _labels(rng: np.random.Generator, n: int) -> np.ndarray:
    y = np.arange(n) % 10
    rng.shuffle(y)
    return y


def _splits(ds: Dataset) -> list[Split]:
    return [ds.train, ds.val, ds.test]


def _recover(ds: Dataset, peak: float) -> list[tuple[bytes, int]]:
    """Undoes the normalisation and scaling: each example as (raw pixel bytes, label)."""
    mean = np.array(ds.mean, dtype=np.float64)[None, :, None, None]
    std = np.array(ds.std, dtype=np.float64)[None, :, None, None]
    out = []
    for split in _splits(ds):
        pixels = np.rint((split.x.astype(np.float64) * std + mean) * peak).astype(np.uint8)
        out += [(p.tobytes(), int(label)) for p, label in zip(pixels, split.y[:, 0])]
    return out


def _pool(x: np.ndarray, y: np.ndarray) -> collections.Counter:
    return collections.Counter((img.tobytes(), int(label)) for img, label in zip(x, y))


def _assert_same(a: Dataset, b: Dataset) -> None:
    for sa, sb in zip(_splits(a), _splits(b)):
        np.testing.assert_array_equal(sa.x, sb.x)
        np.testing.assert_array_equal(sa.y, sb.y)
    assert a.mean == b.mean and a.std == b.std


def _cfg(**kwargs) -> DataConfig:
    return DataConfig(**kwargs)
