"""Tests for hwnas.data: the digits and synthetic sets, splits, normalisation, resizing and batching."""
from __future__ import annotations

import collections

import numpy as np
import pytest
from _data_helpers import _assert_same, _cfg, _pool, _recover, _splits

from hwnas.config import DataConfig
from hwnas.data import Dataset, Split, batches, load_dataset
from hwnas.data._load import resize_bilinear
from hwnas.errors import DataError, HwnasError


def _denormalised_pool(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    mean = np.array(ds.mean)[None, :, None, None]
    std = np.array(ds.std)[None, :, None, None]
    x = np.concatenate([s.x.astype(np.float64) * std + mean for s in _splits(ds)])
    return x.reshape(len(x), -1), np.concatenate([s.y[:, 0] for s in _splits(ds)])


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
