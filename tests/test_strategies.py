"""Conformance: every registered strategy goes through the same checks."""
from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
from optuna.trial import TrialState

from hwnas.arch import Arch
from hwnas.errors import MeasurementError
from hwnas.pareto import ParetoFront, reference_point
from hwnas.pareto._sorting import objective_matrix
from hwnas.driver import RETRIES, drive
from hwnas.strategies import STRATEGIES, SamplerStrategy, create_strategy, strategy_class
from hwnas.studies import evaluations, known_evaluations, memory_study, open_study
from tests.test_study import BUDGETS, CHOICES, OBJECTIVES, fake_evaluation

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

NAMES = sorted(STRATEGIES)
N = 30
EXTREMES = [Arch({name: options[0] for name, options in CHOICES.items()}),
            Arch({name: options[-1] for name, options in CHOICES.items()})]


class CountingEvaluator:
    """fake_evaluation, counting how often each subnet is evaluated."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()

    def __call__(self, arch: Arch):
        self.calls[arch.key] += 1
        return fake_evaluation(arch)


def make(name: str, study, **kwargs):
    """The strategy ``name``; an Optuna sampler's asks ``study``."""
    over = {"study": study} if issubclass(strategy_class(name), SamplerStrategy) else {}
    return create_strategy(name, **over, choices=CHOICES, objectives=OBJECTIVES, **kwargs)


def search(name: str, seed: int = 0, n: int = N, study=None, evaluate=None):
    study = study or memory_study(OBJECTIVES, sampler=strategy_class(name).sampler(seed))
    strategy = make(name, study, budgets=BUDGETS, seed=seed)
    strategy.enqueue(EXTREMES)
    evaluate = evaluate or CountingEvaluator()
    known = known_evaluations(study)
    drive(strategy, evaluate, n, study=study, known=known)
    return study, evaluate


def proposals(study) -> list[str]:
    return [t.user_attrs["key"] for t in study.get_trials(deepcopy=False)]


def test_the_registry_holds_every_family():
    assert {"tpe-ls", "tpe", "nsga2", "nsga3", "optuna-random", "qmc", "random"} <= set(STRATEGIES)
    assert next(iter(STRATEGIES)) == "tpe-ls"  # the default comes first
    assert {"deap-nsga2", "deap-nsga3", "deap-spea2"} <= set(STRATEGIES)
    with pytest.raises(ValueError, match="unknown strategy .cmaes.; known: tpe-ls, tpe, "):
        strategy_class("cmaes")
    for name, cls in STRATEGIES.items():
        assert cls.name == name and cls.summary


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_sequence_other_seed_other_sequence(name):
    first, _ = search(name, seed=3)
    again, _ = search(name, seed=3)
    other, _ = search(name, seed=4)
    assert proposals(first) == proposals(again)
    assert proposals(first) != proposals(other)


@pytest.mark.parametrize("name", NAMES)
def test_every_trial_carries_objectives_budgets_and_strategy(name):
    study, evaluate = search(name)
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert len({t.user_attrs["key"] for t in trials}) == N
    for trial in trials:
        evaluation = fake_evaluation(Arch(trial.params))
        assert trial.values == [evaluation.objective(o) for o in OBJECTIVES]
        assert trial.user_attrs["strategy"] == name
        assert trial.user_attrs["key"] == Arch(trial.params).key
        constraints = {k.split(":", 1)[1]: v for k, v in trial.system_attrs.items()
                       if k.startswith("constraints:")}
        assert constraints.keys() == BUDGETS.keys()
        for objective, limit in BUDGETS.items():
            assert constraints[objective] == pytest.approx(evaluation.objective(objective) - limit)
    # The extremes are asked first.
    assert proposals(study)[:2] == [a.key for a in EXTREMES]


@pytest.mark.parametrize("name", NAMES)
def test_a_subnet_is_never_evaluated_twice(name):
    study, evaluate = search(name, n=60)
    assert set(evaluate.calls.values()) == {1}
    assert len(evaluate.calls) == 60
    cached = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("cached")]
    repeated = collections.Counter(proposals(study))
    assert len(cached) == sum(count - 1 for count in repeated.values())


