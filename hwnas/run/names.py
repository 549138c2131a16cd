"""Pre-flight check of the names a config gives, against the registries that hold them."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

from hwnas.config import TrainConfig
from hwnas.data import AUGMENTATIONS, DATASETS
from hwnas.errors import ConfigError, shorten
from hwnas.registry import Registry, absolute_spec
from hwnas.strategies import STRATEGIES
from hwnas.supernet import DATA_ARGUMENTS, SPACES, parse_candidate, space_keywords
from hwnas.supernet.learners import COST_OBJECTIVES, FORMS, LEARNERS, UniformLearner

if TYPE_CHECKING:
    from hwnas.config import ExperimentConfig

T = TypeVar("T")

__all__ = ["check_names", "with_absolute_specs", "with_learner_defaults"]


def check_names(config: ExperimentConfig, source: str) -> None:
    """Checks every registered name the config gives, before anything is written or trained.

    The config itself checks types and ranges; the names of datasets, search
    spaces, candidate operations, learners, regularizer objectives and forms,
    strategies and augmentations are looked up here in their registries, so a
    dataset or learner registered by a plug-in is accepted like a built-in one.
    A dataset, space or strategy given by spec (``module:attr``, ``file.py:attr``,
    an entry point) is loaded and checked here, and so are ``space.options``.

    Args:
        config: a loaded config.
        source: where it came from (a file name), for the message.

    Raises:
        ConfigError: one line naming ``source``, the dotted key, the bad name and
            the known ones.
    """
    def err(key: str, message: str) -> NoReturn:
        raise ConfigError(f"{source}: '{key}' {message}")

    data = _lookup(DATASETS, config.data.name, "data.name", err)
    if data.needs_path and not config.data.path:
        err("data.path", f"dataset {config.data.name!r} needs the path of your local copy")
    space = _lookup(SPACES, config.space.name, "space.name", err)
    try:
        space_keywords(space, {**dataclasses.asdict(config.space),
                               **dict.fromkeys(DATA_ARGUMENTS)}, config.space.options)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    for option in config.space.operations:
        try:
            parse_candidate(option)
        except ValueError as exc:
            err("space.operations", str(exc))
    learner = _lookup(LEARNERS, config.train.learner, "train.learner", err)
    regularizer = config.train.regularizer
    if regularizer is not None:
        _lookup(COST_OBJECTIVES, regularizer.objective, "train.regularizer.objective", err)
        _lookup(FORMS, regularizer.form, "train.regularizer.form", err)
        if not learner.learns_arch:
            gradient = " or ".join(name for name, cls in LEARNERS.items() if cls.learns_arch)
            err("train.regularizer", f"needs a gradient learner ({gradient}); the "
                f"{config.train.learner} learner has no architecture parameters; "
                "use budgets for selection")
    if config.train.finetune_epochs and not learner.learns_arch:
        err("train.finetune_epochs", f"fine-tunes after architecture learning; the "
            f"{config.train.learner} learner learns none and trains every path already: "
            "raise train.epochs instead")
    default_paths = next(f.default for f in dataclasses.fields(TrainConfig)
                         if f.name == "sandwich_paths")
    if config.train.sampling != "sandwich" and config.train.sandwich_paths != default_paths:
        err("train.sandwich_paths", "counts the random paths of a sandwich step; set "
            "train.sampling: sandwich, or leave it out")
    if config.train.split_choice != TrainConfig.split_choice and not config.train.split_epochs:
        err("train.split_choice", "names the choice a few-shot supernet is split on; set "
            "train.split_epochs, or leave it out")
    remedies = {"train.sampling": config.train.sampling != "uniform",
                "train.distill": config.train.distill,
                "train.split_epochs": config.train.split_epochs > 0}
    for key in (k for k, on in remedies.items() if on):
        if not issubclass(learner, UniformLearner):
            err(key, f"applies to the uniform learner only, not {config.train.learner}")
    _lookup(STRATEGIES, config.search.strategy, "search.strategy", err)
    augmentation = config.retrain.augmentation
    if augmentation != "auto" and augmentation not in AUGMENTATIONS:
        err("retrain.augmentation", f"unknown augmentation {shorten(augmentation)}; known: auto, "
            + ", ".join(AUGMENTATIONS))


def _lookup(registry: Registry[T], name: str, key: str,
            err: Callable[[str, str], NoReturn]) -> T:
    if registry.group is None:  # a registry that holds names only
        try:
            return registry.get(name)
        except ValueError:  # the registry's own message would show all of a huge name
            err(key, f"unknown {registry.kind} {shorten(name)}; known: "
                f"{', '.join(registry.names())}")
    try:
        return registry.resolve(name)
    except ValueError as exc:  # unknown, or a spec that does not load: the message says which
        err(key, str(exc))


#: The config keys that name a dataset, space or strategy, which a spec may give as a file.
_SPEC_KEYS = (("data", "name"), ("space", "name"), ("search", "strategy"))


def with_learner_defaults(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` with the train settings it leaves to its learner resolved (say
    ``train.finetune_epochs``: see ``BaseLearner.with_defaults``), as the run stores them.
    The learner's name must have passed ``check_names``."""
    learner = LEARNERS.get(config.train.learner)
    return dataclasses.replace(config, train=learner.with_defaults(config.train))


def with_absolute_specs(config: ExperimentConfig, base: str | Path | None) -> ExperimentConfig:
    """``config`` with every file spec (``./my_space.py:MySpace``) made absolute against
    ``base``, the directory of the config file that gives it.

    The run directory stores the config so: a later command on the run, a worker
    (``--workers``, Dask, ``hwnas worker``) or a reopened run loads the same file
    from wherever it starts.
    """
    for section, key in _SPEC_KEYS:
        part = getattr(config, section)
        spec = getattr(part, key)
        absolute = absolute_spec(spec, base)
        if absolute != spec:
            config = dataclasses.replace(config, **{
                section: dataclasses.replace(part, **{key: absolute})})
    return config
