"""A run's study opened for reading only: for the report and the dashboard, never a writer."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from hwnas.errors import RunDirError
from hwnas.studies._optuna_internals import ReadOnlyStorage
from hwnas.studies._store import JOURNAL, STUDY_NAME, _bad_line, masked, open_rdb, storage_of


class ReadOnlyError(RuntimeError):
    """A write was asked of a storage opened for reading only."""


def _read_only_error(what: str) -> Exception:
    return ReadOnlyError(f"this study is opened read-only; cannot {what}")


def read_only_store(run_dir: str | Path, *, refuse: Callable[[str], Exception] | None = None
                    ) -> tuple[ReadOnlyStorage, str, str]:
    """The storage of a run's study, read-only: its journal file as it is (a record a
    crash left half-written at its end is skipped, not cut), or the database study
    named in storage.json.

    Returns:
        the storage (a write raises ``refuse(what)``, by default ``ReadOnlyError``), the
        study's name, and where it is (for messages).

    Raises:
        RunDirError: no study yet, or an unreachable database.
    """
    target = storage_of(run_dir)
    if target is not None:
        url, name = target
        where = f"study {name!r} in {masked(url)}"
        return ReadOnlyStorage(open_rdb(url), refuse=refuse or _read_only_error), name, where
    path = Path(run_dir) / JOURNAL
    if not path.is_file() or path.stat().st_size == 0:
        raise RunDirError(f"{path}: no study yet; run 'hwnas search {run_dir}' first")
    # The backend only reads here: it creates a missing file, but this one exists.
    try:
        storage = JournalStorage(JournalFileBackend(str(path)))
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        # The journal is replayed on opening: a damaged record fails here.
        raise RunDirError(f"{path}: not a readable hwnas study "
                          f"({_bad_line(path) or exc or type(exc).__name__})") from None
    return ReadOnlyStorage(storage, refuse=refuse or _read_only_error), STUDY_NAME, str(path)


def load_read_only(run_dir: str | Path) -> optuna.Study:
    """The run's study, loaded from ``read_only_store``; any write raises ``ReadOnlyError``.

    Raises:
        RunDirError: no study yet, or one that cannot be read.
    """
    storage, name, where = read_only_store(run_dir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise RunDirError(f"{where} holds no study {name!r}: not this run's study") from None
    except (ValueError, TypeError, AssertionError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{where}: not a readable hwnas study "
                          f"({exc or type(exc).__name__})") from None
