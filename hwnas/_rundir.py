"""The run directory: the resolved config and every artifact of one experiment."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hwnas._io import atomic_write_text
from hwnas.config import DEFAULT_CONFIG, ExperimentConfig, config_from_dict, load_config
from hwnas.errors import ConfigError, RunDirError
from hwnas.run.names import check_names

CONFIG = "config.yaml"


class RunDir:
    """A run directory: the resolved config and every artifact of one experiment."""

    def __init__(self, path: str | Path, config: ExperimentConfig) -> None:
        self.path = Path(path)
        self.config = config

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @classmethod
    def create(cls, path: str | Path, config: ExperimentConfig) -> RunDir:
        """Creates ``path`` for ``config``, or reopens it when it holds the same experiment.

        Raises:
            RunDirError: ``path`` holds a different experiment or cannot be written.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunDirError(f"{path} is a file, not a directory; choose another --out")
        if (path / CONFIG).exists():
            stored = cls.open(path).config
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
            if any(p.name != CONFIG for p in path.iterdir()):
                raise RunDirError(f"{path} already holds a different experiment ({diff}); "
                                  "choose another --out or delete that directory")
        try:
            path.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path / CONFIG, yaml.safe_dump(config.to_dict(), sort_keys=False))
        except OSError as exc:
            raise RunDirError(f"{path}: cannot write the run directory ({exc.strerror})") from None
        return cls(path, config)

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """Opens an existing run directory.

        Raises:
            RunDirError: it does not exist or has no readable config.
        """
        path = Path(path)
        if not path.is_dir():
            what = "is a file, not a run directory" if path.exists() else "no such run directory"
            raise RunDirError(f"{path}: {what}")
        if not (path / CONFIG).exists():
            raise RunDirError(f"{path}: not a run directory (no {CONFIG})")
        try:
            config = load_config(path / CONFIG)
            check_names(config, str(path / CONFIG))
            return cls(path, config)
        except ConfigError as exc:
            reason = str(exc).removeprefix(f"{path / CONFIG}: ")
            raise RunDirError(f"{path / CONFIG} is damaged: {reason}") from None


def _first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            diff = _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if diff is not None:
                return diff
        return None
    return None if a == b else f"'{prefix.rstrip('.')}' is {a!r} there, {b!r} here"


def configure_run(config_path: str | None, out: str | None,
                  overrides: dict[str, Any] | None = None) -> RunDir:
    """Loads a config (with optional overrides) and creates or reopens its run directory."""
    cfg = load_config(config_path)
    if overrides:
        data = cfg.to_dict()
        for dotted, value in overrides.items():
            node = data
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node[part]
            node[leaf] = value
        cfg = config_from_dict(data, source=str(config_path or "default config"))
    check_names(cfg, str(config_path or DEFAULT_CONFIG))
    return RunDir.create(out or Path("runs") / cfg.name, cfg)
