"""A run's study opened for reading only: for the report and the dashboard, never a writer."""
from __future__ import annotations

import json
from collections.abc import Callable, Container, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial, TrialState

from hwnas.errors import RunDirError
from hwnas.studies._storage import JOURNAL, STUDY_NAME, masked, rdb_storage, storage_of


class ReadOnlyError(RuntimeError):
    """A write was asked of a storage opened for reading only."""


def _read_only_error(what: str) -> Exception:
    return ReadOnlyError(f"this study is opened read-only; cannot {what}")


class ReadOnlyStorage(BaseStorage):
    """Passes every read to ``storage`` and refuses every write.

    Whoever holds it (optuna-dashboard's buttons included) cannot change the
    study; the underlying storage stays owned by the caller.

    Args:
        storage: the storage read.
        refuse: what -> the exception a write raises (default: ``ReadOnlyError``).
    """

    def __init__(self, storage: BaseStorage, *,
                 refuse: Callable[[str], Exception] | None = None) -> None:
        self._storage = storage
        self._refuse = refuse or _read_only_error

    # Reads.
    def get_study_id_from_name(self, study_name: str) -> int:
        return self._storage.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._storage.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._storage.get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._storage.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._storage.get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[FrozenStudy]:
        return self._storage.get_all_studies()

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._storage.get_trial(trial_id)

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return self._storage.get_all_trials(study_id, deepcopy=deepcopy, states=states)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._storage.get_trial_id_from_study_id_trial_number(study_id, trial_number)

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


def read_only_storage(run_dir: str | Path, *, refuse: Callable[[str], Exception] | None = None
                      ) -> tuple[ReadOnlyStorage, str, str]:
    """The storage of a run's study, read-only: its journal file as it is (a record a
    crash left half-written at its end is skipped, not cut), or the database study
    named in storage.json.

    Returns:
        the storage (``refuse`` as in ``ReadOnlyStorage``), the study's name, and where
        it is (for messages).

    Raises:
        RunDirError: no study yet, or an unreachable database.
    """
    target = storage_of(run_dir)
    if target is not None:
        url, name = target
        where = f"study {name!r} in {masked(url)}"
        return ReadOnlyStorage(rdb_storage(url), refuse=refuse), name, where
    path = Path(run_dir) / JOURNAL
    if not path.is_file() or path.stat().st_size == 0:
        raise RunDirError(f"{path}: no study yet; run 'hwnas search {run_dir}' first")
    # The backend only reads here: it creates a missing file, but this one exists.
    storage = JournalStorage(JournalFileBackend(str(path)))
    return ReadOnlyStorage(storage, refuse=refuse), STUDY_NAME, str(path)


def load_read_only(run_dir: str | Path) -> optuna.Study:
    """The run's study, loaded from ``read_only_storage``; any write raises ``ReadOnlyError``.

    Raises:
        RunDirError: no study yet, or one that cannot be read.
    """
    storage, name, where = read_only_storage(run_dir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise RunDirError(f"{where} holds no study {name!r}: not this run's study") from None
    except (ValueError, TypeError, AssertionError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{where}: not a readable hwnas study "
                          f"({exc or type(exc).__name__})") from None
