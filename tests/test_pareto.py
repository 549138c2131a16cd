"""Tests for hwnas.pareto: sorting, budgets, the front, hypervolume, selection and plots."""
from __future__ import annotations

import os
import pathlib

import numpy as np
import pandas as pd
import pytest

from hwnas.errors import BudgetError
from hwnas.hwcost import Costs, LatencyProtocol
from hwnas.pareto import (ParetoFront, Selection, evaluations_table, feasible_mask,
                          hypervolume_history, non_dominated, objective_pairs, parse_budgets,
                          plot_front, reference_point, best_within,
                          violation)
from hwnas.objectives import OBJECTIVES, Evaluation
from hwnas.arch import Arch

PROTOCOL = LatencyProtocol(context="cpu", device="test", nnabla_version="1.39.0", threads=1,
                           batch_size=1, warmup=1, repeats=3, statistic="cpu_median",
                           spread=0.01, reliable=True)
COLUMNS = ["key", *OBJECTIVES, "accuracy", "feasible", "on_front"]


def make(name: str, accuracy: float, latency_ms: float, params: int = 1000,
         macs: int = 10_000, memory_bytes: int = 4096) -> Evaluation:
    arch = Arch({"b0": "ir_k3_e3", "b1": name})
    costs = Costs(latency_ms=latency_ms, params=params, macs=macs, memory_bytes=memory_bytes,
                  protocol=PROTOCOL)
    return Evaluation(arch, {"accuracy": accuracy, "error": 1.0 - accuracy}, costs)


def brute_force_non_dominated(F: np.ndarray) -> np.ndarray:
    n = len(F)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        for j in range(n):
            if np.all(F[j] <= F[i]) and np.any(F[j] < F[i]):
                mask[i] = False
                break
    return mask


# --- non-dominated sorting ------------------------------------------------------------


def test_non_dominated_hand_made_with_ties_and_duplicates():
    F = np.array([
        [1.0, 5.0],  # on front
        [2.0, 3.0],  # on front
        [2.0, 3.0],  # duplicate of a front point: kept
        [2.0, 4.0],  # tie on the first objective, worse on the second: dominated by row 1
        [3.0, 3.0],  # tie on the second objective, worse on the first: dominated by row 1
        [4.0, 1.0],  # on front
        [5.0, 5.0],  # dominated
        [5.0, 5.0],  # duplicate of a dominated point: both dropped
        [1.0, 5.0],  # duplicate of row 0: kept
    ])
    expected = np.array([True, True, True, False, False, True, False, False, True])
    np.testing.assert_array_equal(non_dominated(F), expected)


def test_non_dominated_edge_shapes():
    assert non_dominated(np.zeros((0, 3))).shape == (0,)
    np.testing.assert_array_equal(non_dominated([[3.0], [1.0], [1.0], [2.0]]),
                                  [False, True, True, False])
    np.testing.assert_array_equal(non_dominated([[7.0, 7.0, 7.0]]), [True])


@pytest.mark.parametrize("seed,n,m", [(0, 60, 2), (1, 60, 3), (2, 40, 4), (3, 30, 5)])
def test_non_dominated_agrees_with_brute_force(seed, n, m):
    rng = np.random.default_rng(seed)
    # Few distinct values per column, so ties and duplicates are frequent.
    F = rng.integers(0, 6, size=(n, m)).astype(float)
    np.testing.assert_array_equal(non_dominated(F), brute_force_non_dominated(F))


@pytest.mark.parametrize("F,match", [
    (np.array([1.0, 2.0]), "2-D"),
    (np.zeros((2, 2, 2)), "2-D"),
    (np.zeros((3, 0)), "at least one objective"),
    (np.array([[1.0, np.nan]]), r"F\[0, 1\] = nan"),
    (np.array([[1.0, 2.0], [np.inf, 0.0]]), r"F\[1, 0\] = inf"),
])
def test_non_dominated_rejects_bad_input(F, match):
    with pytest.raises(ValueError, match=match):
        non_dominated(F)


# --- budgets ----------------------------------------------------------------------------


