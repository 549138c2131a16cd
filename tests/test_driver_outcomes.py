"""The outcomes of an evaluation the search loop can be given: a subnet that can never be
evaluated, a flaky measurement, and numbers out of range; over every registered strategy."""
from __future__ import annotations

import collections
import dataclasses
import json
import math
import types
import zlib
from pathlib import Path

import pytest
from optuna.trial import TrialState

import hwnas.evaluate
from hwnas.arch import Arch
from hwnas.config import load_config
from hwnas.driver import RETRIES, DriveResult, drive, failed_subnets
from hwnas.errors import MeasurementError
from hwnas.objectives import Evaluation
from hwnas.run import space_from_config
from hwnas.strategies import (STRATEGIES, DeapNSGA2, ProposingStrategy, RandomSearch,
                              SamplerStrategy, create_strategy, strategy_class)
from hwnas.studies import known_evaluations, memory_study, open_study
from _cli_helpers import cli, load_trials
from test_study import BUDGETS, CHOICES, OBJECTIVES, fake_evaluation

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

NAMES = sorted(STRATEGIES)  # a new strategy is covered by registering it
DIGITS = load_config(Path(__file__).resolve().parents[1] / "experiments" / "digits.yaml")
DIGITS_SPACE = space_from_config(DIGITS, types.SimpleNamespace(input_shape=(1, 8, 8),
                                                               n_classes=10))
SMALL_EXTREMES = [Arch({n: o[0] for n, o in CHOICES.items()}),
                  Arch({n: o[-1] for n, o in CHOICES.items()})]


def _hash(key: str) -> int:
    return zlib.crc32(key.encode())