@pytest.mark.parametrize("name", NAMES)
def test_front_is_feasible_and_non_dominated(name):
    study, _ = search(name, n=40)
    evs = evaluations(study)
    front = ParetoFront(evs, OBJECTIVES, BUDGETS)
    assert len(front) > 0
    F = front.F
    for e in front:
        assert all(e.objective(o) <= limit for o, limit in BUDGETS.items())
    for i in range(len(F)):
        for j in range(len(F)):
            assert not (np.all(F[j] <= F[i]) and np.any(F[j] < F[i]))
    # Every feasible evaluation off the front is dominated by one on it.
    on = {e.arch.key for e in front}
    for e in evs:
        if e.arch.key not in on and all(e.objective(o) <= v for o, v in BUDGETS.items()):
            point = np.array([e.objective(o) for o in OBJECTIVES])
            assert np.any(np.all(F <= point, axis=1))


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


@pytest.mark.parametrize("name", NAMES)
def test_resume_from_the_journal_reaches_the_exact_count(name, tmp_path: Path):
    sampler = strategy_class(name).sampler(0)
    study, first = search(name, n=17, study=open_study(tmp_path, OBJECTIVES, sampler=sampler))
    # A new process: reopen the study from the file and ask for more.
    study = open_study(tmp_path, OBJECTIVES, sampler=strategy_class(name).sampler(0))
    study, second = search(name, n=N, study=study)
    assert not set(first.calls) & set(second.calls)
    assert len(known_evaluations(study)) == N
    assert sum(first.calls.values()) + sum(second.calls.values()) == N


@pytest.mark.parametrize("name", [n for n in NAMES
                                  if not issubclass(STRATEGIES[n], SamplerStrategy)])
def test_deterministic_strategies_resume_exactly_where_they_stopped(name):
    straight, _ = search(name, n=N)
    study, _ = search(name, n=12)
    resumed, _ = search(name, n=N, study=study)
    assert proposals(resumed) == proposals(straight)


@pytest.mark.parametrize("name", NAMES)
def test_a_failed_measurement_is_a_failed_trial_then_the_search_goes_on(name):
    failing = {"left": 1 + RETRIES}  # the first subnet fails on every try
    calls = collections.Counter()

    def flaky(arch: Arch):
        calls[arch.key] += 1
        if failing["left"]:
            failing["left"] -= 1
            raise MeasurementError("device busy")
        return fake_evaluation(arch)

    study, _ = search(name, n=10, evaluate=flaky)
    states = collections.Counter(t.state for t in study.get_trials(deepcopy=False))
    failed = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.FAIL]
    assert [t.user_attrs["fail_reason"] for t in failed if not t.user_attrs["cached"]] \
        == ["device busy"]
    assert calls[EXTREMES[0].key] == 1 + RETRIES  # tried again once, then never again
    assert len(known_evaluations(study)) == 10
    assert states[TrialState.RUNNING] == 0


def test_three_failures_in_a_row_stop_the_search():
    calls = collections.Counter()

    def broken(arch: Arch):
        calls[arch.key] += 1
        raise MeasurementError("device busy")

    with pytest.raises(MeasurementError, match="3 subnets in a row failed"):
        search("random", n=5, evaluate=broken)
    assert len(calls) == 3 and set(calls.values()) == {1 + RETRIES}


def test_a_strategy_that_only_repeats_itself_stops():
    from hwnas.strategies import RandomSearch

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


@pytest.mark.parametrize("name", NAMES)
def test_batches_do_not_depend_on_how_they_are_evaluated(name):
    def searched(evaluate_batch):
        study = memory_study(OBJECTIVES, sampler=strategy_class(name).sampler(5))
        strategy = make(name, study, budgets=BUDGETS, seed=5)
        strategy.enqueue(EXTREMES)
        known = {}
        drive(strategy, None, 25, study=study, known=known, batch=3,
              evaluate_batch=evaluate_batch)
        return study, known

    counter = CountingEvaluator()

    def in_order(archs):
        assert len({a.key for a in archs}) == len(archs)  # each distinct subnet once
        return [counter(a) for a in archs]

    def backwards(archs):  # another worker finishing first
        return [fake_evaluation(a) for a in reversed(archs)][::-1]

    first, known = searched(in_order)
    second, _ = searched(backwards)
    assert proposals(first) == proposals(second)
    assert len(known) == 25 and set(counter.calls.values()) == {1}
    assert all(t.state == TrialState.COMPLETE for t in first.get_trials(deepcopy=False))


def test_an_interrupted_batch_leaves_no_trial_running():
    study = memory_study(OBJECTIVES)
    strategy = create_strategy("random", choices=CHOICES, objectives=OBJECTIVES)

    def interrupted(archs):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        drive(strategy, None, 10, study=study, known={}, batch=4, evaluate_batch=interrupted)
    states = collections.Counter(t.state for t in study.get_trials(deepcopy=False))
    assert states == {TrialState.FAIL: 8}  # both batches in flight
