"""Datasets: loading, splitting, batching and augmenting the images a network trains on."""
from __future__ import annotations

from hwnas.data._augment import AUGMENTATIONS, augment, default_augmentation
from hwnas.data._dataset import Dataset, Split, batches
from hwnas.data._load import load_dataset

__all__ = ["AUGMENTATIONS", "Dataset", "Split", "augment", "batches", "default_augmentation",
           "load_dataset"]
