"""The study store: one Optuna trial per evaluated subnet, in a journal file."""
from __future__ import annotations

import json
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, Trial, TrialState

from hwnas.errors import RunDirError
from hwnas.hwcost import Costs
from hwnas.records import Evaluation
from hwnas.supernet import Arch

JOURNAL = "study.journal"
STUDY_NAME = "hwnas"


def open_study(run_dir: str | Path, objectives: list[str], *,
               sampler: optuna.samplers.BaseSampler | None = None,
               create: bool = True) -> optuna.Study:
    """Opens (or creates) the run's study in ``run_dir/study.journal``.

    Raises:
        RunDirError: the journal is corrupt, holds another study, or its
            objectives differ from ``objectives``.
    """
    path = Path(run_dir) / JOURNAL
    if not create and not path.exists():
        raise RunDirError(f"{path}: no study yet; run 'hwnas search' first")
    if not path.parent.is_dir():
        raise RunDirError(f"{path.parent}: no such run directory")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = JournalStorage(JournalFileBackend(str(path)))
        if path.exists() and path.stat().st_size > 0:
            # load_study only reads; create_study(load_if_exists=True) would
            # append a record to the journal even when the study exists.
            study = optuna.load_study(study_name=STUDY_NAME, storage=storage, sampler=sampler)
        else:
            study = optuna.create_study(study_name=STUDY_NAME, storage=storage, sampler=sampler,
                                        directions=["minimize"] * len(objectives))
    except (ValueError, KeyError, TypeError, AssertionError, json.JSONDecodeError) as exc:
        # Optuna's journal replay asserts on operations it does not know.
        raise RunDirError(f"{path}: not a readable hwnas study ({exc or type(exc).__name__})") from None
    stored = study.user_attrs.get("objectives")
    if stored is None:
        study.set_user_attr("objectives", list(objectives))
    elif stored != list(objectives):
        raise RunDirError(f"{path}: the study's objectives are {stored}, "
                          f"the config asks for {list(objectives)}")
    return study


def record(study: optuna.Study, trial: Trial, evaluation: Evaluation,
           objectives: list[str], budgets: dict[str, float], *, strategy: str,
           cached: bool = False) -> FrozenTrial:
    """Completes ``trial`` with ``evaluation``: objectives as values, the rest as attrs.

    Every budget becomes a constraint ``value - budget`` (feasible when <= 0).
    """
    for name, limit in budgets.items():
        trial.set_constraint(name, evaluation.objective(name) - limit)
    trial.set_user_attr("key", evaluation.arch.key)
    trial.set_user_attr("arch", dict(evaluation.arch))
    trial.set_user_attr("metrics", dict(evaluation.metrics))
    trial.set_user_attr("costs", evaluation.costs.to_dict())
    trial.set_user_attr("strategy", strategy)
    trial.set_user_attr("cached", cached)
    return study.tell(trial, [evaluation.objective(o) for o in objectives])


def evaluations(study: optuna.Study) -> list[Evaluation]:
    """Every completed evaluation in the study, in trial order (duplicates included)."""
    out = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        attrs = trial.user_attrs
        out.append(Evaluation(Arch(attrs["arch"]), dict(attrs["metrics"]),
                              Costs.from_dict(attrs["costs"])))
    return out


def fail_stale_trials(study: optuna.Study) -> int:
    """Marks trials left RUNNING by a crashed search as FAILED; returns how many."""
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    return len(stale)


def n_complete(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
