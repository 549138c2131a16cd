"""Learners: the supernet training loop, its per-batch strategies, and hardware regularizers."""
from __future__ import annotations

from hwnas.supernet.learners._base import BaseLearner
from hwnas.supernet.learners._weights import load_weights, save_weights
from hwnas.supernet.learners._darts import DartsLearner
from hwnas.supernet.learners._proxyless import ProxylessLearner
from hwnas.supernet.learners._regularizer import COST_OBJECTIVES, FORMS, Regularizer
from hwnas.supernet.learners._uniform import UniformLearner

LEARNERS = {"uniform": UniformLearner, "darts": DartsLearner, "proxyless": ProxylessLearner}

__all__ = ["BaseLearner", "COST_OBJECTIVES", "DartsLearner", "FORMS", "LEARNERS",
           "ProxylessLearner", "Regularizer", "UniformLearner", "load_weights", "save_weights"]
