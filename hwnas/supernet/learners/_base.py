"""BaseLearner: the one supernet training loop; learners override its per-batch hooks."""
from __future__ import annotations

import abc
import time
from pathlib import Path
from typing import Any

import nnabla as nn
import nnabla.functions as F
import nnabla.solver as nn_solver
import nnabla.solvers as S
import numpy as np
import pandas as pd
from nnabla.utils.learning_rate_scheduler import CosineScheduler
from tqdm import tqdm

from hwnas._io import atomic_write, atomic_write_text
from hwnas.config import TrainConfig
from hwnas.data import Dataset, batches
from hwnas.errors import RunDirError
from hwnas.supernet._space import BaseSearchSpace, Supernet

CHECKPOINT = "train_state.npz"
WEIGHTS = "supernet.h5"
LOG = "train_log.csv"


class BaseLearner(abc.ABC):
    """Trains a supernet's weights on the train split, one epoch at a time.

    Each epoch ends with a checkpoint (weights, solver states, log) in
    ``run_dir``; ``fit`` resumes from it. Epoch ``e`` draws its batches and
    paths from a generator seeded by ``(seed, e)``, so a resumed run sees the
    same data and paths as an uninterrupted one.

    Args:
        space: the search space.
        supernet: its supernet (trained in place).
        data: the dataset; only ``data.train`` is used for weights.
        config: epochs, batch size and SGD settings.
        seed: seeds batches and path sampling.
        run_dir: where checkpoints go; None keeps nothing on disk.
        progress: show a tqdm bar.
    """

    def __init__(self, *, space: BaseSearchSpace, supernet: Supernet, data: Dataset,
                 config: TrainConfig, seed: int = 0, run_dir: str | Path | None = None,
                 progress: bool = True) -> None:
        if len(data.train) < config.batch_size:
            raise ValueError(f"batch_size {config.batch_size} exceeds the {len(data.train)} "
                             "training examples")
        self.space, self.supernet, self.data, self.config = space, supernet, data, config
        self.seed = seed
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = progress
        self.solvers = {group: self._make_solver(params)
                        for group, params in supernet.parameter_groups().items()}
        self.history: list[dict[str, Any]] = []
        shape = (config.batch_size,) + tuple(data.input_shape)
        self._x = nn.Variable(shape)
        self._y = nn.Variable((config.batch_size, 1))

    def _make_solver(self, params: dict[str, nn.Variable]) -> S.Solver:
        solver = S.Momentum(self.config.lr, self.config.momentum)
        solver.set_parameters(params)
        return solver

    @abc.abstractmethod
    def before_batch(self, rng: np.random.Generator) -> None:
        """Prepares the supernet for the next batch (for example, samples its path)."""

    def train_step(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                   lr: float) -> tuple[float, float]:
        """One weight update on one batch; returns (loss, accuracy) of the batch."""
        self.before_batch(rng)
        self.supernet.training = True
        logits = self.supernet(self._x)
        logits.persistent = True
        loss = F.mean(F.softmax_cross_entropy(logits, self._y))
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
        """Trains to ``config.epochs``, resuming from a checkpoint when there is one."""
        cfg = self.config
        start = self._restore()
        steps = len(self.data.train) // cfg.batch_size
        scheduler = CosineScheduler(cfg.lr, cfg.epochs * steps)
        for epoch in range(start, cfg.epochs):
            rng = np.random.default_rng([self.seed, epoch])
            began = time.perf_counter()
            losses, accuracies = [], []
            bar = tqdm(batches(self.data.train, cfg.batch_size, rng, drop_last=True),
                       total=steps, desc=f"train epoch {epoch + 1}/{cfg.epochs}",
                       disable=not self.progress, leave=False)
            for i, (x, y) in enumerate(bar):
                loss, acc = self.train_step(x, y, rng, scheduler.get_learning_rate(epoch * steps + i))
                losses.append(loss)
                accuracies.append(acc)
                bar.set_postfix(loss=f"{np.mean(losses):.3f}", acc=f"{np.mean(accuracies):.3f}")
            row = {"epoch": epoch + 1, "loss": float(np.mean(losses)),
                   "train_accuracy": float(np.mean(accuracies)),
                   "lr": float(scheduler.get_learning_rate((epoch + 1) * steps - 1)),
                   "seconds": round(time.perf_counter() - began, 3)}
            self.history.append(row)
            if self.progress:
                tqdm.write(f"epoch {row['epoch']:3d}  loss {row['loss']:.4f}  "
                           f"train acc {row['train_accuracy']:.4f}  lr {row['lr']:.4f}  "
                           f"{row['seconds']:.1f}s")
            self._checkpoint(epoch + 1)
        return self.history

    # -- checkpoints ---------------------------------------------------------------

    def _checkpoint(self, epochs_done: int) -> None:
        if self.run_dir is None:
            return
        arrays = {"epochs_done": np.array(epochs_done)}
        for key, param in self.supernet.net_parameters().items():
            arrays[f"w:{key}"] = param.d
        for group, solver in self.solvers.items():
            for pname, state in solver.get_states().items():
                arrays[f"t:{group}:{pname}"] = np.array(state.t)
                for sname, var in state.pstate.items():
                    arrays[f"s:{group}:{pname}:{sname}"] = var.d
        atomic_write(self.run_dir / CHECKPOINT, lambda tmp: np.savez(tmp, **arrays))
        save_weights(self.supernet, self.run_dir / WEIGHTS)
        atomic_write_text(self.run_dir / LOG, pd.DataFrame(self.history).to_csv(index=False))

    def _restore(self) -> int:
        if self.run_dir is None or not (self.run_dir / CHECKPOINT).exists():
            return 0
        path = self.run_dir / CHECKPOINT
        try:
            with np.load(path) as ckpt:
                arrays = {k: ckpt[k] for k in ckpt.files}
        except Exception as exc:
            raise RunDirError(f"{path}: unreadable training checkpoint ({exc}); "
                              "delete it to train from scratch") from None
        params = self.supernet.net_parameters()
        weights = {k[2:]: v for k, v in arrays.items() if k.startswith("w:")}
        if set(weights) != set(params):
            raise RunDirError(f"{path}: checkpoint holds a different supernet; "
                              "delete it to train from scratch")
        for key, value in weights.items():
            params[key].d = value
        for group, solver in self.solvers.items():
            states = {}
            for pname in solver.get_parameters():
                state = nn_solver.SolverState()
                state.t = int(arrays[f"t:{group}:{pname}"])
                prefix = f"s:{group}:{pname}:"
                state.pstate = {k[len(prefix):]: nn.Variable.from_numpy_array(v)
                                for k, v in arrays.items() if k.startswith(prefix)}
                states[pname] = state
            solver.set_states(states)
        if (self.run_dir / LOG).exists():
            self.history = pd.read_csv(self.run_dir / LOG).to_dict("records")
        return int(arrays["epochs_done"])