def test_feasible_mask_and_violation():
    evals = [make("a", 0.9, 1.0, params=100), make("b", 0.95, 1.25, params=100),
             make("c", 0.8, 0.5, params=300)]
    budgets = {"latency_ms": 1.0, "params": 200}
    np.testing.assert_array_equal(feasible_mask(evals, budgets), [True, False, False])
    np.testing.assert_array_equal(feasible_mask(evals, None), [True, True, True])
    assert violation(evals[0], budgets) == {}
    assert violation(evals[1], budgets) == pytest.approx({"latency_ms": 0.25})
    assert violation(evals[2], budgets) == pytest.approx({"params": 0.5})


@pytest.mark.parametrize("budgets,match", [
    ({"speed": 1.0}, "unknown budget objective 'speed'"),
    ({"latency_ms": 0.0}, "positive"),
    ({"latency_ms": float("nan")}, "finite"),
    ({"error": 1.5}, "error"),
])
def test_feasible_mask_rejects_bad_budgets(budgets, match):
    with pytest.raises(ValueError, match=match):
        feasible_mask([make("a", 0.9, 1.0)], budgets)


# --- the front --------------------------------------------------------------------------


def sample_evaluations() -> list[Evaluation]:
    return [
        make("fast", 0.80, 0.5),
        make("mid", 0.90, 1.0),
        make("slow", 0.95, 2.0),
        make("bad", 0.70, 1.5),      # dominated by mid
        make("best", 0.99, 0.4),     # dominates all, but over the params budget
        make("mid", 0.50, 9.0),      # duplicate key: the first "mid" is kept
    ]


def test_front_excludes_infeasible_even_when_dominating():
    evals = sample_evaluations()
    evals[4] = make("best", 0.99, 0.4, params=5000)
    front = ParetoFront.from_evaluations(evals, ["error", "latency_ms"], {"params": 2000})
    keys = [e.arch["b1"] for e in front.evaluations]
    assert keys == ["slow", "mid", "fast"]  # sorted by error, then latency
    assert front.objectives == ("error", "latency_ms")
    np.testing.assert_allclose(front.F, [[0.05, 2.0], [0.10, 1.0], [0.20, 0.5]])
    # Without the budget the dominating point is the whole front.
    unconstrained = ParetoFront.from_evaluations(evals, ["error", "latency_ms"])
    assert [e.arch["b1"] for e in unconstrained] == ["best"]


def test_front_points_are_mutually_non_dominated():
    rng = np.random.default_rng(7)
    evals = [make(f"n{i}", float(rng.uniform(0.5, 1.0)), float(rng.uniform(0.1, 3.0)),
                  params=int(rng.integers(100, 5000)), macs=int(rng.integers(1000, 9000)))
             for i in range(80)]
    objectives = ["error", "latency_ms", "params", "macs"]
    budgets = {"latency_ms": 2.5, "macs": 8000}
    front = ParetoFront.from_evaluations(evals, objectives, budgets)
    assert len(front) > 1
    F = front.F
    for i in range(len(F)):
        for j in range(len(F)):
            assert not (np.all(F[j] <= F[i]) and np.any(F[j] < F[i])), (i, j)
    assert all(e.costs.latency_ms <= 2.5 and e.costs.macs <= 8000 for e in front)
    # Every feasible evaluation not on the front is dominated by a front point.
    keys = {e.arch.key for e in front}
    for e in evals:
        if e.arch.key in keys or not feasible_mask([e], budgets)[0]:
            continue
        f = np.array([e.objective(n) for n in objectives])
        assert any(np.all(p <= f) and np.any(p < f) for p in F)


def test_hypervolume_of_hand_made_front():
    # F rows (error, latency): (0.1, 3), (0.2, 2), (0.5, 0).
    evals = [make("a", 0.9, 3.0), make("b", 0.8, 2.0), make("c", 0.5, 0.0)]
    front = ParetoFront.from_evaluations(evals, ["error", "latency_ms"])
    assert len(front) == 3
    # Reference (0.4, 4): a covers [0.1, 0.4] x [3, 4] = 0.3, b adds [0.2, 0.4] x [2, 3] = 0.2,
    # c lies beyond the reference error and adds nothing.
    assert front.hypervolume(np.array([0.4, 4.0])) == pytest.approx(0.5)
    # Reference (1, 4): 0.9 x 1 + 0.8 x 1 + 0.5 x 2.
    assert front.hypervolume(np.array([1.0, 4.0])) == pytest.approx(0.9 + 0.8 + 1.0)
    assert ParetoFront.from_evaluations([], ["error", "latency_ms"]).hypervolume([1, 1]) == 0.0
    with pytest.raises(ValueError, match="shape"):
        front.hypervolume([0.4, 4.0, 4.0])


