"""Study storage: every evaluation is one Optuna trial in the run's journal."""
from __future__ import annotations

from hwnas.studies._storage import (JOURNAL, evaluations, fail_stale_trials,
                                    known_evaluations, memory_study, n_complete, open_study,
                                    record)

__all__ = ["JOURNAL", "evaluations", "fail_stale_trials", "known_evaluations",
           "memory_study", "n_complete", "open_study", "record"]
