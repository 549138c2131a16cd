"""Plain random search: each choice drawn uniformly, independent of what was told."""
from __future__ import annotations

import numpy as np

from hwnas.strategies._base import ProposingStrategy
from hwnas.arch import Arch


class RandomSearch(ProposingStrategy):
    """Uniform random subnets from a seeded generator (the baseline every strategy must beat)."""

    name = "random"
    summary = "plain random search (the baseline)"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._rng = np.random.default_rng(self.seed)

    def _propose(self, n: int) -> list[Arch]:
        return [Arch({name: options[int(self._rng.integers(len(options)))]
                      for name, options in self.choices.items()}) for _ in range(n)]

    def _learn(self, arch: Arch, values: list[float], violation: float) -> None:
        pass
