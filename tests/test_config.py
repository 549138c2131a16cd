"""Tests of hwnas.config: typed loading of experiment YAML and key-by-key validation."""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from hwnas.config import (DEFAULT_CONFIG, DataConfig, ExperimentConfig, LatencyConfig,
                          SearchConfig, SpaceConfig, StageConfig, TrainConfig, config_from_dict,
                          load_config)
from hwnas.errors import ConfigError
from hwnas.run.names import check_names

DIGITS = DEFAULT_CONFIG


def _digits_data() -> dict[str, Any]:
    return yaml.safe_load(DIGITS.read_text())


def _write(tmp_path: Path, data: Any, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _load_checked(path: Path) -> ExperimentConfig:
    """Loads a config and checks its names against the registries, as every command does."""
    cfg = load_config(path)
    check_names(cfg, str(path))
    return cfg


def _with(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``data`` with ``dotted`` (``a.b.c``) set to ``value``."""
    out = copy.deepcopy(data)
    node = out
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return out


# ---------------------------------------------------------------- the shipped experiment


def test_digits_yaml_loads_into_typed_objects() -> None:
    # Values are compared with what plain YAML reads from the same file, so
    # that the test follows edits of the shipped experiment.
    assert DIGITS.name == "digits.yaml" and DIGITS.is_file()
    raw = _digits_data()
    cfg = load_config(DIGITS)
    assert load_config() == cfg  # the default is digits.yaml
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.name == raw["name"] and type(cfg.seed) is int and cfg.seed == raw["seed"]
    assert isinstance(cfg.data, DataConfig) and cfg.data.name == raw["data"]["name"]
    assert type(cfg.data.image_size) is int and cfg.data.image_size == raw["data"]["image_size"]
    assert type(cfg.data.val_fraction) is float
    assert isinstance(cfg.space, SpaceConfig)
    assert isinstance(cfg.space.stages, list)
    assert len(cfg.space.stages) == len(raw["space"]["stages"]) >= 1
    assert all(isinstance(s, StageConfig) for s in cfg.space.stages)
    for stage, given in zip(cfg.space.stages, raw["space"]["stages"]):
        assert stage == StageConfig(**given)
        assert type(stage.channels) is int and type(stage.stride) is int
    assert all(type(k) is int for k in cfg.space.kernels)
    assert cfg.space.kernels == raw["space"]["kernels"]
    assert all(type(e) is int for e in cfg.space.expansions)
    assert type(cfg.space.skip) is bool
    assert isinstance(cfg.train, TrainConfig)
    assert type(cfg.train.epochs) is int and type(cfg.train.lr) is float
    assert type(cfg.train.weight_decay) is float
    assert cfg.train.weight_decay == pytest.approx(float(raw["train"]["weight_decay"]))
    assert isinstance(cfg.search, SearchConfig)
    assert cfg.search.objectives == raw["search"]["objectives"]
    assert all(type(o) is str for o in cfg.search.objectives)
    assert isinstance(cfg.latency, LatencyConfig) and type(cfg.latency.max_spread) is float
    assert isinstance(cfg.budgets, dict)
    assert cfg.budgets == {k: float(v) for k, v in raw.get("budgets", {}).items()}
    # An int in YAML becomes a float where the field is a float.
    assert all(type(v) is float for v in cfg.budgets.values())


def test_an_int_budget_becomes_a_float() -> None:
    cfg = config_from_dict({"budgets": {"params": 40000}})
    assert cfg.budgets == {"params": 40000.0} and type(cfg.budgets["params"]) is float


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(path) == ExperimentConfig()


def test_partial_config_keeps_other_defaults(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, {"train": {"epochs": 2}, "data": {"name": "synthetic"}}))
    assert cfg.train.epochs == 2
    assert cfg.train.batch_size == TrainConfig().batch_size
    assert cfg.data == DataConfig(name="synthetic")
    assert cfg.space == SpaceConfig()


def test_to_dict_round_trip_gives_an_equal_config() -> None:
    cfg = load_config(DIGITS)
    again = config_from_dict(cfg.to_dict())
    assert again == cfg
    assert isinstance(again.space.stages[0], StageConfig)
    # ... and through YAML as well, as the run directory stores it.
    assert config_from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict()))) == cfg


def test_round_trip_of_a_non_default_config() -> None:
    data = _with(_digits_data(), "space.stages", [{"channels": 8, "blocks": 1, "stride": 2}])
    data = _with(data, "budgets", {"error": 0.3, "latency_ms": 2.5})
    data = _with(data, "data.path", "/somewhere")
    cfg = config_from_dict(data)
    assert config_from_dict(cfg.to_dict()) == cfg
    assert cfg.data.path == "/somewhere"


# ---------------------------------------------------------------- unknown keys


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = _write(tmp_path, {**_digits_data(), "epochs": 3})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "'epochs'" in message and str(path) in message


@pytest.mark.parametrize("dotted", ["train.epoch", "space.stages_", "latency.repeat",
                                    "data.nme"])
def test_unknown_nested_key_names_the_dotted_key_and_the_file(tmp_path: Path,
                                                               dotted: str) -> None:
    path = _write(tmp_path, _with(_digits_data(), dotted, 1))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"'{dotted}'" in message
    assert str(path) in message


def test_unknown_key_inside_a_stage(tmp_path: Path) -> None:
    data = _with(_digits_data(), "space.stages",
                 [{"channels": 8, "blocks": 1, "stride": 1, "kernel": 3}])
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError, match=r"space\.stages\[0\]\.kernel") as info:
        load_config(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------- wrong types


@pytest.mark.parametrize("dotted, value", [
    ("seed", "0"),                 # str for int
    ("train.epochs", "30"),        # str for int
    ("train.epochs", 3.0),         # float for int
    ("data.image_size", 16.5),     # float for int
    ("seed", True),                # bool for int
    ("train.batch_size", False),   # bool for int
    ("train.lr", True),            # bool for float
    ("train.lr", "0.1"),           # str for float
    ("space.skip", 1),             # int for bool
    ("name", 3),                   # int for str
    ("data", [1, 2]),              # list for mapping
    ("space", "mobilenet"),        # str for mapping
    ("budgets", [1]),              # list for mapping
    ("space.kernels", 3),          # int for list
    ("space.kernels", [3, "5"]),   # str inside a list of int
    ("space.stages", [[16, 2, 1]]),  # list for a stage mapping
    ("search.objectives", "error"),  # str for list
    ("budgets", {"params": "big"}),  # str for float
])
def test_wrong_types_raise(tmp_path: Path, dotted: str, value: Any) -> None:
    path = _write(tmp_path, _with(_digits_data(), dotted, value))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert dotted.split(".")[-1] in message


def test_top_level_list_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, [1, 2])
    with pytest.raises(ConfigError, match="mapping") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_missing_required_stage_field() -> None:
    data = _with(_digits_data(), "space.stages", [{"channels": 8}])
    with pytest.raises(ConfigError, match="blocks"):
        config_from_dict(data)


# ---------------------------------------------------------------- impossible values


@pytest.mark.parametrize("dotted, value, named", [
    ("budgets", {"params": -1}, "budgets.params"),
    ("budgets", {"latency_ms": 0}, "budgets.latency_ms"),
    ("budgets", {"error": 1.5}, "budgets.error"),
    ("budgets", {"accuracy": 0.9}, "budgets.accuracy"),
    ("search.objectives", ["error", "flops"], "search.objectives"),
    ("search.objectives", ["latency_ms"], "search.objectives"),
    ("search.objectives", ["error", "error"], "search.objectives"),
    ("data.val_fraction", 0.7, "data.val_fraction"),
    ("data.test_fraction", 0.0, "data.test_fraction"),
    ("data.val_fraction", -0.1, "data.val_fraction"),
    ("space.kernels", [3, 4], "space.kernels"),
    ("space.kernels", [0], "space.kernels"),
    ("space.expansions", [0], "space.expansions"),
    ("space.stages", [], "space.stages"),
    ("space.stages", [{"channels": 8, "blocks": 1, "stride": 3}], "stride"),
    ("space.stages", [{"channels": 0, "blocks": 1}], "channels"),
    ("space.name", "mobilenet", None),  # a valid value, to show the cases differ from it
    ("train.epochs", 0, "train.epochs"),
    ("train.lr", -0.1, "train.lr"),
    ("train.momentum", 1.0, "train.momentum"),
    ("train.learner", "darts_v9", "train.learner"),
    ("train.order", 3, "train.order"),
    ("train.estimator", "gumbel", "train.estimator"),
    ("train.arch_lr", 0.0, "train.arch_lr"),
    ("train.arch_fraction", 1.0, "train.arch_fraction"),
    ("train.warmup_epochs", 99, "train.warmup_epochs"),
    ("train.regularizer", {"objective": "params", "budget": 1000.0}, "train.regularizer"),
    ("train", {"learner": "darts", "regularizer": {"objective": "flops", "budget": 1.0}},
     "train.regularizer.objective"),
    ("train", {"learner": "darts", "regularizer": {"objective": "params", "budget": -1.0}},
     "train.regularizer.budget"),
    ("train", {"learner": "darts", "regularizer": {"objective": "params", "budget": 9.0,
                                                   "form": "cubic"}},
     "train.regularizer.form"),
    ("train", {"learner": "darts", "regularizer": {"objective": "params"}}, "train.regularizer"),
    ("train", {"learner": "proxyless", "regularizer": {"objective": "macs", "budget": 9.0}},
     None),
    ("space.name", "nasbench", "space.name"),
    ("space.cells", 0, "space.cells"),
    ("space.operations", ["sep_k3", "conv_k4"], "space.operations"),
    ("search.trials", 0, "search.trials"),
    ("latency.context", "tpu", "latency.context"),
    ("latency.statistic", "mean", "latency.statistic"),
    ("latency.repeats", 0, "latency.repeats"),
    ("latency.max_spread", 0.0, "latency.max_spread"),
    ("data.name", "imagenet", "data.name"),
    ("data.name", "cifar10", "data.path"),  # needs a path
    ("name", "a/b", "name"),
])
def test_impossible_values_raise(tmp_path: Path, dotted: str, value: Any,
                                 named: str | None) -> None:
    path = _write(tmp_path, _with(_digits_data(), dotted, value))
    if named is None:
        _load_checked(path)
        return
    with pytest.raises(ConfigError) as info:
        _load_checked(path)
    message = str(info.value)
    assert named in message
    assert str(path) in message


@pytest.mark.parametrize("dotted, value", [
    ("budgets", {"params": math.nan}),
    ("budgets", {"error": math.nan}),
    ("train.lr", math.nan),
    ("latency.max_spread", math.nan),
])
def test_nan_is_an_impossible_value(dotted: str, value: Any) -> None:
    # NaN compares false with every bound, so a check written as
    # ``if value <= 0: error`` lets it through.
    with pytest.raises(ConfigError):
        config_from_dict(_with(_digits_data(), dotted, value))


# ---------------------------------------------------------------- files


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize("text", ["name: [unclosed\n", "a: b: c\n", "key: 'open\n", "\tx: 1\n"])
def test_invalid_yaml_names_the_path(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_unsafe_yaml_tags_are_not_executed(tmp_path: Path) -> None:
    path = tmp_path / "unsafe.yaml"
    path.write_text("name: !!python/object/apply:os.getcwd []\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
