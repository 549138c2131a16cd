"""The catalogue of bad input: each kind gets one clear line, exit status 2 (130 for Ctrl-C),
and leaves every file that was already there as it was.

Every case runs the real command line in-process against a private copy of the session's
finished tiny run (``run``) inside the test's own directory (``tmp``, also the working
directory). The whole of ``tmp`` is compared before and after: nothing may change, appear
or vanish, except what a case names (``added``: new files of a fresh run directory;
``appended``: a study journal that may only grow, its old bytes intact).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from _cli_helpers import assert_one_line, cli
from _bad_input_cases import CASES
from _bad_input_damage import Ctx


def tree(directory: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and directory (None) under ``directory``, by relative path."""
    return {str(p.relative_to(directory)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(directory.rglob("*"))}


def test_catalogue_is_large_enough():
    assert len(CASES) >= 35


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, run_copy, tmp_path, tiny_config, capfd, monkeypatch):
    case = CASES[name]
    monkeypatch.chdir(tmp_path)  # a default runs/NAME would land here, and be noticed
    ctx = Ctx(run=run_copy, tmp=tmp_path, tiny=tiny_config, monkeypatch=monkeypatch)
    if case.damage is not None:
        case.damage(ctx)
    before = tree(tmp_path)
    status, _, err = cli(capfd, *(ctx.fill(a) for a in case.argv))
    assert_one_line(status, err, case.status, *(ctx.fill(f) for f in case.fragments))
    after = tree(tmp_path)
    added = {p for p in set(after) - set(before)
             if not any(p == a or a.startswith(p + "/") for a in case.added)}
    assert not added, f"{name} added {sorted(added)}"
    assert not set(before) - set(after), f"{name} removed {sorted(set(before) - set(after))}"
    for path, data in before.items():
        if path in case.appended:
            assert after[path][:len(data)] == data, f"{name} rewrote {path} (may only append)"
        else:
            assert after[path] == data, f"{name} changed {path}"
    if case.after is not None:
        case.after(ctx, capfd)