def save_weights(supernet: Supernet, path: str | Path) -> None:
    """Writes every network weight to an nnabla .h5 file, atomically."""
    params = supernet.net_parameters()
    atomic_write(path, lambda tmp: nn.save_parameters(tmp, params=params))


def load_weights(supernet: Supernet, path: str | Path) -> None:
    """Loads weights saved by ``save_weights``; a truncated file or another space's is an error."""
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{path}: no trained supernet; run 'hwnas train' first")
    params = supernet.net_parameters()
    try:
        import h5py
        with h5py.File(path, "r") as f:
            stored = {}
            f.visititems(lambda name, obj: stored.__setitem__(name, obj[()])
                         if isinstance(obj, h5py.Dataset) else None)
    except Exception as exc:
        raise RunDirError(f"{path}: unreadable or truncated weights file ({exc})") from None
    if set(stored) != set(params):
        missing = sorted(set(params) - set(stored))[:3]
        raise RunDirError(f"{path}: weights are for a different search space "
                          f"(missing e.g. {missing}); retrain with 'hwnas train'")
    for key, param in params.items():
        if stored[key].shape != param.shape:
            raise RunDirError(f"{path}: weight {key} has shape {stored[key].shape}, "
                              f"expected {param.shape}")
        param.d = stored[key]
