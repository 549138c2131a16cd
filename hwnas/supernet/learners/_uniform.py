"""Uniform path sampling: random paths of the supernet trained per batch, optionally sandwiched
between the largest and the smallest and distilled from the largest."""
from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import numpy as np

from hwnas.arch import Arch
from hwnas.errors import RunDirError
from hwnas.supernet.learners._base import BaseLearner
from hwnas.supernet.learners._registry import register_learner


@register_learner("uniform")
class UniformLearner(BaseLearner):
    """Samples a subnet uniformly for every batch (single-path one-shot training).

    Two remedies for a supernet that ranks its subnets poorly (BigNAS, Yu et
    al. 2020), both off by default:

    - ``config.sampling == "sandwich"``: every step trains the largest and
      the smallest subnet (``space.extremes()``: the most and the fewest MACs
      per choice) and ``config.sandwich_paths`` random ones; their gradients
      are summed into one update, so the extremes bound what the shared
      weights are trained for.
    - ``config.distill``: every step also trains the largest subnet on the
      labels, first; the step's other paths learn its softmax output
      (in-place distillation: cross-entropy against the soft targets, which
      are constants of the step).

    With both off a step is one random path, exactly as before the remedies.
    The train log's loss and accuracy are then the path's; with a remedy on,
    the mean of every path of the step against the labels.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.smallest, self.largest = self.space.extremes()
        self._soft: nn.Variable | None = None  # the teacher's softmax, made at the first use

    @property
    def remedies(self) -> bool:
        """Whether a step trains more than one random path."""
        return self.config.sampling != "uniform" or self.config.distill

    def before_batch(self, rng: np.random.Generator) -> None:
        self.supernet.set_active(self.pin(self.space.sample(rng)))

    def step_paths(self, rng: np.random.Generator) -> list[Arch]:
        """The subnets one weight update trains, in order (the largest first when it teaches);
        while a few-shot supernet's copy trains, each with the split choice fixed to its option."""
        cfg = self.config
        if cfg.sampling == "sandwich":
            paths = ([self.largest, self.smallest]
                     + [self.space.sample(rng) for _ in range(cfg.sandwich_paths)])
        else:
            paths = ([self.largest, self.space.sample(rng)] if cfg.distill
                     else [self.space.sample(rng)])
        return [self.pin(arch) for arch in paths]

    def train_step(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                   lr: float, warmup: bool = False) -> tuple[float, float]:
        if not self.remedies:
            return super().train_step(x, y, rng, lr, warmup)
        paths = self.step_paths(rng)
        groups: set[str] = set()
        for arch in paths:
            self.supernet.set_active(arch)
            groups.update(self.supernet.active_groups())
        active = [self.solvers[g] for g in sorted(groups)]
        for solver in active:
            solver.zero_grad()
        self._x.d, self._y.d = x, y
        losses, accuracies = [], []
        for i, arch in enumerate(paths):
            self.supernet.set_active(arch)
            loss, logits = self.graph(self._x, self._y)
            if self.config.distill and i > 0:
                loss = self._distilled(logits)
            loss.forward(clear_no_need_grad=True)
            if self.config.distill and i == 0:
                self._teacher(logits).d = _softmax(logits.d)
            loss.backward(clear_buffer=True)  # nnabla adds to the gradients of the earlier paths
            losses.append(_cross_entropy(logits.d, y))
            accuracies.append(float(np.mean(np.argmax(logits.d, axis=1) == y[:, 0])))
        for solver in active:
            solver.set_learning_rate(lr)
            solver.weight_decay(self.config.weight_decay)
            solver.update()
        return float(np.mean(losses)), float(np.mean(accuracies))

    def _teacher(self, logits: nn.Variable) -> nn.Variable:
        """The variable that holds the teacher's soft targets, shaped like ``logits``."""
        if self._soft is None:
            self._soft = nn.Variable(logits.shape)
        return self._soft

    def _distilled(self, logits: nn.Variable) -> nn.Variable:
        """Mean cross-entropy of ``logits`` against the teacher's soft targets."""
        return F.mean(-F.sum(self._teacher(logits) * F.log_softmax(logits, axis=1), axis=1))

    def extra_state(self) -> dict[str, float]:
        cfg = self.config
        sandwich = cfg.sampling == "sandwich"
        return {"sandwich": float(sandwich),
                "sandwich_paths": float(cfg.sandwich_paths if sandwich else 0),
                "distill": float(cfg.distill)}

    def set_extra_state(self, state: dict[str, float]) -> None:
        """Refuses a checkpoint trained with other remedies: resuming would mix two trainings.

        A checkpoint without the entries predates the remedies: one random path per step.
        """
        recorded = {"sandwich": 0.0, "sandwich_paths": 0.0, "distill": 0.0, **state}
        if any(recorded[k] != v for k, v in self.extra_state().items()):
            raise RunDirError(
                f"{self.run_dir / self.checkpoint_file}: the checkpoint was trained with "
                f"{_describe(recorded)}, the config asks for {_describe(self.extra_state())}; "
                "set train.sampling, train.sandwich_paths and train.distill back, "
                "or delete the checkpoint to train from scratch")


def _describe(state: dict[str, float]) -> str:
    sampling = (f"sampling sandwich, sandwich_paths {int(state['sandwich_paths'])}"
                if state["sandwich"] else "sampling uniform")
    return f"{sampling}, distill {str(bool(state['distill'])).lower()}"


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy of ``logits`` against the integer labels ``y`` (shape (N, 1))."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-np.mean(log_probs[np.arange(len(y)), y[:, 0]]))
