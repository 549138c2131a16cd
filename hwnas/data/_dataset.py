"""Datasets as arrays: one split, a dataset of three splits, and mini-batches."""
from __future__ import annotations

import dataclasses
from typing import Iterator, NamedTuple, Optional

import numpy as np


class RawData(NamedTuple):
    """What a source hands to the loader, before subsampling, splitting and scaling.

    Attributes:
        x: images of shape (N, C, H, W), integer or float, in [0, ``peak``].
        y: class labels of shape (N,), integers in [0, ``n_classes``).
        peak: the pixel value that means full intensity (16 for digits, 255 for 8-bit images).
        n_classes: how many classes the source defines.
        groups: None, or a group id per example (N,): examples of one group (copies
            of one source image) always land in the same split.
        split: None, or the split each example was given (N,): an index into
            ``SPLITS`` (0 train, 1 val, 2 test). A split that no example is given is
            drawn from the train examples with its fraction.
        class_names: None, or the name of each class (the folder's subfolders), for messages.
        notes: what the loader tells the user on stderr (once a process) when the data set
            has loaded, such as files skipped.
    """

    x: np.ndarray
    y: np.ndarray
    peak: float
    n_classes: int
    groups: Optional[np.ndarray] = None
    split: Optional[np.ndarray] = None
    class_names: Optional[tuple[str, ...]] = None
    notes: tuple[str, ...] = ()


#: The splits, in the order of ``RawData.split``'s codes.
SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """The examples of one split.

    Attributes:
        x: images, float32 of shape (N, C, H, W).
        y: class labels, int32 of shape (N, 1).
    """

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.x, np.ndarray) or self.x.dtype != np.float32 or self.x.ndim != 4:
            raise ValueError(f"Split.x must be a float32 array of shape (N, C, H, W), got {_describe(self.x)}")
        if (not isinstance(self.y, np.ndarray) or self.y.dtype != np.int32
                or self.y.shape != (self.x.shape[0], 1)):
            raise ValueError(f"Split.y must be an int32 array of shape ({self.x.shape[0]}, 1), "
                             f"got {_describe(self.y)}")

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset split three ways, normalised with the statistics of its train split.

    Attributes:
        name: the source (``digits``, ``digits-hard``, ``cifar10``, ``mnist``, ``synthetic``,
            ``folder``, ``csv``, ``npz``).
        train: trains the supernet weights.
        val: scores subnets during the search.
        test: held out for the final report.
        n_classes: number of classes; labels lie in [0, n_classes).
        mean: per-channel mean of the train split on the [0, 1] scale, subtracted from every split.
        std: per-channel standard deviation of the train split, dividing every split.
    """

    name: str
    train: Split
    val: Split
    test: Split
    n_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        shapes = {s.x.shape[1:] for s in (self.train, self.val, self.test)}
        if len(shapes) != 1:
            raise ValueError(f"Dataset splits disagree on the image shape: {sorted(shapes)}")
        channels = self.train.x.shape[1]
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(f"Dataset mean/std need {channels} values, got {self.mean} and {self.std}")
        if self.n_classes < 1:
            raise ValueError(f"Dataset.n_classes must be >= 1, got {self.n_classes}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The (C, H, W) shape of one image."""
        c, h, w = self.train.x.shape[1:]
        return int(c), int(h), int(w)


def batches(split: Split, batch_size: int, rng: Optional[np.random.Generator] = None,
            drop_last: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Iterates once over a split in mini-batches.

    Args:
        split: the examples.
        batch_size: examples per batch; the last batch may be smaller unless ``drop_last``.
        rng: shuffles the examples when given; otherwise they come in split order
            as read-only views.
        drop_last: skip the final batch when it is smaller than ``batch_size``.

    Returns:
        An iterator of ``(x, y)`` pairs of shapes (B, C, H, W) and (B, 1).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    # Validating here, not in the generator, makes a bad call fail where it is made.
    return _iterate(split, int(batch_size), rng, drop_last)


def _iterate(split: Split, batch_size: int, rng: Optional[np.random.Generator],
             drop_last: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    n = len(split)
    stop = n - n % batch_size if drop_last else n
    order = rng.permutation(n) if rng is not None else None
    for start in range(0, stop, batch_size):
        if order is None:
            x, y = split.x[start:start + batch_size], split.y[start:start + batch_size]
            # Views into the split: a caller writing into one would corrupt the data set.
            x.flags.writeable = False
            y.flags.writeable = False
        else:
            index = order[start:start + batch_size]
            x, y = split.x[index], split.y[index]
        yield x, y


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__
