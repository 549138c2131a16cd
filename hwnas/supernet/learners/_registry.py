"""The learner registry: name -> BaseLearner subclass (``train.learner`` in a config)."""
from __future__ import annotations

from collections.abc import Callable

from hwnas.registry import Registry
from hwnas.supernet.learners._base import BaseLearner

#: name -> learner class, in registration order (``uniform``, the default, first).
LEARNERS: Registry[type[BaseLearner]] = Registry("learner")


def register_learner(name: str, cls: type[BaseLearner] | None = None
                     ) -> type[BaseLearner] | Callable[[type[BaseLearner]], type[BaseLearner]]:
    """Registers a learner class under ``name`` (a plain call, or a class decorator without ``cls``).

    Raises:
        ValueError: ``name`` is already registered.
    """
    return LEARNERS.register(name, cls)


def learner_class(name: str) -> type[BaseLearner]:
    """The registered learner called ``name``.

    Raises:
        ValueError: no learner has that name; the message lists the known ones.
    """
    return LEARNERS.get(name)


def list_learners(pattern: str = "*") -> list[str]:
    """Registered learner names matching a shell-style wildcard."""
    return LEARNERS.names(pattern)