class Failing:
    """An evaluator that always fails on 2 % of the subnets (by key hash; the first of
    ``always`` among them), each in one of three ways: the device rejects it, or a NaN or
    negative latency comes back. It counts the calls per subnet."""

    REASONS = ("the device rejected", "latency_ms is nan", "latency_ms is -0.5")

    def __init__(self, evaluate, always: Arch) -> None:
        self.evaluate = evaluate
        self.bucket = _hash(always.key) % 50
        self.calls: collections.Counter[str] = collections.Counter()

    def fails(self, key: str) -> bool:
        return _hash(key) % 50 == self.bucket

    def reason(self, key: str) -> str:
        return self.REASONS[_hash(key) // 50 % 3]

    def __call__(self, arch: Arch) -> Evaluation:
        self.calls[arch.key] += 1
        evaluation = self.evaluate(arch)
        if not self.fails(arch.key):
            return evaluation
        reason = self.reason(arch.key)
        if reason == self.REASONS[0]:
            raise MeasurementError(f"{reason} {arch.key}")
        latency = math.nan if "nan" in reason else -0.5
        return dataclasses.replace(evaluation,
                                   costs=dataclasses.replace(evaluation.costs, latency_ms=latency))


def digits_evaluation(arch: Arch) -> Evaluation:
    """Cheap numbers computed from the subnet (no training): bigger options cost more."""
    size = sum(options.index(arch[name]) for name, options in DIGITS_SPACE.choices.items())
    jitter = _hash(arch.key) % 1000 / 1000.0
    costs = dataclasses.replace(fake_evaluation(SMALL_EXTREMES[0]).costs,
                                latency_ms=0.05 + size / 40.0 + jitter / 100.0,
                                params=8000 + 1500 * size + int(jitter * 100))
    error = 0.02 + 0.5 / (1.0 + size) + jitter / 20.0
    return Evaluation(arch, {"accuracy": 1.0 - error, "error": error}, costs)


def make(name: str, study, choices, objectives, budgets, seed: int = 0):
    over = {"study": study} if issubclass(strategy_class(name), SamplerStrategy) else {}
    return create_strategy(name, **over, choices=choices, objectives=objectives,
                           budgets=budgets, seed=seed)


def check_failures(study, evaluator: Failing, name: str) -> set[str]:
    """Every failing subnet evaluated 1 + RETRIES times, recorded failed once with its
    reason and never completed; a proposing strategy never proposes it again. Returns the
    failing subnets evaluated."""
    trials = study.get_trials(deepcopy=False)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    failing = {key for key in evaluator.calls if evaluator.fails(key)}
    for key, n in evaluator.calls.items():
        assert n == (1 + RETRIES if key in failing else 1), key
    recorded = {}
    for i, trial in enumerate(trials):
        key = trial.user_attrs["key"]
        if key not in failing:
            assert trial.state == TrialState.COMPLETE, (key, trial.user_attrs)
            continue
        assert trial.state == TrialState.FAIL and trial.user_attrs["unevaluable"]
        if trial.user_attrs["cached"]:  # an Optuna sampler proposed it again
            assert issubclass(STRATEGIES[name], SamplerStrategy) and key in recorded
        else:
            assert key not in recorded, f"{key} recorded failed twice"
            recorded[key] = trial.user_attrs["fail_reason"]
            assert evaluator.reason(key) in recorded[key]
    assert recorded.keys() == failing
    assert failed_subnets(study) == recorded
    return failing


@pytest.mark.parametrize("name", NAMES)
def test_every_strategy_reaches_the_count_when_2_percent_of_the_digits_space_fails(name):
    cfg = DIGITS.search
    study = memory_study(cfg.objectives, sampler=strategy_class(name).sampler(DIGITS.seed))
    strategy = make(name, study, DIGITS_SPACE.choices, cfg.objectives, DIGITS.budgets,
                    DIGITS.seed)
    strategy.enqueue(DIGITS_SPACE.extremes())
    evaluator = Failing(digits_evaluation, always=DIGITS_SPACE.extremes()[0])
    known = {}
    result = drive(strategy, evaluator, cfg.trials, study=study, known=known, batch=cfg.batch)
    assert len(known) == result.evaluated == cfg.trials and not result.stalled
    assert len(known_evaluations(study)) == cfg.trials
    failing = check_failures(study, evaluator, name)
    assert DIGITS_SPACE.extremes()[0].key in failing
    assert result.failed == len(failing) and result.retried == RETRIES * len(failing)


def small_search(name: str, n: int, evaluator, study=None) -> tuple[object, DriveResult]:
    study = study or memory_study(OBJECTIVES, sampler=strategy_class(name).sampler(0))
    strategy = make(name, study, CHOICES, OBJECTIVES, BUDGETS)
    strategy.enqueue(SMALL_EXTREMES)
    result = drive(strategy, evaluator, n, study=study, known=known_evaluations(study))
    return study, result


@pytest.mark.parametrize("name", NAMES)
def test_a_resumed_search_never_evaluates_a_failed_subnet_again(name, tmp_path):
    first = Failing(fake_evaluation, always=SMALL_EXTREMES[0])
    opened = lambda: open_study(tmp_path, OBJECTIVES, sampler=strategy_class(name).sampler(0))
    small_search(name, 8, first, opened())
    second = Failing(fake_evaluation, always=SMALL_EXTREMES[0])
    study, result = small_search(name, 18, second, opened())  # a new process
    failed_before = {key for key in first.calls if first.fails(key)}
    assert failed_before and not failed_before & set(second.calls)
    assert len(known_evaluations(study)) == 18
    assert check_failures(study, _Merged(first, second), name) >= failed_before
    if issubclass(STRATEGIES[name], ProposingStrategy):
        # Deterministic: the resumed search proposes what one search straight through does.
        straight, _ = small_search(name, 18, Failing(fake_evaluation, SMALL_EXTREMES[0]))
        keys = lambda s: [t.user_attrs["key"] for t in s.get_trials(deepcopy=False)]
        assert keys(study) == keys(straight)


class _Merged(Failing):
    """The calls of two evaluators (two processes) as one."""

    def __init__(self, a: Failing, b: Failing) -> None:
        super().__init__(a.evaluate, SMALL_EXTREMES[0])
        self.calls = a.calls + b.calls


BAD = {"nan_error": ({"error": math.nan}, {}, "error is nan"),
       "error_above_1": ({"error": 1.5}, {}, "error is 1.5"),
       "negative_latency": ({}, {"latency_ms": -0.031}, "latency_ms is -0.031"),
       "zero_latency": ({}, {"latency_ms": 0.0}, "latency_ms is 0.0"),
       "infinite_params": ({}, {"params": math.inf}, "params is inf"),
       "negative_macs": ({}, {"macs": -1}, "macs is -1")}


@pytest.mark.parametrize("bad", sorted(BAD))
def test_a_number_out_of_range_is_a_failed_trial_with_its_reason(bad):
    metrics, costs, reason = BAD[bad]
    calls = collections.Counter()

    def evaluate(arch: Arch) -> Evaluation:
        calls[arch.key] += 1
        evaluation = fake_evaluation(arch)
        if arch != SMALL_EXTREMES[1]:
            return evaluation
        return Evaluation(arch, {**evaluation.metrics, **metrics},
                          dataclasses.replace(evaluation.costs, **costs))

    good = fake_evaluation(SMALL_EXTREMES[1])
    assert good.problem() is None and good.check() is good
    with pytest.raises(MeasurementError, match=reason):
        Evaluation(good.arch, {**good.metrics, **metrics},
                   dataclasses.replace(good.costs, **costs)).check()
    study, result = small_search("random", 10, evaluate)
    (failed,) = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.FAIL]
    assert failed.user_attrs["key"] == SMALL_EXTREMES[1].key
    assert reason in failed.user_attrs["fail_reason"]
    assert (result.evaluated, result.failed, len(known_evaluations(study))) == (10, 1, 10)
    assert calls[SMALL_EXTREMES[1].key] == 1 + RETRIES
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        assert all(math.isfinite(v) for v in trial.values)


