"""Every call into Optuna's private API, one wrapper each, pinned by tests/test_optuna_internals.py.

Optuna's public API (``study.ask``/``tell``, ``enqueue_trial``, ``get_trials``,
``optuna.storages.fail_stale_trials``) covers nearly all of hwnas; the few things it
cannot do are done here and nowhere else, so an Optuna release that changes its
internals breaks one module and one test, not the search, the workers or the dashboard.
"""
from __future__ import annotations

from collections.abc import Callable, Container, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import get_heartbeat_thread
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial, TrialState


def _backend(study: optuna.Study) -> BaseStorage:
    """The storage under Optuna's trial cache (an RDB study is wrapped in one; a journal
    storage's ``_backend`` is its file, no storage)."""
    storage = study._storage
    inner = getattr(storage, "_backend", None)
    return inner if isinstance(inner, BaseStorage) else storage


def open_running_trial(study: optuna.Study, *, params: Mapping[str, Any],
                       distributions: Mapping[str, BaseDistribution],
                       user_attrs: Mapping[str, Any] | None = None) -> optuna.Trial:
    """A new RUNNING trial of ``study`` with exactly ``params``, ready for ``study.tell``.

    Why private: ``study.ask(fixed_distributions)`` pops the oldest WAITING trial
    first, which may be another strategy's (an Optuna sampler's enqueued or re-queued
    subnet), and ``study.add_trial`` returns no trial to complete later. Creating the
    trial from a template through the storage is the one way to open it as it is.
    """
    template = optuna.trial.create_trial(state=TrialState.RUNNING, params=dict(params),
                                         distributions=dict(distributions),
                                         user_attrs=dict(user_attrs or {}))
    trial_id = study._storage.create_new_trial(study._study_id, template_trial=template)
    return optuna.trial.Trial(study, trial_id)


def heartbeat(study: optuna.Study, trial: optuna.Trial) -> AbstractContextManager:
    """A context that beats ``trial``'s heart while it is open (a no-op without heartbeats).

    Why private: Optuna beats hearts only inside ``study.optimize``; a worker that
    asks, evaluates and tells by itself starts the same thread through
    ``optuna.storages._heartbeat``, so that a dead worker's trial is failed and retried
    (``optuna.storages.fail_stale_trials``) and a live one's is not.
    """
    return get_heartbeat_thread(trial._trial_id, study._storage)


def read_trials(study: optuna.Study, *, states: Container[TrialState] | None = None
                ) -> list[FrozenTrial]:
    """Every trial of ``study`` as the database holds it now, bypassing Optuna's trial cache.

    Why private: the cache of an RDB study only fetches trials with ids above the last
    finished one it saw; a trial another worker inserted with a lower id but committed
    later would never be seen, so counting the study's subnets reads the storage under it.
    """
    return _backend(study).get_all_trials(study._study_id, deepcopy=False, states=states)


def rdb_engine(study: optuna.Study) -> Any | None:
    """The SQLAlchemy engine of an RDB study; None for a journal or in-memory one.

    Why private: a PostgreSQL advisory lock (workers counting the study's subnets, then
    asking, one at a time) needs a connection to the study's own database, and Optuna
    keeps its engine on the storage under the trial cache.
    """
    return getattr(_backend(study), "engine", None)


def fail_running_trial(study: optuna.Study, trial: FrozenTrial, *, reason: str) -> None:
    """Marks a RUNNING trial that no process holds any more as FAIL, with ``fail_reason``.

    Why private: the ``optuna.Trial`` of a trial a crashed process left running is gone
    with it, and ``study.tell(number, state=FAIL)`` cannot set the user attr that says
    why (and would run the sampler's ``after_trial`` on a trial it never asked); the
    storage does both directly.
    """
    study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


class ReadOnlyStorage(BaseStorage):
    """Passes every read to ``storage`` and refuses every write.

    Whoever holds it (optuna-dashboard's buttons included) cannot change the
    study; the underlying storage stays owned by the caller.

    Why here: it implements ``BaseStorage``, the interface Optuna's internals call
    (its docs: "not supposed to be directly accessed by library users"), whose
    abstract methods change with Optuna releases; its ``FrozenStudy`` type lives
    in the private ``optuna.study._frozen``.

    Args:
        storage: the storage read.
        refuse: what -> the exception a write raises.
    """

    def __init__(self, storage: BaseStorage, *, refuse: Callable[[str], Exception]) -> None:
        self._inner = storage
        self._refuse = refuse

    # Reads.
    def get_study_id_from_name(self, study_name: str) -> int:
        return self._inner.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._inner.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._inner.get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._inner.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._inner.get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[FrozenStudy]:
        return self._inner.get_all_studies()

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._inner.get_trial(trial_id)

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return self._inner.get_all_trials(study_id, deepcopy=deepcopy, states=states)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._inner.get_trial_id_from_study_id_trial_number(study_id, trial_number)

    # Writes.
    def create_new_study(self, directions: Sequence[StudyDirection],
                         study_name: str | None = None) -> int:
        raise self._refuse("create a study")

    def delete_study(self, study_id: int) -> None:
        raise self._refuse("delete a study")

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        raise self._refuse("set a study attribute")

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        raise self._refuse("set a study attribute")

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        raise self._refuse("add a trial")

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: BaseDistribution) -> None:
        raise self._refuse("change a trial")

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Sequence[float] | None = None) -> bool:
        raise self._refuse("change a trial")

    def set_trial_intermediate_value(self, trial_id: int, step: int,
                                     intermediate_value: float) -> None:
        raise self._refuse("change a trial")

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        raise self._refuse("change a trial")

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        raise self._refuse("change a trial")


__all__ = ["ReadOnlyStorage", "fail_running_trial", "heartbeat", "open_running_trial", "rdb_engine", "read_trials"]
