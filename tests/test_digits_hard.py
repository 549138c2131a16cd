"""digits-hard: generated deterministically, really distorted, split by source digit."""
from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest

from hwnas.config import DataConfig, load_config
from hwnas.data import DATASETS, RawData, load_dataset, register_dataset
from hwnas.data._digits import load_digits_raw
from hwnas.data._digits_hard import CANVAS, COPIES, load_digits_hard_raw
from hwnas.data._load import resize_bilinear
from hwnas.errors import DataError
from hwnas.run.names import check_names
from tests._data_helpers import _recover

ROOT = Path(__file__).resolve().parent.parent
N_SOURCE = 1797


@pytest.fixture(scope="module")
def raw() -> RawData:
    return load_digits_hard_raw()


def test_same_seed_gives_byte_identical_arrays_another_seed_other_images(raw):
    again = load_digits_hard_raw()
    for a, b in ((raw.x, again.x), (raw.y, again.y), (raw.groups, again.groups)):
        assert a.tobytes() == b.tobytes()
    other = load_digits_hard_raw(seed=1)
    assert np.array_equal(other.y, raw.y) and np.array_equal(other.groups, raw.groups)
    assert np.mean(other.x != raw.x) > 0.5  # another draw of every distortion


def test_shapes_dtypes_groups_and_label_balance(raw):
    assert raw.x.shape == (N_SOURCE * COPIES, 1, CANVAS, CANVAS) and raw.x.dtype == np.uint8
    assert raw.peak == 255.0 and raw.n_classes == 10
    assert raw.y.shape == raw.groups.shape == (N_SOURCE * COPIES,)
    source = load_digits_raw()
    # Copy k of source digit i is example i * COPIES + k, with the source's label.
    assert np.array_equal(raw.groups, np.repeat(np.arange(N_SOURCE), COPIES))
    assert np.array_equal(raw.y, np.repeat(source.y, COPIES))
    counts = collections.Counter(raw.y.tolist())
    assert sorted(counts) == list(range(10))
    assert min(counts.values()) >= 174 * COPIES and max(counts.values()) <= 183 * COPIES
    # The whole range is used: dark background pixels and bright strokes.
    assert raw.x.min() == 0 and raw.x.max() == 255


def test_the_distortions_are_applied(raw):
    source = load_digits_raw()
    plain = resize_bilinear(source.x / 16.0, CANVAS)[:, 0]  # the digit upsampled, centred
    images = raw.x[:, 0].astype(np.float64) / 255.0
    first = images[::COPIES]
    # Far from the plain upsampled digit: warps, clutter, occlusion, contrast, noise.
    assert np.mean(np.abs(first - plain)) > 0.15
    # The copies of one digit differ from each other everywhere.
    copies = images.reshape(N_SOURCE, COPIES, CANVAS, CANVAS)
    gaps = np.abs(copies[:, 0] - copies[:, 1]).mean(axis=(1, 2))
    assert gaps.min() > 0.03 and np.median(gaps) > 0.1
    # Noise: hardly any image has a flat background (plain digits have zeros at the corners).
    assert np.mean(images[:, :2, :2].std(axis=(1, 2)) > 0.01) > 0.95
    # Still a digit near the centre: the middle is brighter than the border on average.
    middle = images[:, 4:12, 4:12].mean()
    border = np.concatenate([images[:, :2].ravel(), images[:, -2:].ravel()]).mean()
    assert middle > border + 0.05
    # Matching the class templates of the plain digits: 0.90 on the plain digits, near
    # chance on the derived ones (the warps move every stroke), but not at chance.
    templates = _unit(np.stack([plain[source.y == c].mean(0) for c in range(10)]))
    assert np.mean(np.argmax(_unit(plain) @ templates.T, 1) == source.y) > 0.85
    hard = np.mean(np.argmax(_unit(images) @ templates.T, 1) == raw.y)
    assert 0.12 < hard < 0.3


def _unit(images: np.ndarray) -> np.ndarray:
    """Each image as a centred unit vector: dot products are correlations."""
    flat = images.reshape(len(images), -1)
    flat = flat - flat.mean(1, keepdims=True)
    return flat / np.linalg.norm(flat, axis=1, keepdims=True)


def test_the_split_keeps_the_copies_of_a_digit_together():
    ds = load_dataset(DataConfig(name="digits-hard", image_size=CANVAS, val_fraction=0.3,
                                 test_fraction=0.2), seed=0)
    # The fractions count source digits: 539 of them are val, 359 test.
    assert (len(ds.val), len(ds.test), len(ds.train)) == (539 * COPIES, 359 * COPIES,
                                                          899 * COPIES)
    raw = load_digits_hard_raw()
    owner = {img.tobytes(): g for img, g in zip(raw.x, raw.groups)}
    seen = {}
    for name, (pixels, _) in zip(("train", "val", "test"), _by_split(ds)):
        for p in pixels:
            seen.setdefault(owner[p], set()).add(name)
    assert len(seen) == N_SOURCE and all(len(splits) == 1 for splits in seen.values())


def _by_split(ds):
    recovered = _recover(ds, 255.0)
    sizes = np.cumsum([0, len(ds.train), len(ds.val), len(ds.test)])
    for lo, hi in zip(sizes[:-1], sizes[1:]):
        part = recovered[lo:hi]
        yield [p for p, _ in part], [label for _, label in part]


@pytest.fixture
def grouped_toy():
    """A toy dataset of 30 groups of 3 identical images each (labels by group)."""
    name = "zz_grouped_toy"

    def loader(cfg: DataConfig) -> RawData:
        groups = np.repeat(np.arange(30), 3)
        x = (groups * 8).astype(np.uint8).reshape(-1, 1, 1, 1) * np.ones((1, 1, 4, 4), np.uint8)
        return RawData(x=x, y=groups % 3, peak=255.0, n_classes=3, groups=groups)

    register_dataset(name, loader)
    yield name
    DATASETS.unregister(name)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_examples_never_straddle_splits(grouped_toy, seed):
    ds = load_dataset(DataConfig(name=grouped_toy, image_size=4, val_fraction=0.2,
                                 test_fraction=0.2), seed=seed)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (54, 18, 18)  # 18, 6 and 6 groups
    values = [set(np.unique(np.round(s.x[:, 0, 0, 0], 4)).tolist())
              for s in (ds.train, ds.val, ds.test)]
    assert not (values[0] & values[1]) and not (values[0] & values[2])
    assert not (values[1] & values[2])
    assert sum(map(len, values)) == 30
    for split in (ds.val, ds.test):  # stratified by class: 2 groups of each class
        assert collections.Counter(split.y[:, 0].tolist()) == {0: 6, 1: 6, 2: 6}


def test_groups_of_the_wrong_shape_are_a_data_error():
    name = "zz_bad_groups"
    register_dataset(name, lambda cfg: RawData(x=np.zeros((12, 1, 4, 4), np.uint8),
                                               y=np.arange(12) % 2, peak=255.0, n_classes=2,
                                               groups=np.arange(11)))
    try:
        with pytest.raises(DataError, match="one group per example"):
            load_dataset(DataConfig(name=name, image_size=4), seed=0)
    finally:
        DATASETS.unregister(name)


def test_the_experiment_names_the_dataset_and_holds_a_larger_val_split():
    config = load_config(ROOT / "experiments" / "digits_hard.yaml")
    check_names(config, "digits_hard.yaml")
    assert config.data.name == "digits-hard" and config.data.image_size == CANVAS
    assert round(N_SOURCE * config.data.val_fraction) * COPIES >= 2000
    assert "digits-hard" in DATASETS.names("digits*")
