"""Search strategies behind one ask/tell contract."""
from __future__ import annotations

from hwnas.strategies._base import BaseStrategy
from hwnas.strategies._optuna import OptunaStrategy, TPEStrategy

STRATEGIES = {"tpe": TPEStrategy}

__all__ = ["BaseStrategy", "OptunaStrategy", "STRATEGIES", "TPEStrategy"]
