"""The git commit of a checkout and the tracked files changed since, for records of what ran."""
from __future__ import annotations

import subprocess
from pathlib import Path


def git(directory: Path, *args: str) -> str | None:
    """``git -C directory args`` stdout; None when git fails or is missing."""
    try:
        done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def source_state(directory: Path, *paths: str) -> dict | None:
    """``{"commit", "modified"}`` of the checkout holding ``directory``: HEAD, and the
    ``git status --porcelain`` lines of tracked files (under ``paths``, relative to
    ``directory``, when given) that differ from it. None outside a checkout."""
    commit = (git(directory, "rev-parse", "HEAD") or "").strip()
    if not commit:
        return None
    status = git(directory, "status", "--porcelain", "--untracked-files=no",
                 *(("--", *paths) if paths else ()))
    return {"commit": commit, "modified": status.splitlines() if status else []}
