"""CIFAR-10 in its python version: the cifar-10-batches-py pickles, as a directory or the .tar.gz."""
from __future__ import annotations

from typing import TYPE_CHECKING

import io
import pickle
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from hwnas.data._dataset import RawData
from hwnas.data._files import read_bytes, user_path
from hwnas.data._sources import register_dataset
from hwnas.errors import DataError

if TYPE_CHECKING:
    from hwnas.config import DataConfig

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
DIRNAME = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
N_CLASSES = 10
_ROW = 3 * 32 * 32
_EXPECTED = ("the python version of CIFAR-10: the cifar-10-batches-py directory, "
             "a directory holding it, or cifar-10-python.tar.gz")

# A batch pickle only needs numpy's array reconstruction (plus the bytes codec
# for protocol-2 pickles written by Python 3, and _frombuffer for protocol 5);
# refusing every other global keeps a doctored file from running code while it is read.
_ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
})


def load_cifar10_raw(path: str | None) -> RawData:
    """Pools every batch found (train batches first, then the test batch).

    Args:
        path: the cifar-10-batches-py directory, a directory containing it
            (or containing cifar-10-python.tar.gz), or the .tar.gz itself.
            Any non-empty subset of data_batch_1..5 is accepted; test_batch is optional.

    Returns:
        Images of shape (N, 3, 32, 32), uint8.

    Raises:
        DataError: the path is missing, holds no data batch, or a batch is malformed.
    """
    root = user_path(path, "cifar10")
    if root.is_file():
        blobs = _from_archive(root)
    elif root.is_dir():
        blobs = _from_directory(root)
    else:
        raise DataError(f"{root}: CIFAR-10 path not found; expected {_EXPECTED}")
    parts = [parse_batch(blob, where) for where, blob in blobs]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return RawData(x=x, y=y, peak=255.0, n_classes=N_CLASSES)


def _from_directory(root: Path) -> list[tuple[str, bytes]]:
    for folder in (root, root / DIRNAME):
        if any((folder / name).is_file() for name in TRAIN_BATCHES):
            return [(str(folder / name), read_bytes(folder / name))
                    for name in TRAIN_BATCHES + (TEST_BATCH,) if (folder / name).is_file()]
    if (root / ARCHIVE).is_file():
        return _from_archive(root / ARCHIVE)
    raise DataError(f"{root}: no CIFAR-10 data_batch_1..5 found; expected {_EXPECTED}")


def _from_archive(archive: Path) -> list[tuple[str, bytes]]:
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = {PurePosixPath(m.name).name: m for m in tar.getmembers() if m.isfile()}
            if not any(name in members for name in TRAIN_BATCHES):
                found = None
            else:
                found = []
                for name in TRAIN_BATCHES + (TEST_BATCH,):
                    if name in members:
                        stream = tar.extractfile(members[name])
                        found.append((f"{archive}:{members[name].name}", stream.read()))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{archive}: not a readable CIFAR-10 archive ({exc or 'truncated'}); "
                        f"expected {_EXPECTED}") from None
    if found is None:
        raise DataError(f"{archive}: the archive holds no CIFAR-10 data_batch_1..5; expected {_EXPECTED}")
    return found


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR-10 batch never does")
        return super().find_class(module, name)


def parse_batch(blob: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Decodes one batch pickle (a dict with ``data`` (N, 3072) uint8 and ``labels``).

    Args:
        blob: the pickled batch.
        where: names the file in error messages.

    Returns:
        Images of shape (N, 3, 32, 32), uint8, and labels of shape (N,), int64.

    Raises:
        DataError: the blob is not a well-formed CIFAR-10 batch.
    """
    try:
        batch = _BatchUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as exc:  # a corrupt pickle can fail in almost any way
        raise DataError(f"{where}: not a CIFAR-10 batch pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{where}: not a CIFAR-10 batch (holds a {type(batch).__name__}, expected a dict)")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise DataError(f"{where}: not a CIFAR-10 batch (no 'data' and 'labels' entries)")
    if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
            or data.shape[1] != _ROW):
        shape = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) \
            else type(data).__name__
        raise DataError(f"{where}: 'data' must be a uint8 array of shape (N, {_ROW}), got {shape}")
    try:
        y = np.asarray(labels)
    except ValueError:
        raise DataError(f"{where}: 'labels' is not a list of integers") from None
    if y.dtype.kind not in "iu" or y.shape != (data.shape[0],):
        raise DataError(f"{where}: 'labels' must be {data.shape[0]} integers (one per image), "
                        f"got {y.dtype} values of shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= N_CLASSES):
        raise DataError(f"{where}: labels must lie in [0, {N_CLASSES}), found {y.min()}..{y.max()}")
    # Each row holds the red, green then blue planes, each row-major: NCHW as it stands.
    return data.reshape(-1, 3, 32, 32), y.astype(np.int64)


@register_dataset("cifar10", needs_path=True, augmentation="crop-flip")
def _load(cfg: DataConfig) -> RawData:
    return load_cifar10_raw(cfg.path)
