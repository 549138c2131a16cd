"""Tests for hwnas.data: file formats, splits, normalisation, resizing and batching."""
from __future__ import annotations

import collections
import gzip
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from hwnas.config import DataConfig
from hwnas.data import Dataset, Split, batches, load_dataset
from hwnas.data._cifar10 import parse_batch
from hwnas.data._load import resize_bilinear
from hwnas.errors import DataError, HwnasError

RED_LABEL = 3


# --------------------------------------------------------------------------- helpers


def _images(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 256, size=(n,) + shape, dtype=np.uint8)


def _labels(rng: np.random.Generator, n: int) -> np.ndarray:
    y = np.arange(n) % 10
    rng.shuffle(y)
    return y


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


def _denormalised_pool(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    mean = np.array(ds.mean)[None, :, None, None]
    std = np.array(ds.std)[None, :, None, None]
    x = np.concatenate([s.x.astype(np.float64) * std + mean for s in _splits(ds)])
    return x.reshape(len(x), -1), np.concatenate([s.y[:, 0] for s in _splits(ds)])


def _pool(x: np.ndarray, y: np.ndarray) -> collections.Counter:
    return collections.Counter((img.tobytes(), int(label)) for img, label in zip(x, y))


def _assert_same(a: Dataset, b: Dataset) -> None:
    for sa, sb in zip(_splits(a), _splits(b)):
        np.testing.assert_array_equal(sa.x, sb.x)
        np.testing.assert_array_equal(sa.y, sb.y)
    assert a.mean == b.mean and a.std == b.std


def _cfg(**kwargs) -> DataConfig:
    return DataConfig(**kwargs)


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


# --------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits_pool() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    bunch = load_digits()
    return bunch.images.astype(np.uint8)[:, None], bunch.target


def test_digits_shapes_and_dtypes():
    ds = load_dataset(_cfg(name="digits", image_size=16), seed=0)
    assert ds.name == "digits" and ds.n_classes == 10 and ds.input_shape == (1, 16, 16)
    for split in _splits(ds):
        assert split.x.dtype == np.float32 and split.x.shape == (len(split), 1, 16, 16)
        assert split.y.dtype == np.int32 and split.y.shape == (len(split), 1)
        assert set(np.unique(split.y)) == set(range(10))


def test_digits_splits_are_disjoint_cover_the_pool_and_are_stratified(digits_pool):
    x, y = digits_pool
    cfg = _cfg(name="digits", image_size=8, val_fraction=0.2, test_fraction=0.1)
    ds = load_dataset(cfg, seed=0)
    n = len(y)
    assert (len(ds.val), len(ds.test)) == (round(0.2 * n), round(0.1 * n))
    assert len(ds.train) + len(ds.val) + len(ds.test) == n
    # A multiset: an example in two splits (or dropped) changes a count even among duplicate images.
    assert collections.Counter(_recover(ds, 16.0)) == _pool(x, y)
    share = np.bincount(y, minlength=10) / n
    for split in _splits(ds):
        counts = np.bincount(split.y[:, 0], minlength=10)
        assert np.all(np.abs(counts - share * len(split)) <= 1.5), counts


def test_digits_same_seed_same_splits_other_seed_other_splits():
    cfg = _cfg(name="digits", image_size=8)
    a, b, c = (load_dataset(cfg, seed=s) for s in (5, 5, 6))
    _assert_same(a, b)
    assert a.test.x.shape == c.test.x.shape
    assert not np.array_equal(a.test.x, c.test.x)


def test_train_split_is_normalised_per_channel():
    for cfg in (_cfg(name="digits", image_size=12), _cfg(name="synthetic", image_size=16)):
        ds = load_dataset(cfg, seed=0)
        x = ds.train.x.astype(np.float64)
        np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
        np.testing.assert_allclose(x.std(axis=(0, 2, 3)), 1.0, atol=1e-4)
        assert 0.0 < ds.mean[0] < 1.0  # statistics of the [0, 1] scale, not of raw pixel counts


def test_cifar_train_split_is_normalised_per_channel(tmp_path):
    folder = _write_cifar(tmp_path / "c", _cifar_batches())
    ds = load_dataset(_cfg(name="cifar10", path=str(folder), image_size=32), seed=0)
    x = ds.train.x.astype(np.float64)
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=(0, 2, 3)), 1.0, atol=1e-4)
    assert len(ds.mean) == len(ds.std) == 3


def test_digits_limit_is_a_stratified_seeded_subsample(digits_pool):
    cfg = _cfg(name="digits", image_size=8, limit=200)
    a = load_dataset(cfg, seed=0)
    _assert_same(a, load_dataset(cfg, seed=0))
    recovered = collections.Counter(_recover(a, 16.0))
    assert sum(recovered.values()) == 200
    assert not recovered - _pool(*digits_pool)  # a sub-multiset of the real pool
    labels = np.concatenate([s.y[:, 0] for s in _splits(a)])
    assert np.all(np.abs(np.bincount(labels, minlength=10) - 20) <= 1)


