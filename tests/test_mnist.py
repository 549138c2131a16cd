"""Tests for hwnas.data's MNIST loader: raw and gzipped IDX files, optional t10k, malformed input."""
from __future__ import annotations

import collections
import gzip
from pathlib import Path

import numpy as np
import pytest
from _data_helpers import _assert_same, _cfg, _images, _labels, _pool, _recover, _splits

from hwnas.data import load_dataset
from hwnas.errors import DataError


def _write_idx(path: Path, array: np.ndarray, magic: int, gz: bool = False) -> Path:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def _mnist_parts() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    train = (_images(rng, 40, (28, 28)), _labels(rng, 40))
    train[0][0] = 0
    train[0][0, 5, 7] = 255
    train[1][0] = 9
    return {"train": train, "t10k": (_images(rng, 20, (28, 28)), _labels(rng, 20))}


def _write_mnist(folder: Path, parts: dict[str, tuple[np.ndarray, np.ndarray]], gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for part, (x, y) in parts.items():
        _write_idx(folder / f"{part}-images-idx3-ubyte", x, 0x803, gz)
        _write_idx(folder / f"{part}-labels-idx1-ubyte", y, 0x801, gz)
    return folder


# --------------------------------------------------------------------------- MNIST


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_round_trips_every_image_and_label(tmp_path, gz):
    parts = _mnist_parts()
    folder = _write_mnist(tmp_path / "mnist", parts, gz=gz)
    ds = load_dataset(_cfg(name="mnist", path=str(folder), image_size=28), seed=0)

    assert ds.input_shape == (1, 28, 28) and ds.n_classes == 10
    x = np.concatenate([p[0] for p in parts.values()])[:, None]
    y = np.concatenate([p[1] for p in parts.values()])
    assert collections.Counter(_recover(ds, 255.0)) == _pool(x, y)

    # The one-dot image: a single full pixel at row 5, column 7, label 9.
    dot = np.full((28, 28), -ds.mean[0] / ds.std[0], np.float32)
    dot[5, 7] = (1.0 - ds.mean[0]) / ds.std[0]
    hits = [s.y[i, 0] for s in _splits(ds) for i in range(len(s)) if np.allclose(s.x[i, 0], dot, atol=1e-5)]
    assert hits == [9]


def test_mnist_raw_and_gzipped_give_the_same_dataset(tmp_path):
    parts = _mnist_parts()
    raw = _write_mnist(tmp_path / "raw", parts)
    gz = _write_mnist(tmp_path / "gz", parts, gz=True)
    cfg = dict(name="mnist", image_size=14)
    a = load_dataset(_cfg(path=str(raw), **cfg), seed=3)
    _assert_same(a, load_dataset(_cfg(path=str(gz), **cfg), seed=3))
    assert a.input_shape == (1, 14, 14)


def test_mnist_t10k_files_are_optional(tmp_path):
    folder = _write_mnist(tmp_path / "m", {"train": _mnist_parts()["train"]})
    ds = load_dataset(_cfg(name="mnist", path=str(folder), image_size=28), seed=0)
    assert sum(len(s) for s in _splits(ds)) == 40


def test_mnist_malformed_files_name_the_file(tmp_path):
    parts = _mnist_parts()
    cfg = dict(name="mnist", image_size=28)

    def fresh(name: str) -> Path:
        return _write_mnist(tmp_path / name, parts)

    folder = fresh("truncated")
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated") as info:
        load_dataset(_cfg(path=str(folder), **cfg), seed=0)
    assert str(path) in str(info.value)

    folder = fresh("short_header")
    path = folder / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:6])
    with pytest.raises(DataError, match="truncated") as info:
        load_dataset(_cfg(path=str(folder), **cfg), seed=0)
    assert str(path) in str(info.value)

    folder = fresh("magic")
    path = _write_idx(folder / "train-labels-idx1-ubyte", parts["train"][0], 0x803)  # images as labels
    with pytest.raises(DataError, match="magic number 0x00000803") as info:
        load_dataset(_cfg(path=str(folder), **cfg), seed=0)
    assert str(path) in str(info.value)

    folder = fresh("count")
    _write_idx(folder / "t10k-labels-idx1-ubyte", parts["t10k"][1][:-1], 0x801)
    with pytest.raises(DataError, match="20 images but") as info:
        load_dataset(_cfg(path=str(folder), **cfg), seed=0)
    assert str(folder / "t10k-labels-idx1-ubyte") in str(info.value)

    folder = fresh("missing_labels")
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="not found") as info:
        load_dataset(_cfg(path=str(folder), **cfg), seed=0)
    assert str(folder / "t10k-labels-idx1-ubyte") in str(info.value)

    folder = fresh("bad_gzip")
    (folder / "train-images-idx3-ubyte").unlink()
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"x" * 1000)[:20])
    with pytest.raises(DataError, match="gzip") as info:
        load_dataset(_cfg(path=str(folder), **cfg), seed=0)
    assert str(path) in str(info.value)

    missing = tmp_path / "no_such_dir"
    with pytest.raises(DataError, match="not found") as info:
        load_dataset(_cfg(path=str(missing), **cfg), seed=0)
    assert str(missing) in str(info.value)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_dataset(_cfg(path=str(empty), **cfg), seed=0)

