"""Equivalent encodings (``BaseSearchSpace.canonical``) and subnets a space cannot build
(``validate``, ``InfeasibleArch``): in the spaces and in the search loop."""
from __future__ import annotations

import collections
import hashlib
import json
import pickle

import nnabla as nn
import numpy as np
import pytest
from _canonical_spaces import ZERO_CELLS, ZERO_NORMAL, PickyChain, ZeroCells
from _cli_helpers import cli, load_trials
from conftest import forward, randomize
from optuna.trial import TrialState
from test_spaces import CONFIGS

from hwnas.arch import Arch
from hwnas.costs import Costs, LatencyProtocol
from hwnas.driver import INFEASIBLE, UNEVALUABLE, drive, failed_subnets, infeasible_subnets
from hwnas.evaluate import Evaluator
from hwnas.hwcost import count_graph_params, count_macs, inference_output
from hwnas.objectives import Evaluation
from hwnas.run.files import RunDir
from hwnas.strategies import RandomSearch, SamplerStrategy, create_strategy, strategy_class
from hwnas.studies import known_evaluations, memory_study
from hwnas.supernet import (BaseSearchSpace, ChainSpace, InfeasibleArch, create_space,
                            list_spaces)
from hwnas.testing import CountingEvaluator

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

OBJECTIVES = ["error", "latency_ms", "params"]
PROTOCOL = LatencyProtocol(context="cpu", device="Test CPU", nnabla_version="1.39.0", threads=1,
                           batch_size=1, warmup=1, repeats=3, statistic="cpu_median",
                           spread=0.1, reliable=True)


def space_named(name: str) -> BaseSearchSpace:
    if name == "zero-cells":
        return ZeroCells(**ZERO_CELLS)
    return create_space(name, **CONFIGS[name])


def fake(arch: Arch) -> Evaluation:
    """Deterministic numbers from the key alone (different keys, different numbers)."""
    h = int(hashlib.sha256(arch.key.encode()).hexdigest()[:8], 16)
    accuracy = 0.3 + (h % 1000) / 2000.0
    costs = Costs(latency_ms=0.1 + (h % 997) / 100.0, params=1000 + h % 5000,
                  macs=10_000 + h % 9973, memory_bytes=50_000 + h % 991, protocol=PROTOCOL)
    return Evaluation(arch, {"accuracy": accuracy, "error": 1.0 - accuracy}, costs)


