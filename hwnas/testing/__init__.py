"""Conformance suites for users' own parts: run them in your own test suite.

A strategy of your own passes the checks every built-in strategy passes::

    from hwnas.testing import StrategyConformance

    class TestMyStrategy(StrategyConformance):
        strategy_class = MyStrategy

or, outside pytest, ``check_strategy(MyStrategy)`` lists what it breaks. A search space of
your own: ``check_space(space)`` runs the checks of ``hwnas check-space`` and returns one
``CheckResult`` per check.
"""
from __future__ import annotations

from hwnas.testing._spaces import SPACE_CHECKS, CheckResult, check_space
from hwnas.testing._strategies import STRATEGY_CHECKS, ConformanceFailure
from hwnas.testing._strategy_runs import (StrategyConformance, check_strategy,
                                          run_strategy_check, toy_search)
from hwnas.testing._toy import (TOY_BUDGETS, TOY_CHOICES, TOY_EXTREMES, TOY_OBJECTIVES,
                                CountingEvaluator, proposals, toy_evaluation)

__all__ = ["CheckResult", "ConformanceFailure", "CountingEvaluator", "SPACE_CHECKS",
           "STRATEGY_CHECKS", "StrategyConformance", "TOY_BUDGETS", "TOY_CHOICES",
           "TOY_EXTREMES", "TOY_OBJECTIVES", "check_space", "check_strategy", "proposals",
           "run_strategy_check", "toy_evaluation", "toy_search"]
