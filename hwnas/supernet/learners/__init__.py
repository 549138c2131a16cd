"""Learners: the supernet training loop and its per-batch strategies."""
from __future__ import annotations

from hwnas.supernet.learners._base import BaseLearner, load_weights, save_weights
from hwnas.supernet.learners._uniform import UniformLearner

LEARNERS = {"uniform": UniformLearner}

__all__ = ["BaseLearner", "LEARNERS", "UniformLearner", "load_weights", "save_weights"]
