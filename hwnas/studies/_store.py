"""The study store: one Optuna trial per evaluated subnet, in a journal file or an RDB."""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, Trial, TrialState

from hwnas.arch import Arch
from hwnas.errors import RunDirError
from hwnas.costs import Costs
from hwnas.io import read_json_record
from hwnas.objectives import Evaluation
from hwnas.studies._optuna_internals import fail_running_trial

JOURNAL = "study.journal"
STUDY_NAME = "hwnas"


#: In a run directory: the RDB storage its study lives in (written by ``hwnas study``).
STORAGE = "storage.json"
#: Seconds between a worker's heartbeats, and without one before its trial is failed and retried.
HEARTBEAT_INTERVAL, GRACE_PERIOD = 5, 20
#: Times a trial whose worker died is retried.
MAX_RETRY = 3


def storage_of(run_dir: str | Path) -> tuple[str, str] | None:
    """The RDB storage URL and study name recorded for a run; None: the journal file."""
    data = read_json_record(Path(run_dir) / STORAGE, {"url": str, "study": str})
    return None if data is None else (data["url"], data["study"])


def masked(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``."""
    try:
        from sqlalchemy.engine import make_url
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL: show it as given, less anything before an '@'
        return re.sub(r"(?<=://)[^@/]*@", "***@", url)


def open_rdb(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage at ``url`` with heartbeats: the trial of a worker that died is
    failed after ``GRACE_PERIOD`` seconds and retried (up to ``MAX_RETRY`` times).

    Raises:
        RunDirError: the URL is malformed or the database cannot be reached.
    """
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=GRACE_PERIOD,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                    max_retry=MAX_RETRY),
                engine_kwargs={"pool_pre_ping": True})
    except Exception as exc:  # sqlalchemy's errors: ArgumentError, OperationalError, ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = re.sub(r"^\([\w.]+\) ", "", reason)  # sqlalchemy's "(psycopg2.Error) " prefix
        raise RunDirError(f"cannot open the study storage {masked(url)} ({reason})") from None