def test_reference_point():
    F = np.array([[1.0, 10.0], [3.0, 10.0]])
    np.testing.assert_allclose(reference_point(F), [3.2, 11.0])  # constant column: span 10
    np.testing.assert_allclose(reference_point(F, margin=0.5), [4.0, 15.0])
    with pytest.raises(ValueError, match="margin"):
        reference_point(F, margin=0.0)


def test_tables_and_csv_round_trip(tmp_path: pathlib.Path):
    evals = sample_evaluations()
    evals[4] = make("best", 0.99, 0.4, params=5000)
    budgets = {"params": 2000}
    front = ParetoFront.from_evaluations(evals, ["error", "latency_ms"], budgets)
    table = front.table()
    assert list(table.columns) == COLUMNS
    assert table["on_front"].all() and table["feasible"].all()

    path = tmp_path / "front.csv"
    front.write_csv(path)
    assert [p.name for p in tmp_path.iterdir()] == ["front.csv"]  # no temp file left
    loaded = pd.read_csv(path)
    assert list(loaded.columns) == COLUMNS
    assert list(loaded["key"]) == [e.arch.key for e in front]
    np.testing.assert_allclose(loaded["latency_ms"], [2.0, 1.0, 0.5])
    np.testing.assert_allclose(loaded["accuracy"], [0.95, 0.90, 0.80])
    assert loaded["params"].tolist() == [1000, 1000, 1000]

    everything = evaluations_table(evals, ["error", "latency_ms"], budgets)
    assert list(everything.columns) == COLUMNS
    assert len(everything) == 5  # the duplicate "mid" key is dropped
    by_name = {Arch.from_key(k)["b1"]: row for k, row in everything.set_index("key").iterrows()}
    assert not by_name["best"]["feasible"] and not by_name["best"]["on_front"]
    assert by_name["bad"]["feasible"] and not by_name["bad"]["on_front"]
    assert by_name["mid"]["on_front"] and by_name["mid"]["latency_ms"] == 1.0


def test_front_rejects_unknown_objective():
    with pytest.raises(ValueError, match="unknown objective 'speed'"):
        ParetoFront.from_evaluations(sample_evaluations(), ["error", "speed"])


# --- selection --------------------------------------------------------------------------


def test_select_most_accurate_within_every_budget():
    evals = [make("a", 0.99, 3.0), make("b", 0.95, 1.0, params=30_000),
             make("c", 0.90, 1.0, params=10_000), make("d", 0.85, 0.5, params=5_000)]
    selection = best_within(evals, {"latency_ms": 1.5, "params": 20_000})
    assert isinstance(selection, Selection)
    assert selection.chosen is evals[2] and selection.nearest is None
    assert selection.require() is evals[2]
    assert evals[2].arch.key in selection.message()
    assert best_within(evals, {}).chosen is evals[0]
    assert best_within(evals, None, objective="latency_ms").chosen is evals[3]


def test_select_tie_break():
    same = dict(accuracy=0.9)
    evals = [make("z", latency_ms=1.0, params=500, **same),
             make("y", latency_ms=0.8, params=900, **same),  # lowest latency wins
             make("x", latency_ms=0.8, params=900, **same)]  # same latency/params: key "x" < "y"
    assert best_within(evals, {}).chosen is evals[2]
    evals = [make("p", latency_ms=0.8, params=900, **same),
             make("q", latency_ms=0.8, params=400, **same)]  # same latency: fewer params
    assert best_within(evals, {}).chosen is evals[1]


