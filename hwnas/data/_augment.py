"""Training-time augmentation of normalised image batches: random shifts and flips."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hwnas.registry import Registry

#: An augmentation: ``(x, rng, fill=..., pad=...)`` -> a randomly changed copy of the batch.
Augmentation = Callable[..., np.ndarray]
#: name -> augmentation, in registration order.
AUGMENTATIONS: Registry[Augmentation] = Registry("augmentation")


def register_augmentation(name: str, fn: Augmentation | None = None
                          ) -> Augmentation | Callable[[Augmentation], Augmentation]:
    """Registers ``fn(x, rng, *, fill, pad)`` under ``name`` (a decorator without ``fn``).

    ``x`` is a batch (N, C, H, W), ``fill`` one padding value per channel and
    ``pad`` the largest shift in pixels; ``fn`` draws its randomness from ``rng``.

    Raises:
        ValueError: ``name`` is already registered.
    """
    return AUGMENTATIONS.register(name, fn)


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
        kind: a name in ``AUGMENTATIONS``.
        fill: per-channel padding value; zeros when None.
        pad: the largest shift; ``shift_pixels(W)`` when None.

    Raises:
        ValueError: ``kind`` is not registered; the message lists the known ones.
    """
    transform = AUGMENTATIONS.get(kind)
    c, w = x.shape[1], x.shape[3]
    pad = shift_pixels(w) if pad is None else pad
    fill = np.zeros(c, x.dtype) if fill is None else np.asarray(fill, x.dtype)
    return transform(x, rng, fill=fill, pad=pad)


@register_augmentation("none")
def _none(x: np.ndarray, rng: np.random.Generator, *, fill: np.ndarray, pad: int) -> np.ndarray:
    return x


@register_augmentation("shift")
def _shift(x: np.ndarray, rng: np.random.Generator, *, fill: np.ndarray, pad: int) -> np.ndarray:
    n, c, h, w = x.shape
    padded = np.empty((n, c, h + 2 * pad, w + 2 * pad), x.dtype)
    padded[...] = fill.reshape(1, c, 1, 1)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    dy, dx = rng.integers(0, 2 * pad + 1, size=(2, n))
    return np.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


@register_augmentation("crop-flip")
def _crop_flip(x: np.ndarray, rng: np.random.Generator, *, fill: np.ndarray,
               pad: int) -> np.ndarray:
    out = _shift(x, rng, fill=fill, pad=pad)
    flip = rng.random(len(out)) < 0.5
    out[flip] = out[flip, :, :, ::-1]
    return out
