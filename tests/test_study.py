"""Tests of hwnas.studies and the Optuna strategy: one trial per evaluation, persisted."""
from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hwnas.arch import Arch
from hwnas.driver import Books
from hwnas.errors import RunDirError
from hwnas.hwcost import Costs, LatencyProtocol
from hwnas.objectives import Evaluation
from hwnas.strategies import STRATEGIES, TPEStrategy
from hwnas.studies import JOURNAL, evaluations, fail_stale_trials, n_complete, open_study
from hwnas.testing import TOY_BUDGETS, TOY_CHOICES, TOY_OBJECTIVES, toy_evaluation

# The conformance suite's toy problem, shared.
CHOICES, OBJECTIVES, BUDGETS = TOY_CHOICES, TOY_OBJECTIVES, TOY_BUDGETS
fake_evaluation = toy_evaluation

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def make_strategy(run_dir: Path, seed: int = 0, objectives=None) -> Books:
    """A TPE strategy over the run's study, with the loop's books of its trials."""
    run_dir.mkdir(parents=True, exist_ok=True)
    study = open_study(run_dir, objectives or OBJECTIVES, sampler=TPEStrategy.sampler(seed))
    return Books(study=study, strategy=TPEStrategy(
        study=study, choices=CHOICES, objectives=objectives or OBJECTIVES, budgets=BUDGETS,
        seed=seed))


def run(strategy: Books, n: int, batch: int = 1) -> list[Evaluation]:
    told = []
    while len(told) < n:
        archs = strategy.ask(batch)
        # Tell in reverse order: each result must land on its own trial.
        for arch in reversed(archs):
            evaluation = fake_evaluation(arch)
            strategy.tell(arch, evaluation)
            told.append(evaluation)
    return told


# ---------------------------------------------------------------- storage


def test_open_study_creates_the_journal(tmp_path: Path) -> None:
    study = open_study(tmp_path, OBJECTIVES)
    assert (tmp_path / JOURNAL).is_file()
    assert study.directions == [optuna.study.StudyDirection.MINIMIZE] * 3
    assert study.user_attrs["objectives"] == OBJECTIVES
    assert n_complete(study) == 0


def test_open_study_in_a_missing_run_dir(tmp_path: Path) -> None:
    # Either the directory is made, or the user hears which one is missing;
    # a bare FileNotFoundError would reach the command line as a traceback.
    run_dir = tmp_path / "not" / "yet"
    try:
        open_study(run_dir, OBJECTIVES)
    except RunDirError as exc:
        assert str(run_dir) in str(exc)
    else:
        assert (run_dir / JOURNAL).is_file()


def test_open_study_without_create_needs_a_journal(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match=JOURNAL):
        open_study(tmp_path, OBJECTIVES, create=False)
    assert not (tmp_path / JOURNAL).exists()
    open_study(tmp_path, OBJECTIVES)
    assert open_study(tmp_path, OBJECTIVES, create=False).user_attrs["objectives"] == OBJECTIVES


def test_trials_persist_across_reopening(tmp_path: Path) -> None:
    told = run(make_strategy(tmp_path), 6, batch=3)
    study = open_study(tmp_path, OBJECTIVES)  # a fresh reader of the same journal
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == len(told) == n_complete(study) == 6
    assert len(study.trials) == 6  # nothing left running or failed
    by_key: dict[str, list[Evaluation]] = {}
    for evaluation in told:
        by_key.setdefault(evaluation.arch.key, []).append(evaluation)
    for trial in trials:
        arch = Arch({name: trial.params[name] for name in CHOICES})
        assert set(trial.params) == set(CHOICES)
        assert trial.params == trial.user_attrs["arch"]  # the choices are the params
        for name, options in CHOICES.items():
            assert trial.distributions[name].choices == options
        evaluation = fake_evaluation(arch)
        assert evaluation.arch.key in by_key
        assert trial.values == [evaluation.objective(o) for o in OBJECTIVES]
        assert trial.user_attrs["key"] == arch.key
        assert trial.user_attrs["arch"] == dict(arch)
        assert list(trial.user_attrs["arch"]) == list(CHOICES)
        assert trial.user_attrs["metrics"] == evaluation.metrics
        assert trial.user_attrs["costs"] == evaluation.costs.to_dict()
        assert trial.user_attrs["strategy"] == "tpe"
        assert trial.constraints == {name: evaluation.objective(name) - limit
                                     for name, limit in BUDGETS.items()}


def test_evaluations_round_trip_exactly(tmp_path: Path) -> None:
    told = run(make_strategy(tmp_path), 5)
    back = evaluations(open_study(tmp_path, OBJECTIVES))
    assert back == told  # trial order, every field, protocol included
    for mine, theirs in zip(told, back):
        assert isinstance(theirs.costs, Costs)
        assert isinstance(theirs.costs.protocol, LatencyProtocol)
        assert theirs.costs.protocol == mine.costs.protocol
        assert type(theirs.costs.params) is int
        assert list(theirs.arch) == list(mine.arch)


