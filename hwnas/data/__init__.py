"""Datasets: loading, splitting and batching the images a supernet trains on."""
from __future__ import annotations

from hwnas.data._dataset import Dataset, Split, batches
from hwnas.data._load import load_dataset

__all__ = ["Dataset", "Split", "batches", "load_dataset"]
