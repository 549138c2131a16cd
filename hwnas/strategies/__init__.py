"""Search strategies behind one ask/tell contract (the loop that drives them: hwnas.driver)."""
from __future__ import annotations

from collections.abc import Callable

from hwnas.registry import Registry, import_modules, subclass_of
from hwnas.strategies._base import BaseStrategy, ProposingStrategy
from hwnas.strategies._deap import DeapNSGA2, DeapNSGA3, DeapSPEA2
from hwnas.strategies._optuna import (NSGAIIIStrategy, NSGAIIStrategy, OptunaRandomStrategy,
                                      QMCStrategy, SamplerStrategy, TPELocalStrategy, TPEStrategy)
from hwnas.strategies._random import RandomSearch

#: name -> strategy class, in the order the CLI lists them; the first is the default. A config
#: may also name a class by spec (``resolve``), or an installed package's ``hwnas.strategies``.
STRATEGIES: Registry[type[BaseStrategy]] = Registry(
    "strategy", group="hwnas.strategies", accept=subclass_of(BaseStrategy))


def register_strategy(name: str, cls: type[BaseStrategy] | None = None
                      ) -> type[BaseStrategy] | Callable[[type[BaseStrategy]], type[BaseStrategy]]:
    """Registers a strategy class under ``name`` (a plain call, or a class decorator without ``cls``).

    Raises:
        ValueError: ``name`` is already registered.
    """
    return STRATEGIES.register(name, cls)


for _cls in (TPELocalStrategy, TPEStrategy, NSGAIIStrategy, NSGAIIIStrategy, OptunaRandomStrategy,
             QMCStrategy, DeapNSGA2, DeapNSGA3, DeapSPEA2, RandomSearch):
    register_strategy(_cls.name, _cls)
del _cls


def list_strategies(pattern: str = "*") -> list[str]:
    """Registered strategy names matching a shell-style wildcard, the default first."""
    return STRATEGIES.names(pattern)


def strategy_class(name: str) -> type[BaseStrategy]:
    """The strategy ``name``: a registered name, or a spec (``my_pkg.strategies:Mine``,
    ``./mine.py:Mine``, an installed package's entry point; see ``Registry.resolve``).

    Raises:
        ValueError: no strategy has that name, or the spec cannot be loaded; the
            message lists the known names, or says why.
    """
    return STRATEGIES.resolve(name)


def create_strategy(name: str, **kwargs) -> BaseStrategy:
    """The strategy ``name``; a ``SamplerStrategy`` also takes ``study=`` (open it with
    ``strategy_class(name).sampler(seed)``)."""
    return strategy_class(name)(**kwargs)


# A new strategy's module registers itself (register_strategy), with nothing else to edit.
import_modules(__name__)

__all__ = ["BaseStrategy", "DeapNSGA2", "DeapNSGA3", "DeapSPEA2", "NSGAIIIStrategy",
           "NSGAIIStrategy", "OptunaRandomStrategy", "ProposingStrategy", "QMCStrategy",
           "RandomSearch", "STRATEGIES", "SamplerStrategy", "TPELocalStrategy", "TPEStrategy",
           "create_strategy", "list_strategies", "register_strategy", "strategy_class"]
