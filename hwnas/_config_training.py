"""The training sections of an experiment config: supernet training (with its hardware
regularizer) and retraining.

Types and ranges only, as in ``hwnas._config_sections``.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from hwnas._config_sections import BATCH, EPOCHS, bounded
from hwnas.errors import shorten


@dataclasses.dataclass(frozen=True)
class RegularizerConfig:
    """A hardware constraint on the learned architecture (DARTS and ProxylessNAS).

    Attributes:
        objective: a registered regularizer objective
            (``hwnas.supernet.learners.COST_OBJECTIVES``): ``latency_ms`` (from
            the run's latency table), ``params`` or ``macs``.
        budget: the target value of the objective.
        form: a registered form (``hwnas.supernet.learners.FORMS``): ``absolute``
            (loss + weight * |E[cost]/budget - 1|, TuNAS; the derived subnet is
            the most likely one predicted at 0.85-0.95x the budget), ``additive``
            (loss + weight * max(0, E[cost]/budget - 1)) or ``multiplicative``
            (loss * (E[cost]/budget) ** weight, MnasNet); these two derive the
            most likely subnet.
        weight: penalty weight (absolute, additive) or exponent (multiplicative).
    """

    objective: str
    budget: float
    form: str = "absolute"
    weight: float = 1.0

    def _check(self, err) -> None:
        if self.budget <= 0:
            err("budget", f"must be > 0, got {self.budget}")
        if self.weight <= 0:
            err("weight", f"must be > 0, got {self.weight}")


def _check_sgd(config, err) -> None:
    """Checks the SGD settings that supernet training and retraining share."""
    if config.lr <= 0:
        err("lr", f"must be > 0, got {config.lr}")
    if not 0 <= config.momentum < 1:
        err("momentum", f"must be in [0, 1), got {config.momentum}")
    if config.weight_decay < 0:
        err("weight_decay", f"must be >= 0, got {config.weight_decay}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Supernet training.

    Attributes:
        learner: a registered learner (``hwnas.supernet.learners.LEARNERS``):
            ``uniform`` (uniform path sampling), ``darts`` or ``proxyless``.
        epochs: passes over the weight-training split.
        batch_size: examples per step.
        lr: initial learning rate (cosine-annealed to 0).
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        order: DARTS: 1 (first order) or 2 (the unrolled step, with the
            finite-difference Hessian-vector product).
        estimator: ProxylessNAS: ``binary_gate`` or ``reinforce``.
        arch_lr: Adam learning rate of the architecture parameters.
        arch_weight_decay: L2 weight decay of the architecture parameters.
        arch_fraction: share of the training split kept apart for architecture
            updates (gradient learners; weights train on the rest).
        warmup_epochs: first epochs that train weights only (paths sampled uniformly).
        regularizer: a hardware constraint on the learned architecture (a gradient
            learner's), or none.
        sampling: the uniform learner's paths per step: ``uniform`` (one random path)
            or ``sandwich`` (the largest, the smallest and ``sandwich_paths`` random
            ones, their gradients summed into one update).
        sandwich_paths: random paths per step besides the largest and the smallest.
        distill: the uniform learner also trains the largest path on the labels in
            every step and the other paths on its softmax (in-place distillation).
        finetune_epochs: a gradient learner's epochs after ``epochs`` that train the
            weights alone, on uniformly sampled single paths over the whole training
            split (a second cosine cycle from ``lr``), so that the supernet scores every
            subnet for the search and not only those its architecture favours; the
            learned architecture parameters are kept as they are. None (left out): the
            learner's default, ``BaseLearner.finetune_factor`` times ``epochs`` (darts:
            twice ``epochs``; proxyless and uniform: none), which the run resolves and
            stores in its ``config.yaml``.
        split_epochs: the uniform learner's few-shot supernet (Zhao et al. 2021): after
            ``epochs``, the supernet is split on ``split_choice`` into one copy of the
            weights per option, each starting from the one-shot weights and trained this
            many further epochs (a fresh cosine cycle from ``lr``) on uniformly sampled
            paths with that choice fixed to its option; a subnet is then scored with the
            copy of its option. 0: no split (one-shot).
        split_choice: the choice to split on; ``auto``: the first choice with the most
            options.
    """

    learner: str = "uniform"
    epochs: int = bounded(30, low=1, high=EPOCHS)
    batch_size: int = bounded(32, low=1, high=BATCH)
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 4e-5
    order: int = 1
    estimator: str = "binary_gate"
    arch_lr: float = 0.003
    arch_weight_decay: float = 0.001
    arch_fraction: float = 0.5
    warmup_epochs: int = bounded(0, low=0, high=EPOCHS)
    regularizer: Optional[RegularizerConfig] = None
    sampling: str = "uniform"
    # Every path is a forward and a backward pass of the step: 64 make a step 66 times slower.
    sandwich_paths: int = bounded(2, low=0, high=64)
    distill: bool = False
    finetune_epochs: Optional[int] = bounded(None, low=0, high=EPOCHS)
    split_epochs: int = bounded(0, low=0, high=EPOCHS)
    split_choice: str = "auto"

    @property
    def total_epochs(self) -> int:
        """The epochs that train the one-shot supernet: ``epochs``, then ``finetune_epochs``
        (the split's epochs follow; see ``planned_epochs``).

        Raises:
            ValueError: ``finetune_epochs`` is unresolved (None): its value is the learner's
                (``BaseLearner.with_defaults``), which a run and a learner resolve.
        """
        if self.finetune_epochs is None:
            raise ValueError("train.finetune_epochs is unresolved: take the config through "
                             "BaseLearner.with_defaults (a run and a learner do)")
        return self.epochs + self.finetune_epochs

    def planned_epochs(self, split_options: int) -> int:
        """Every epoch the learner trains: ``total_epochs``, then ``split_epochs`` for each
        of the ``split_options`` options of the split choice (the space knows how many)."""
        return self.total_epochs + (split_options * self.split_epochs)

    def _check(self, err) -> None:
        if self.sampling not in ("uniform", "sandwich"):
            err("sampling", f"must be uniform or sandwich, got {shorten(self.sampling)}")
        if self.order not in (1, 2):
            err("order", f"must be 1 or 2, got {shorten(self.order)}")
        if self.estimator not in ("binary_gate", "reinforce"):
            err("estimator", f"must be binary_gate or reinforce, got {shorten(self.estimator)}")
        if self.arch_lr <= 0:
            err("arch_lr", f"must be > 0, got {self.arch_lr}")
        if self.arch_weight_decay < 0:
            err("arch_weight_decay", f"must be >= 0, got {self.arch_weight_decay}")
        if not 0 < self.arch_fraction < 1:
            err("arch_fraction", f"must be in (0, 1), got {self.arch_fraction}")
        if not 0 <= self.warmup_epochs <= self.epochs:
            err("warmup_epochs", f"must be in [0, epochs], got {self.warmup_epochs}")
        _check_sgd(self, err)


@dataclasses.dataclass(frozen=True)
class RetrainConfig:
    """The recipe that trains the chosen subnet from scratch (``hwnas retrain``).

    Attributes:
        epochs: passes over the training split.
        batch_size: examples per step.
        lr: initial learning rate, cosine-annealed to 0 over all steps.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        augmentation: ``auto`` (the dataset's own: ``shift`` for digits, MNIST and
            synthetic data, ``crop-flip`` for CIFAR-10) or a registered augmentation
            (``hwnas.data.AUGMENTATIONS``): ``shift`` (random translation by up
            to ``max(1, image_size // 8)`` pixels, padding with black),
            ``crop-flip`` (the same, plus a random horizontal flip) or ``none``.
    """

    epochs: int = bounded(30, low=1, high=EPOCHS)
    batch_size: int = bounded(32, low=1, high=BATCH)
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augmentation: str = "auto"

    def _check(self, err) -> None:
        _check_sgd(self, err)
