"""What the benchmarks share."""
from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def code_version() -> dict:
    """The commit and the files changed since, of the code measured (read when the run starts)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout if done.returncode == 0 else ""
    return {"commit": git("rev-parse", "HEAD").strip(),
            "modified": git("status", "--porcelain", "--untracked-files=no").splitlines()}
