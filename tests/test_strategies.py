"""Conformance: every registered strategy passes hwnas.testing's checks; the loop's limits."""
from __future__ import annotations

import collections

import numpy as np
import pytest
from optuna.trial import TrialState

from hwnas.arch import Arch
from hwnas.errors import MeasurementError
from hwnas.pareto import ParetoFront, reference_point
from hwnas.pareto._sorting import objective_matrix
from hwnas.driver import RETRIES, drive
from hwnas.strategies import (STRATEGIES, ProposingStrategy, RandomSearch, create_strategy,
                              strategy_class)
from hwnas.studies import evaluations, memory_study
from hwnas.testing import (STRATEGY_CHECKS, TOY_CHOICES as CHOICES, TOY_EXTREMES as EXTREMES,
                           TOY_OBJECTIVES as OBJECTIVES, ConformanceFailure, CountingEvaluator,
                           StrategyConformance, check_strategy, toy_search)

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

NAMES = sorted(STRATEGIES)


def search(name: str, **kwargs):
    """The toy search of the conformance checks, by the registered strategy ``name``."""
    return toy_search(strategy_class(name), **kwargs)


class TestEveryRegisteredStrategy(StrategyConformance):
    """The library's conformance suite, over the whole registry."""

    @pytest.fixture(autouse=True, params=NAMES)
    def _registered(self, request):
        self.strategy_class = STRATEGIES[request.param]


def test_the_registry_holds_every_family():
    assert {"tpe-ls", "tpe", "nsga2", "nsga3", "optuna-random", "qmc", "random"} <= set(STRATEGIES)
    assert next(iter(STRATEGIES)) == "tpe-ls"  # the default comes first
    assert {"deap-nsga2", "deap-nsga3", "deap-spea2"} <= set(STRATEGIES)
    with pytest.raises(ValueError, match="unknown strategy .cmaes.; known: tpe-ls, tpe, "):
        strategy_class("cmaes")
    for name, cls in STRATEGIES.items():
        assert cls.name == name and cls.summary


def test_hypervolume_agrees_with_a_hand_computed_value():
    study, _ = search("random", n=40)
    front = ParetoFront(evaluations(study), ["error", "latency_ms"])
    ref = reference_point(objective_matrix(evaluations(study), ["error", "latency_ms"]))
    # Two objectives: the dominated area is a staircase of rectangles.
    points = sorted(front.F.tolist())
    area, previous_y = 0.0, ref[1]
    for x, y in points:
        area += (ref[0] - x) * (previous_y - y)
        previous_y = y
    assert len(points) >= 5
    assert front.hypervolume(ref) == pytest.approx(area, rel=1e-12)


def test_three_failures_in_a_row_stop_the_search():
    calls = collections.Counter()

    def broken(arch: Arch):
        calls[arch.key] += 1
        raise MeasurementError("device busy")

    with pytest.raises(MeasurementError, match="3 subnets in a row failed"):
        search("random", n=5, evaluate=broken)
    assert len(calls) == 3 and set(calls.values()) == {1 + RETRIES}


def test_a_strategy_that_only_repeats_itself_stops():
    class Stubborn(RandomSearch):
        def _propose(self, n):
            return [EXTREMES[0]] * n

    study = memory_study(OBJECTIVES)
    strategy = Stubborn(choices=CHOICES, objectives=OBJECTIVES, seed=0)
    known = {}
    result = drive(strategy, CountingEvaluator(), 5, study=study, known=known, max_repeats=20)
    assert result.stalled and not result.exhausted
    assert (result.evaluated, len(known)) == (1, 1)
    assert result.cached == 20 + 1  # 20 in a row, then the batch already in flight is told
    assert not [t for t in study.get_trials() if t.state == TrialState.RUNNING]


def test_a_small_space_is_evaluated_whole_then_the_search_stops():
    choices = {"b0": ("ir_k3_e2", "skip"), "b1": ("ir_k3_e2",), "b2": ("ir_k3_e2", "ir_k5_e2")}
    study = memory_study(OBJECTIVES)
    strategy = create_strategy("tpe-ls", study=study, choices=choices, objectives=OBJECTIVES)
    known = {}
    result = drive(strategy, CountingEvaluator(), 10, study=study, known=known)
    assert result.exhausted and not result.stalled
    assert len(known) == result.evaluated == 4


def test_local_moves_are_new_neighbours_of_the_front():
    study, _ = search("tpe-ls", n=50)
    trials = study.get_trials(deepcopy=False)
    local = [i for i, t in enumerate(trials) if t.user_attrs.get("proposal") == "local"]
    assert len(local) >= 10
    assert {t.user_attrs.get("proposal") for t in trials[2:]} == {"local", "tpe"}
    for i in local:
        trial, before = trials[i], trials[:i]
        assert trial.user_attrs["key"] not in {t.user_attrs["key"] for t in before}
        feasible = [t for t in before if t.state == TrialState.COMPLETE
                    and all(v <= 0 for v in t.constraints.values())]
        F = np.array([t.values for t in feasible])
        front = [t for t in feasible if not np.any(np.all(F <= t.values, axis=1)
                                                  & np.any(F < t.values, axis=1))]
        differing = [sum(t.params[n] != trial.params[n] for n in CHOICES) for t in front]
        assert 1 in differing


