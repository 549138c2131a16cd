"""Search strategies behind one ask/tell contract (the loop that drives them: hwnas.driver)."""
from __future__ import annotations

from hwnas.strategies._base import BaseStrategy, ProposingStrategy
from hwnas.strategies._deap import DeapNSGA2, DeapNSGA3, DeapSPEA2
from hwnas.strategies._optuna import (NSGAIIIStrategy, NSGAIIStrategy, OptunaRandomStrategy,
                                      QMCStrategy, SamplerStrategy, TPELocalStrategy, TPEStrategy)
from hwnas.strategies._random import RandomSearch

#: name -> strategy class, in the order the CLI lists them; the first is the default.
STRATEGIES: dict[str, type[BaseStrategy]] = {
    cls.name: cls for cls in (TPELocalStrategy, TPEStrategy, NSGAIIStrategy, NSGAIIIStrategy, OptunaRandomStrategy,
                              QMCStrategy, DeapNSGA2, DeapNSGA3, DeapSPEA2, RandomSearch)
}


def strategy_class(name: str) -> type[BaseStrategy]:
    """The registered strategy called ``name``.

    Raises:
        ValueError: no strategy has that name; the message lists the known ones.
    """
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}") from None


def create_strategy(name: str, **kwargs) -> BaseStrategy:
    """The strategy ``name``; a ``SamplerStrategy`` also takes ``study=`` (open it with
    ``strategy_class(name).sampler(seed)``)."""
    return strategy_class(name)(**kwargs)


__all__ = ["BaseStrategy", "DeapNSGA2", "DeapNSGA3", "DeapSPEA2", "NSGAIIIStrategy",
           "NSGAIIStrategy", "OptunaRandomStrategy", "ProposingStrategy", "QMCStrategy",
           "RandomSearch", "STRATEGIES", "SamplerStrategy", "TPELocalStrategy", "TPEStrategy",
           "create_strategy", "strategy_class"]
