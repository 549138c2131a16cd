"""RunDir: the run directory, and the one place that names every file a run holds."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from hwnas.config import DEFAULT_CONFIG, ExperimentConfig, config_from_dict, load_config
from hwnas.deploy import EXPORT_RECORD, FORMATS
from hwnas.errors import ConfigError, RunDirError
from hwnas.io import FileLock, LockHeld, atomic_write_text, remove_stale_temporaries
from hwnas.run.names import check_names, with_absolute_specs, with_learner_defaults
from hwnas.studies import JOURNAL, STORAGE
from hwnas.supernet.learners import BaseLearner

CONFIG = "config.yaml"


class RunDir:
    """A run directory: the resolved config and every artifact of one experiment.

    The class attributes name every file of a run; the library packages that
    write a file of their own format (the study, the learner's checkpoint, the
    exported models) name it there, and it is listed here.
    """

    #: The resolved config; a later command on the directory must match it.
    CONFIG = CONFIG
    #: Supernet training (``hwnas train``): weights, checkpoint, logs.
    WEIGHTS = BaseLearner.weights_file
    CHECKPOINT = BaseLearner.checkpoint_file
    TRAIN_LOG = BaseLearner.log_file
    ARCH_LOG = BaseLearner.arch_log_file
    #: A few-shot supernet's copies of the weights (the one-shot weights stay in WEIGHTS).
    SPLIT_WEIGHTS = BaseLearner.split_weights_file
    #: What a gradient learner derived, and its plots.
    DERIVED, ARCH_PLOT, DERIVED_PLOT = "derived.json", "arch_params.png", "derived.png"
    #: The latency table (``hwnas lut``) and its check (``hwnas profile``).
    LUT, PROFILE, PROFILE_PLOT = "lut.json", "profile.json", "profile.png"
    #: The study (journal file, or storage.json naming a database) and the last search's counts.
    JOURNAL, STORAGE, SEARCH_STATS = JOURNAL, STORAGE, "search_stats.json"
    #: The front (``hwnas front``).
    FRONT, FRONT_PLOT, HV_PLOT = "front.csv", "front.png", "hv.png"
    #: Whole-subnet latencies measured after the search, and the chosen subnet.
    MEASURED, SELECTED = "measured.json", "selected.json"
    #: ``retrain/DIGEST/``: each subnet's retraining: its claim, result and checkpoint.
    RETRAIN_DIR, RETRAIN_CLAIM, RETRAIN_RESULT = "retrain", "arch.json", "result.json"
    RETRAIN_CHECKPOINT, RETRAIN_WEIGHTS, RETRAIN_LOG = "state.npz", "weights.h5", "log.csv"
    #: ``hwnas rank-check``: the supernet's ranking against subnets trained alone.
    RANK_CHECK, RANK_CHECK_PLOT = "rank_check.json", "rank_check.png"
    #: The exported models and what the export recorded.
    MODELS = tuple(fmt.filename for fmt in FORMATS.values())
    EXPORT = EXPORT_RECORD
    #: The report.
    REPORT = "report.html"
    #: Held by the command writing the directory (see ``Writer``); gone when none is.
    LOCK = ".lock"

    def __init__(self, path: str | Path, config: ExperimentConfig) -> None:
        self.path = Path(path)
        self.config = config

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @classmethod
    def create(cls, path: str | Path, config: ExperimentConfig, *,
               writer: Writer | None = None) -> RunDir:
        """Creates ``path`` for ``config``, or reopens it when it holds the same experiment.

        The stored config has the settings it leaves to its learner resolved
        (``with_learner_defaults``); ``config``'s names must have passed ``check_names``.

        Args:
            writer: the command writing it, which holds the directory from now on.

        Raises:
            RunDirError: ``path`` holds a different experiment, cannot be written, or
                another command is writing it.
        """
        path = Path(path)
        # Stored resolved: a later release's defaults do not change what this run trains.
        config = with_learner_defaults(config)
        if path.exists() and not path.is_dir():
            raise RunDirError(f"{path} is a file, not a directory; choose another --out")
        if writer is not None:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RunDirError(f"{path}: cannot write the run directory "
                                  f"({exc.strerror})") from None
            writer.hold(path)
        if (path / CONFIG).exists():
            stored = cls.open(path).config  # (which removes leftovers of killed writers)
            # The retraining recipe is not part of what was trained and searched: a new one
            # replaces the stored one (each retraining records and guards its own recipe).
            diff = _first_difference({**stored.to_dict(), "retrain": None},
                                     {**config.to_dict(), "retrain": None})
            if diff is None:
                if stored.retrain != config.retrain:
                    atomic_write_text(path / CONFIG,
                                      yaml.safe_dump(config.to_dict(), sort_keys=False))
                    return cls(path, config)
                return cls(path, stored)
            # A directory holding only its config stopped before producing anything
            # (say, at a missing dataset): nothing to lose, the corrected config replaces it.
            if any(p.name not in (CONFIG, cls.LOCK) for p in path.iterdir()):
                raise RunDirError(f"{path} already holds a different experiment ({diff}); "
                                  "choose another --out or delete that directory")
        try:
            path.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path / CONFIG, yaml.safe_dump(config.to_dict(), sort_keys=False))
        except OSError as exc:
            raise RunDirError(f"{path}: cannot write the run directory ({exc.strerror})") from None
        return cls(path, config)

    @classmethod
    def open(cls, path: str | Path, *, writer: Writer | None = None) -> RunDir:
        """Opens an existing run directory.

        Args:
            writer: the command writing it, which holds the directory from now on
                (None: a command that only reads).

        Raises:
            RunDirError: it does not exist, has no readable config, or another
                command is writing it.
        """
        path = Path(path)
        if not path.is_dir():
            what = "is a file, not a run directory" if path.exists() else "no such run directory"
            raise RunDirError(f"{path}: {what}")
        if not (path / CONFIG).exists():
            raise RunDirError(f"{path}: not a run directory (no {CONFIG})")
        if writer is not None:
            writer.hold(path)
        try:
            # (File specs are stored absolute; one written relative is the run's own.)
            config = with_absolute_specs(load_config(path / CONFIG), path)
            check_names(config, str(path / CONFIG))
            config = with_learner_defaults(config)
            remove_leftovers(path)
            return cls(path, config)
        except ConfigError as exc:
            reason = str(exc).removeprefix(f"{path / CONFIG}: ")
            raise RunDirError(f"{path / CONFIG} is damaged: {reason}") from None


def remove_leftovers(path: Path) -> None:
    """Removes what writers killed mid-write left in a run directory and its retrainings:
    temporaries and export staging directories of processes that are gone."""
    remove_stale_temporaries(path)
    retrain = path / RunDir.RETRAIN_DIR
    if retrain.is_dir():
        for where in retrain.iterdir():
            if where.is_dir():
                remove_stale_temporaries(where)
class Writer:
    """A command that writes run directories: it holds each one's lock (``RunDir.LOCK``)
    from opening it until ``release``, so that a second command writing the same
    directory is refused instead of failing the first one's trials.

    Workers of a study in a database write it together: they hold the lock shared,
    every other writer exclusively, so a ``hwnas train`` while workers run is refused
    and workers never wait for each other. The kernel drops the lock of a process
    that dies, so a killed command never blocks the next one.

    Args:
        command: what the message to a refused writer names, e.g. ``hwnas search``.
        shared: hold the lock shared (a worker); None: shared when the run's study
            is in a database (``hwnas search`` there is one worker), else exclusive.
    """

    def __init__(self, command: str, *, shared: bool | None = False) -> None:
        self.command = command
        self.shared = shared
        self._locks: dict[Path, FileLock] = {}

    def hold(self, path: str | Path) -> None:
        """Takes ``path``'s lock for this command (once; a second call keeps it).

        Raises:
            RunDirError: another command holds it, or the directory cannot be written.
        """
        key = Path(path).resolve()
        if key in self._locks:
            return
        shared = (Path(path) / RunDir.STORAGE).exists() if self.shared is None else self.shared
        lock = FileLock(Path(path) / RunDir.LOCK)
        try:
            lock.acquire(shared=shared, command=self.command)
        except LockHeld as held:
            raise RunDirError(f"{path} is in use by {_describe(held.holder)}; "
                              "wait for it or stop it") from None
        except OSError as exc:
            if shared:
                return  # a read-only copy of a worker's run directory: it writes nothing there
            raise RunDirError(f"{path}: cannot write the run directory "
                              f"({exc.strerror})") from None
        self._locks[key] = lock

    def release(self) -> None:
        """Releases every directory this command holds."""
        for lock in self._locks.values():
            lock.release()
        self._locks.clear()


def _describe(holder: dict[str, Any]) -> str:
    """The holder of a run directory's lock, as the refused command's message names it."""
    try:
        since = time.localtime(float(holder["since"]))
        when = time.strftime("%H:%M:%S" if since[:3] == time.localtime()[:3]
                             else "%Y-%m-%d %H:%M:%S", since)
        return (f"{str(holder['command'])!r} (pid {int(holder['pid'])} on "
                f"{str(holder['host'])[:64]}, since {when})")
    except (KeyError, TypeError, ValueError, OverflowError):
        return "another hwnas command (starting just now)"


def _first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            diff = _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if diff is not None:
                return diff
        return None
    return None if a == b else f"'{prefix.rstrip('.')}' is {a!r} there, {b!r} here"


def overridden_config(config_path: str | None,
                      overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Loads a config and sets ``overrides`` (dotted keys: ``train.epochs``) in it; the names
    it holds are checked, learner defaults are not resolved."""
    # A file spec (space.name: ./my_space.py:MySpace) is relative to the config's directory.
    cfg = with_absolute_specs(load_config(config_path),
                              Path(config_path).parent if config_path else None)
    if overrides:
        data = cfg.to_dict()
        for dotted, value in overrides.items():
            node = data
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node[part]
            node[leaf] = value
        cfg = config_from_dict(data, source=str(config_path or "default config"))
        cfg = with_absolute_specs(cfg, None)  # an override's file spec: from the working dir
    check_names(cfg, str(config_path or DEFAULT_CONFIG))
    return cfg


def configure_run(config_path: str | None, out: str | None,
                  overrides: dict[str, Any] | None = None, *,
                  writer: Writer | None = None) -> RunDir:
    """Loads a config (with optional overrides) and creates or reopens its run directory
    (held by ``writer`` from then on)."""
    cfg = overridden_config(config_path, overrides)
    return RunDir.create(out or Path("runs") / cfg.name, cfg, writer=writer)
