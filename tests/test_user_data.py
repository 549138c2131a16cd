"""The user's own data: folders of images, Neural Network Console CSVs and .npz arrays."""
from __future__ import annotations

import collections
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _cli_helpers import cli
from _data_helpers import _pool, _recover, _splits, digits_uint8, write_csv, write_folder
from conftest import TINY_CONFIG
from nnabla.utils.data_source_implements import CsvDataSource

from hwnas.config import DataConfig
from hwnas.data import load_dataset
from hwnas.errors import DataError
from hwnas.run.files import RunDir
from hwnas.supernet.learners import recorded_fingerprint


def _load(name: str, path, seed: int = 3, **kwargs):
    return load_dataset(DataConfig(name=name, path=str(path), **kwargs), seed=seed)


def _same(a, b) -> None:
    for sa, sb in zip(_splits(a), _splits(b)):
        np.testing.assert_array_equal(sa.x, sb.x)
        np.testing.assert_array_equal(sa.y, sb.y)
    assert a.mean == b.mean and a.std == b.std and a.n_classes == b.n_classes


@pytest.fixture(scope="module")
def digits300(tmp_path_factory):
    """300 digits (30 a class) as a PNG folder, an NNC CSV over those PNGs and an .npz."""
    root = tmp_path_factory.mktemp("digits300")
    x, y = digits_uint8(300)
    files = write_folder(root / "images", x, y)
    write_csv(root / "digits.csv", files, y)
    np.savez(root / "digits.npz", x=x, y=y)
    return root, x, y


@pytest.mark.parametrize("size", [8, 12])
def test_the_three_sources_give_the_same_splits(digits300, size):
    root, x, y = digits300
    folder = _load("folder", root / "images", image_size=size)
    csv = _load("csv", root / "digits.csv", image_size=size)
    npz = _load("npz", root / "digits.npz", image_size=size)
    _same(folder, csv)
    _same(folder, npz)
    assert folder.input_shape == (1, size, size) and folder.n_classes == 10
    assert [len(s) for s in _splits(folder)] == [180, 60, 60]
    if size == 8:  # nothing resized: the splits hold exactly the images written
        assert collections.Counter(_recover(folder, 255.0)) == _pool(x, y)
    other_seed = _load("npz", root / "digits.npz", seed=4, image_size=size)
    assert not np.array_equal(other_seed.val.x, npz.val.x)  # the seed decides the split


def test_given_splits_are_kept_and_a_missing_one_is_drawn_from_train(digits300, tmp_path):
    _, x, y = digits300
    val = np.arange(len(y)) % 5 == 0  # 60 images, 6 a class
    write_folder(tmp_path / "f" / "train", x[~val], y[~val])
    write_folder(tmp_path / "f" / "val", x[val], y[val])
    ds = _load("folder", tmp_path / "f", image_size=8, val_fraction=0.1, test_fraction=0.25)
    assert len(ds.val) == 60  # given: val_fraction is not used
    assert len(ds.test) == 60  # drawn from the 240 train images with test_fraction
    pools = [collections.Counter(part) for part in _by_split(ds)]
    assert pools[1] == _pool(x[val], y[val])
    assert pools[0] + pools[2] == _pool(x[~val], y[~val])
    assert sorted(np.bincount(ds.test.y[:, 0], minlength=10)) == [6] * 10  # stratified


def test_a_class_given_only_val_images_is_refused_by_name(digits300, tmp_path):
    _, x, y = digits300
    names = [f"digit{c}" for c in range(10)]
    write_folder(tmp_path / "f" / "train", x[y != 4], y[y != 4], names)
    write_folder(tmp_path / "f" / "val", x[y == 4], y[y == 4], names)
    with pytest.raises(DataError, match="class 'digit4' has val examples but none in train"):
        _load("folder", tmp_path / "f", image_size=8)


