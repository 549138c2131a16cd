"""Training-time augmentation of normalised image batches: random shifts and flips."""
from __future__ import annotations

import numpy as np

#: The augmentations ``augment`` knows.
AUGMENTATIONS = ("none", "shift", "crop-flip")


def default_augmentation(dataset: str) -> str:
    """What ``augmentation: auto`` means for a data set: digits are not mirror-symmetric,
    photographs are."""
    return "crop-flip" if dataset == "cifar10" else "shift"


def shift_pixels(image_size: int) -> int:
    """The largest shift, in pixels, for images of side ``image_size`` (4 for CIFAR's 32)."""
    return max(1, image_size // 8)


def augment(x: np.ndarray, rng: np.random.Generator, kind: str,
            fill: np.ndarray | None = None, pad: int | None = None) -> np.ndarray:
    """A randomly shifted (and for ``crop-flip`` mirrored) copy of the batch ``x``.

    Each image is padded by ``pad`` pixels on every side with ``fill`` (one
    value per channel: what a black pixel becomes after normalisation) and a
    window of the original size is cropped at a random offset, so that it
    moves by up to ``pad`` pixels each way; ``crop-flip`` then mirrors half
    of the images left to right. ``none`` returns ``x`` itself.

    Args:
        x: images (N, C, H, W).
        rng: draws the offsets and flips.
        kind: one of ``AUGMENTATIONS``.
        fill: per-channel padding value; zeros when None.
        pad: the largest shift; ``shift_pixels(W)`` when None.
    """
    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {kind!r}; known: {', '.join(AUGMENTATIONS)}")
    if kind == "none":
        return x
    n, c, h, w = x.shape
    pad = shift_pixels(w) if pad is None else pad
    fill = np.zeros(c, x.dtype) if fill is None else np.asarray(fill, x.dtype)
    padded = np.empty((n, c, h + 2 * pad, w + 2 * pad), x.dtype)
    padded[...] = fill.reshape(1, c, 1, 1)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    dy, dx = rng.integers(0, 2 * pad + 1, size=(2, n))
    out = np.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    if kind == "crop-flip":
        flip = rng.random(n) < 0.5
        out[flip] = out[flip, :, :, ::-1]
    return out
