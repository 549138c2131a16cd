"""BaseSearchSpace, the Supernet contract and the search-space registry."""
from __future__ import annotations

import abc
import fnmatch
from collections.abc import Callable

import nnabla as nn
import numpy as np

from hwnas.arch import Arch
from hwnas.supernet._ops import Op


class Supernet(Op):
    """A weight-sharing network over every subnet of a search space.

    ``set_active(arch)`` selects one path; the shared weights stay in place.
    ``extract(arch)`` gives a standalone network holding copies of the
    weights that path uses. Architecture parameters (none for uniform path
    sampling) are kept apart from network weights.
    """

    @abc.abstractmethod
    def set_active(self, arch: Arch) -> None:
        """Routes every later forward pass through ``arch``'s path."""

    @abc.abstractmethod
    def extract(self, arch: Arch) -> Supernet:
        """A standalone network for ``arch`` with copies of the shared weights."""

    @abc.abstractmethod
    def parameter_groups(self) -> dict[str, dict[str, nn.Variable]]:
        """Trainable weights by group (the fixed parts and each option of each choice)."""

    @abc.abstractmethod
    def active_groups(self) -> list[str]:
        """The groups the active path uses."""

    def net_parameters(self) -> dict[str, nn.Variable]:
        """Every network weight, trainable or not (BN running statistics included)."""
        return self.get_parameters(grad_only=False)

    def arch_parameters(self) -> dict[str, nn.Variable]:
        """Architecture parameters; none for spaces trained by path sampling."""
        return {}



class BaseSearchSpace(abc.ABC):
    """A search space: ordered choices, each with its options, and its supernet.

    Subclasses set ``choices`` in ``__init__`` and implement ``supernet``.
    """

    #: choice name -> options, in the order that defines Arch keys.
    choices: dict[str, tuple[str, ...]]

    def sample(self, rng: np.random.Generator) -> Arch:
        """A uniformly random subnet."""
        return Arch({name: options[rng.integers(len(options))]
                     for name, options in self.choices.items()})

    def validate(self, arch: Arch) -> Arch:
        """Returns ``arch`` if it assigns a valid option to every choice, else raises ValueError."""
        if list(arch) != list(self.choices):
            missing = [c for c in self.choices if c not in arch]
            extra = [c for c in arch if c not in self.choices]
            raise ValueError(f"Arch {arch.key!r} does not fit this space: "
                             f"missing {missing}, unknown {extra}")
        for name, option in arch.items():
            if option not in self.choices[name]:
                raise ValueError(f"Arch {arch.key!r}: option {option!r} is not one of "
                                 f"{list(self.choices[name])} for choice {name!r}")
        return arch

    @property
    def size(self) -> int:
        """How many subnets the space holds."""
        return int(np.prod([len(o) for o in self.choices.values()], dtype=object))

    @abc.abstractmethod
    def supernet(self) -> Supernet:
        """A new supernet with freshly initialised weights for every option."""


_REGISTRY: dict[str, Callable[..., BaseSearchSpace]] = {}


def register_space(name: str) -> Callable[[type], type]:
    """Class decorator registering a search space under ``name``."""
    def decorate(cls: type) -> type:
        if name in _REGISTRY:
            raise ValueError(f"search space {name!r} is already registered")
        _REGISTRY[name] = cls
        return cls
    return decorate


def list_spaces(pattern: str = "*") -> list[str]:
    """Registered space names matching a shell-style wildcard."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def create_space(name: str, **kwargs) -> BaseSearchSpace:
    """Builds the registered space ``name``; an unknown name lists the known ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown search space {name!r}; known: {', '.join(list_spaces())}")
    return _REGISTRY[name](**kwargs)
