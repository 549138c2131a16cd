"""Study storage: every evaluation is one Optuna trial, in the run's journal or a database."""
from __future__ import annotations

from hwnas.studies._readonly import ReadOnlyError, load_read_only, read_only_storage
from hwnas.studies._storage import (JOURNAL, STORAGE, STUDY_NAME, evaluations,
                                    fail_stale_trials, known_evaluations, masked, memory_study,
                                    n_complete, open_study, record, storage_of)

__all__ = ["JOURNAL", "STORAGE", "STUDY_NAME", "ReadOnlyError", "evaluations",
           "fail_stale_trials", "known_evaluations", "load_read_only", "masked", "memory_study",
           "n_complete", "open_study", "read_only_storage", "record", "storage_of"]
