"""Arch: an immutable assignment of every choice of a search space."""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any


class Arch(Mapping):
    """An immutable mapping from choice name to the chosen option.

    The canonical string form ``key`` lists ``name=option`` pairs in the order
    of the search space's choices, separated by ``|``; it is what identifies a
    subnetwork everywhere (study, archive, cache, export).

    Args:
        choices: choice name -> option, in the search space's order.
    """

    __slots__ = ("_choices", "_key")

    def __init__(self, choices: Mapping[str, str]) -> None:
        items = []
        for name, option in choices.items():
            if not isinstance(name, str) or not isinstance(option, str):
                raise ValueError(f"Arch choices must map str to str, got {name!r}: {option!r}")
            if not name:
                raise ValueError(f"Arch choice names must be non-empty, got {name!r}: {option!r}")
            if "|" in name + option or "=" in name + option:
                raise ValueError(f"'|' and '=' are reserved in Arch keys, got {name!r}={option!r}")
            items.append((name, option))
        object.__setattr__(self, "_choices", dict(items))
        object.__setattr__(self, "_key", "|".join(f"{n}={o}" for n, o in items))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Arch is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Arch is immutable")

    def __reduce__(self) -> tuple:
        return (Arch, (dict(self._choices),))

    def __getitem__(self, name: str) -> str:
        return self._choices[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._choices)

    def __len__(self) -> int:
        return len(self._choices)

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Arch) and other._key == self._key

    def __repr__(self) -> str:
        return f"Arch({self._key!r})"

    @property
    def key(self) -> str:
        """The canonical string form."""
        return self._key

    @classmethod
    def from_key(cls, key: str) -> Arch:
        """Parses the canonical string form."""
        choices = {}
        for part in key.split("|") if key else []:
            name, sep, option = part.partition("=")
            if not sep or not name:
                raise ValueError(f"malformed Arch key {key!r}: part {part!r} is not name=option")
            if name in choices:
                raise ValueError(f"malformed Arch key {key!r}: choice {name!r} repeated")
            choices[name] = option
        return cls(choices)

    def to_json(self) -> str:
        return json.dumps(self._choices)

    @classmethod
    def from_json(cls, text: str) -> Arch:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"an Arch in JSON is an object of choices, got {type(data).__name__}")
        return cls(data)
