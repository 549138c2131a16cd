"""The digits dataset embedded in scikit-learn: 1,797 grey 8x8 images of 10 digits."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hwnas.data._dataset import RawData
from hwnas.data._sources import register_dataset

if TYPE_CHECKING:
    from hwnas.config import DataConfig


def load_digits_raw() -> RawData:
    """Returns the digits as (N, 1, 8, 8) pixel counts in [0, 16]; nothing is downloaded."""
    # Imported here: scikit-learn takes a second to import and only this source needs it.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype(np.float32)[:, None]
    return RawData(x=x, y=bunch.target.astype(np.int64), peak=16.0, n_classes=10)


@register_dataset("digits")
def _load(cfg: DataConfig) -> RawData:
    return load_digits_raw()
