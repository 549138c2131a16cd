"""The search's behaviour is pinned: the same seed gives the study recorded before a change.

``tests/golden/`` holds a trained tiny run (its supernet, training state and latency table)
and, per strategy, the trials its search made when it was recorded
(``tests/golden/make_golden.py``, at the commit before issue 14's restructuring). Accuracy
comes from the stored weights and latency from the stored table, so nothing measured on
this machine enters the values: any difference is a change in how the search proposes,
evaluates, caches or records.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from _cli_helpers import cli
from _golden_helpers import comparable_trials

GOLDEN = Path(__file__).resolve().parent / "golden"
RECORDED = json.loads((GOLDEN / "trials.json").read_text())


@pytest.mark.parametrize("strategy", sorted(RECORDED))
def test_a_search_makes_the_recorded_study(strategy, tmp_path, capfd):
    run = Path(shutil.copytree(GOLDEN / "run", tmp_path / "run"))
    status, _, err = cli(capfd, "search", run, "--strategy", strategy,
                         "--trials", len({t["key"] for t in RECORDED[strategy]}), "--quiet")
    assert status == 0, err
    got = comparable_trials(run)
    expected = RECORDED[strategy]
    assert [t["key"] for t in got] == [t["key"] for t in expected]
    for i, (a, b) in enumerate(zip(got, expected)):
        assert a == b, (
            f"trial {i} differs from the recorded study:\n got {a}\nwant {b}")
