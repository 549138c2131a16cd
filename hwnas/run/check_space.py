"""``hwnas check-space``: the conformance suite on a search space named by spec or config."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from hwnas.config import ExperimentConfig, load_config
from hwnas.data import load_dataset
from hwnas.errors import ConfigError
from hwnas.registry import absolute_spec
from hwnas.run.names import with_absolute_specs
from hwnas.run.workspace import build_space
from hwnas.testing import CheckResult, check_space

#: The input a space is checked on without a config or flags: the digits' (16x16 greyscale).
DEFAULT_INPUT = (1, 16, 16)
DEFAULT_CLASSES = 10


def check_space_spec(spec: str | None, *, config_path: str | None = None,
                     input_shape: tuple[int, int, int] | None = None,
                     n_classes: int | None = None, seed: int = 0) -> list[CheckResult]:
    """Builds the space ``spec`` (or the config's ``space.name``) and runs every check on it.

    Args:
        spec: a registered name or a spec (``./my_space.py:MySpace``, relative to the
            working directory); None: the config's.
        config_path: a config whose ``space`` section (keys and ``space.options``)
            builds the space; its data gives the input shape and classes unless they
            are given here.
        input_shape: (C, H, W); default: the config's data, or ``DEFAULT_INPUT``.
        n_classes: classes; default: the config's data, or ``DEFAULT_CLASSES``.

    Raises:
        ConfigError: no spec and no config, a spec that cannot be loaded, or a space
            that refuses its settings.
    """
    if spec is None and config_path is None:
        raise ConfigError("check-space needs a SPEC or --config")
    config = (with_absolute_specs(load_config(config_path), Path(config_path).parent)
              if config_path else ExperimentConfig())
    if spec is not None:
        config = dataclasses.replace(config, space=dataclasses.replace(
            config.space, name=absolute_spec(spec, None)))
    if config_path and (input_shape is None or n_classes is None):
        data = load_dataset(config.data, seed=config.seed)
        input_shape = input_shape or data.input_shape
        n_classes = n_classes or data.n_classes
    space = build_space(config, input_shape or DEFAULT_INPUT, n_classes or DEFAULT_CLASSES,
                        source=config_path or "check-space")
    return check_space(space, seed=seed)

