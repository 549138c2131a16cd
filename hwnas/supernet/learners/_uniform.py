"""Uniform path sampling: one random path of the supernet trained per batch."""
from __future__ import annotations

import numpy as np

from hwnas.supernet.learners._base import BaseLearner
from hwnas.supernet.learners._registry import register_learner


@register_learner("uniform")
class UniformLearner(BaseLearner):
    """Samples a subnet uniformly for every batch (single-path one-shot training)."""

    def before_batch(self, rng: np.random.Generator) -> None:
        self.supernet.set_active(self.space.sample(rng))
