"""Tests of hwnas.arch.Arch: canonical key, round trips, equality, immutability, bad input."""
from __future__ import annotations

import copy
import json
import pickle

import pytest

from hwnas.arch import Arch

CHOICES = {"b0": "ir_k3_e6", "b1": "skip", "b2": "ir_k5_e3"}


def test_key_is_canonical_and_keeps_the_given_order() -> None:
    arch = Arch(CHOICES)
    assert arch.key == "b0=ir_k3_e6|b1=skip|b2=ir_k5_e3"
    assert list(arch) == ["b0", "b1", "b2"]
    reordered = Arch({"b2": "ir_k5_e3", "b0": "ir_k3_e6", "b1": "skip"})
    assert reordered.key == "b2=ir_k5_e3|b0=ir_k3_e6|b1=skip"
    # The key is built from the choices alone: two equal mappings give one key.
    assert Arch(dict(CHOICES)).key == arch.key


def test_mapping_interface() -> None:
    arch = Arch(CHOICES)
    assert len(arch) == 3
    assert arch["b1"] == "skip"
    assert dict(arch) == CHOICES
    with pytest.raises(KeyError):
        arch["b9"]


@pytest.mark.parametrize("choices", [CHOICES, {"only": "x"}, {}, {"a b": "c d", "é": "ü"}])
def test_key_and_json_round_trip(choices: dict[str, str]) -> None:
    arch = Arch(choices)
    again = Arch.from_key(arch.key)
    assert again == arch and again.key == arch.key and list(again) == list(arch)
    text = arch.to_json()
    assert json.loads(text) == choices
    back = Arch.from_json(text)
    assert back == arch and list(back) == list(arch)


def test_equality_and_hash_follow_the_key() -> None:
    a, b = Arch(CHOICES), Arch.from_key("b0=ir_k3_e6|b1=skip|b2=ir_k5_e3")
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1
    assert {a: 1}[b] == 1
    other = Arch({**CHOICES, "b1": "ir_k3_e3"})
    assert other != a
    # Order is part of the identity: the key differs.
    assert Arch(dict(reversed(list(CHOICES.items())))) != a
    # An Arch is not equal to a plain dict with the same items.
    assert a != dict(CHOICES)


def test_immutable() -> None:
    source = dict(CHOICES)
    arch = Arch(source)
    source["b0"] = "skip"  # the Arch holds its own copy
    assert arch["b0"] == "ir_k3_e6"
    assert arch.key.startswith("b0=ir_k3_e6")
    with pytest.raises(TypeError):
        arch["b0"] = "skip"  # type: ignore[index]
    with pytest.raises(AttributeError):
        arch.key = "b0=skip"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        arch.extra = 1  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        arch._choices = {}  # type: ignore[misc]
    assert arch == Arch(CHOICES)


def test_internal_state_cannot_be_deleted() -> None:
    arch = Arch(CHOICES)
    with pytest.raises(AttributeError):
        del arch._key  # type: ignore[misc]
    assert arch.key == "b0=ir_k3_e6|b1=skip|b2=ir_k5_e3"


def test_pickle_and_copy_round_trip() -> None:
    # Worker processes (multiprocessing, Dask) receive Archs by pickling.
    arch = Arch(CHOICES)
    assert pickle.loads(pickle.dumps(arch)) == arch
    assert copy.copy(arch) == arch
    assert copy.deepcopy(arch) == arch


@pytest.mark.parametrize("key", ["b0", "b0=a|b0=b", "=x", "b0=a|", "|b0=a", "b0=a||b1=b",
                                 "b0=a|b1"])
def test_malformed_keys_raise(key: str) -> None:
    with pytest.raises(ValueError):
        Arch.from_key(key)


@pytest.mark.parametrize("choices", [{"b|0": "x"}, {"b0": "x|y"}, {"b=0": "x"}, {"b0": "a=b"}])
def test_reserved_characters_rejected(choices: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="reserved"):
        Arch(choices)


@pytest.mark.parametrize("choices", [{1: "x"}, {"b0": 3}, {"b0": None}])
def test_non_string_choices_rejected(choices: dict) -> None:
    with pytest.raises(ValueError):
        Arch(choices)


def test_every_constructible_arch_has_a_parsable_key() -> None:
    # An empty choice name makes a key ('=x') that from_key rejects; the
    # constructor must not accept what the canonical form cannot express.
    try:
        arch = Arch({"": "x"})
    except ValueError:
        return
    assert Arch.from_key(arch.key) == arch


@pytest.mark.parametrize("text", ["[1, 2]", '"b0=x"', "3", '{"b0": 1}'])
def test_from_json_rejects_non_choices(text: str) -> None:
    with pytest.raises(ValueError):
        Arch.from_json(text)
