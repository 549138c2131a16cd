"""Tests of the DEAP strategies: reproducible, constrained, resumable, better than random."""
from __future__ import annotations

import math
import random
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
from optuna.trial import TrialState

from hwnas.arch import Arch
from hwnas.hwcost import Costs, LatencyProtocol
from hwnas.pareto import ParetoFront, reference_point
from hwnas.objectives import Evaluation
from hwnas.driver import Books, drive
from hwnas.strategies import STRATEGIES, DeapNSGA2, DeapNSGA3, DeapSPEA2, RandomSearch
from hwnas.strategies._deap import fitness_class, reference_divisions
from hwnas.studies import known_evaluations, memory_study

DEAP = [DeapNSGA2, DeapNSGA3, DeapSPEA2]
#: Discrete ZDT1: f1 the mean of the first 3 genes, g from the other 7 (4 levels each).
LEVELS = ("l0", "l1", "l2", "l3")
CHOICES = {f"g{i}": LEVELS for i in range(10)}
OBJECTIVES = ["error", "latency_ms"]
#: Only genomes whose last 7 genes are nearly all at the top level (poor g) fit:
#: every infeasible subnet near the front dominates every feasible one.
BUDGETS = {"params": 1300.0}
PROTOCOL = LatencyProtocol(context="cpu", device="Test CPU @ 1.00GHz", nnabla_version="1.39.0",
                           threads=1, batch_size=1, warmup=5, repeats=30, statistic="cpu_median",
                           spread=0.1, reliable=True)


def zdt1(arch: Arch) -> Evaluation:
    index = [LEVELS.index(option) for option in arch.values()]
    f1 = sum(index[:3]) / 9.0
    g = 1.0 + 9.0 * sum(index[3:]) / 21.0
    f2 = g * (1.0 - math.sqrt(f1 / g))
    params = 1000 + 100 * (21 - sum(index[3:]))
    costs = Costs(latency_ms=f2, params=params, macs=10 * params, memory_bytes=4 * params,
                  protocol=PROTOCOL)
    return Evaluation(arch, {"accuracy": 1.0 - f1, "error": f1}, costs)


def make(cls, seed: int = 0, *, budgets=None, **kwargs):
    return cls(choices=CHOICES, objectives=OBJECTIVES, budgets=budgets, seed=seed, **kwargs)


def new_study(cls, seed: int = 0):
    """A study for the loop to record a strategy's trials in."""
    return memory_study(OBJECTIVES, sampler=cls.sampler(seed))


def trial_keys(study) -> list[str]:
    return [t.user_attrs["key"] for t in study.get_trials(states=(TrialState.COMPLETE,))]


def run(cls, seed: int = 0, n: int = 60, evaluate=zdt1, **kwargs):
    """The study of a search by ``cls``."""
    study = new_study(cls, seed)
    drive(make(cls, seed, **kwargs), evaluate, n, study=study, known={})
    return study


# ---------------------------------------------------------------- registry and fitness


def test_registered() -> None:
    for cls in DEAP:
        assert STRATEGIES[cls.name] is cls
        assert cls.summary and "\n" not in cls.summary
    with pytest.raises(ValueError, match="population"):
        make(DeapNSGA2, population=1)


def test_constrained_domination() -> None:
    Fitness = fitness_class(2)
    good, bad = Fitness((1.0, 1.0)), Fitness((2.0, 2.0))
    assert good.dominates(bad) and not bad.dominates(good)
    assert not good.dominates(Fitness((1.0, 1.0)))  # irreflexive
    assert not Fitness((0.0, 3.0)).dominates(good) and not good.dominates(Fitness((0.0, 3.0)))
    # A feasible fitness dominates any infeasible one, however good its values.
    cheat = Fitness((0.0, 0.0), violation=0.1)
    assert bad.dominates(cheat) and not cheat.dominates(bad)
    # Of two infeasible ones the smaller violation dominates...
    worse = Fitness((0.0, 0.0), violation=0.5)
    small = Fitness((9.0, 9.0), violation=0.2)
    assert small.dominates(worse) and not worse.dominates(small)
    # ...and equal violations compare the values.
    assert Fitness((1.0, 1.0), 0.2).dominates(small)
    assert not small.dominates(Fitness((1.0, 1.0), 0.2))
    # Twins in values but not in violation are different fitnesses (sortNondominated groups by ==).
    assert Fitness((1.0, 1.0), 0.2) != good and hash(Fitness((1.0, 1.0), 0.0)) == hash(good)
    del cheat.values
    assert cheat.violation == 0.0 and not cheat.valid


def test_reference_divisions() -> None:
    assert reference_divisions(2, 20) == 19  # 20 points on a line
    assert reference_divisions(3, 20) == 4  # C(6, 4) = 15 <= 20 < C(7, 5) = 21
    assert reference_divisions(1, 20) == 1


