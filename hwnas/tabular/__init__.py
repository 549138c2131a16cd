"""Tabular NAS benchmarks: search spaces scored by looking subnets up, for comparing strategies."""
from __future__ import annotations

from hwnas.tabular._nasbench201 import (NB201_DATASETS, NB201_EDGES, NB201_OBJECTIVES,
                                           NB201_OPS, NasBench201)

__all__ = ["NB201_DATASETS", "NB201_EDGES", "NB201_OBJECTIVES", "NB201_OPS", "NasBench201"]
