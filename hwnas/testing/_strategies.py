"""Strategy conformance: the checks every BaseStrategy passes, built-in or a user's own.

The checks drive the strategy with the real search loop (``hwnas.driver.drive``)
over the toy problem of ``_toy``, which costs nothing to evaluate. Nothing is
trained or measured, so the whole suite takes seconds. ``_strategy_runs`` runs them.
"""
from __future__ import annotations

import collections
import dataclasses
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from hwnas.arch import Arch
from hwnas.driver import RETRIES, drive
from hwnas.errors import MeasurementError
from hwnas.objectives import Evaluation
from hwnas.pareto import ParetoFront
from hwnas.strategies import BaseStrategy, ProposingStrategy, SamplerStrategy
from hwnas.studies import evaluations, known_evaluations, memory_study, open_study
from hwnas.testing._toy import (TOY_BUDGETS, TOY_CHOICES, TOY_EXTREMES, TOY_OBJECTIVES,
                                CountingEvaluator, proposals, toy_evaluation)

#: Distinct subnets a check's search evaluates.
N = 30


class ConformanceFailure(AssertionError):
    """A strategy broke a conformance check; the message starts with the check's name.

    Attributes:
        check: the name of the broken check (a key of ``STRATEGY_CHECKS``).
    """

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check


@dataclasses.dataclass
class Subject:
    """The strategy under test, made and driven as the search step does: an Optuna
    strategy over a study opened with its sampler, the extremes enqueued first."""

    cls: type[BaseStrategy]
    make: Callable[..., BaseStrategy]

    def study(self, seed: int, directory: str | None = None) -> optuna.Study:
        sampler = self.cls.sampler(seed)
        if directory is None:
            return memory_study(TOY_OBJECTIVES, sampler=sampler)
        return open_study(directory, TOY_OBJECTIVES, sampler=sampler)

    def strategy(self, study: optuna.Study, seed: int) -> BaseStrategy:
        over = {"study": study} if issubclass(self.cls, SamplerStrategy) else {}
        made = self.make(**over, choices=TOY_CHOICES, objectives=list(TOY_OBJECTIVES),
                         budgets=dict(TOY_BUDGETS), seed=seed)
        if not isinstance(made, self.cls):
            raise TypeError(f"the factory made a {type(made).__name__}, not a {self.cls.__name__}")
        made.enqueue(list(TOY_EXTREMES))
        return made

    def search(self, seed: int = 0, n: int = N, study: optuna.Study | None = None,
               evaluate: Callable[[Arch], Evaluation] | None = None,
               **loop: Any) -> tuple[optuna.Study, BaseStrategy]:
        """Drives a fresh strategy until ``study`` (default: a new one) holds ``n`` subnets."""
        if evaluate is None and "evaluate_batch" not in loop:
            evaluate = CountingEvaluator()
        with warnings.catch_warnings():
            # Optuna's constraint and multi-objective samplers are marked experimental.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = study or self.study(seed)
            strategy = self.strategy(study, seed)
            drive(strategy, evaluate, n, study=study, known=known_evaluations(study), **loop)
        return study, strategy


#: check name -> the check; filled by ``_check`` in the order below.
STRATEGY_CHECKS: dict[str, Callable[[Subject], None]] = {}


def _check(function: Callable[[Subject, Callable[[str], None]], None]
           ) -> Callable[[Subject], None]:
    """Registers a check under its function's name; it reports a failure with ``fail(message)``."""
    name = function.__name__

    def fail(message: str) -> None:
        raise ConformanceFailure(name, message)

    def run(subject: Subject) -> None:
        try:
            function(subject, fail)
        except ConformanceFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - any error of the strategy fails the check
            raise ConformanceFailure(name, f"raised {type(exc).__name__}: {exc}") from exc

    run.__name__ = run.__qualname__ = name
    run.__doc__ = function.__doc__
    STRATEGY_CHECKS[name] = run
    return run