def test_select_nothing_fits_names_nearest():
    evals = [make("far", 0.9, 3.0, params=40_000),      # +200% latency, +100% params
             make("near", 0.8, 1.32, params=20_000),    # +32% latency only
             make("tie", 0.7, 1.32, params=20_000)]     # same violation, worse error
    selection = best_within(evals, {"latency_ms": 1.0, "params": 20_000})
    assert selection.chosen is None
    assert selection.nearest is evals[1]
    message = selection.message()
    assert "no subnet fits" in message
    assert evals[1].arch.key in message
    assert "latency_ms 1.32 > 1.00 (+32%)" in message
    assert "params" not in message.split(evals[1].arch.key)[1]
    with pytest.raises(BudgetError, match="near"):
        selection.require()
    assert best_within([], {"latency_ms": 1.0}).nearest is None


# --- parsing budgets --------------------------------------------------------------------


def test_parse_budgets_accepts_good_strings():
    assert parse_budgets(["latency_ms=1.5", "params=20000", " error = 0.1 ", "macs=1e6"]) == {
        "latency_ms": 1.5, "params": 20000.0, "error": 0.1, "macs": 1e6}
    assert parse_budgets([]) == {}


@pytest.mark.parametrize("item,match", [
    ("latency_ms", "not name=value"),
    ("speed=1", "unknown objective 'speed'; known: error, latency_ms"),
    ("params=lots", "'lots' is not a number"),
    ("params=0", "positive"),
    ("latency_ms=-1", "positive"),
    ("latency_ms=inf", "finite"),
    ("latency_ms=nan", "finite"),
    ("error=1.5", "at most 1|\\(0, 1\\]"),
])
def test_parse_budgets_rejects_bad_strings(item, match):
    with pytest.raises(ValueError, match=match):
        parse_budgets([item])


def test_parse_budgets_rejects_repeats():
    with pytest.raises(ValueError, match="more than once"):
        parse_budgets(["params=1", "params=2"])


# --- plotting ---------------------------------------------------------------------------


def test_plot_front_writes_png(tmp_path: pathlib.Path):
    import matplotlib.image

    evals = sample_evaluations()
    evals[4] = make("best", 0.99, 0.4, params=5000)
    path = tmp_path / "front.png"
    plot_front(evals, ["error", "latency_ms", "params"],
               {"latency_ms": 1.8, "params": 2000, "error": 0.3}, path)
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 0 and image.shape[1] > image.shape[0]
    assert os.listdir(tmp_path) == ["front.png"]
    with pytest.raises(ValueError, match="at least two objectives"):
        plot_front(evals, ["latency_ms"], None, tmp_path / "x.png")


def test_every_pair_of_objectives_gets_a_panel_with_error_upright():
    assert objective_pairs(["error", "latency_ms", "params"]) == [
        ("error", "latency_ms"), ("error", "params"), ("latency_ms", "params")]
    assert objective_pairs(["params", "macs", "error"]) == [
        ("params", "macs"), ("error", "params"), ("error", "macs")]


def test_hypervolume_history_grows_only_with_feasible_improvements():
    evals = [make("a", 0.5, 2.0), make("b", 0.5, 2.0), make("c", 0.9, 0.5),
             make("a", 0.5, 2.0), make("d", 0.99, 0.1), make("e", 0.999, 1.0),
             make("f", 0.7, 1.2)]
    ref = [1.0, 3.0]
    hv = hypervolume_history(evals, ["error", "latency_ms"], {"latency_ms": 1.5}, ref)
    # the repeat of "a" is no new evaluation; "a" and "b" are over the budget.
    assert len(hv) == 6
    assert hv[0] == hv[1] == 0.0
    assert hv[2] == pytest.approx((1.0 - 0.1) * (3.0 - 0.5))
    assert hv[3] == pytest.approx((1.0 - 0.01) * (3.0 - 0.1))  # "d" dominates "c"
    assert hv[4] == pytest.approx(hv[3] + (0.01 - 0.001) * (3.0 - 1.0))
    assert hv[5] == hv[4]  # "f" is dominated
    hand = ParetoFront(evals, ["error", "latency_ms"], {"latency_ms": 1.5}).hypervolume(ref)
    assert hv[-1] == pytest.approx(hand)


def test_pareto_sources_do_not_import_nnabla():
    package = pathlib.Path(__file__).resolve().parents[1] / "hwnas" / "pareto"
    for source in package.glob("*.py"):
        assert "import nnabla" not in source.read_text() and "from nnabla" not in \
            source.read_text(), source
