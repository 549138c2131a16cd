"""Tests for hwnas.data's CIFAR-10 loader: batch pickles, directories and archives, malformed input."""
from __future__ import annotations

import collections
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from _data_helpers import _assert_same, _cfg, _images, _labels, _pool, _recover, _splits

from hwnas.data import load_dataset
from hwnas.data._cifar10 import parse_batch
from hwnas.errors import DataError

RED_LABEL = 3


def _cifar_batches(n_per_batch: int = 20) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Three small batches in NCHW; the first image of data_batch_1 is pure red."""
    rng = np.random.default_rng(123)
    out = {}
    for name in ("data_batch_1", "data_batch_2", "test_batch"):
        out[name] = (_images(rng, n_per_batch, (3, 32, 32)), _labels(rng, n_per_batch))
    x, y = out["data_batch_1"]
    x[0] = 0
    x[0, 0] = 255
    y[0] = RED_LABEL
    return out


def _write_cifar(folder: Path, parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (x, y) in parts.items():
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in y],
                 b"data": x.reshape(len(x), 3072),
                 b"filenames": [f"img{i}.png".encode() for i in range(len(x))]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return folder


# --------------------------------------------------------------------------- CIFAR-10


def test_cifar_directory_round_trips_every_image_and_label(tmp_path):
    parts = _cifar_batches()
    folder = _write_cifar(tmp_path / "cifar-10-batches-py", parts)
    ds = load_dataset(_cfg(name="cifar10", path=str(folder), image_size=32), seed=0)

    assert ds.input_shape == (3, 32, 32) and ds.n_classes == 10
    x = np.concatenate([p[0] for p in parts.values()])
    y = np.concatenate([p[1] for p in parts.values()])
    # Every example comes back exactly once (train batches and the test batch pooled),
    # with its own label and channel order.
    assert collections.Counter(_recover(ds, 255.0)) == _pool(x, y)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar_batch_pickles_of_any_protocol_decode(protocol):
    x = np.arange(2 * 3072, dtype=np.int64).reshape(2, 3072).astype(np.uint8)
    blob = pickle.dumps({b"data": x, b"labels": [4, 7]}, protocol=protocol)
    images, labels = parse_batch(blob, "batch")
    np.testing.assert_array_equal(images, x.reshape(2, 3, 32, 32))
    assert images[1, 2, 31, 31] == x[1, 3071] and labels.tolist() == [4, 7]


def test_cifar_red_image_keeps_its_channels_and_label(tmp_path):
    folder = _write_cifar(tmp_path / "cifar-10-batches-py", _cifar_batches())
    ds = load_dataset(_cfg(name="cifar10", path=str(folder), image_size=32), seed=0)

    mean, std = np.array(ds.mean), np.array(ds.std)
    expected = (np.array([1.0, 0.0, 0.0]) - mean) / std  # pure red on the [0, 1] scale, normalised
    matches = [(s, i) for s in _splits(ds) for i in range(len(s))
               if np.allclose(s.x[i], expected[:, None, None], atol=1e-5)]
    assert len(matches) == 1
    split, i = matches[0]
    assert split.y[i, 0] == RED_LABEL


def test_cifar_archive_and_parent_directory_load_the_same_data(tmp_path):
    folder = _write_cifar(tmp_path / "extracted" / "cifar-10-batches-py", _cifar_batches())
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    holder = tmp_path / "holder"
    holder.mkdir()
    (holder / archive.name).write_bytes(archive.read_bytes())

    cfg = dict(name="cifar10", image_size=32)
    direct = load_dataset(_cfg(path=str(folder), **cfg), seed=1)
    for path in (archive, tmp_path / "extracted", holder):
        _assert_same(direct, load_dataset(_cfg(path=str(path), **cfg), seed=1))


def test_cifar_resize_and_limit(tmp_path):
    folder = _write_cifar(tmp_path / "c", _cifar_batches())
    ds = load_dataset(_cfg(name="cifar10", path=str(folder), image_size=16, limit=30), seed=0)
    assert ds.input_shape == (3, 16, 16)
    assert sum(len(s) for s in _splits(ds)) == 30
    for split in _splits(ds):
        assert split.x.shape[1:] == (3, 16, 16) and split.x.dtype == np.float32


def _pickle_with_global() -> bytes:
    class Trap:
        def __reduce__(self):
            return (os.getcwd, ())
    return pickle.dumps({b"data": Trap(), b"labels": [0]}, protocol=2)


@pytest.mark.parametrize("blob, words", [
    (b"this is not a pickle at all", "not a CIFAR-10 batch pickle"),
    (pickle.dumps([1, 2, 3], protocol=2), "expected a dict"),
    (pickle.dumps({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}, protocol=2),
     "shape (N, 3072)"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, protocol=2),
     "uint8"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, protocol=2),
     "one per image"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, protocol=2),
     "labels must lie in"),
    (pickle.dumps({b"labels": [0]}, protocol=2), "no 'data'"),
    (_pickle_with_global(), "getcwd"),
])
def test_cifar_malformed_batch_names_the_file(tmp_path, blob, words):
    folder = _write_cifar(tmp_path / "cifar-10-batches-py", _cifar_batches(10))
    (folder / "data_batch_2").write_bytes(blob)
    with pytest.raises(DataError) as info:
        load_dataset(_cfg(name="cifar10", path=str(folder)), seed=0)
    assert str(folder / "data_batch_2") in str(info.value)
    assert words in str(info.value)


def test_cifar_missing_or_empty_paths(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="not found") as info:
        load_dataset(_cfg(name="cifar10", path=str(missing)), seed=0)
    assert str(missing) in str(info.value)

    only_test = _write_cifar(tmp_path / "only_test", {"test_batch": _cifar_batches()["test_batch"]})
    with pytest.raises(DataError, match="data_batch_1") as info:
        load_dataset(_cfg(name="cifar10", path=str(only_test)), seed=0)
    assert str(only_test) in str(info.value)

    with pytest.raises(DataError, match="needs the path"):
        load_dataset(_cfg(name="cifar10", path=None), seed=0)


def test_cifar_corrupt_or_empty_archive(tmp_path):
    garbage = tmp_path / "cifar-10-python.tar.gz"
    garbage.write_bytes(b"\x1f\x8b garbage that is no archive")
    with pytest.raises(DataError, match="not a readable") as info:
        load_dataset(_cfg(name="cifar10", path=str(garbage)), seed=0)
    assert str(garbage) in str(info.value)

    folder = _write_cifar(tmp_path / "cifar-10-batches-py", _cifar_batches())
    truncated = tmp_path / "truncated.tar.gz"
    with tarfile.open(truncated, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    truncated.write_bytes(truncated.read_bytes()[:len(truncated.read_bytes()) // 2])
    with pytest.raises(DataError) as info:
        load_dataset(_cfg(name="cifar10", path=str(truncated)), seed=0)
    assert str(truncated) in str(info.value)

    empty = tmp_path / "empty.tar.gz"
    with tarfile.open(empty, "w:gz"):
        pass
    with pytest.raises(DataError, match="no CIFAR-10 data_batch"):
        load_dataset(_cfg(name="cifar10", path=str(empty)), seed=0)


def test_too_few_examples_to_split(tmp_path):
    rng = np.random.default_rng(0)
    folder = _write_cifar(tmp_path / "tiny", {"data_batch_1": (_images(rng, 2, (3, 32, 32)),
                                                               np.array([0, 1]))})
    with pytest.raises(DataError, match="too few"):
        load_dataset(_cfg(name="cifar10", path=str(folder)), seed=0)


def test_cifar_train_split_is_normalised_per_channel(tmp_path):
    folder = _write_cifar(tmp_path / "c", _cifar_batches())
    ds = load_dataset(_cfg(name="cifar10", path=str(folder), image_size=32), seed=0)
    x = ds.train.x.astype(np.float64)
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=(0, 2, 3)), 1.0, atol=1e-4)
    assert len(ds.mean) == len(ds.std) == 3