def _first_difference(a: list[str], b: list[str]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"proposal {i} is {x} in one, {y} in the other"
    return f"one made {len(a)} proposals, the other {len(b)}"


@_check
def same_seed_same_sequence(subject: Subject, fail: Callable[[str], None]) -> None:
    """Two searches with the same seed propose the same subnets; another seed, others."""
    first, _ = subject.search(seed=3)
    again, _ = subject.search(seed=3)
    other, _ = subject.search(seed=4)
    if proposals(first) != proposals(again):
        fail("two searches with seed 3 proposed different subnets "
             f"({_first_difference(proposals(first), proposals(again))})")
    if proposals(first) == proposals(other):
        fail(f"seeds 3 and 4 made the same {len(proposals(first))} proposals: "
             "the seed is ignored")


@_check
def trials_carry_objectives_budgets_and_strategy(subject: Subject,
                                                 fail: Callable[[str], None]) -> None:
    """Every trial records its subnet, objective values, budgets (as constraints) and the
    strategy's name; the enqueued subnets are proposed first."""
    study, strategy = subject.search()
    if not strategy.name:
        fail(f"{subject.cls.__name__} has no name: set the class attribute 'name'")
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    distinct = {t.user_attrs.get("key") for t in trials}
    if len(distinct) != N:
        fail(f"asked for {N} subnets, the study holds {len(distinct)} evaluated")
    for trial in trials:
        arch = Arch(trial.params)
        evaluation = toy_evaluation(arch)
        if trial.values != [evaluation.objective(o) for o in TOY_OBJECTIVES]:
            fail(f"trial {trial.number} has values {trial.values}, not those of {arch.key}")
        if trial.user_attrs.get("strategy") != strategy.name:
            fail(f"trial {trial.number} names strategy {trial.user_attrs.get('strategy')!r}, "
                 f"not {strategy.name!r}")
        if trial.user_attrs.get("key") != arch.key:
            fail(f"trial {trial.number} records key {trial.user_attrs.get('key')!r} for "
                 f"params {arch.key}")
        constraints = {k.split(":", 1)[1]: v for k, v in trial.system_attrs.items()
                       if k.startswith("constraints:")}
        expected = {o: evaluation.objective(o) - limit for o, limit in TOY_BUDGETS.items()}
        if constraints.keys() != expected.keys() or any(
                not np.isclose(constraints[o], v) for o, v in expected.items()):
            fail(f"trial {trial.number} has constraints {constraints}, not {expected}")
    if proposals(study)[:2] != [a.key for a in TOY_EXTREMES]:
        fail(f"the enqueued subnets were not proposed first: {proposals(study)[:2]}")


@_check
def never_evaluated_twice(subject: Subject, fail: Callable[[str], None]) -> None:
    """No subnet is evaluated twice; a proposal of a known one is a cached trial."""
    evaluate = CountingEvaluator()
    study, _ = subject.search(n=60, evaluate=evaluate)
    twice = sorted(k for k, count in evaluate.calls.items() if count > 1)
    if twice:
        fail(f"{len(twice)} subnets were evaluated more than once, e.g. {twice[0]}")
    if len(evaluate.calls) != 60:
        fail(f"asked for 60 subnets, {len(evaluate.calls)} were evaluated (a strategy that "
             "repeats itself stalls the search)")
    cached = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("cached")]
    repeated = collections.Counter(proposals(study))
    if len(cached) != sum(count - 1 for count in repeated.values()):
        fail(f"{len(cached)} cached trials for "
             f"{sum(c - 1 for c in repeated.values())} repeated proposals")


@_check
def front_feasible_and_non_dominated(subject: Subject, fail: Callable[[str], None]) -> None:
    """The search's front is within budgets, non-dominated, and dominates the rest."""
    study, _ = subject.search(n=40)
    evs = evaluations(study)
    front = ParetoFront(evs, TOY_OBJECTIVES, TOY_BUDGETS)
    if len(front) == 0:
        fail("40 subnets evaluated and the feasible front is empty")
    F = front.F
    for e in front:
        if any(e.objective(o) > limit for o, limit in TOY_BUDGETS.items()):
            fail(f"{e.arch.key} on the front breaks a budget")
    for i in range(len(F)):
        if np.any(np.all(F <= F[i], axis=1) & np.any(F < F[i], axis=1)):
            fail(f"{front.evaluations[i].arch.key} on the front is dominated")
    on = {e.arch.key for e in front}
    for e in evs:
        if e.arch.key not in on and all(e.objective(o) <= v for o, v in TOY_BUDGETS.items()):
            point = np.array([e.objective(o) for o in TOY_OBJECTIVES])
            if not np.any(np.all(F <= point, axis=1)):
                fail(f"feasible {e.arch.key} is off the front but no member dominates it")


