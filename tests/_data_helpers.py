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


# -- issue 17: the user's own data (folder, csv, npz), written from the embedded digits


def digits_uint8(limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The embedded digits as 8-bit images (N, 8, 8) and labels, sorted by class (the
    order a folder of class folders lists them in); the first ``limit`` of each class's
    share when ``limit`` is given."""
    from sklearn.datasets import load_digits  # slow to import; only these helpers need it

    bunch = load_digits()
    order = np.lexsort((np.arange(len(bunch.target)), bunch.target))
    if limit is not None:
        per_class = limit // 10
        order = np.concatenate([order[bunch.target[order] == c][:per_class] for c in range(10)])
    x = np.rint(bunch.images[order] * 255 / 16).astype(np.uint8)
    return x, bunch.target[order].astype(np.int64)


def write_folder(root, x: np.ndarray, y: np.ndarray, names=None) -> list:
    """One PNG per image under ``root/CLASS/NNNN.png`` (CLASS: ``names[label]`` or the
    label); returns the files in the folder's order."""
    from PIL import Image

    files = []
    for i, (image, label) in enumerate(zip(x, y)):
        folder = root / (str(label) if names is None else names[label])
        folder.mkdir(parents=True, exist_ok=True)
        files.append(folder / f"{i:04d}.png")
        Image.fromarray(image).save(files[-1])
    return files


def write_csv(path, files: list, y: np.ndarray) -> None:
    """A Neural Network Console dataset CSV listing ``files`` (relative to it) and labels."""
    rows = ["x:image,y:label"] + [f"{f.relative_to(path.parent).as_posix()},{label}"
                                  for f, label in zip(files, y)]
    path.write_text("\n".join(rows) + "\n")
