"""Tests of the config loader's limits: sizes, bounds, aliases, nesting, duplicate keys."""
from __future__ import annotations

import dataclasses
import time
import typing
from pathlib import Path

import pytest

from _bad_input_damage import alias_bomb
from conftest import TINY_CONFIG
from hwnas.config import MAX_NODES, ExperimentConfig, load_config
from hwnas.errors import ConfigError, shorten


def _load(tmp_path: Path, text: str) -> ExperimentConfig:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return load_config(path)


def _int_fields(cls: type = ExperimentConfig, prefix: str = ""):
    for field in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[field.name]
        # X of Optional[X] or list[X]: a section, or a list of stages
        inner = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        if dataclasses.is_dataclass(inner):
            yield from _int_fields(inner, f"{prefix}{field.name}.")
        elif hint is int or typing.get_args(hint) == (int,):
            yield f"{prefix}{field.name}", field


CHOICES = {"space.stages.stride", "train.order"}  # ints from a short list, checked as such


@pytest.mark.parametrize("key,field", list(_int_fields()),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_int_of_the_schema_declares_its_bounds(key, field):
    if key in CHOICES:
        return
    low, high = field.metadata["bounds"]
    assert 0 <= low <= high <= 2**31 - 1, key  # fits nnabla's and numpy's C ints
    if field.default is not dataclasses.MISSING:
        assert low <= field.default <= high, key


def test_alias_bomb_is_refused_at_once(tmp_path):
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=f"more than {MAX_NODES} values"):
        _load(tmp_path, alias_bomb())
    assert time.perf_counter() - start < 1.0  # refused while composing, nothing expanded


def test_aliases_within_the_bound_still_work(tmp_path):
    text = TINY_CONFIG.replace("train: {epochs: 1, batch_size: 32}",
                               "train: &sgd {epochs: 1, batch_size: 32}")
    cfg = _load(tmp_path, text.replace("retrain: {epochs: 2}", "retrain: *sgd"))
    assert (cfg.retrain.epochs, cfg.retrain.batch_size) == (1, 32)


def test_an_alias_of_a_deep_value_counts_its_depth(tmp_path):
    deep = "x: &d [[[1]]]\n" + TINY_CONFIG.replace("kernels: [3, 5]", "kernels: [*d]")
    with pytest.raises(ConfigError, match="line 8: nested deeper"):
        _load(tmp_path, deep)


@pytest.mark.parametrize("text,lines", [
    (TINY_CONFIG.replace("seed: 1\n", "seed: 1\nseed: 1\n"), "lines 2 and 3"),
    (TINY_CONFIG.replace("{epochs: 1,", "{epochs: 1, epochs: 1,"), "lines 10 and 10"),
    (TINY_CONFIG.replace("  head_channels: 16\n", "  head_channels: 16\n  kernels: [3]\n"),
     "lines 7 and 10"),
])
def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path, text, lines):
    with pytest.raises(ConfigError, match=f"given twice, on {lines}"):
        _load(tmp_path, text)


def test_a_refused_huge_value_gives_a_short_message(tmp_path):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, TINY_CONFIG.replace("epochs: 1,", "epochs: " + "a" * 900_000 + ","))
    assert "(900000 characters)" in str(info.value) and len(str(info.value)) < 200


def test_shorten_bounds_every_kind_of_value():
    looped: list = []
    looped.append(looped)
    assert shorten("a" * 50_000_000) == "'" + "a" * 40 + "…' (50000000 characters)"
    assert shorten("ab") == "'ab'"
    for value in (10**5000, -10**5000, [[[[[1]]]]] * 1000, {str(i): i for i in range(1000)},
                  looped):
        assert len(shorten(value)) <= 81