def test_a_flaky_measurement_is_tried_again_before_anything_is_recorded():
    calls = collections.Counter()

    def flaky(arch: Arch) -> Evaluation:  # every subnet fails on its first try only
        calls[arch.key] += 1
        if calls[arch.key] == 1:
            raise MeasurementError("device busy")
        return fake_evaluation(arch)

    study, result = small_search("deap-nsga2", 12, flaky)
    assert all(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
    assert (result.evaluated, result.failed, result.retried) == (12, 0, 12)
    assert set(calls.values()) == {2}


def test_one_subnet_failing_again_and_again_is_no_run_of_failures():
    class Stubborn(RandomSearch):  # proposes the same failing subnet forever
        def _propose(self, n):
            return [SMALL_EXTREMES[0]] * n

        def fail(self, arch):
            pass  # and ignores that it fails

    calls = collections.Counter()

    def rejecting(arch: Arch) -> Evaluation:
        calls[arch.key] += 1
        raise MeasurementError("the device rejected it")

    study = memory_study(OBJECTIVES)
    strategy = Stubborn(choices=CHOICES, objectives=OBJECTIVES, seed=0)
    result = drive(strategy, rejecting, 5, study=study, known={}, max_repeats=20)
    # Not "3 subnets in a row failed": it is one subnet; the repeats stop the loop instead.
    assert result.stalled and (result.failed, result.evaluated) == (1, 0)
    assert calls == {SMALL_EXTREMES[0].key: 1 + RETRIES}
    trials = study.get_trials(deepcopy=False)
    assert [t.user_attrs["cached"] for t in trials].count(False) == 1
    assert all(t.state == TrialState.FAIL for t in trials)


def test_a_deap_generation_completes_without_its_failed_members():
    strategy = DeapNSGA2(choices=CHOICES, objectives=OBJECTIVES, population=4, seed=1)
    generation = strategy.ask(4)
    assert len({a.key for a in generation}) == 4
    strategy.fail(generation[0])
    for arch in generation[1:]:
        strategy.tell(arch, fake_evaluation(arch))
    assert strategy.trial_attrs(generation[0]) == {"generation": 1}
    later = []
    while strategy.trial_attrs(generation[0])["generation"] < 6:
        archs = strategy.ask(4)
        assert archs  # every generation completes, however many copies of the failed one
        for arch in archs:
            later.append(arch.key)
            strategy.tell(arch, fake_evaluation(arch))
        if strategy.trial_attrs(generation[0])["generation"] >= 2:
            # Ranked below every evaluated individual: the failed one does not survive.
            survivors = {strategy._arch(ind).key for ind in strategy._survivors}
            assert generation[0].key not in survivors
    assert generation[0].key not in later


def test_search_prints_and_records_the_failed_subnets(run_copy, capfd, monkeypatch):
    evaluate = hwnas.evaluate.Evaluator.__call__
    decided: dict[str, bool] = {}
    tries = collections.Counter()

    def failing(self, arch: Arch) -> Evaluation:
        # A third of the new subnets return a NaN latency, never two in a row (the
        # search would stop after three), always the same for one subnet.
        tries[arch.key] += 1
        if arch.key not in decided:
            decided[arch.key] = _hash(arch.key) % 3 == 0 and not list(decided.values())[-1:] \
                == [True]
        evaluation = evaluate(self, arch)
        if decided[arch.key]:
            costs = dataclasses.replace(evaluation.costs, latency_ms=math.nan)
            return dataclasses.replace(evaluation, costs=costs)
        return evaluation

    monkeypatch.setattr(hwnas.evaluate.Evaluator, "__call__", failing)
    argv = ("search", run_copy, "--strategy", "random", "--trials", 12, "--quiet")
    status, out, err = cli(capfd, *argv)
    assert status == 0, err
    bad = {key for key, failed in decided.items() if failed}
    assert bad and all(tries[key] == 1 + RETRIES for key in bad)
    trials = load_trials(run_copy)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert f"12 subnets evaluated ({len(complete)} trials), {len(bad)} failed, in " in out
    assert out.count("latency_ms is nan") == len(bad)  # one warning per failed subnet
    stats = json.loads((run_copy / "search_stats.json").read_text())
    assert (stats["evaluated"], stats["failed"], stats["retried"]) == (6, len(bad), len(bad))
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert {t.user_attrs["key"] for t in failed} == bad and len(failed) == len(bad)
    assert all("latency_ms is nan" in t.user_attrs["fail_reason"] for t in failed)
    # The same command again: nothing to do, nothing added, the same counts.
    journal = (run_copy / "study.journal").read_bytes()
    status, again, err = cli(capfd, *argv)
    assert status == 0, err
    assert (run_copy / "study.journal").read_bytes() == journal
    assert again == out.splitlines()[-1] + "\n"