@pytest.mark.parametrize("size", [4, 8, 16, 20])
def test_image_size_is_honoured(size):
    ds = load_dataset(_cfg(name="digits", image_size=size, limit=100), seed=0)
    assert ds.input_shape == (1, size, size)
    assert all(s.x.shape[2:] == (size, size) for s in _splits(ds))


# --------------------------------------------------------------------------- synthetic


def test_synthetic_is_fixed_and_learnable():
    a = load_dataset(_cfg(name="synthetic", image_size=16), seed=0)
    b = load_dataset(_cfg(name="synthetic", image_size=16), seed=1)
    assert sum(len(s) for s in _splits(a)) == 600 and a.n_classes == 10
    assert a.input_shape == (1, 16, 16)
    # The seed changes the split, not the examples: every example of one has its twin in the other.
    pool_a, labels_a = _denormalised_pool(a)
    pool_b, labels_b = _denormalised_pool(b)
    distance = ((pool_a[:, None] - pool_b[None]) ** 2).sum(axis=2)
    twin = distance.argmin(axis=1)
    assert len(set(twin)) == 600 and distance[np.arange(600), twin].max() < 1e-8
    np.testing.assert_array_equal(labels_a, labels_b[twin])
    # Learnable: nearest class centroid of the train split does far better than chance.
    centroids = np.stack([a.train.x[a.train.y[:, 0] == c].mean(axis=0) for c in range(10)])
    distance = ((a.test.x[:, None] - centroids[None]) ** 2).sum(axis=(2, 3, 4))
    assert (distance.argmin(axis=1) == a.test.y[:, 0]).mean() > 0.7


# --------------------------------------------------------------------------- resize, batches, types


def test_resize_bilinear_known_values():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    # Halving with half-pixel centres averages each 2x2 block.
    expected = x.reshape(1, 1, 2, 2, 2, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(resize_bilinear(x, 2), expected)
    row = np.array([0.0, 1.0], np.float32).reshape(1, 1, 1, 2).repeat(2, axis=2)
    np.testing.assert_allclose(resize_bilinear(row, 4)[0, 0, 0], [0.0, 0.25, 0.75, 1.0])
    constant = np.full((2, 3, 5, 7), 0.4, np.float32)
    out = resize_bilinear(constant, 9)
    assert out.shape == (2, 3, 9, 9) and out.dtype == np.float32
    np.testing.assert_allclose(out, 0.4, rtol=1e-6)


def _indexed_split(n: int) -> Split:
    x = np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 3, 3), np.float32)
    return Split(x=x, y=np.arange(n, dtype=np.int32)[:, None])


@pytest.mark.parametrize("n", [20, 21, 23])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_batches_cover_every_example_once(n, shuffle, drop_last):
    split = _indexed_split(n)
    rng = np.random.default_rng(0) if shuffle else None
    seen = []
    for x, y in batches(split, 5, rng=rng, drop_last=drop_last):
        assert x.shape[1:] == (2, 3, 3) and y.shape[1:] == (1,)
        assert len(y) == 5 or (not drop_last and len(y) == n % 5)
        np.testing.assert_array_equal(x[:, 0, 0, 0], y[:, 0])  # images stay with their labels
        seen += y[:, 0].tolist()
    assert len(seen) == (20 if drop_last else n) and len(set(seen)) == len(seen)
    if not drop_last:
        assert sorted(seen) == list(range(n))
    assert (seen != sorted(seen)) == shuffle


def test_batches_epochs_differ_and_in_order_views_are_read_only():
    split = _indexed_split(30)
    rng = np.random.default_rng(1)
    first = np.concatenate([y[:, 0] for _, y in batches(split, 8, rng=rng)])
    second = np.concatenate([y[:, 0] for _, y in batches(split, 8, rng=rng)])
    assert sorted(first) == sorted(second) == list(range(30)) and not np.array_equal(first, second)
    x, _ = next(iter(batches(split, 8)))
    with pytest.raises(ValueError):
        x[0] = 0.0
    with pytest.raises(ValueError, match="batch_size"):
        batches(split, 0)


def test_split_and_dataset_reject_wrong_types():
    x = np.zeros((4, 1, 2, 2), np.float32)
    with pytest.raises(ValueError, match="float32"):
        Split(x=x.astype(np.float64), y=np.zeros((4, 1), np.int32))
    with pytest.raises(ValueError, match="int32"):
        Split(x=x, y=np.zeros(4, np.int32))
    split = Split(x=x, y=np.zeros((4, 1), np.int32))
    assert len(split) == 4
    with pytest.raises(ValueError, match="mean/std"):
        Dataset(name="t", train=split, val=split, test=split, n_classes=2, mean=(0.0, 0.0), std=(1.0,))


def test_data_error_is_a_user_error():
    with pytest.raises(HwnasError):
        load_dataset(_cfg(name="mnist", path="/definitely/not/here"), seed=0)
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset(DataConfig(name="imagenet"), seed=0)