class _Journal(JournalFileBackend):
    """Optuna's journal file, whose write errors name it (a full disk names no file)."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path

    def append_logs(self, logs: list[dict]) -> None:
        try:
            super().append_logs(logs)
        except OSError as exc:
            if exc.filename is not None:
                raise
            raise OSError(exc.errno, exc.strerror or str(exc), str(self.path)) from exc


def repair_journal(path: Path) -> bool:
    """Drops a record half-written by a process killed while appending to the journal.

    Optuna appends one JSON line per operation; a last line that is neither
    ended by a newline nor valid JSON was never completed, so the operation
    did not happen and the line is dropped; a valid last record only missing
    its newline gets it. A file without one complete line is left alone (it
    is no journal; opening it fails with a clear message), and so is a file whose
    first line is not a journal record (another program's file is never cut).
    Left in place, the next append would glue a new record to it and make the
    journal unreadable.

    Returns:
        whether the file was changed.
    """
    if not path.exists() or path.stat().st_size == 0:
        return False
    with open(path, "rb+") as f:
        f.seek(-1, 2)
        if f.read(1) == b"\n":
            return False
        f.seek(0)
        data = f.read()
        end = data.rfind(b"\n") + 1
        if end == 0 or not _is_record(data[:data.find(b"\n")]):
            return False  # not a journal to repair
        try:
            json.loads(data[end:])
        except ValueError:
            f.truncate(end)  # torn: the operation never happened
        else:
            f.write(b"\n")  # whole, only its newline missing: complete it
    return True


def _is_record(line: bytes) -> bool:
    """Whether ``line`` can be a record of an Optuna journal: a JSON object."""
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _bad_line(path: Path) -> str | None:
    """Names the first line of a journal file that is not a journal record, if any."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not _is_record(line):
                return f"line {number} is not a journal record"
            if b'"op_code"' not in line:  # Optuna replays a record by its op_code
                return f"line {number} is a record without an op_code"
    return None


def open_study(run_dir: str | Path, objectives: list[str], *,
               sampler: optuna.samplers.BaseSampler | None = None,
               create: bool = True, storage: tuple[str, str] | None = None) -> optuna.Study:
    """Opens (or creates) the run's study: ``run_dir/study.journal``, or the study in the
    RDB storage recorded in ``run_dir/storage.json`` (or given as ``(url, study name)``).

    Raises:
        RunDirError: the study is unreadable or missing (with ``create=False``),
            holds another study, or its objectives differ from ``objectives``.
    """
    target = storage or storage_of(run_dir)
    url, name = target if target is not None else (None, STUDY_NAME)
    if url is not None:
        where = f"study {name!r} in {masked(url)}"
        backend = open_rdb(url)
        exists = name in {s.study_name for s in optuna.study.get_all_study_summaries(backend)}
        if not exists and not create:
            raise RunDirError(f"{where} does not exist; create it with "
                              f"'hwnas study {run_dir} --storage URL'")
    else:
        path = Path(run_dir) / JOURNAL
        where = str(path)
        if not create and (not path.exists() or path.stat().st_size == 0):
            empty = " (the file is empty)" if path.exists() else ""
            raise RunDirError(f"{path}: no study yet{empty}; run 'hwnas search' first")
        if not path.parent.is_dir():
            raise RunDirError(f"{path.parent}: no such run directory")
        repair_journal(path)
        exists = path.exists() and path.stat().st_size > 0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        if url is None:
            backend = JournalStorage(_Journal(path))
        names = optuna.get_all_study_names(backend) if exists and url is None else [name]
        if name not in names:
            raise RunDirError(f"{where} holds no study {name!r} (only {names}): "
                              "not this run's study")
        if exists:
            # load_study only reads; create_study(load_if_exists=True) would
            # append a record to the journal even when the study exists.
            study = optuna.load_study(study_name=name, storage=backend, sampler=sampler)
        else:
            study = optuna.create_study(study_name=name, storage=backend, sampler=sampler,
                                        directions=["minimize"] * len(objectives),
                                        load_if_exists=url is not None)
    except (ValueError, KeyError, TypeError, AssertionError, json.JSONDecodeError) as exc:
        # Optuna's journal replay asserts on operations it does not know.
        reason = (_bad_line(path) if url is None else None) or str(exc) or type(exc).__name__
        raise RunDirError(f"{where}: not a readable hwnas study ({reason})") from None
    stored = study.user_attrs.get("objectives")
    if stored is None:
        study.set_user_attr("objectives", list(objectives))
    elif stored != list(objectives):
        raise RunDirError(f"{where}: the study's objectives are {stored}, "
                          f"the config asks for {list(objectives)}")
    return study


def memory_study(objectives: list[str], *,
                 sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    """A study held in memory only (benchmarks and tests), set up like a run's."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=STUDY_NAME, sampler=sampler,
                                directions=["minimize"] * len(objectives))
    study.set_user_attr("objectives", list(objectives))
    return study


def known_evaluations(study: optuna.Study) -> dict[str, Evaluation]:
    """Arch key -> the first completed evaluation of that subnet in the study."""
    known: dict[str, Evaluation] = {}
    for evaluation in evaluations(study):
        known.setdefault(evaluation.arch.key, evaluation)
    return known


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


def fail(study: optuna.Study, trial: Trial, *, key: str, reason: str) -> FrozenTrial:
    """Fails ``trial``: its subnet ``key`` could not be evaluated, for ``reason``."""
    trial.set_user_attr("key", key)
    trial.set_user_attr("fail_reason", reason)
    return study.tell(trial, state=TrialState.FAIL)


def trial_evaluation(trial: FrozenTrial) -> Evaluation:
    """The evaluation a completed trial records (see ``record``)."""
    attrs = trial.user_attrs
    return Evaluation(Arch(attrs["arch"]), dict(attrs["metrics"]), Costs.from_dict(attrs["costs"]))


def evaluations(study: optuna.Study) -> list[Evaluation]:
    """Every completed evaluation in the study, in trial order (duplicates included)."""
    return [trial_evaluation(trial)
            for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]


def fail_stale_trials(study: optuna.Study) -> list[dict]:
    """Marks trials left RUNNING by a crashed search as FAILED; returns their params.

    Only for a study in the journal file, which one search process owns (a
    database study has heartbeats instead: ``optuna.storages.fail_stale_trials``).
    """
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        fail_running_trial(study, trial, reason="left running by a crash")
    return [dict(trial.params) for trial in stale if trial.params]


def n_complete(study: optuna.Study) -> int:
    """How many trials of the study are complete (repeats of a subnet included)."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
