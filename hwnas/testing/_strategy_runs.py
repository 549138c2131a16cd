"""Running the strategy conformance checks: one by name, all of them, or as the pytest
tests of ``StrategyConformance``; and ``toy_search``, the search the checks drive."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import optuna

from hwnas.arch import Arch
from hwnas.objectives import Evaluation
from hwnas.strategies import BaseStrategy
from hwnas.testing._strategies import N, STRATEGY_CHECKS, ConformanceFailure, Subject


def _subject(strategy_class: type[BaseStrategy],
             make: Callable[..., BaseStrategy] | None) -> Subject:
    if not (isinstance(strategy_class, type) and issubclass(strategy_class, BaseStrategy)):
        raise TypeError(f"strategy_class must be a BaseStrategy subclass, got {strategy_class!r}")
    return Subject(strategy_class, make or strategy_class)


def toy_search(strategy_class: type[BaseStrategy], *, seed: int = 0, n: int = N,
               study: optuna.Study | None = None,
               evaluate: Callable[[Arch], Evaluation] | None = None,
               make: Callable[..., BaseStrategy] | None = None,
               **loop: Any) -> tuple[optuna.Study, BaseStrategy]:
    """Searches the toy problem as the checks do: a fresh strategy, the extremes enqueued,
    driven by the search loop until the study holds ``n`` distinct subnets.

    Args:
        strategy_class: the strategy's class.
        seed: the strategy's seed, and its sampler's.
        n: distinct subnets to evaluate.
        study: the study to resume (default: a new one in memory).
        evaluate: scores a subnet (default: a ``CountingEvaluator``).
        make: see ``run_strategy_check``.
        **loop: further arguments of ``hwnas.driver.drive`` (``batch``, ``evaluate_batch``).

    Returns:
        the study and the strategy.
    """
    return _subject(strategy_class, make).search(seed, n, study, evaluate, **loop)


def run_strategy_check(check: str, strategy_class: type[BaseStrategy],
                       make: Callable[..., BaseStrategy] | None = None) -> None:
    """Runs one check.

    Args:
        check: a name of ``STRATEGY_CHECKS``.
        strategy_class: the strategy's class (its ``sampler`` opens the study).
        make: makes the strategy from ``choices``, ``objectives``, ``budgets``, ``seed``
            (and ``study`` for a ``SamplerStrategy``); default: ``strategy_class``.

    Raises:
        ConformanceFailure: the strategy breaks the check.
        KeyError: no check has that name.
    """
    if check not in STRATEGY_CHECKS:
        raise KeyError(f"no strategy check {check!r}; known: {', '.join(STRATEGY_CHECKS)}")
    STRATEGY_CHECKS[check](_subject(strategy_class, make))


def check_strategy(strategy_class: type[BaseStrategy],
                   make: Callable[..., BaseStrategy] | None = None, *,
                   checks: list[str] | None = None) -> list[str]:
    """Runs the conformance checks on a strategy.

    Args:
        strategy_class: the strategy's class.
        make: see ``run_strategy_check``.
        checks: names of ``STRATEGY_CHECKS`` to run (default: all).

    Returns:
        one message per broken check, each starting with the check's name; empty
        when the strategy passes.
    """
    failures = []
    for name in checks or list(STRATEGY_CHECKS):
        try:
            run_strategy_check(name, strategy_class, make)
        except ConformanceFailure as exc:
            failures.append(str(exc))
    return failures


class StrategyConformance:
    """The conformance checks as pytest tests, for a test class of your own strategy::

        from hwnas.testing import StrategyConformance

        class TestMyStrategy(StrategyConformance):
            strategy_class = MyStrategy

    Each ``test_*`` method runs one check of ``STRATEGY_CHECKS``. Override
    ``make_strategy`` when the constructor needs more than the keyword arguments
    of ``BaseStrategy`` (and ``study`` for an Optuna strategy).
    """

    #: the strategy under test.
    strategy_class: ClassVar[type[BaseStrategy]]

    def make_strategy(self, **kwargs: Any) -> BaseStrategy:
        """The strategy under test, from ``BaseStrategy``'s keyword arguments."""
        return self.strategy_class(**kwargs)

    def run_check(self, check: str) -> None:
        """Runs the check ``check``; raises ConformanceFailure when it is broken."""
        run_strategy_check(check, self.strategy_class, self.make_strategy)

    def test_same_seed_same_sequence(self) -> None:
        self.run_check("same_seed_same_sequence")

    def test_trials_carry_objectives_budgets_and_strategy(self) -> None:
        self.run_check("trials_carry_objectives_budgets_and_strategy")

    def test_never_evaluated_twice(self) -> None:
        self.run_check("never_evaluated_twice")

    def test_front_feasible_and_non_dominated(self) -> None:
        self.run_check("front_feasible_and_non_dominated")

    def test_resume_reaches_the_exact_count(self) -> None:
        self.run_check("resume_reaches_the_exact_count")

    def test_resume_where_it_stopped(self) -> None:
        self.run_check("resume_where_it_stopped")

    def test_failed_measurement_is_a_failed_trial(self) -> None:
        self.run_check("failed_measurement_is_a_failed_trial")

    def test_batches_independent_of_evaluation(self) -> None:
        self.run_check("batches_independent_of_evaluation")
