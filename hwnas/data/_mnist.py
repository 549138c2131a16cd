"""MNIST (or any dataset in its layout) from the IDX files, raw or gzipped."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from hwnas.data._dataset import RawData
from hwnas.data._files import read_bytes, user_path
from hwnas.data._sources import register_dataset
from hwnas.errors import DataError

if TYPE_CHECKING:
    from hwnas.config import DataConfig

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
N_CLASSES = 10
_PARTS = ("train", "t10k")


def load_mnist_raw(path: str | None) -> RawData:
    """Pools the train files and, when present, the t10k files.

    Args:
        path: a directory holding ``train-images-idx3-ubyte`` and
            ``train-labels-idx1-ubyte`` (each optionally ``.gz``), and optionally
            the ``t10k-`` pair.

    Returns:
        Images of shape (N, 1, H, W), uint8.

    Raises:
        DataError: the directory or a needed file is missing, or a file is malformed.
    """
    root = user_path(path, "mnist")
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "not found"
        raise DataError(f"{root}: MNIST directory {what}; expected a directory of IDX files "
                        "(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], ...)")
    xs, ys = [], []
    for part in _PARTS:
        images_name, labels_name = f"{part}-images-idx3-ubyte", f"{part}-labels-idx1-ubyte"
        images_path, labels_path = _find(root, images_name), _find(root, labels_name)
        if images_path is None and labels_path is None and part != "train":
            continue
        for name, found in ((images_name, images_path), (labels_name, labels_path)):
            if found is None:
                raise DataError(f"{root / name}: file not found (nor {name}.gz)")
        images = read_idx(images_path, IMAGES_MAGIC)
        labels = read_idx(labels_path, LABELS_MAGIC)
        if len(images) != len(labels):
            raise DataError(f"{images_path}: holds {len(images)} images but {labels_path} "
                            f"holds {len(labels)} labels")
        if labels.size and labels.max() >= N_CLASSES:
            raise DataError(f"{labels_path}: labels must lie in [0, {N_CLASSES}), found {labels.max()}")
        if xs and images.shape[1:] != xs[0].shape[2:]:
            raise DataError(f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, "
                            f"the train images {xs[0].shape[2]}x{xs[0].shape[3]}")
        xs.append(images[:, None])
        ys.append(labels.astype(np.int64))
    return RawData(x=np.concatenate(xs), y=np.concatenate(ys), peak=255.0, n_classes=N_CLASSES)


def _find(root: Path, name: str) -> Optional[Path]:
    # Some mirrors spell the names with a dot ("train-images.idx3-ubyte").
    for base in (name, name.replace("-idx", ".idx")):
        for candidate in (root / base, root / f"{base}.gz"):
            if candidate.is_file():
                return candidate
    return None


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Reads an IDX file of unsigned bytes.

    Args:
        path: the file (gzipped when its name ends in ``.gz``).
        magic: the expected magic number; its low byte is the number of dimensions.

    Returns:
        A uint8 array with the dimensions the header announces.

    Raises:
        DataError: wrong magic number, or the data is shorter or longer than announced.
    """
    data = read_bytes(path)
    kind = "images" if magic == IMAGES_MAGIC else "labels"
    if len(data) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(data)} bytes, no header)")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DataError(f"{path}: not an IDX {kind} file (magic number 0x{found:08x}, "
                        f"expected 0x{magic:08x})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes, expected {header})")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    size = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != size:
        state = "truncated" if len(data) - header < size else "longer than its header says"
        raise DataError(f"{path}: {state}: the header announces {'x'.join(map(str, dims))} = "
                        f"{size} bytes of data, the file holds {len(data) - header}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


@register_dataset("mnist", needs_path=True)
def _load(cfg: DataConfig) -> RawData:
    return load_mnist_raw(cfg.path)
