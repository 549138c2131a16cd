"""Learners: the supernet training loop, its per-batch strategies, and hardware regularizers."""
from __future__ import annotations

from hwnas.supernet.learners._base import BaseLearner
from hwnas.supernet.learners._checkpoint import recorded_fingerprint
from hwnas.supernet.learners._few_shot import FewShot, recorded_plan, trained_split
from hwnas.supernet.learners._registry import (LEARNERS, learner_class, list_learners,
                                               register_learner)
# Importing a learner's module registers it; uniform, the default, first.
from hwnas.supernet.learners._uniform import UniformLearner
from hwnas.supernet.learners._darts import DartsLearner
from hwnas.supernet.learners._proxyless import ProxylessLearner
from hwnas.supernet.learners._regularizer import (COST_OBJECTIVES, FORMS, Form, Regularizer,
                                                  register_cost_objective, register_form)
from hwnas.supernet.learners._weights import fingerprint, load_weights, save_weights
from hwnas.registry import import_modules

import_modules(__name__)  # a new learner's module registers it, with nothing else to edit

__all__ = ["BaseLearner", "COST_OBJECTIVES", "DartsLearner", "FORMS", "FewShot", "Form",
           "LEARNERS", "ProxylessLearner", "Regularizer", "UniformLearner", "fingerprint",
           "learner_class", "list_learners", "load_weights", "recorded_fingerprint",
           "recorded_plan", "register_cost_objective", "register_form", "register_learner",
           "save_weights", "trained_split"]
