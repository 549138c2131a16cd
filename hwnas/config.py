"""Typed experiment config, loaded from YAML and validated key by key."""
from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Any

import yaml

from hwnas._config_sections import (DataConfig, LatencyConfig, RegularizerConfig, RetrainConfig,
                                    SearchConfig, SpaceConfig, StageConfig, TrainConfig)
from hwnas.errors import ConfigError
from hwnas.budgets import check_budget

#: Where the shipped experiments live (the default config is digits.yaml).
EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"
DEFAULT_CONFIG = EXPERIMENTS_DIR / "digits.yaml"

__all__ = ["DEFAULT_CONFIG", "DataConfig", "EXPERIMENTS_DIR", "ExperimentConfig", "LatencyConfig",
           "RegularizerConfig", "RetrainConfig", "SearchConfig", "SpaceConfig", "StageConfig",
           "TrainConfig", "config_from_dict", "load_config"]


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: data, space, training, search, measurement, retraining and budgets.

    Attributes:
        name: the experiment's name (also the default run directory name).
        seed: seeds data splits, training and search.
        budgets: hard upper limits, objective name -> value.
    """

    name: str = "digits"
    seed: int = 0
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    space: SpaceConfig = dataclasses.field(default_factory=SpaceConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
    latency: LatencyConfig = dataclasses.field(default_factory=LatencyConfig)
    retrain: RetrainConfig = dataclasses.field(default_factory=RetrainConfig)
    budgets: dict[str, float] = dataclasses.field(default_factory=dict)

    def _check(self, err) -> None:
        if not self.name or "/" in self.name:
            err("name", f"must be a non-empty name without '/', got {self.name!r}")
        for key, value in self.budgets.items():
            try:
                check_budget(key, value)
            except ValueError as exc:
                err(f"budgets.{key}", str(exc))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | Path | None = None) -> ExperimentConfig:
    """Loads and validates an experiment config.

    Args:
        path: a YAML file; the shipped digits experiment when None.

    Raises:
        ConfigError: the file is missing or malformed, or a key is unknown,
            of the wrong type or impossible; the message names the key and file.
    """
    path = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a YAML text file (not UTF-8 at byte {exc.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        data = {}
    return config_from_dict(data, source=str(path))


def config_from_dict(data: Any, source: str = "<config>") -> ExperimentConfig:
    """Builds a validated config from plain data (as YAML gives it)."""
    return _build(ExperimentConfig, data, "", source)


def _build(cls: type, data: Any, prefix: str, source: str) -> Any:
    where = prefix.rstrip(".") or "top level"
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {where}: expected a mapping, got {_typename(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key '{prefix}{unknown[0]}'; "
                          f"known keys{' in ' + where if prefix else ''}: {', '.join(fields)}")
    values = {name: _convert(hints[name], data[name], f"{prefix}{name}", source)
              for name in fields if name in data}
    try:
        obj = cls(**values)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{source}: {where}: {exc}") from None

    def err(key: str, message: str) -> None:
        raise ConfigError(f"{source}: '{prefix}{key}' {message}")

    obj._check(err)
    return obj


def _convert(hint: Any, value: Any, key: str, source: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union and type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key + ".", source)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: '{key}' must be a list, got {_typename(value)}")
        return [_convert(args[0], v, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping, got {_typename(value)}")
        return {str(k): _convert(args[1], v, f"{key}.{k}", source) for k, v in value.items()}
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
        if ok and not math.isfinite(value):
            raise ConfigError(f"{source}: '{key}' must be a finite number, got {value}")
    elif hint is str:
        ok = isinstance(value, str)
    else:  # pragma: no cover - a field type this loader does not know
        raise TypeError(f"unsupported config type {hint}")
    if not ok:
        raise ConfigError(f"{source}: '{key}' must be {hint.__name__}, got {_typename(value)} {value!r}")
    return value


def _typename(value: Any) -> str:
    return "null" if value is None else type(value).__name__