@_check
def resume_reaches_the_exact_count(subject: Subject, fail: Callable[[str], None]) -> None:
    """A search resumed from the journal in a new process evaluates only what is missing."""
    with tempfile.TemporaryDirectory(prefix="hwnas-conformance-") as directory:
        first, second = CountingEvaluator(), CountingEvaluator()
        subject.search(n=17, study=subject.study(0, directory), evaluate=first)
        study, _ = subject.search(n=N, study=subject.study(0, directory), evaluate=second)
        again = set(first.calls) & set(second.calls)
        if again:
            fail(f"the resumed search evaluated {len(again)} subnets of the first again, "
                 f"e.g. {sorted(again)[0]}")
        if len(known_evaluations(study)) != N:
            fail(f"asked for {N} subnets, the resumed study holds "
                 f"{len(known_evaluations(study))}")
        if sum(first.calls.values()) + sum(second.calls.values()) != N:
            fail(f"{N} subnets took {sum(first.calls.values()) + sum(second.calls.values())} "
                 "evaluations")


@_check
def resume_where_it_stopped(subject: Subject, fail: Callable[[str], None]) -> None:
    """A strategy that proposes by itself, resumed, proposes what an uninterrupted search
    would have (an Optuna strategy's memory is the study: nothing to check)."""
    if not issubclass(subject.cls, ProposingStrategy):
        return
    straight, _ = subject.search(n=N)
    study, _ = subject.search(n=12)
    resumed, _ = subject.search(n=N, study=study)
    # The subnets in the order first proposed: a replay answers a repeat of a known subnet
    # at once, without a trial, where the uninterrupted search recorded a cached one.
    first, again = (list(dict.fromkeys(proposals(s))) for s in (straight, resumed))
    if first != again:
        fail("resumed after 12 subnets, it proposed differently from an uninterrupted search "
             f"({_first_difference(first, again)}); the loop asks "
             "the next proposals before the last are told, a replay tells each at once: "
             "learn between generations (return fewer proposals while waiting for tells) "
             "or override replay")


@_check
def failed_measurement_is_a_failed_trial(subject: Subject, fail: Callable[[str], None]) -> None:
    """A subnet that fails on every try is a failed trial, never proposed again; the search
    goes on to the count asked for."""
    failing = {"left": 1 + RETRIES}  # the first subnet fails on every try
    calls: collections.Counter[str] = collections.Counter()

    def flaky(arch: Arch) -> Evaluation:
        calls[arch.key] += 1
        if failing["left"]:
            failing["left"] -= 1
            raise MeasurementError("device busy")
        return toy_evaluation(arch)

    study, _ = subject.search(n=10, evaluate=flaky)
    trials = study.get_trials(deepcopy=False)
    reasons = [t.user_attrs.get("fail_reason") for t in trials
               if t.state == TrialState.FAIL and not t.user_attrs.get("cached")]
    if reasons != ["device busy"]:
        fail(f"expected one failed trial ('device busy'), got {reasons}")
    if calls[TOY_EXTREMES[0].key] != 1 + RETRIES:
        fail(f"the failed subnet was evaluated {calls[TOY_EXTREMES[0].key]} times, not "
             f"{1 + RETRIES}: it was proposed again")
    if len(known_evaluations(study)) != 10:
        fail(f"asked for 10 subnets, the study holds {len(known_evaluations(study))}")
    if any(t.state == TrialState.RUNNING for t in trials):
        fail("trials were left running")


@_check
def batches_independent_of_evaluation(subject: Subject, fail: Callable[[str], None]) -> None:
    """Batches of proposals do not depend on which evaluation finishes first, and a batch
    never holds a subnet twice."""
    counter = CountingEvaluator()

    def in_order(archs: list[Arch]) -> list[Evaluation]:
        if len({a.key for a in archs}) != len(archs):
            fail(f"a batch holds a subnet twice: {[a.key for a in archs]}")
        return [counter(a) for a in archs]

    def backwards(archs: list[Arch]) -> list[Evaluation]:  # another worker finishing first
        return [toy_evaluation(a) for a in reversed(archs)][::-1]

    first, _ = subject.search(seed=5, n=25, batch=3, evaluate_batch=in_order)
    second, _ = subject.search(seed=5, n=25, batch=3, evaluate_batch=backwards)
    if proposals(first) != proposals(second):
        fail("the proposals depend on the order evaluations finish "
             f"({_first_difference(proposals(first), proposals(second))})")
    if len(counter.calls) != 25 or set(counter.calls.values()) != {1}:
        fail(f"25 subnets asked in batches of 3: {len(counter.calls)} evaluated, "
             f"{sum(counter.calls.values())} evaluations")
    if any(t.state != TrialState.COMPLETE for t in first.get_trials(deepcopy=False)):
        fail("a batched search left trials that are not complete")