# ---------------------------------------------------------------- reproducibility


@pytest.mark.parametrize("cls", DEAP, ids=lambda c: c.name)
def test_same_seed_same_proposals(cls) -> None:
    random.seed(1234)
    np.random.seed(1234)
    before = random.getstate(), np.random.get_state()
    first = run(cls, seed=3)
    # The run neither consumed nor reset the global generators...
    assert random.getstate() == before[0]
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), before[1]))

    def noisy(arch: Arch) -> Evaluation:  # ...nor depends on them.
        random.random()
        np.random.random()
        return zdt1(arch)

    random.seed(99)
    again = run(cls, seed=3, evaluate=noisy)
    other = run(cls, seed=4)
    assert len(trial_keys(first)) >= 60
    assert trial_keys(again) == trial_keys(first)
    assert trial_keys(other) != trial_keys(first)


# ---------------------------------------------------------------- generations


@pytest.mark.parametrize("cls", DEAP, ids=lambda c: c.name)
def test_generations_and_enqueued(cls) -> None:
    seeds = [Arch({n: o[0] for n, o in CHOICES.items()}),
             Arch({n: o[-1] for n, o in CHOICES.items()}),
             Arch({n: o[i % 4] for i, (n, o) in enumerate(CHOICES.items())})]
    strategy = make(cls, population=8)
    strategy.enqueue(seeds + seeds[:1])  # repeats are dropped
    study = new_study(cls)
    drive(strategy, zdt1, 30, study=study, known={})
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert [t.user_attrs["generation"] for t in trials] == [i // 8 for i in range(len(trials))]
    assert [t.user_attrs["key"] for t in trials[:3]] == [a.key for a in seeds]
    assert {t.user_attrs["strategy"] for t in trials} == {cls.name}
    with pytest.raises(ValueError, match="too late"):
        strategy.enqueue(seeds)


def test_enqueued_beyond_the_population_all_join_generation_0() -> None:
    seeds = [Arch({n: o[(i + j) % 4] for j, (n, o) in enumerate(CHOICES.items())})
             for i in range(4)]
    strategy = make(DeapNSGA2, population=2)
    strategy.enqueue(seeds)
    study = new_study(DeapNSGA2)
    drive(strategy, zdt1, 10, study=study, known={})
    generations = [t.user_attrs["generation"]
                   for t in study.get_trials(states=(TrialState.COMPLETE,))]
    assert generations[:6] == [0, 0, 0, 0, 1, 1]
    with pytest.raises(ValueError, match="outside the space"):
        make(DeapNSGA2).enqueue([Arch({**seeds[0], "g0": "l9"})])
    with pytest.raises(ValueError, match="does not assign"):
        make(DeapNSGA2).enqueue([Arch({"g0": "l0"})])


def test_repeated_subnets_in_a_generation_each_get_a_tell() -> None:
    study = memory_study(["error", "latency_ms"])
    choices = {"a": ("x", "y")}  # 6 individuals over 2 subnets: repeats are certain
    strategy = Books(study=study, strategy=DeapNSGA2(
        choices=choices, objectives=["error", "latency_ms"], population=6))
    first = strategy.ask(10)
    assert len(first) == 6 and len({a.key for a in first}) < 6
    assert strategy.ask(1) == []  # the generation waits for its tells
    for arch in reversed(first[1:]):
        strategy.tell(arch, _tiny(arch))
    assert strategy.ask(1) == []
    strategy.abandon(first[0], "flaky")  # proposed again, still in generation 0
    assert strategy.ask(1) == [first[0]]
    strategy.tell(first[0], _tiny(first[0]))
    second = strategy.ask(6)
    assert len(second) == 6
    attrs = Counter((t.state, t.user_attrs["generation"]) for t in study.trials)
    # One trial failed; its subnet got a new trial in the same generation.
    assert attrs == {(TrialState.FAIL, 0): 1, (TrialState.COMPLETE, 0): 6,
                     (TrialState.RUNNING, 1): 6}


@pytest.mark.parametrize("cls", DEAP, ids=lambda c: c.name)
def test_tells_in_any_order_land_on_their_own_individual(cls) -> None:
    pools = []

    class Recording(cls):
        def _environmental_selection(self, pool):
            pools.append(list(pool))
            return super()._environmental_selection(pool)

    strategy = make(Recording, population=6)
    order = random.Random(0)
    for _ in range(4):
        archs = strategy.ask(6)
        assert len(archs) == 6
        for arch in order.sample(archs, len(archs)):
            strategy.tell(arch, zdt1(arch))
    assert len(pools) == 4 and [len(p) for p in pools] == [6, 12, 12, 12]
    for individual in pools[-1]:
        arch = Arch({name: options[i] for (name, options), i in zip(CHOICES.items(), individual)})
        assert individual.fitness.values == tuple(strategy.values(zdt1(arch)))


def _tiny(arch: Arch) -> Evaluation:
    x = 1.0 if arch["a"] == "y" else 0.0
    costs = Costs(latency_ms=1.0 - x, params=1, macs=1, memory_bytes=1, protocol=PROTOCOL)
    return Evaluation(arch, {"accuracy": 1.0 - x, "error": x}, costs)


# ---------------------------------------------------------------- budgets


def _pool(spec: list[tuple[float, float, float]]) -> list[SimpleNamespace]:
    Fitness = fitness_class(2)
    return [SimpleNamespace(name=i, fitness=Fitness((f1, f2), v))
            for i, (f1, f2, v) in enumerate(spec)]


@pytest.mark.parametrize("cls", DEAP, ids=lambda c: c.name)
def test_selection_keeps_feasible_over_dominating_infeasible(cls) -> None:
    feasible = [(10.0 + i, 13.0 - i, 0.0) for i in range(4)]
    # Twins of the feasible ones over budget, and infeasible ones dominating them all.
    twins = [(f1, f2, 0.5 + i) for i, (f1, f2, _) in enumerate(feasible)]
    cheats = [(float(i), 3.0 - i, 0.1 * (i + 1)) for i in range(4)]
    pool = _pool(twins + cheats + feasible)
    chosen = make(cls, population=6)._environmental_selection(pool)
    names = sorted(p.name for p in chosen)
    # The 4 feasible ones, then the 2 smallest violations.
    assert names == [4, 5, 8, 9, 10, 11]


@pytest.mark.parametrize("cls", DEAP, ids=lambda c: c.name)
def test_budget_never_loses_a_feasible_survivor(cls) -> None:
    log = []

    class Recording(cls):
        def _environmental_selection(self, pool):
            chosen = super()._environmental_selection(pool)
            log.append((pool, chosen))
            return chosen

    study = run(Recording, n=400, budgets=BUDGETS, population=12)
    assert len(log) >= 20
    survivors = []
    for pool, chosen in log:
        fits = [ind for ind in pool if ind.fitness.violation == 0]
        kept = [ind for ind in chosen if ind.fitness.violation == 0]
        assert len(kept) == min(len(fits), len(chosen))
        survivors.append(len(kept))
    assert survivors == sorted(survivors)  # never fewer feasible survivors
    assert survivors[0] < len(chosen) and survivors[-1] == len(chosen)
    front = ParetoFront(known_evaluations(study).values(), OBJECTIVES, BUDGETS)
    assert len(front) > 0


# ---------------------------------------------------------------- resuming


@pytest.mark.parametrize("cls", DEAP, ids=lambda c: c.name)
def test_replay_resumes_where_the_search_stopped(cls) -> None:
    def fresh(seen):
        return lambda evaluation, cached: seen.append((evaluation.arch.key, cached))

    whole: list = []
    uninterrupted = new_study(cls)
    drive(make(cls, population=10), zdt1, 45, study=uninterrupted, known={},
          on_result=fresh(whole))

    # Stopped mid-generation at 27, then a new process resumes from the study.
    part: list = []
    first = new_study(cls)
    drive(make(cls, population=10), zdt1, 27, study=first, known={}, on_result=fresh(part))
    resumed = make(cls, population=10)
    drive(resumed, zdt1, 45, study=first, known=known_evaluations(first),
          on_result=fresh(part))

    evaluated = [key for key, cached in whole if not cached]
    assert len(evaluated) == 45
    assert [key for key, cached in part if not cached] == evaluated

    def generations(study):
        return [(t.user_attrs["key"], t.user_attrs["generation"])
                for t in study.get_trials(states=(TrialState.COMPLETE,))
                if not t.user_attrs["cached"]]

    assert generations(first) == generations(uninterrupted)


# ---------------------------------------------------------------- quality


def test_beats_random_search() -> None:
    # Random search almost never meets g = 1 (7 genes at level 0) in 200 subnets;
    # evolution gets there. Two seeds each beat the best of five random searches.
    runs = {("random", seed): run(RandomSearch, seed=seed, n=200) for seed in range(5)}
    runs.update({(cls.name, seed): run(cls, seed=seed, n=200) for cls in DEAP for seed in (0, 1)})
    found = {name: list(known_evaluations(study).values()) for name, study in runs.items()}
    F = np.array([[e.objective(o) for o in OBJECTIVES] for es in found.values() for e in es])
    ref = reference_point(F)
    hv = {name: ParetoFront(es, OBJECTIVES).hypervolume(ref) for name, es in found.items()}
    best_random = max(hv["random", seed] for seed in range(5))
    for cls in DEAP:
        for seed in (0, 1):
            assert hv[cls.name, seed] > best_random, hv
