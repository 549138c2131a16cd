"""``hwnas search --strategy`` for every strategy, ``hwnas front``'s plots and ``hwnas compare``."""
from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from hwnas.strategies import STRATEGIES
from _cli_helpers import (assert_changed_nothing, assert_usage_error, check_trial, cli,
                            load_trials, snapshot, space_choices)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_search_continues_a_run_with_any_strategy(name, run_copy, capfd):
    before = load_trials(run_copy)
    status, out, err = cli(capfd, "search", run_copy, "--strategy", name, "--trials", 10,
                           "--quiet")
    assert status == 0, err
    trials = load_trials(run_copy)
    assert len({t.user_attrs["key"] for t in trials}) == 10
    new = trials[len(before):]
    assert new and {t.user_attrs["strategy"] for t in new} == {name}
    fresh = [t for t in new if not t.user_attrs["cached"]]
    assert len(fresh) == 4  # exactly the missing evaluations, none done twice
    choices = space_choices(run_copy)
    for trial in new:
        check_trial(trial, choices, strategy=name)
    if name.startswith("deap-"):
        assert all(isinstance(t.user_attrs["generation"], int) for t in new)


def test_front_draws_every_pair_and_the_hypervolume_history(run_copy, capfd):
    status, out, err = cli(capfd, "front", run_copy)
    assert status == 0, err
    for name in ("front.png", "hv.png"):
        image = matplotlib.image.imread(run_copy / name)
        assert image.ndim == 3 and image.shape[0] > 100


def test_an_unknown_strategy_is_one_line_and_changes_nothing(run_copy, capfd):
    before = snapshot(run_copy)
    status, out, err = cli(capfd, "search", run_copy, "--strategy", "cmaes", "--trials", 9)
    assert_usage_error(status, err, "unknown strategy 'cmaes'", "tpe")
    assert_changed_nothing(before, run_copy)


def test_compare_lays_runs_side_by_side(run_copy, tmp_path, capfd):
    other = Path(shutil.copytree(run_copy, tmp_path / "other"))
    assert cli(capfd, "search", run_copy, "--strategy", "random", "--trials", 12, "--quiet")[0] == 0
    assert cli(capfd, "search", other, "--strategy", "deap-nsga2", "--trials", 9, "--quiet")[0] == 0
    out_dir = tmp_path / "cmp"
    status, out, err = cli(capfd, "compare", run_copy, other, "--out", out_dir)
    assert status == 0, err
    table = pd.read_csv(out_dir / "compare.csv")
    assert list(table["run"]) == [str(run_copy), str(other)]
    assert list(table["evaluated"]) == [12, 9]
    assert table["strategy"].tolist() == ["tpe-ls then random", "tpe-ls then deap-nsga2"]
    # One reference point for both; the best known front is their union.
    assert (table["hv_share"] <= 1.0 + 1e-12).all() and table["hv_share"].max() > 0
    assert table["hv_share_at_common"].iloc[0] <= table["hv_share"].iloc[0]
    assert matplotlib.image.imread(out_dir / "compare.png").ndim == 3
    assert "hv_share" in out and str(other) in out


def test_compare_refuses_runs_over_other_objectives(run_copy, tmp_path, capfd):
    other = Path(shutil.copytree(run_copy, tmp_path / "other"))
    config = (other / "config.yaml").read_text()
    (other / "config.yaml").write_text(config.replace("params: 100000", "params: 90000"))
    status, out, err = cli(capfd, "compare", run_copy, other, "--out", tmp_path / "cmp")
    assert_usage_error(status, err, "budgets", "differ")
    assert not (tmp_path / "cmp").exists()
    status, out, err = cli(capfd, "compare", run_copy, run_copy)
    assert_usage_error(status, err, "named twice")
