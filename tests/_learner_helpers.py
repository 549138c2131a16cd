"""Helpers shared by the learner test files: every gradient learner variant and how to make one."""
from __future__ import annotations

from hwnas.config import TrainConfig
from hwnas.supernet.learners import LEARNERS

#: Every gradient learner variant: (learner, config overrides).
VARIANTS = {
    "darts1": ("darts", {"order": 1}),
    "darts2": ("darts", {"order": 2}),
    "gate": ("proxyless", {"estimator": "binary_gate"}),
    "reinforce": ("proxyless", {"estimator": "reinforce"}),
}


def make_learner(space, net, data, variant: str, run_dir=None, regularizer=None, **config):
    learner, overrides = VARIANTS[variant]
    cfg = TrainConfig(**{"learner": learner, "epochs": 1, "batch_size": 16, "lr": 0.05,
                         "arch_lr": 0.05, **overrides, **config})
    return LEARNERS[learner](space=space, supernet=net, data=data, config=cfg, seed=5,
                             run_dir=run_dir, progress=False, regularizer=regularizer)
