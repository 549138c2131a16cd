"""The user's images as NumPy arrays: an .npz file holding ``x`` (the images) and ``y`` (labels)."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from hwnas.data._dataset import RawData
from hwnas.data._files import user_path
from hwnas.data._images import resize_array
from hwnas.data._memory import check_fits
from hwnas.data._sources import register_dataset
from hwnas.errors import DataError

if TYPE_CHECKING:
    from hwnas.config import DataConfig

_CHUNK_BYTES = 1 << 24  # x is streamed 16 MiB at a time: only the uint8 pool is held whole
_LAYOUTS = "x must have shape (N, H, W), (N, H, W, C) or (N, C, H, W) with C 1 or 3"


def load_npz_raw(path: str | None, *, size: int = 16, channels: int | None = None,
                 limit: int = 0) -> RawData:
    """Reads ``x`` and ``y`` from an .npz file (``np.savez`` or ``np.savez_compressed``).

    ``x`` holds N images: (N, H, W) grey, or 4 axes where the channel axis is the one of
    size 1 or 3: (N, H, W, C) when the last axis is 1 or 3, else (N, C, H, W) when the
    second is. uint8 pixels are read as [0, 255]; any other type as [0, 1] when its
    largest value is at most 1, else as [0, 255]; values below 0, above 255 or not finite
    are refused. Pixels are rounded to 8 bits and each image resized to size x size
    (Pillow's bilinear filter, as the folder source does) as ``x`` is streamed, so
    memory holds N x C x size x size bytes, not the file's array. ``y`` holds N class
    indices (integers, or floats with integer values), shape (N,) or (N, 1).

    Args:
        path: the .npz file.
        size: side of the stored images.
        channels: ``data.channels``, for the memory check (the loader converts).
        limit: ``data.limit``, for the memory check.

    Returns:
        uint8 images (N, C, size, size) in array order, peak 255; ``n_classes`` is the
        largest label plus one.

    Raises:
        DataError: naming the file: not an .npz, ``x`` or ``y`` missing, an object
            (ragged) array, an unknown layout, pixels out of range, labels that are not
            class indices, or images that would not fit in memory.
    """
    file = user_path(path, "npz")
    if not file.is_file():
        raise DataError(f"{file}: .npz file {'is a folder' if file.is_dir() else 'not found'}")
    try:
        with zipfile.ZipFile(file) as archive:
            members = {Path(n).stem: n for n in archive.namelist() if n.endswith(".npy")}
            for name in ("x", "y"):
                if name not in members:
                    raise DataError(f"{file}: no array '{name}' (it holds "
                                    f"{', '.join(sorted(members)) or 'none'}); expected x "
                                    "(images) and y (labels)")
            with archive.open(members["x"]) as stream:
                shape, fortran, dtype = _header(file, stream)
            n, c, h, w, nhwc = _layout(file, shape, dtype)
            check_fits(str(file), n, channels or c, size, limit, pool_bytes=n * c * size * size)
            y = _labels(file, archive, members["y"])
            if n != len(y):
                raise DataError(f"{file}: x holds {n} images but y {len(y)} labels")
            peak = (255.0 if dtype == np.uint8
                    else _peak(file, archive, members["x"], shape, fortran, dtype))
            x = np.empty((n, c, size, size), dtype=np.uint8)
            for start, chunk in _chunks(file, archive, members["x"], shape, fortran, dtype):
                chunk = chunk.reshape((-1, h, w, c) if nhwc or len(shape) == 3 else (-1, c, h, w))
                if nhwc or len(shape) == 3:
                    chunk = chunk.transpose(0, 3, 1, 2)
                if dtype != np.uint8:
                    chunk = np.rint(chunk.astype(np.float64) * (255.0 / peak)).astype(np.uint8)
                for i, image in enumerate(chunk):
                    x[start + i] = resize_array(image, size)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise DataError(f"{file}: not a readable .npz file ({exc or 'truncated'})") from None
    if y.size and (y.min() < 0 or y.max() >= n):
        bad = y.min() if y.min() < 0 else y.max()
        raise DataError(f"{file}: label {bad} in y is out of range: labels are class indices "
                        f"0..K-1 (and there are {n} images)")
    return RawData(x=x, y=y, peak=255.0, n_classes=int(y.max()) + 1 if y.size else 0)


def _header(file: Path, stream: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(stream)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        return read(stream)
    except ValueError as exc:
        raise DataError(f"{file}: x is not a readable .npy array ({exc})") from None


def _layout(file: Path, shape: tuple[int, ...], dtype: np.dtype
            ) -> tuple[int, int, int, int, bool]:
    """(N, C, H, W) and whether x is channels-last."""
    if dtype.hasobject:
        raise DataError(f"{file}: x is an object array (images of different shapes?); "
                        "resize them to one size and stack them into one numeric array")
    if dtype.kind not in "uif":
        raise DataError(f"{file}: x holds {dtype} values; expected integers or floats")
    if len(shape) == 3:
        return shape[0], 1, shape[1], shape[2], False
    if len(shape) == 4 and shape[3] in (1, 3):
        return shape[0], shape[3], shape[1], shape[2], True
    if len(shape) == 4 and shape[1] in (1, 3):
        return shape[0], shape[1], shape[2], shape[3], False
    raise DataError(f"{file}: x has shape {shape}; {_LAYOUTS}")


def _chunks(file: Path, archive: zipfile.ZipFile, member: str, shape: tuple[int, ...],
            fortran: bool, dtype: np.dtype):
    """(first index, images) pieces of x, read from the archive a few MiB at a time."""
    with archive.open(member) as stream:
        _header(file, stream)
        if fortran:  # rare (np.asfortranarray before saving): read whole, then C order
            with archive.open(member) as whole:
                data = np.lib.format.read_array(whole, allow_pickle=False)
            yield 0, np.ascontiguousarray(data)
            return
        per_image = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        step = max(1, _CHUNK_BYTES // max(per_image, 1))
        for start in range(0, shape[0], step):
            count = min(step, shape[0] - start)
            data = stream.read(count * per_image)
            if len(data) != count * per_image:
                raise DataError(f"{file}: x is truncated: its header announces shape {shape}, "
                                f"the data ends within image {start + len(data) // per_image}")
            yield start, np.frombuffer(data, dtype=dtype).reshape((count,) + tuple(shape[1:]))


def _peak(file: Path, archive: zipfile.ZipFile, member: str, shape: tuple[int, ...],
          fortran: bool, dtype: np.dtype) -> float:
    """255, or 1 when no value exceeds 1; refuses values outside [0, 255] or not finite."""
    low, high = np.inf, -np.inf
    for _, chunk in _chunks(file, archive, member, shape, fortran, dtype):
        if chunk.size:
            if dtype.kind == "f" and not np.isfinite(chunk).all():
                raise DataError(f"{file}: x holds values that are not finite (NaN or inf)")
            low, high = min(low, float(chunk.min())), max(high, float(chunk.max()))
    if low < 0 or high > 255:
        raise DataError(f"{file}: x holds values in [{low:g}, {high:g}]; pixels must lie in "
                        "[0, 1] or [0, 255]")
    return 1.0 if high <= 1 else 255.0


def _labels(file: Path, archive: zipfile.ZipFile, member: str) -> np.ndarray:
    try:
        with archive.open(member) as stream:
            y = np.lib.format.read_array(stream, allow_pickle=False)
    except ValueError as exc:  # object arrays, a damaged header
        raise DataError(f"{file}: y is not a numeric array ({exc})") from None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.dtype.kind not in "uif":
        raise DataError(f"{file}: y must be N integer class indices, shape (N,) or (N, 1); "
                        f"got {y.dtype} of shape {y.shape}")
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        bad = y[~(np.isfinite(y) & (y == np.round(y)))][0]
        raise DataError(f"{file}: label {bad:g} in y is not an integer class index")
    return y.astype(np.int64)


@register_dataset("npz", needs_path=True)
def _load(cfg: DataConfig) -> RawData:
    return load_npz_raw(cfg.path, size=cfg.image_size, channels=cfg.channels, limit=cfg.limit)
