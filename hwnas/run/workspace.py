"""The workspace every step after training shares: data, search space, supernet, evaluator."""
from __future__ import annotations

import dataclasses
import functools
import logging

import nnabla as nn
import numpy as np
from nnabla.ext_utils import get_extension_context
from nnabla.logger import logger

from hwnas.config import ExperimentConfig
from hwnas.data import Dataset, load_dataset
from hwnas.errors import ConfigError, RunDirError
from hwnas.evaluate import Evaluator
import hwnas.run.lut as lut
from hwnas.run.files import RunDir
from hwnas.supernet import (SPACES, BaseSearchSpace, SplitWeights, Supernet, space_keywords,
                            split_choice)
from hwnas.supernet.learners import load_weights, recorded_fingerprint, trained_split


@dataclasses.dataclass
class Workspace:
    """What the steps after training share: data, space, trained supernet (and a few-shot
    supernet's copies of the weights, which every evaluator scores with)."""

    run: RunDir
    data: Dataset
    space: BaseSearchSpace
    supernet: Supernet

    progress: bool = True
    split: SplitWeights | None = None

    @functools.cached_property
    def evaluator(self) -> Evaluator:
        """The evaluator of the search; builds (or reuses) the latency table when it predicts."""
        cfg = self.run.config
        table = None
        if cfg.latency.predictor == "lut":
            table = lut.ensure_table(self.run, self, progress=self.progress)
        return make_evaluator(self, table)


def make_evaluator(ws: Workspace, table=None) -> Evaluator:
    """The run's Evaluator over ``ws``, predicting latency from ``table`` when one is given."""
    cfg = ws.run.config
    return Evaluator(space=ws.space, supernet=ws.supernet, data=ws.data, latency=cfg.latency,
                     bn_samples=cfg.search.bn_samples, profiler=lut.make_profiler(cfg.latency),
                     table=table, split=ws.split)


def set_context(context: str) -> None:
    """Makes ``context`` (``cpu``, ``cudnn``) nnabla's default, or says why it cannot be."""
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # nnabla logs a missing extension: one line is ours
    try:
        nn.set_default_context(get_extension_context(context))
    except Exception as exc:  # the extension is not installed or no device
        raise ConfigError(f"latency.context {context!r} is not available here ({exc}); "
                          "install nnabla-ext-cuda for 'cudnn' or use 'cpu'") from None
    finally:
        logger.setLevel(level)


def space_from_config(config: ExperimentConfig, data: Dataset, *,
                      source: str = "config") -> BaseSearchSpace:
    """The search space the config names, for ``data``'s input shape and classes.

    Raises:
        ConfigError: the space refuses its settings; the message names ``source``.
    """
    return build_space(config, data.input_shape, data.n_classes, source=source)


def build_space(config: ExperimentConfig, input_shape: tuple[int, int, int], n_classes: int, *,
                source: str = "config") -> BaseSearchSpace:
    """The search space the config names (a registered name or a spec, with its keys and
    ``space.options``), for inputs of ``input_shape`` and ``n_classes`` classes.

    Raises:
        ConfigError: the space cannot be loaded or refuses its settings; the message
            names ``source``.
    """
    space_cfg = config.space
    try:
        factory = SPACES.resolve(space_cfg.name)
        given = {**dataclasses.asdict(space_cfg), "input_shape": tuple(input_shape),
                 "n_classes": n_classes,
                 "stages": [(s.channels, s.blocks, s.stride) for s in space_cfg.stages]}
        # Each space takes the keys it reads (darts: cells, channels, nodes, operations)
        # and its options.
        kwargs = space_keywords(factory, given, space_cfg.options)
    except ValueError as exc:
        raise ConfigError(f"{source}: 'space.name' {exc}" if str(exc)[:1] != "'"
                          else f"{source}: {exc}") from None
    try:
        return factory(**kwargs)
    except (ValueError, TypeError) as exc:  # TypeError: a user's space refusing an option
        raise ConfigError(f"{source}: 'space' {exc}") from None


def workspace(run: RunDir, *, trained: bool = True, progress: bool = True) -> Workspace:
    """Loads the data, builds the space and supernet, and loads trained weights (with a
    few-shot supernet's copies)."""
    cfg = run.config
    set_context(cfg.latency.context)
    data = load_dataset(cfg.data, seed=cfg.seed)
    space = space_from_config(cfg, data, source=str(run / RunDir.CONFIG))
    nn.seed(cfg.seed)
    np.random.seed(cfg.seed)
    supernet = space.supernet()
    split = None
    if trained:
        check_trained(run, space)
        ckpt = run / RunDir.CHECKPOINT
        load_weights(supernet, run / RunDir.WEIGHTS, expected=recorded_fingerprint(ckpt),
                     recorded_in=ckpt)
        if cfg.train.split_epochs:
            split = trained_split(space, supernet, cfg.train, run / RunDir.SPLIT_WEIGHTS, ckpt)
    return Workspace(run, data, space, supernet, progress, split)


def check_trained(run: RunDir, space: BaseSearchSpace) -> None:
    """Raises RunDirError unless the run's supernet finished its training (the split's
    epochs included, as many as ``space`` has options of the split choice).

    Raises:
        ConfigError: the config's ``train.split_choice`` is no choice of ``space``.
    """
    train = run.config.train
    planned = train.total_epochs
    if train.split_epochs:
        try:
            planned = train.planned_epochs(len(space.choices[split_choice(space,
                                                                          train.split_choice)]))
        except ValueError as exc:
            raise ConfigError(f"{run / RunDir.CONFIG}: {exc}") from None
    ckpt = run / RunDir.CHECKPOINT
    if not ckpt.exists():
        raise RunDirError(f"{run.path}: the supernet is not trained yet; run 'hwnas train {run.path}'")
    try:
        with np.load(ckpt) as state:
            done = int(state["epochs_done"])
    except Exception as exc:
        raise RunDirError(f"{ckpt}: unreadable training checkpoint ({exc})") from None
    if done < planned:
        raise RunDirError(f"{run.path}: supernet training stopped after {done} of "
                          f"{planned} epochs; rerun 'hwnas train {run.path}'")


def worker_evaluator(run_path: str) -> Evaluator:
    """The evaluator a worker process builds for itself: the run's workspace, loaded
    once, and its latency table as it is (a worker never builds one)."""
    run = RunDir.open(run_path)
    ws = workspace(run, progress=False)
    cfg = run.config
    table = (lut.load_table(run, ws.space, lut.make_profiler(cfg.latency))
             if cfg.latency.predictor == "lut" else None)
    return make_evaluator(ws, table)
