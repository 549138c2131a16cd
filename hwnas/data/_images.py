"""Image files read with Pillow into uint8 arrays of one size and channel count."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from hwnas.data._memory import check_fits
from hwnas.errors import DataError

#: The file name extensions read as images (lower case); other files are skipped.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
#: Pillow modes without colour.
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})

def is_image_name(path: Path) -> bool:
    """Whether the file name has one of ``IMAGE_EXTENSIONS`` (any case)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _failure(path: Path, exc: Exception, context: str) -> DataError:
    if isinstance(exc, FileNotFoundError):
        reason = "file not found"
    elif isinstance(exc, OSError) and exc.strerror:
        reason = f"cannot read: {exc.strerror}"
    else:
        reason = f"not a readable image ({exc or type(exc).__name__})"
    return DataError(f"{path}: {reason}{context}")


def is_grey(path: Path, context: str = "") -> bool:
    """Whether the image has no colour, from its header alone.

    Raises:
        DataError: the file is missing or not an image Pillow can identify.
    """
    try:
        with Image.open(path) as img:
            return img.mode in GREY_MODES
    except Exception as exc:  # Pillow's decoders fail in many ways on a damaged file
        raise _failure(path, exc, context) from None


def read_image(path: Path, channels: int, size: int, context: str = "") -> np.ndarray:
    """One image as uint8 (channels, size, size): converted to grey (``L``) or RGB, then
    resized with Pillow's bilinear filter (which low-passes when it shrinks) unless it
    has that size already.

    Raises:
        DataError: the file is missing, unreadable or truncated; ``context`` ends the message.
    """
    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")  # decodes: truncation shows here
            if img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
            pixels = np.asarray(img, dtype=np.uint8)
    except Exception as exc:  # Pillow's decoders fail in many ways on a damaged file
        raise _failure(path, exc, context) from None
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def resize_array(image: np.ndarray, size: int) -> np.ndarray:
    """A uint8 (C, H, W) image (C 1 or 3) resized to (C, size, size) as ``read_image`` does."""
    if image.shape[1:] == (size, size):
        return image
    img = Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0))
    pixels = np.asarray(img.resize((size, size), Image.BILINEAR), dtype=np.uint8)
    return pixels[None] if image.shape[0] == 1 else pixels.transpose(2, 0, 1)


def read_images(paths: Sequence[Path], *, channels: int | None, size: int, limit: int,
                where: str, contexts: Sequence[str] | None = None) -> np.ndarray:
    """Every image of ``paths`` as one uint8 pool (N, C, size, size).

    The headers are read first: they decide the channels when ``channels`` is None
    (1 when every image is grey, else 3) and catch files that are not images; then the
    pool's size is checked against the memory available, and only then are the
    images decoded.

    Args:
        paths: the image files.
        channels: 1 or 3, or None (as the images are).
        size: side of the stored images.
        limit: ``data.limit``, for the memory check.
        where: names the data set in the memory message.
        contexts: a suffix for each file's error messages (the CSV line naming it).

    Raises:
        DataError: an image is missing, unreadable or truncated, or the pool would
            not fit in memory.
    """
    contexts = contexts if contexts is not None else [""] * len(paths)
    if channels is None:
        grey = [is_grey(p, c) for p, c in zip(paths, contexts)]
        channels = 1 if all(grey) else 3
    check_fits(where, len(paths), channels, size, limit)
    pool = np.empty((len(paths), channels, size, size), dtype=np.uint8)
    for i, (path, context) in enumerate(zip(paths, contexts)):
        pool[i] = read_image(path, channels, size, context)
    return pool
