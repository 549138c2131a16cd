"""A seeded synthetic dataset of ten classes of noisy blobs, for fast tests and smoke runs."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hwnas.data._dataset import RawData
from hwnas.data._sources import register_dataset

if TYPE_CHECKING:
    from hwnas.config import DataConfig

N_EXAMPLES = 600
N_CLASSES = 10
SIZE = 16


def load_synthetic_raw(seed: int = 0) -> RawData:
    """Returns 600 grey 16x16 images in [0, 1]; the class sets where the blob sits.

    Each class owns a spot on a circle around the centre; an image is a Gaussian
    blob near its class's spot (jittered position, width and brightness) plus
    pixel noise, so a small network learns it quickly but not trivially.

    Args:
        seed: generates the examples; the dataset is the same for every
            experiment seed, which only changes how it is split.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(N_EXAMPLES) % N_CLASSES
    rng.shuffle(y)
    angle = 2.0 * np.pi * y / N_CLASSES
    centre = (SIZE - 1) / 2.0
    radius = SIZE * 0.3
    cy = centre + radius * np.sin(angle) + rng.normal(0.0, 0.9, N_EXAMPLES)
    cx = centre + radius * np.cos(angle) + rng.normal(0.0, 0.9, N_EXAMPLES)
    width = rng.uniform(1.2, 2.0, N_EXAMPLES)
    brightness = rng.uniform(0.6, 1.0, N_EXAMPLES)
    grid = np.arange(SIZE, dtype=np.float64)
    dist2 = ((grid[None, :, None] - cy[:, None, None]) ** 2
             + (grid[None, None, :] - cx[:, None, None]) ** 2)
    blob = brightness[:, None, None] * np.exp(-dist2 / (2.0 * width[:, None, None] ** 2))
    x = np.clip(blob + rng.normal(0.0, 0.25, blob.shape), 0.0, 1.0)
    return RawData(x=x[:, None].astype(np.float32), y=y.astype(np.int64), peak=1.0,
                   n_classes=N_CLASSES)


@register_dataset("synthetic")
def _load(cfg: DataConfig) -> RawData:
    return load_synthetic_raw()
