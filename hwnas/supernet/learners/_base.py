"""BaseLearner: the one supernet training loop; learners override its per-batch hooks."""
from __future__ import annotations

import abc
import dataclasses
import itertools
import time
from pathlib import Path
from typing import Any

import nnabla as nn
import nnabla.functions as F
import nnabla.solvers as S
import numpy as np
import pandas as pd
from nnabla.utils.learning_rate_scheduler import CosineScheduler
from tqdm import tqdm

from hwnas.arch import Arch
from hwnas.io import atomic_write, atomic_write_text
from hwnas.config import TrainConfig
from hwnas.data import Dataset, Split, batches
from hwnas.supernet._space import BaseSearchSpace, Supernet
import hwnas.supernet.learners._checkpoint as checkpoint
from hwnas.supernet.learners._few_shot import FewShot
from hwnas.supernet.learners._regularizer import Regularizer
from hwnas.supernet.learners._weights import save_weights

CHECKPOINT = "train_state.npz"
WEIGHTS = "supernet.h5"
#: A few-shot supernet's copies of the weights, one per option of the split choice.
SPLIT_WEIGHTS = "supernet_split.npz"
LOG = "train_log.csv"
ARCH_LOG = "arch_log.csv"
#: Architecture-parameter snapshots per epoch in arch_log.csv.
SNAPSHOTS_PER_EPOCH = 10


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How one kind of epoch trains: its name in the progress bar, the split it passes over,
    its steps per epoch and its learning-rate schedule."""

    name: str
    split: Split
    steps: int
    schedule: CosineScheduler


class BaseLearner(abc.ABC):
    """Trains a supernet's weights (and architecture parameters), one epoch at a time.

    Every step is ``arch_step`` (learners that learn the architecture, after
    ``warmup_epochs``) on a batch of the architecture split, then
    ``before_batch`` (which sets up the supernet's paths or mode) and a
    weight update on a batch of the weight split. The two splits are
    disjoint parts of ``data.train``. Each epoch ends with a checkpoint
    (weights, architecture parameters, solver states, logs) in ``run_dir``;
    ``fit`` resumes from it. Epoch ``e`` draws its batches and paths from
    generators seeded by ``(seed, e)``, so a resumed run computes what an
    uninterrupted one does.

    With ``config.split_epochs`` (learners that learn no architecture), the epochs after
    ``config.total_epochs`` train a few-shot supernet's copies (see ``FewShot``): the
    copies go to ``split_weights_file``, while ``weights_file`` keeps the one-shot weights.

    Args:
        space: the search space.
        supernet: its supernet (trained in place).
        data: the dataset; only ``data.train`` is used.
        config: epochs, batch size, SGD and architecture-optimiser settings.
        seed: seeds batches and path sampling.
        run_dir: where checkpoints go; None keeps nothing on disk.
        progress: show a tqdm bar.
        regularizer: the hardware constraint of the architecture loss, if any.
    """

    #: Whether the learner updates architecture parameters.
    learns_arch = False
    #: Single-path fine-tuning epochs per search epoch when ``train.finetune_epochs`` is
    #: left out (see ``with_defaults``): for a learner whose supernet, without them, scores
    #: or ranks single paths poorly (DARTS: scores; ProxylessNAS: ranks).
    finetune_factor = 0
    #: What the weights train on, for a learner that needs ``finetune_factor`` times its
    #: epochs of fine-tuning (a run with fewer says so); None for one that trains single
    #: paths.
    weights_train_on: str | None = None
    #: (beta1, beta2) of the architecture parameters' Adam optimiser.
    arch_betas = (0.5, 0.999)
    #: File names in ``run_dir``: checkpoint, weights, training log, architecture log.
    checkpoint_file, weights_file, log_file, arch_log_file = CHECKPOINT, WEIGHTS, LOG, ARCH_LOG
    split_weights_file = SPLIT_WEIGHTS

    def __init__(self, *, space: BaseSearchSpace, supernet: Supernet, data: Dataset,
                 config: TrainConfig, seed: int = 0, run_dir: str | Path | None = None,
                 progress: bool = True, regularizer: Regularizer | None = None) -> None:
        config = self.with_defaults(config)
        self.space, self.supernet, self.data, self.config = space, supernet, data, config
        self.seed = seed
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = progress
        self.regularizer = regularizer
        if regularizer is not None and not self.learns_arch:
            raise ValueError(f"{type(self).__name__} has no architecture loss to regularize")
        if config.finetune_epochs and not self.learns_arch:
            raise ValueError(f"train.finetune_epochs is for learners that learn the "
                             f"architecture; {type(self).__name__} trains uniformly sampled "
                             "paths already: raise train.epochs instead")
        if config.split_epochs and self.learns_arch:
            raise ValueError(f"train.split_epochs splits a supernet trained on uniformly "
                             f"sampled paths; {type(self).__name__} learns the architecture")
        self.few_shot = FewShot(space, config) if config.split_epochs else None
        self.weight_split, self.arch_split = self._split(data.train)
        for split in (self.weight_split, self.arch_split):
            if split is not None and len(split) < config.batch_size:
                raise ValueError(f"batch_size {config.batch_size} exceeds the {len(split)} "
                                 "training examples of a split; lower it or use more data")
        self.solvers = self._weight_solvers()
        self.alphas = supernet.arch_parameters() if self.learns_arch else {}
        if self.learns_arch and not self.alphas:
            raise ValueError(f"{type(self).__name__} needs a supernet with architecture parameters")
        self.arch_solver = None
        if self.alphas:
            self.arch_solver = S.Adam(config.arch_lr, *self.arch_betas)
            self.arch_solver.set_parameters(self.alphas)
        self.history: list[dict[str, Any]] = []
        self.arch_log: list[dict[str, Any]] = []
        shape = (config.batch_size,) + tuple(data.input_shape)
        self._x, self._xa = nn.Variable(shape), nn.Variable(shape)
        self._y, self._ya = nn.Variable((config.batch_size, 1)), nn.Variable((config.batch_size, 1))
        self._graphs: dict[str, tuple[nn.Variable, nn.Variable]] = {}

    @classmethod
    def with_defaults(cls, config: TrainConfig) -> TrainConfig:
        """``config`` with the settings it leaves to the learner resolved:
        ``finetune_epochs`` left out (None) becomes ``finetune_factor`` times ``epochs``."""
        if config.finetune_epochs is not None:
            return config
        return dataclasses.replace(config, finetune_epochs=cls.finetune_factor * config.epochs)

    def _split(self, train: Split) -> tuple[Split, Split | None]:
        """The weight split and the (disjoint) architecture split of the training data."""
        if not self.learns_arch:
            return train, None
        order = np.random.default_rng([self.seed, 7]).permutation(len(train))
        n_arch = int(round(len(train) * self.config.arch_fraction))
        arch, weight = np.sort(order[:n_arch]), np.sort(order[n_arch:])
        return Split(train.x[weight], train.y[weight]), Split(train.x[arch], train.y[arch])

    def _weight_solvers(self) -> dict[str, S.Solver]:
        """A fresh solver for every parameter group of the supernet."""
        return {group: self._make_solver(params)
                for group, params in self.supernet.parameter_groups().items()}

    @property
    def planned_epochs(self) -> int:
        """Every epoch ``fit`` trains: ``config.total_epochs``, then the split's."""
        return self.few_shot.epochs if self.few_shot else self.config.total_epochs

    def pin(self, arch: Arch) -> Arch:
        """The path to train for ``arch``: with the split choice fixed to the option of the
        copy that trains now, if one does."""
        return self.few_shot.pin(arch) if self.few_shot else arch

    def _plans(self) -> dict[str, _Plan]:
        """How an epoch of each kind trains: the one-shot (or search) epochs, the fine-tuning
        epochs (a second cosine cycle from lr, over the whole training split) and the epochs
        of each few-shot copy (a cosine cycle of its own from lr)."""
        cfg = self.config
        steps = len(self.weight_split) // cfg.batch_size
        tuning_steps = len(self.data.train) // cfg.batch_size
        return {
            "train": _Plan("train", self.weight_split, steps,
                           CosineScheduler(cfg.lr, cfg.epochs * steps)),
            "finetune": _Plan("fine-tune", self.data.train, tuning_steps,
                              CosineScheduler(cfg.lr, max(1, cfg.finetune_epochs * tuning_steps))),
            "split": _Plan("split", self.weight_split, steps,
                           CosineScheduler(cfg.lr, max(1, cfg.split_epochs * steps)))}

    def _make_solver(self, params: dict[str, nn.Variable]) -> S.Solver:
        solver = S.Momentum(self.config.lr, self.config.momentum)
        solver.set_parameters(params)
        return solver

    @abc.abstractmethod
    def before_batch(self, rng: np.random.Generator) -> None:
        """Prepares the supernet for the next weight update (samples its path, sets its mode)."""

    def arch_step(self, xa: np.ndarray, ya: np.ndarray, x: np.ndarray, y: np.ndarray,
                  rng: np.random.Generator, lr: float) -> dict[str, float]:
        """One architecture update on ``(xa, ya)``; ``(x, y)`` is the next weight batch.

        Returns numbers worth logging (e.g. the architecture loss).
        """
        raise NotImplementedError(f"{type(self).__name__} does not learn the architecture")

    def graph(self, x: nn.Variable, y: nn.Variable, cache: str | None = None,
              frozen: bool = False) -> tuple[nn.Variable, nn.Variable]:
        """(loss, logits) of the supernet in its current mode, in training mode.

        A graph that does not change between batches (the DARTS weighted sum)
        is built once under the name ``cache`` and reused. A ``frozen`` graph
        computes no weight gradients (architecture steps need only the alphas').
        """
        if cache is not None and cache in self._graphs:
            return self._graphs[cache]
        self.supernet.training = True
        self.supernet.frozen = frozen
        try:
            logits = self.supernet(x)
        finally:
            self.supernet.frozen = False
        logits.persistent = True
        loss = F.mean(F.softmax_cross_entropy(logits, y))
        if cache is not None:
            self._graphs[cache] = (loss, logits)
        return loss, logits

    #: Name under which ``train_step`` caches its graph (None: rebuilt per batch).
    weight_graph: str | None = None

    def warming_up(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (from 0) trains weights only."""
        return epoch < self.config.warmup_epochs

    def train_step(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                   lr: float, warmup: bool = False) -> tuple[float, float]:
        """One weight update on one batch; returns (loss, accuracy) of the batch.

        During warm-up every learner trains uniformly sampled single paths.
        """
        if warmup:
            self.supernet.set_mode("single")
            self.supernet.set_active(self.space.sample(rng))
            loss, logits = self.graph(self._x, self._y)
        else:
            self.before_batch(rng)
            loss, logits = self.graph(self._x, self._y, self.weight_graph)
        self._x.d, self._y.d = x, y
        loss.forward(clear_no_need_grad=True)
        active = [self.solvers[g] for g in self.supernet.active_groups()]
        for solver in active:
            solver.zero_grad()
        loss.backward(clear_buffer=True)
        for solver in active:
            solver.set_learning_rate(lr)
            solver.weight_decay(self.config.weight_decay)
            solver.update()
        accuracy = float(np.mean(np.argmax(logits.d, axis=1) == y[:, 0]))
        return float(loss.d), accuracy

    def fit(self) -> list[dict[str, Any]]:
        """Trains to ``planned_epochs`` (``epochs``, then ``finetune_epochs`` of weights
        alone on uniformly sampled paths, then ``split_epochs`` per copy of a few-shot
        supernet), resuming from a checkpoint when there is one."""
        cfg = self.config
        start = self._restore()
        steps = len(self.weight_split) // cfg.batch_size
        every = max(1, steps // SNAPSHOTS_PER_EPOCH)
        plans = self._plans()
        for epoch in range(start, self.planned_epochs):
            copy = self.few_shot.copy_of(epoch) if self.few_shot else None
            tuning = copy is None and epoch >= cfg.epochs
            plan = plans["finetune" if tuning else "split" if copy else "train"]
            split, n, schedule = plan.split, plan.steps, plan.schedule
            first = n * (epoch - cfg.epochs if tuning else copy[1] if copy else epoch)
            if copy:
                if copy[1] == 0:  # a copy starts from the one-shot weights, without momentum
                    self.solvers = self._weight_solvers()
                self.few_shot.enter(self.supernet, copy[0])
            rng = np.random.default_rng([self.seed, epoch])
            searching = self.learns_arch and not tuning and not self.warming_up(epoch)
            arch_batches = (itertools.cycle(list(batches(
                self.arch_split, cfg.batch_size, np.random.default_rng([self.seed, epoch, 1]),
                drop_last=True))) if searching else None)
            began = time.perf_counter()
            phase = f"split {copy[0]}" if copy else plan.name
            losses, accuracies, arch_stats = [], [], []
            bar = tqdm(batches(split, cfg.batch_size, rng, drop_last=True),
                       total=n, desc=f"{phase} epoch {epoch + 1}/{self.planned_epochs}",
                       disable=not self.progress, leave=False)
            for i, (x, y) in enumerate(bar):
                lr = schedule.get_learning_rate(first + i)
                if searching:
                    xa, ya = next(arch_batches)
                    arch_stats.append(self.arch_step(xa, ya, x, y, rng, lr))
                x = self.augment(x, rng)
                loss, acc = self.train_step(x, y, rng, lr,
                                             warmup=self.learns_arch and not searching)
                losses.append(loss)
                accuracies.append(acc)
                if self.alphas and not tuning and (i + 1) % every == 0:
                    self._snapshot(epoch * steps + i + 1, epoch + 1)
                bar.set_postfix(loss=f"{np.mean(losses):.3f}", acc=f"{np.mean(accuracies):.3f}")
            row = {"epoch": epoch + 1, "loss": float(np.mean(losses)),
                   "train_accuracy": float(np.mean(accuracies)),
                   "lr": float(schedule.get_learning_rate(first + n - 1)),
                   "seconds": round(time.perf_counter() - began, 3)}
            if self.learns_arch:
                row["phase"] = "finetune" if tuning else "search" if searching else "warmup"
            elif self.few_shot:
                row["phase"] = f"split:{copy[0]}" if copy else "one-shot"
            for key in (arch_stats[0] if arch_stats else {}):
                row[key] = float(np.mean([s[key] for s in arch_stats]))
            row.update(self.epoch_metrics())
            self.history.append(row)
            if copy:
                self.few_shot.leave(self.supernet)
            if self.progress:
                tqdm.write(f"epoch {row['epoch']:3d}  loss {row['loss']:.4f}  "
                           f"train acc {row['train_accuracy']:.4f}  lr {row['lr']:.4f}  "
                           f"{row['seconds']:.1f}s")
            self._checkpoint(epoch + 1)
        return self.history

    def augment(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The weight batch ``x`` as trained on (no augmentation here)."""
        return x

    def epoch_metrics(self) -> dict[str, float]:
        """Numbers the train log records at the end of every epoch, beyond loss and accuracy."""
        return {}

    def _snapshot(self, step: int, epoch: int) -> None:
        """Appends softmax(alpha) of every architecture parameter to the architecture log."""
        options = self.supernet.arch_options()
        for edge, probs in self.supernet.probabilities().items():
            self.arch_log.extend({"step": step, "epoch": epoch, "edge": edge, "option": o,
                                  "prob": float(p)} for o, p in zip(options[edge], probs))

    # -- architecture gradients ------------------------------------------------------

    def zero_arch_grads(self) -> None:
        for alpha in self.alphas.values():
            alpha.grad.zero()

    def arch_grads(self) -> dict[str, np.ndarray]:
        return {name: alpha.g.copy() for name, alpha in self.alphas.items()}

    def regularized(self, loss: float, grads: dict[str, np.ndarray]) -> tuple[float, dict]:
        """The regularized architecture loss and its gradient, given the task loss's gradient.

        By the chain rule through ``R(loss, alphas)``: ``dR/dalpha = dR/dloss *
        dloss/dalpha + partial R / partial alpha``; so any estimate of the task
        loss's gradient (first order, unrolled, gated) gets the same regularizer.
        """
        if self.regularizer is None:
            return loss, grads
        c = nn.Variable.from_numpy_array(np.array(loss, np.float32), need_grad=True)
        total = self.regularizer.apply(c, self.alphas)
        self.zero_arch_grads()
        c.grad.zero()
        total.forward()
        total.backward()
        dc = float(c.g)
        return float(total.d), {n: dc * g + self.alphas[n].g for n, g in grads.items()}

    def save_statistics(self) -> dict[str, np.ndarray]:
        """Copies of the BN running statistics.

        Architecture steps put them back afterwards: the weight step owns them,
        and an architecture step is then a function of the weights alone.
        """
        trainable = self.supernet.get_parameters(grad_only=True)
        return {k: v.d.copy() for k, v in self.supernet.net_parameters().items()
                if k not in trainable}

    def restore_statistics(self, saved: dict[str, np.ndarray]) -> None:
        params = self.supernet.net_parameters()
        for key, value in saved.items():
            params[key].d = value

    def update_arch(self, grads: dict[str, np.ndarray]) -> None:
        """One Adam step of the architecture parameters along ``grads``."""
        for name, alpha in self.alphas.items():
            alpha.g = grads[name]
        self.arch_solver.weight_decay(self.config.arch_weight_decay)
        self.arch_solver.update()

    def arch_stats(self, loss: float) -> dict[str, float]:
        """What the train log records of an architecture step."""
        stats = {"arch_loss": loss}
        if self.regularizer is not None:
            stats[f"expected_{self.regularizer.objective}"] = self.regularizer.expected_value(
                self.supernet.probabilities())
        return stats

    # -- checkpoints ---------------------------------------------------------------

    def _checkpoint(self, epochs_done: int) -> None:
        if self.run_dir is None:
            return
        arrays = checkpoint.pack(self.supernet, self.alphas, self._all_solvers(),
                                 self.extra_state(), epochs_done)
        if self.few_shot:  # the copies first, like the weights: the checkpoint pairs them
            arrays.update(self.few_shot.checkpoint(self.run_dir / self.split_weights_file))
        # The fingerprint pairs the weights file with this checkpoint: a file of the same
        # shapes from another training is refused where it is loaded (load_weights).
        arrays[checkpoint.FINGERPRINT] = np.array(save_weights(self.supernet,
                                                               self.run_dir / self.weights_file))
        atomic_write_text(self.run_dir / self.log_file,
                          pd.DataFrame(self.history).to_csv(index=False))
        if self.arch_log:
            atomic_write_text(self.run_dir / self.arch_log_file,
                              pd.DataFrame(self.arch_log).to_csv(index=False))
        # Last, since it says how many epochs are done: a crash before it repeats the
        # epoch on resume, rather than pairing its count with the previous weights.
        atomic_write(self.run_dir / self.checkpoint_file, lambda tmp: np.savez(tmp, **arrays))

    def _all_solvers(self) -> dict[str, S.Solver]:
        # "#arch" cannot clash with a parameter group (groups are scoped names).
        return {**self.solvers, **({"#arch": self.arch_solver} if self.arch_solver else {})}

    def extra_state(self) -> dict[str, float]:
        """Learner state beyond parameters and solvers that a checkpoint must keep."""
        return {}

    def set_extra_state(self, state: dict[str, float]) -> None:
        """Restores what ``extra_state`` returned."""

    def _restore(self) -> int:
        if self.run_dir is None or not (self.run_dir / self.checkpoint_file).exists():
            return 0
        path = self.run_dir / self.checkpoint_file
        arrays = checkpoint.read(path)
        self.set_extra_state(checkpoint.unpack(arrays, path, self.supernet, self.alphas,
                                               self._all_solvers()))
        done = int(arrays["epochs_done"])
        if self.few_shot:
            self.few_shot.restore(self.supernet, self.run_dir / self.split_weights_file, path,
                                  arrays, done)
        self.history = checkpoint.read_log(self.run_dir / self.log_file, done)
        self.arch_log = checkpoint.read_log(self.run_dir / self.arch_log_file, done)
        return done