def _by_split(ds) -> list[list[tuple[bytes, int]]]:
    recovered = _recover(ds, 255.0)
    sizes = np.cumsum([0] + [len(s) for s in _splits(ds)])
    return [recovered[a:b] for a, b in zip(sizes[:-1], sizes[1:])]


def test_split_csvs_give_what_split_folders_give(digits300, tmp_path):
    _, x, y = digits300
    part = np.arange(len(y)) % 5  # 0, 1: test and val; the rest train
    split_of = {"train": part >= 2, "val": part == 1, "test": part == 0}
    for name, chosen in split_of.items():
        files = write_folder(tmp_path / "f" / name, x[chosen], y[chosen])
        write_csv(tmp_path / "f" / f"{name}.csv", files, y[chosen])
    folder = _load("folder", tmp_path / "f", image_size=8)
    csv = _load("csv", tmp_path / "f", image_size=8)
    _same(folder, csv)
    assert [len(s) for s in _splits(csv)] == [180, 60, 60]
    halved = _load("csv", tmp_path / "f", image_size=8, limit=150)
    assert [len(s) for s in _splits(halved)] == [90, 30, 30]  # each split in proportion


def test_a_csv_reads_as_nnablas_own_csv_data_source_reads_it(digits300, tmp_path):
    root, x, y = digits300
    rows = ["x:image,y:label,#comment"] + [  # as NNC writes it on Windows: BOM, backslashes
        f"{p.relative_to(root).as_posix().replace('/', chr(92))},{label},note"
        for p, label in zip(sorted((root / "images").rglob("*.png")), y)]
    (root / "nnc.csv").write_text("\ufeff" + "\n".join(rows) + "\n", encoding="utf-8")
    theirs = CsvDataSource(str(root / "nnc.csv"))
    assert theirs.variables == ("x", "y")
    images, labels = zip(*(theirs.next() for _ in range(theirs.size)))
    ours = _load("csv", root / "nnc.csv", image_size=8)
    assert collections.Counter(_recover(ours, 255.0)) == _pool(
        np.stack(images)[:, 0], np.array(labels)[:, 0])
    _same(ours, _load("folder", root / "images", image_size=8))


def test_channels_follow_the_images_or_the_config(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (12, 6, 6), np.uint8)
    colour = rng.integers(0, 256, (12, 6, 6, 3), np.uint8)
    y = np.arange(12) % 3
    write_folder(tmp_path / "grey", grey, y)
    assert _load("folder", tmp_path / "grey", image_size=6).input_shape == (1, 6, 6)
    mixed = tmp_path / "mixed"
    write_folder(mixed, grey, y)
    Image.fromarray(colour[0]).save(mixed / "0" / "rgb.png")
    ds = _load("folder", mixed, image_size=6)
    assert ds.input_shape == (3, 6, 6)
    pixels = np.concatenate([s.x for s in _splits(ds)]) * np.array(ds.std)[:, None, None] \
        + np.array(ds.mean)[:, None, None]
    is_grey = np.isclose(pixels[:, 0], pixels[:, 1], atol=1e-5).all(axis=(1, 2))
    assert is_grey.sum() == 12  # grey images repeated into R, G and B; the RGB one is not
    assert _load("folder", mixed, image_size=6, channels=1).input_shape == (1, 6, 6)
    assert _load("folder", tmp_path / "grey", image_size=6, channels=3).input_shape == (3, 6, 6)


def test_npz_layouts_and_ranges_read_alike(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (30, 3, 5, 7), np.uint8)  # NCHW, not square
    y = np.arange(30) % 3
    variants = {"nchw": x, "nhwc": x.transpose(0, 2, 3, 1), "unit": x / np.float32(255),
                "byte_floats": x.astype(np.float64)}
    loaded = {}
    for name, array in variants.items():
        np.savez_compressed(tmp_path / f"{name}.npz", x=array, y=y.astype(np.float32)[:, None])
        loaded[name] = _load("npz", tmp_path / f"{name}.npz", image_size=6)
    for name in variants:
        _same(loaded["nchw"], loaded[name])
    grey = _load("npz", tmp_path / "nchw.npz", image_size=6, channels=1)
    assert grey.input_shape == (1, 6, 6)
    assert not np.allclose(grey.train.x, loaded["nchw"].train.x[:, :1])  # luma, not red