def test_crowding_distance_prefers_the_ends_and_sparse_stretches():
    from hwnas.strategies._optuna import crowding_distance
    F = np.array([[0.0, 4.0], [1.0, 3.0], [1.1, 2.9], [3.0, 1.0], [4.0, 0.0]])
    w = crowding_distance(F)
    assert w[0] == w[4] == pytest.approx(w.max())
    assert w[3] > w[1] and w[3] > w[2]  # [3, 1] has the widest gap around it
    assert np.all(w > 0)
    assert np.all(crowding_distance(F[:2]) == 1.0)


def test_an_interrupted_batch_leaves_no_trial_running():
    study = memory_study(OBJECTIVES)
    strategy = create_strategy("random", choices=CHOICES, objectives=OBJECTIVES)

    def interrupted(archs):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        drive(strategy, None, 10, study=study, known={}, batch=4, evaluate_batch=interrupted)
    states = collections.Counter(t.state for t in study.get_trials(deepcopy=False))
    assert states == {TrialState.FAIL: 8}  # both batches in flight


# -- a user's own strategy against the conformance suite -------------------------------------


class NeighbourSearch(ProposingStrategy):
    """A strategy as a user writes it, against the public API only: generations of random
    subnets and one-choice changes of the best subnet so far. It learns between
    generations only, so what it proposes does not depend on when tells arrive."""

    name = "neighbours"
    summary = "generations of one-choice changes of the best subnet so far"
    GENERATION = 4

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.rng = np.random.default_rng(self.seed)
        self.best = None  # ((violation, summed objectives), subnet)
        self.generation: list[Arch] = []  # proposals of this generation not yet asked
        self.waiting: collections.Counter[str] = collections.Counter()  # asked, not answered

    def child(self) -> Arch:
        if self.best is None or self.rng.random() < 0.3:
            return Arch({n: str(self.rng.choice(o)) for n, o in self.choices.items()})
        arch = dict(self.best[1])
        name = list(self.choices)[self.rng.integers(len(self.choices))]
        arch[name] = str(self.rng.choice(self.choices[name]))
        return Arch(arch)

    def _propose(self, n):
        if not self.generation:
            if sum(self.waiting.values()):
                return []  # the generation is not all answered yet
            self.generation = [self.child() for _ in range(self.GENERATION)]
            self.waiting.update(a.key for a in self.generation)
        taken, self.generation = self.generation[:n], self.generation[n:]
        return taken

    def answered(self, arch: Arch) -> None:
        if self.waiting[arch.key]:
            self.waiting[arch.key] -= 1

    def _learn(self, arch, values, violation):
        self.answered(arch)
        score = (violation, sum(values))
        if self.best is None or score < self.best[0]:
            self.best = (score, arch)

    def fail(self, arch):
        super().fail(arch)
        self.answered(arch)


class TestAUsersOwnStrategy(StrategyConformance):
    strategy_class = NeighbourSearch


class SeedIgnored(NeighbourSearch):
    """Broken: draws from seed 0 whatever its seed."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.rng = np.random.default_rng(0)


class Repeating(NeighbourSearch):
    """Broken: after its first proposals it proposes the same subnet for ever."""

    def _propose(self, n):
        return [EXTREMES[0]] * n


def test_a_strategy_that_ignores_its_seed_fails_the_seed_check():
    failures = check_strategy(SeedIgnored, checks=["same_seed_same_sequence",
                                                   "never_evaluated_twice"])
    assert len(failures) == 1
    assert failures[0].startswith("same_seed_same_sequence: seeds 3 and 4 made the same ")
    with pytest.raises(ConformanceFailure, match="^same_seed_same_sequence: .*seed is ignored"):
        type("TestBroken", (StrategyConformance,), {"strategy_class": SeedIgnored})(
        ).test_same_seed_same_sequence()


def test_a_strategy_that_repeats_itself_fails_by_name():
    failures = check_strategy(Repeating)
    named = {message.split(":", 1)[0] for message in failures}
    assert {"never_evaluated_twice", "trials_carry_objectives_budgets_and_strategy"} <= named
    assert named <= set(STRATEGY_CHECKS)
    assert "never_evaluated_twice: asked for 60 subnets, 2 were evaluated (a strategy that " \
        "repeats itself stalls the search)" in failures
    # Resuming it ends (its replay once looped for ever on the subnets it repeats).
    assert "resume_reaches_the_exact_count: asked for 30 subnets, the resumed study holds 2" \
        in failures


def test_the_suite_tells_a_strategy_that_is_no_strategy():
    with pytest.raises(TypeError, match="BaseStrategy subclass"):
        check_strategy(RandomSearch(choices=CHOICES, objectives=OBJECTIVES))
    failures = check_strategy(RandomSearch, lambda **kwargs: object(),
                              checks=["never_evaluated_twice"])
    assert failures == ["never_evaluated_twice: raised TypeError: the factory made a object, "
                        "not a RandomSearch"]
