"""The dataset registry: name -> DataSource, the loader of a dataset and what it needs."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from hwnas.data._augment import AUGMENTATIONS
from hwnas.data._dataset import RawData
from hwnas.registry import Registry

if TYPE_CHECKING:  # annotation only: the data package needs nothing of the config at run time
    from hwnas.config import DataConfig


class Loader(Protocol):
    """A loader: the data config -> every example the source has (official test files too)."""

    def __call__(self, cfg: DataConfig) -> RawData: ...


@dataclasses.dataclass(frozen=True)
class DataSource:
    """A registered dataset.

    Attributes:
        load: the loader; it reads ``cfg.path`` where the dataset needs one.
        needs_path: a config must give ``data.path``, the user's local copy.
        augmentation: what ``retrain.augmentation: auto`` means for it.
    """

    load: Loader
    needs_path: bool = False
    augmentation: str = "shift"


def _as_source(obj: object) -> DataSource:
    """A loaded dataset entry: a DataSource as it is, a loader function as a DataSource."""
    if isinstance(obj, DataSource):
        return obj
    if callable(obj) and not isinstance(obj, type):
        return DataSource(load=obj)
    raise TypeError("a dataset loader (a function taking the data config and returning "
                    "RawData, or a DataSource)")


#: name -> DataSource, in registration order (``digits``, the default, first). A config may
#: also name a loader by spec (``resolve``), or an installed package's ``hwnas.datasets``.
DATASETS: Registry[DataSource] = Registry("dataset", group="hwnas.datasets", accept=_as_source)


def register_dataset(name: str, loader: Loader | None = None, *, needs_path: bool = False,
                     augmentation: str = "shift") -> Loader | Callable[[Loader], Loader]:
    """Registers a dataset's loader under ``name`` (a plain call, or a decorator without ``loader``).

    Args:
        name: the name ``data.name`` gives.
        loader: takes the data config and returns ``RawData``; it raises
            ``DataError`` for missing or malformed files.
        needs_path: a config without ``data.path`` is refused before anything runs.
        augmentation: a registered augmentation, what ``auto`` means for this data
            (``shift`` for digits; ``crop-flip`` where mirror images are natural).

    Returns:
        ``loader`` (or the decorator, which returns its target unchanged).

    Raises:
        ValueError: ``name`` is already registered or ``augmentation`` is unknown.
    """
    if augmentation not in AUGMENTATIONS:
        raise ValueError(AUGMENTATIONS.unknown(augmentation))
    if loader is None:
        return lambda target: register_dataset(name, target, needs_path=needs_path,
                                               augmentation=augmentation)
    DATASETS.register(name, DataSource(load=loader, needs_path=needs_path,
                                       augmentation=augmentation))
    return loader


def list_datasets(pattern: str = "*") -> list[str]:
    """Registered dataset names matching a shell-style wildcard."""
    return DATASETS.names(pattern)


def default_augmentation(dataset: str) -> str:
    """What ``augmentation: auto`` means for the registered ``dataset``.

    Raises:
        ValueError: ``dataset`` is not registered and no spec that can be loaded.
    """
    return DATASETS.resolve(dataset).augmentation