def test_a_data_set_larger_than_free_memory_is_refused_with_its_size(digits300, monkeypatch):
    root, _, _ = digits300
    working = 3 * 8 * 2048 * 3 * 32 * 32  # the loader's chunks: float32 and two float64
    need = 300 * 8 * 8 + 300 * 8 * 8 * 4 + working  # the uint8 pool and the float32 splits
    monkeypatch.setattr("hwnas.data._memory.available_bytes", lambda: need)
    assert len(_load("folder", root / "images", image_size=8).train) == 180
    monkeypatch.setattr("hwnas.data._memory.available_bytes", lambda: need - 1)
    for name, path in (("folder", "images"), ("csv", "digits.csv"), ("npz", "digits.npz")):
        with pytest.raises(DataError, match=f"{need:,} bytes .* {need - 1:,} bytes"):
            _load(name, root / path, image_size=8)
    smaller = 300 * 8 * 8 + 30 * 8 * 8 * 4 + working  # data.limit bounds the float splits
    monkeypatch.setattr("hwnas.data._memory.available_bytes", lambda: smaller)
    assert len(_load("npz", root / "digits.npz", image_size=8, limit=30).test) == 6


def _config(tmp_path, data: str) -> str:
    path = tmp_path / "user.yaml"
    path.write_text(TINY_CONFIG.replace("{name: synthetic, image_size: 8}", data))
    return str(path)


def test_hwnas_run_on_each_source_trains_the_same_supernet(digits300, tmp_path, capfd):
    """A folder of PNGs, an NNC CSV and an .npz of the same images each run end to end, and
    give the same splits: the same seed trains bit-identical supernets on them."""
    root = digits300[0]
    images = Path(shutil.copytree(root / "images", tmp_path / "images"))
    (images / "README.txt").write_text("not an image\n")
    (images / "3" / "notes.md").write_text("not an image either\n")
    trained = {}
    for source, path in (("folder", images), ("csv", root / "digits.csv"),
                         ("npz", root / "digits.npz")):
        config = _config(tmp_path, f"{{name: {source}, path: '{path}', image_size: 8}}")
        run = tmp_path / f"run_{source}"
        status, _, err = cli(capfd, "run", config, "--out", run, "--quiet")
        assert status == 0, err
        for name in (RunDir.REPORT, RunDir.FRONT, *RunDir.MODELS):
            assert (run / name).is_file(), (source, name)
        trained[source] = recorded_fingerprint(run / RunDir.CHECKPOINT)
        notes = [line for line in err.splitlines() if "note:" in line]
        if source == "folder":  # once, though every step of the run loads the data
            assert notes == [f"hwnas: note: {images}: skipped 2 files that are not images "
                             "in a class folder (.md, .txt)"]
        else:
            assert notes == []
    assert trained["csv"] == trained["folder"] == trained["npz"] is not None


@pytest.mark.parametrize("target", ["/", "self"])
def test_a_link_above_the_folder_or_to_itself_is_a_loop_found_at_once(tmp_path, target):
    rng = np.random.default_rng(2)
    write_folder(tmp_path / "images", rng.integers(0, 256, (9, 4, 4), np.uint8), np.arange(9) % 3)
    link = tmp_path / "images" / "1" / "link.png"
    link.symlink_to(link if target == "self" else Path("/"))  # never walks the whole disk
    with pytest.raises(DataError, match=f"^{link}: symbolic link loop"):
        _load("folder", tmp_path / "images", image_size=4)
