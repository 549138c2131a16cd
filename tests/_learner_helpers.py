"""Helpers shared by the learner test files: every gradient learner variant and how to make
one, supernets that start from the same weights, and a crash in the middle of training."""
from __future__ import annotations

import pytest

from hwnas.config import TrainConfig
from hwnas.supernet.learners import LEARNERS


class Interrupted(Exception):
    """Stands for a crash in the middle of training (raised by ``crash_at``)."""


def with_weights(space, weights: dict):
    """A new supernet of ``space`` holding copies of ``weights`` (name -> array)."""
    net = space.supernet()
    for key, param in net.net_parameters().items():
        param.d = weights[key].copy()
    return net


def crash_at(monkeypatch: pytest.MonkeyPatch, learner, step: int) -> None:
    """Makes ``learner``'s weight step number ``step`` (from 0, over the whole training)
    raise Interrupted instead of running."""
    calls: list[int] = []
    real = learner.train_step

    def crashing(*args, **kwargs):
        if len(calls) == step:
            raise Interrupted
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(learner, "train_step", crashing)

#: Every gradient learner variant: (learner, config overrides).
VARIANTS = {
    "darts1": ("darts", {"order": 1}),
    "darts2": ("darts", {"order": 2}),
    "gate": ("proxyless", {"estimator": "binary_gate"}),
    "reinforce": ("proxyless", {"estimator": "reinforce"}),
}


def make_learner(space, net, data, variant: str, run_dir=None, regularizer=None, **config):
    learner, overrides = VARIANTS[variant]
    # No fine-tuning unless asked for (DARTS's default adds twice its epochs): these tests
    # look at the search epochs.
    cfg = TrainConfig(**{"learner": learner, "epochs": 1, "batch_size": 16, "lr": 0.05,
                         "arch_lr": 0.05, "finetune_epochs": 0, **overrides, **config})
    return LEARNERS[learner](space=space, supernet=net, data=data, config=cfg, seed=5,
                             run_dir=run_dir, progress=False, regularizer=regularizer)