def test_objectives_mismatch_on_reopen_raises(tmp_path: Path) -> None:
    open_study(tmp_path, OBJECTIVES)
    with pytest.raises(RunDirError, match="objectives"):
        open_study(tmp_path, ["error", "params"])
    with pytest.raises(RunDirError):
        open_study(tmp_path, ["params", "latency_ms", "error"])  # order matters
    assert open_study(tmp_path, OBJECTIVES).user_attrs["objectives"] == OBJECTIVES


@pytest.mark.parametrize("content", [
    b"not json at all\n",
    b"\x00\xff\xfe\x80 binary\n",
    b"[1, 2, 3]\n",
    b'{"no_op_code": 1}\n',
    b'{"op_code": 999, "worker_id": "w"}\n',
    b"42\n",
])
def test_garbage_journal_raises_run_dir_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / JOURNAL).write_bytes(content)
    with pytest.raises(RunDirError, match=JOURNAL):
        open_study(tmp_path, OBJECTIVES)


def test_a_torn_last_line_loses_only_that_record(tmp_path: Path) -> None:
    run(make_strategy(tmp_path), 3)
    path = tmp_path / JOURNAL
    path.write_bytes(path.read_bytes()[:-5])  # crash while appending the last record
    study = open_study(tmp_path, OBJECTIVES)
    assert n_complete(study) == 2


# ---------------------------------------------------------------- crashed and failed trials


def test_fail_stale_trials_fails_what_was_asked_and_never_told(tmp_path: Path) -> None:
    strategy = make_strategy(tmp_path)
    run(strategy, 2)
    asked = strategy.ask(2)  # the search dies here
    study = open_study(tmp_path, OBJECTIVES)
    assert len(study.get_trials(states=(TrialState.RUNNING,))) == 2
    assert fail_stale_trials(study) == [dict(a) for a in asked]
    reopened = open_study(tmp_path, OBJECTIVES)
    states = [t.state for t in reopened.trials]
    assert states == [TrialState.COMPLETE] * 2 + [TrialState.FAIL] * 2
    assert reopened.trials[-1].user_attrs["fail_reason"] == "left running by a crash"
    assert fail_stale_trials(reopened) == []
    assert len(evaluations(reopened)) == 2


def test_abandon_marks_the_trial_failed(tmp_path: Path) -> None:
    strategy = make_strategy(tmp_path)
    (arch,) = strategy.ask(1)
    strategy.abandon(arch)
    with pytest.raises(ValueError):
        strategy.tell(arch, fake_evaluation(arch))  # no longer pending
    study = open_study(tmp_path, OBJECTIVES)
    assert [t.state for t in study.trials] == [TrialState.FAIL]
    assert evaluations(study) == []


def test_tell_of_an_arch_never_asked_raises(tmp_path: Path) -> None:
    strategy = make_strategy(tmp_path)
    arch = Arch({name: options[0] for name, options in CHOICES.items()})
    with pytest.raises(ValueError):
        strategy.tell(arch, fake_evaluation(arch))


def test_the_same_arch_asked_twice_is_told_twice(tmp_path: Path) -> None:
    strategy = make_strategy(tmp_path)
    arch = Arch({name: options[0] for name, options in CHOICES.items()})
    for _ in range(2):
        strategy.study.enqueue_trial(dict(arch))
    assert strategy.ask(2) == [arch, arch]
    strategy.tell(arch, fake_evaluation(arch))
    strategy.tell(arch, fake_evaluation(arch), cached=True)
    with pytest.raises(ValueError):
        strategy.tell(arch, fake_evaluation(arch))  # both trials are done
    trials = open_study(tmp_path, OBJECTIVES).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert [t.user_attrs["cached"] for t in trials] == [False, True]


# ---------------------------------------------------------------- determinism


def test_same_seed_same_sequence(tmp_path: Path) -> None:
    # Past TPE's 10 start-up trials, so that the model-based phase is covered.
    a = [e.arch for e in run(make_strategy(tmp_path / "a", seed=5), 13)]
    b = [e.arch for e in run(make_strategy(tmp_path / "b", seed=5), 13)]
    assert a == b
    c = [e.arch for e in run(make_strategy(tmp_path / "c", seed=6), 13)]
    assert c != a


def test_every_asked_arch_is_valid(tmp_path: Path) -> None:
    for evaluation in run(make_strategy(tmp_path), 12, batch=4):
        assert list(evaluation.arch) == list(CHOICES)
        assert all(o in CHOICES[n] for n, o in evaluation.arch.items())


def test_tpe_is_registered() -> None:
    assert STRATEGIES["tpe"] is TPEStrategy
    sampler = TPEStrategy.sampler(3)
    assert isinstance(sampler, optuna.samplers.TPESampler)


def test_strategy_rejects_empty_arguments(tmp_path: Path) -> None:
    study = open_study(tmp_path, OBJECTIVES)
    with pytest.raises(ValueError):
        TPEStrategy(study=study, choices={}, objectives=OBJECTIVES)
    with pytest.raises(ValueError):
        TPEStrategy(study=study, choices=CHOICES, objectives=[])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TPEStrategy(study=study, choices=CHOICES, objectives=OBJECTIVES)
