"""The digits dataset embedded in scikit-learn: 1,797 grey 8x8 images of 10 digits."""
from __future__ import annotations

import numpy as np

from hwnas.data._dataset import RawData


def load_digits_raw() -> RawData:
    """Returns the digits as (N, 1, 8, 8) pixel counts in [0, 16]; nothing is downloaded."""
    # Imported here: scikit-learn takes a second to import and only this source needs it.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype(np.float32)[:, None]
    return RawData(x=x, y=bunch.target.astype(np.int64), peak=16.0, n_classes=10)
