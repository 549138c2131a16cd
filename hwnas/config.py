"""Typed experiment config, loaded from YAML and validated key by key."""
from __future__ import annotations

import dataclasses
import math
import os
import typing
from pathlib import Path
from typing import Any

import yaml

from hwnas._config_sections import (DataConfig, LatencyConfig, SearchConfig, SpaceConfig,
                                    StageConfig, bounded)
from hwnas._config_training import RegularizerConfig, RetrainConfig, TrainConfig
from hwnas.errors import ConfigError, shorten
from hwnas.budgets import check_budget

#: Where the shipped experiments live (the default config is digits.yaml).
EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"
DEFAULT_CONFIG = EXPERIMENTS_DIR / "digits.yaml"

#: The largest config file read: the shipped ones are under 2 KB, so 1 MiB leaves room for any
#: real config while a hostile one cannot fill memory with one huge value.
MAX_CONFIG_BYTES = 1 << 20
#: The most YAML nodes a config may expand to, aliases counted at every use: real configs hold
#: about 100, and a "billion laughs" chain of aliases is refused long before it fills memory.
MAX_NODES = 10_000
#: Longest run name: one directory name (most file systems allow 255 bytes).
MAX_NAME_BYTES = 255

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
    seed: int = bounded(0, low=0, high=2**31 - 1)  # nnabla's seed is a C int (numpy's 32-bit)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    space: SpaceConfig = dataclasses.field(default_factory=SpaceConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
    latency: LatencyConfig = dataclasses.field(default_factory=LatencyConfig)
    retrain: RetrainConfig = dataclasses.field(default_factory=RetrainConfig)
    budgets: dict[str, float] = dataclasses.field(default_factory=dict)

    def _check(self, err) -> None:
        # The name becomes the run directory runs/NAME: one plain directory name.
        if (not self.name or "/" in self.name or self.name in (".", "..")
                or not self.name.isprintable() or len(self.name.encode()) > MAX_NAME_BYTES):
            err("name", "must be a directory name: not empty, '.' or '..', no '/' or control "
                f"characters, at most {MAX_NAME_BYTES} bytes; got {shorten(self.name)}")
        for key, value in self.budgets.items():
            try:
                check_budget(key, value)
            except ValueError as exc:
                err(f"budgets.{key}", str(exc))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _depth(hint: Any) -> int:
    """How deep YAML nests for a value of type ``hint`` (a scalar: 1)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if dataclasses.is_dataclass(hint):
        return 1 + max(_depth(h) for h in typing.get_type_hints(hint).values())
    if typing.get_origin(hint) in (list, dict):
        return 1 + _depth(args[-1])
    return _depth(args[0]) if args else 1


#: The deepest nesting a config can hold (space.stages[i].channels); YAML nested deeper is
#: refused while it is read, before it can overflow a recursion.
_SCHEMA_DEPTH = _depth(ExperimentConfig)


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
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > MAX_CONFIG_BYTES:
                raise ConfigError(f"{path}: a config file is at most {MAX_CONFIG_BYTES} bytes, "
                                  f"this one has {size}")
            text = file.read(MAX_CONFIG_BYTES + 1).decode()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a YAML text file (not UTF-8 at byte {exc.start})") from None
    if len(text) > MAX_CONFIG_BYTES:  # a file that grows while it is read, or a device
        raise ConfigError(f"{path}: a config file is at most {MAX_CONFIG_BYTES} bytes")
    try:
        data = yaml.load(text, Loader=_ConfigLoader)
    except _Refused as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        data = {}
    return config_from_dict(data, source=str(path))


class _Refused(yaml.YAMLError):
    """YAML that parses but that no config can be: too deep, too big once expanded, or ambiguous."""


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing what would exhaust memory or silently lose a value.

    Nodes are checked as they are composed, before anything is built: nesting deeper than
    the schema holds (which would also overflow the composer's recursion), a document that
    expands (aliases counted at every use) to more than ``MAX_NODES`` nodes, an alias inside
    its own anchor (a structure that contains itself), and a key given twice in one mapping.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._level = 0
        self._shape: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, height)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if self._level >= _SCHEMA_DEPTH:
            raise _Refused(f"line {line}: nested deeper than any config ({_SCHEMA_DEPTH} levels)")
        if isinstance(event, yaml.AliasEvent) and event.anchor in self.anchors \
                and id(self.anchors[event.anchor]) not in self._shape:
            raise _Refused(f"line {line}: alias *{event.anchor[:40]} is inside its own "
                           "anchor (a value that contains itself)")
        self._level += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._level -= 1
        if id(node) not in self._shape:  # a new node, not an alias of a finished one
            self._shape[id(node)] = self._measure(node, line)
        if self._level + self._shape[id(node)][1] > _SCHEMA_DEPTH:  # an alias of a deep node
            raise _Refused(f"line {line}: nested deeper than any config ({_SCHEMA_DEPTH} levels)")
        return node

    def _measure(self, node: Any, line: int) -> tuple[int, int]:
        children = ([] if isinstance(node, yaml.ScalarNode) else
                    node.value if isinstance(node, yaml.SequenceNode) else
                    [n for pair in node.value for n in pair])
        shapes = [self._shape[id(child)] for child in children]
        size = 1 + sum(s for s, _ in shapes)
        if size > MAX_NODES:
            raise _Refused(f"line {line}: expands to more than {MAX_NODES} values (aliases "
                           "counted at every use); a config needs far fewer")
        return size, 1 + max((h for _, h in shapes), default=0)

    def construct_yaml_int(self, node: Any) -> int:
        # Python refuses to read (or print) decimal integers of more than 4300 digits; hex ones
        # it reads, and then cannot print. No config value comes near 2**1024.
        too_large = _Refused(f"line {node.start_mark.line + 1}: an integer of "
                             f"{len(node.value)} digits; no config value is that large")
        try:
            value = super().construct_yaml_int(node)
        except ValueError:
            raise too_large from None
        if value.bit_length() > 1024:
            raise too_large
        return value

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        seen: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode):
                line = key.start_mark.line + 1
                if (key.tag, key.value) in seen:
                    raise _Refused(f"key {shorten(key.value)} is given twice, on lines "
                                   f"{seen[key.tag, key.value]} and {line}; keep one")
                seen[key.tag, key.value] = line
        return node


_ConfigLoader.add_constructor("tag:yaml.org,2002:int", _ConfigLoader.construct_yaml_int)


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
        raise ConfigError(f"{source}: unknown key {shorten(prefix + unknown[0])}; "
                          f"known keys{' in ' + where if prefix else ''}: {', '.join(fields)}")
    values = {name: _convert(hints[name], data[name], f"{prefix}{name}", source)
              for name in fields if name in data}
    for name, value in values.items():
        if "bounds" in fields[name].metadata and value is not None:
            _check_bounds(value, fields[name].metadata, f"{prefix}{name}", source)
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
        long = [k for k in map(str, value) if len(k) > 64]
        if long:  # the keys name objectives; a long one would only bloat every message
            raise ConfigError(f"{source}: '{key}' has a key of {len(long[0])} characters, "
                              f"{shorten(long[0])}; keys are short names")
        return {_convert(str, str(k), f"{key} key", source):
                _convert(args[1], v, f"{key}.{k}", source) for k, v in value.items()}
    if hint is Any:  # free-form (space.options): YAML's own values, bounded by the loader
        return value
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
        if ok and "\0" in value:  # no file name, command line or registry name holds one
            raise ConfigError(f"{source}: '{key}' must not hold a NUL character, "
                              f"got {shorten(value)}")
    else:  # pragma: no cover - a field type this loader does not know
        raise TypeError(f"unsupported config type {hint}")
    if not ok:
        raise ConfigError(f"{source}: '{key}' must be {hint.__name__}, "
                          f"got {_typename(value)} {shorten(value)}")
    return value


def _check_bounds(value: Any, metadata: Any, key: str, source: str) -> None:
    """Checks a value against the bounds its field declares (see ``bounded``)."""
    low, high = metadata["bounds"]
    if metadata.get("length") is not None:
        shortest, longest = metadata["length"]
        if not shortest <= len(value) <= longest:
            raise ConfigError(f"{source}: '{key}' must hold {shortest} to {longest} items, "
                              f"got {len(value)}")
        items = [(f"{key}[{i}]", v) for i, v in enumerate(value)]
    else:
        items = [(key, value)]
    for where, item in items:
        if not low <= item <= high:
            raise ConfigError(f"{source}: '{where}' must be between {low} and {high}, "
                              f"got {shorten(item)}")


def _typename(value: Any) -> str:
    return "null" if value is None else type(value).__name__
