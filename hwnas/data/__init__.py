"""Datasets: loading, splitting, batching and augmenting the images a network trains on."""
from __future__ import annotations

from hwnas.data._augment import AUGMENTATIONS, augment, register_augmentation
from hwnas.data._dataset import Dataset, RawData, Split, batches
from hwnas.data._load import load_dataset
from hwnas.data._sources import (DATASETS, DataSource, default_augmentation, list_datasets,
                                 register_dataset)
from hwnas.registry import import_modules

# A dataset's module registers it; the shipped ones in this order (digits, the default, first),
# then any other module of this folder.
from hwnas.data import _digits, _cifar10, _mnist, _synthetic

SHIPPED = (_digits, _cifar10, _mnist, _synthetic)
import_modules(__name__)

__all__ = ["AUGMENTATIONS", "DATASETS", "DataSource", "Dataset", "RawData", "Split", "augment",
           "batches", "default_augmentation", "list_datasets", "load_dataset",
           "register_augmentation", "register_dataset"]
