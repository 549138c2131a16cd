"""Study storage: every evaluation is one Optuna trial, in the run's journal or a database."""
from __future__ import annotations

from hwnas.studies._optuna_internals import (heartbeat, open_running_trial, rdb_engine,
                                             read_trials)
from hwnas.studies._readonly import ReadOnlyError, load_read_only, read_only_store
from hwnas.studies._store import (JOURNAL, STORAGE, STUDY_NAME, evaluations, fail,
                                  fail_stale_trials, known_evaluations, masked, memory_study,
                                  n_complete, open_rdb, open_study, record, repair_journal,
                                  storage_of, trial_evaluation)

__all__ = ["JOURNAL", "STORAGE", "STUDY_NAME", "ReadOnlyError", "evaluations", "fail",
           "fail_stale_trials", "heartbeat", "known_evaluations", "load_read_only", "masked",
           "memory_study", "n_complete", "open_rdb", "open_running_trial", "open_study",
           "rdb_engine", "read_only_store", "read_trials", "record", "repair_journal",
           "storage_of", "trial_evaluation"]