class Telling(RandomSearch):
    """Random search that keeps every (proposal, evaluation) it is told."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.told: list[tuple[Arch, list[float]]] = []

    def _learn(self, arch: Arch, values: list[float], violation: float) -> None:
        self.told.append((arch, values))


def strategy(name: str, study, space: BaseSearchSpace, seed: int = 0):
    over = {"study": study} if issubclass(strategy_class(name), SamplerStrategy) else {}
    kwargs = dict(choices=space.choices, objectives=OBJECTIVES, seed=seed)
    return Telling(**kwargs) if name == "random" else create_strategy(name, **over, **kwargs)


def search(name: str, space: BaseSearchSpace, n: int, *, rules: bool = True, study=None,
           evaluate: CountingEvaluator | None = None, first: list[Arch] = ()):
    study = study or memory_study(OBJECTIVES, sampler=strategy_class(name).sampler(0))
    searcher = strategy(name, study, space)
    searcher.enqueue(list(first))
    evaluate = evaluate or CountingEvaluator(fake)
    result = drive(searcher, evaluate, n, study=study, known=known_evaluations(study),
                   space=space if rules else None)
    return study, evaluate, searcher, result


# ------------------------------------------------------------------ the spaces


def sampled(space: BaseSearchSpace, n: int, seed: int = 0) -> list[Arch]:
    """The extremes and ``n`` random subnets; of ZeroCells, each also with half its
    operations set to zero (many encodings of one network)."""
    rng = np.random.default_rng(seed)
    archs = space.extremes() + [space.sample(rng) for _ in range(n)]
    if isinstance(space, ZeroCells):
        archs += [Arch({name: "zero" if name[-3:-1] == "op" and rng.random() < 0.5 else option
                        for name, option in arch.items()}) for arch in archs]
    return archs


def neighbours(space: BaseSearchSpace, arch: Arch) -> list[Arch]:
    """Every subnet one choice away from ``arch`` (what a local move proposes)."""
    return [Arch({**arch, name: option}) for name, options in space.choices.items()
            for option in options if option != arch[name]]


@pytest.mark.parametrize("name", [*list_spaces(), "zero-cells"])
def test_canonical_is_idempotent_and_keeps_outputs_and_costs(name):
    space = space_named(name)
    net = space.supernet()
    randomize(net)
    net.training = False
    x = np.random.default_rng(1).normal(size=(2, *space.input_shape)).astype(np.float32)
    archs = sampled(space, 8 if name != "zero-cells" else 4)
    moved = 0
    for arch in archs:
        network = space.canonical(space.validate(arch))
        assert space.validate(network) == network
        assert space.canonical(network) == network
        moved += network != arch
        net.set_active(arch)
        before = forward(net, x)
        net.set_active(network)
        np.testing.assert_allclose(forward(net, x), before, rtol=1e-5, atol=1e-6)
        assert [u.key for u in space.units(network)] == [u.key for u in space.units(arch)]
    for arch in archs[:3]:
        counts = []
        for a in (arch, space.canonical(arch)):
            x1 = nn.Variable((1, *space.input_shape))
            y = inference_output(net.extract(a), x1)
            counts.append((count_graph_params(y, inputs=[x1]), count_macs(y)))
        assert counts[0] == counts[1]
    # The built-in spaces have no equivalences; the test space's sample has some.
    assert moved == 0 if name != "zero-cells" else moved >= 4


@pytest.mark.parametrize("name", [*list_spaces(), "zero-cells"])
def test_a_one_choice_move_changes_the_network_iff_it_changes_the_canonical_key(name):
    space = space_named(name)
    net = space.supernet()
    randomize(net, seed=2)
    net.training = False
    x = np.random.default_rng(3).normal(size=(2, *space.input_shape)).astype(np.float32)
    # A ZeroCells subnet with zero edges has neighbours of both kinds.
    base = (space.extremes()[0] if name != "zero-cells"
            else Arch({**space.extremes()[1], "normal/n1/op0": "zero", "normal/n1/op1": "zero",
                       "reduce/n1/op0": "zero"}))
    net.set_active(base)
    y0 = forward(net, x)
    same = 0
    for arch in neighbours(space, space.validate(base)):
        net.set_active(arch)
        equal = np.allclose(forward(net, x), y0, rtol=1e-5, atol=1e-6)
        assert equal == (space.canonical(arch) == space.canonical(base)), arch.key
        same += equal
    assert same == (0 if name != "zero-cells" else 3)


def test_infeasible_arch_names_its_choices_and_survives_pickling():
    space = PickyChain()
    good = space.sample(np.random.default_rng(0))
    bad = Arch({**good, "b0": "skip", "b1": "skip"})
    assert space.validate(Arch({**good, "b0": "skip", "b1": "ir_k3_e2"}))
    with pytest.raises(InfeasibleArch) as caught:
        space.validate(bad)
    error = caught.value
    assert isinstance(error, ValueError) and error.choices == ("b0", "b1")
    assert "b0=skip, b1=skip" in str(error) and "a stage keeps at least one block" in str(error)
    assert str(pickle.loads(pickle.dumps(error))) == str(error)
    with pytest.raises(ValueError, match="not one of"):  # the base checks still come first
        space.validate(Arch({**bad, "b2": "skip"}))
    # Random subnets are ones the space can build; units exist for every combination
    # (the latency table sums them choice by choice).
    rng = np.random.default_rng(0)
    assert not [a for a in (space.sample(rng) for _ in range(300)) if a["b0"] == a["b1"] == "skip"]
    assert [u.key.split("|")[0] for u in space.units(bad)] == ["stem_k3", bad["b2"], "head"]


# ------------------------------------------------------------------ the search loop


@pytest.mark.parametrize("name", ["random", "tpe-ls"])
def test_no_network_is_measured_twice_over_equivalent_encodings(name):
    space = ZeroCells(**ZERO_NORMAL)
    study, measured, searcher, result = search(name, space, 40)
    # Only canonical encodings are measured, each once, and 40 networks in all.
    assert set(measured.calls.values()) == {1} and len(measured.calls) == 40 == result.evaluated
    assert all(space.canonical(Arch.from_key(k)).key == k for k in measured.calls)
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    first: dict[str, list[float]] = {}
    aliases = 0
    for trial in trials:
        proposed = Arch(trial.params)
        network = space.canonical(proposed)
        attrs = trial.user_attrs
        assert attrs["proposed_key"] == proposed.key and attrs["key"] == network.key
        assert attrs["arch"] == dict(network)
        assert attrs["cached"] == (network.key in first)
        assert trial.values == first.setdefault(network.key, trial.values)
        aliases += proposed != network
    # The strategy proposed equivalent encodings, some of networks it had measured already.
    assert aliases > 0 and result.cached > 0
    assert result.cached == len(trials) - 40
    if name == "random":  # told the values under the encoding it proposed
        assert [a.key for a, _ in searcher.told] == [t.user_attrs["proposed_key"]
                                                     for t in trials]
        assert [v for _, v in searcher.told] == [t.values for t in trials]
    # The same search without the space's rules measures some networks twice.
    _, blind, _, _ = search(name, space, 40, rules=False)
    per_network = collections.Counter(space.canonical(Arch.from_key(k)).key for k in blind.calls)
    assert max(per_network.values()) > 1


def test_a_resumed_search_replays_equivalent_encodings_without_measuring_them():
    space = ZeroCells(**ZERO_NORMAL)
    straight, _, _, _ = search("random", space, 30)
    study, first, _, _ = search("random", space, 12)
    resumed, again, _, _ = search("random", space, 30, study=study)
    assert not set(first.calls) & set(again.calls)
    assert sum(first.calls.values()) + sum(again.calls.values()) == 30

    def proposals(s):
        return [t.user_attrs["proposed_key"] for t in s.get_trials(deepcopy=False)]
    assert proposals(resumed) == proposals(straight)


@pytest.mark.parametrize("name", ["random", "tpe"])
def test_an_infeasible_subnet_is_recorded_and_never_measured(name):
    space = PickyChain()
    refused = Arch({"b0": "skip", "b1": "skip", "b2": "ir_k3_e2"})
    study, measured, _, result = search(name, space, 30, first=[refused])
    first = study.trials[0]
    assert first.state == TrialState.FAIL and first.user_attrs["key"] == refused.key
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    for trial in failed:
        attrs = trial.user_attrs
        assert attrs[UNEVALUABLE] and attrs[INFEASIBLE]
        assert "b0=skip, b1=skip" in attrs["fail_reason"]
        assert attrs["key"] not in measured.calls
    fresh = [t.user_attrs["key"] for t in failed if not t.user_attrs["cached"]]
    assert len(fresh) == len(set(fresh)) == result.infeasible >= 1 and result.failed == 0
    assert set(measured.calls.values()) == {1} and len(measured.calls) == 30
    if name == "random":  # never proposed again
        assert len(failed) == len(fresh)
    assert infeasible_subnets(study) == set(failed_subnets(study)) == set(fresh)
    # A resumed search knows them from the study: none is measured, or proposed again by
    # random search.
    before = len(study.trials)
    _, again, _, more = search(name, space, 60, study=study)
    assert len(again.calls) == 30 and not set(fresh) & set(again.calls)
    new = study.trials[before:]
    assert all(t.user_attrs["cached"] for t in new if t.user_attrs["key"] in fresh)
    if name == "random":
        assert not [t for t in new if t.user_attrs["key"] in fresh]


def test_a_search_over_every_subnet_measures_every_feasible_one():
    space = PickyChain()
    _, measured, _, result = search("random", space, space.size)
    assert result.exhausted and result.infeasible == 4 and len(measured.calls) == 96
    assert all(space.validate(Arch.from_key(k)) for k in measured.calls)


# ------------------------------------------------------------------ end to end


def test_hwnas_search_measures_networks_once_and_records_infeasible_subnets(
        run_copy, capfd, monkeypatch):
    """``hwnas search`` on the tiny run, whose chain space this test gives two rules: b0's
    kernel does not matter (k5 is k3), and b0=skip with b1=ir_k3_e2 (the cheapest extreme,
    proposed first) cannot be built."""
    def canonical(self, arch: Arch) -> Arch:
        return Arch({**arch, "b0": arch["b0"].replace("_k5_", "_k3_")})

    def validate(self, arch: Arch) -> Arch:
        arch = BaseSearchSpace.validate(self, arch)
        if arch["b0"] == "skip" and arch["b1"] == "ir_k3_e2":
            raise InfeasibleArch(arch, ["b0", "b1"], "a rule of this test")
        return arch

    measured: collections.Counter[str] = collections.Counter()
    accuracy = Evaluator.accuracy

    def counting(self, arch, split):
        measured[arch.key] += 1
        return accuracy(self, arch, split)

    monkeypatch.setattr(ChainSpace, "canonical", canonical)
    monkeypatch.setattr(ChainSpace, "validate", validate)
    monkeypatch.setattr(Evaluator, "accuracy", counting)
    (run_copy / RunDir.JOURNAL).unlink()  # a fresh study under these rules
    status, out, err = cli(capfd, "search", run_copy, "--strategy", "random", "--trials", 8,
                           "--quiet")
    assert status == 0, err
    assert "1 proposed subnets cannot be built" in out
    assert len(measured) == 8 and set(measured.values()) == {1}
    assert not [k for k in measured if "b0=ir_k5" in k or k.startswith("b0=skip|b1=ir_k3_e2")]
    trials = load_trials(run_copy)
    refused = trials[0]
    assert refused.state == TrialState.FAIL and refused.user_attrs[INFEASIBLE]
    assert "b0=skip, b1=ir_k3_e2: a rule of this test" in refused.user_attrs["fail_reason"]
    priciest = trials[1]  # the other extreme: k5 in b0, measured as its k3 network
    assert priciest.user_attrs["proposed_key"] == "b0=ir_k5_e3|b1=ir_k5_e3"
    assert priciest.user_attrs["key"] == "b0=ir_k3_e3|b1=ir_k5_e3" in measured
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    by_network = {}
    for trial in complete:
        assert trial.values == by_network.setdefault(trial.user_attrs["key"], trial.values)
    assert len(by_network) == 8
    # Another encoding of a network measured before is answered from the study.
    assert [t for t in complete
            if t.user_attrs["cached"] and t.user_attrs["proposed_key"] != t.user_attrs["key"]]
    stats = json.loads((run_copy / RunDir.SEARCH_STATS).read_text())
    assert stats["infeasible"] == 1 and stats["evaluated"] == 8
    assert stats["cached"] == len(complete) - 8 + sum(
        t.user_attrs["cached"] for t in trials if t.state == TrialState.FAIL)
