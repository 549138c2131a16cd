"""Tests of the rank check: its statistics against values computed by hand, and
``hwnas rank-check`` end to end on the session's tiny run (reuse, seeds, report, Ctrl-C)."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import hwnas
from hwnas import ranking
from hwnas import run as steps
from hwnas.run.rank_check import replicate_dir, statistics
from hwnas.run.retrain import retrain_dir, run_recipe
from hwnas.errors import RunDirError
from hwnas.studies import evaluations, load_read_only
from hwnas.supernet import Arch
from _cli_helpers import cli

# --- the statistics, by hand -----------------------------------------------------------------


def test_kendall_tau_b_and_spearman_rho_match_hand_computed_values():
    # One swapped pair of six: C = 5, D = 1, tau = 4/6; d = (0, 1, -1, 0): rho = 1 - 6*2/(4*15).
    assert ranking.kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert ranking.spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # Ties: x ties pair (1,2), y ties pair (2,3); the other 4 pairs concordant:
    # tau-b = 4 / sqrt((6 - 1) * (6 - 1)) = 0.8 (tau-a would be 4/6).
    assert ranking.kendall_tau([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(0.8)
    # Average ranks (1, 2.5, 2.5, 4) and (1, 2, 3.5, 3.5): Pearson r = 3.75 / 4.5.
    assert ranking.spearman_rho([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(3.75 / 4.5)
    assert ranking.kendall_tau([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)
    assert math.isnan(ranking.kendall_tau([1, 2, 3], [5, 5, 5]))
    assert math.isnan(ranking.spearman_rho([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="equally long"):
        ranking.kendall_tau([1, 2], [1, 2, 3])


def test_tau_b_and_rho_equal_scipys_on_tied_data_row_by_row():
    from scipy import stats
    rng = np.random.default_rng(7)
    x, y = rng.integers(0, 4, (50, 9)).astype(float), rng.integers(0, 4, (50, 9)).astype(float)
    taus, rhos = ranking.tau_b(x, y), ranking.rho(x, y)
    for i in range(50):
        assert taus[i] == pytest.approx(stats.kendalltau(x[i], y[i]).statistic)
        assert rhos[i] == pytest.approx(stats.spearmanr(x[i], y[i]).statistic)


def test_the_bootstrap_interval_is_deterministic_and_holds_the_estimate():
    rng = np.random.default_rng(3)
    x = np.linspace(0.90, 0.97, 12)
    y = x + rng.normal(0.0, 0.01, 12)
    tau = ranking.kendall_tau(x, y)
    low, high = ranking.bootstrap_interval(ranking.tau_b, x, y)
    assert low <= tau <= high and low < high
    assert ranking.bootstrap_interval(ranking.tau_b, x, y) == (low, high)
    assert ranking.bootstrap_interval(ranking.tau_b, x, y, seed=1) != (low, high)
    rho_low, rho_high = ranking.bootstrap_interval(ranking.rho, x, y)
    assert rho_low <= ranking.spearman_rho(x, y) <= rho_high
    # A wider level gives a wider interval.
    low99, high99 = ranking.bootstrap_interval(ranking.tau_b, x, y, level=0.99)
    assert low99 <= low and high99 >= high
    # A perfect ranking: every resample with two distinct subnets has tau 1 (the others,
    # all one subnet, are undefined and left out).
    assert ranking.bootstrap_interval(ranking.tau_b, [1, 2, 3, 4], [5, 6, 7, 8]) == \
        (1.0, 1.0)
    assert ranking.bootstrap_interval(ranking.tau_b, [1, 2, 3], [4, 4, 4]) is None


def test_top_k_overlap_regret_pooled_sd_and_trust_gap_on_a_constructed_example():
    estimate = [0.90, 0.80, 0.70, 0.60]
    actual = [0.60, 0.90, 0.80, 0.70]
    # The estimate's top 2: {0, 1}; training's: {1, 2}; one shared.
    assert ranking.top_k_overlap(estimate, actual, 2) == 0.5
    assert ranking.top_k_overlap(estimate, actual, 1) == 0.0
    assert ranking.top_k_overlap(estimate, actual, 4) == 1.0
    assert ranking.top([0.5, 0.7, 0.7], 2) == [1, 2]  # ties: the first listed wins
    with pytest.raises(ValueError):
        ranking.top_k_overlap(estimate, actual, 0)
    assert ranking.regret(actual, 0) == pytest.approx(0.30)
    assert ranking.regret(actual, 1) == 0.0
    # Groups (1, 3): SS 2 on 1 dof; (2, 2, 5): SS 6 on 2 dof: sqrt(8 / 3).
    assert ranking.pooled_sd([[1, 3], [2, 2, 5]]) == pytest.approx(math.sqrt(8 / 3))
    assert ranking.pooled_sd([[1], [2]]) is None
    # Pair (0, 1) reversed by training at an estimate gap of 0.1; the others kept.
    assert ranking.trust_gap([0.9, 0.8, 0.5], [0.7, 0.8, 0.6]) == pytest.approx(0.1)
    assert ranking.trust_gap(estimate, actual) == pytest.approx(0.30)
    assert ranking.trust_gap([1, 2, 3], [1, 2, 3]) == 0.0


def test_regret_counts_only_the_subnets_within_the_selections_budgets():
    def row(estimate, val, selected=False, within=True):
        return {"estimate": estimate, "val_accuracy": val, "test_accuracy": val,
                "val_accuracies": [val, val - 0.02], "selected": selected,
                "within_budgets": within}
    rows = [row(0.95, 0.99, within=False), row(0.94, 0.90, selected=True), row(0.93, 0.92),
            row(0.90, 0.91)]
    out = statistics(rows, 2)
    # 0.99 is over budget: the best the selection could have had is 0.92.
    assert out["regret"] == pytest.approx(0.02)
    assert out["seed_noise_sd"] == pytest.approx(0.02 / math.sqrt(2))  # two values 0.02 apart
    assert out["top_k"] == 1 and out["top_k_overlap"] == 1.0
    # Estimates 0.95 > 0.94 > 0.93 > 0.90 against 0.99, 0.90, 0.92, 0.91: pairs (1, 2),
    # (1, 3) reversed, the rest kept: tau = (4 - 2) / 6; the largest reversed gap 0.94 - 0.90.
    assert out["val"]["kendall_tau"] == pytest.approx(2 / 6)
    assert out["trust_gap"] == pytest.approx(0.04)
    rows[1]["selected"] = False
    assert statistics(rows, 1)["regret"] is None and statistics(rows, 1)["seed_noise_sd"] is None


def test_stratified_picks_spread_over_the_ranks_and_keep_the_selected():
    values = [0.1 * i for i in range(10)]  # index 9 ranks first
    # Ranks 0, 3, 6, 9 of the order 9, 8, ..., 0.
    assert ranking.stratified(values, 4) == [9, 6, 3, 0]
    # Index 4 is rank 5: it replaces the nearest pick, rank 6 (index 3).
    assert ranking.stratified(values, 4, keep=4) == [9, 6, 4, 0]
    # Index 8 is rank 1: it replaces rank 0, the best.
    assert ranking.stratified(values, 4, keep=8) == [8, 6, 3, 0]
    assert ranking.stratified(values, 4, keep=6) == [9, 6, 3, 0]  # already picked
    assert sorted(ranking.stratified(values, 10)) == list(range(10))
    for n in (1, 11):
        with pytest.raises(ValueError, match="n must be in 2..10"):
            ranking.stratified(values, n)


def test_the_seed_ceiling_is_the_tau_of_a_second_noisy_training():
    # Two subnets 2 sd apart: a second training keeps their order when the difference of two
    # trainings' noise (sd 2 sd) stays above -2 sd: P = Phi(1); tau = 2 Phi(1) - 1 = 0.683.
    assert ranking.seed_ceiling([0.70, 0.72], 0.01) == pytest.approx(0.6827, abs=0.04)
    # Noise far below the gaps: every pair keeps its order; far above: about no agreement.
    assert ranking.seed_ceiling([0.5, 0.6, 0.7, 0.8], 1e-5) == 1.0
    assert abs(ranking.seed_ceiling([0.5, 0.6, 0.7, 0.8], 10.0)) < 0.05
    assert ranking.seed_ceiling([0.5, 0.6], None) is None
    assert ranking.seed_ceiling([0.5, 0.6], 0.0) is None
    # statistics carries it when there is seed noise, and the verdict says it.
    rows = [{"estimate": e, "val_accuracy": v, "test_accuracy": v, "val_accuracies": [v, v + d],
             "selected": i == 0, "within_budgets": True}
            for i, (e, v, d) in enumerate(zip(range(12, 0, -1), np.linspace(0.9, 0.6, 12),
                                              [0.01, -0.01] * 6))]
    out = statistics(rows, 2)
    assert out["seed_ceiling"] == pytest.approx(
        ranking.seed_ceiling([r["val_accuracy"] for r in rows], out["seed_noise_sd"]))
    assert f"would rank them at about τ {out['seed_ceiling']:.2f}" in out["verdict"]
    assert statistics(rows, 1)["seed_ceiling"] is None


def test_the_verdict_says_whether_the_ranking_can_be_trusted():
    assert ranking.verdict(0.1, (-0.2, 0.4), 0.01, None, 12).startswith(
        "does not rank: Kendall τ 0.10, 95 % interval -0.20 to 0.40 includes 0")
    line = ranking.verdict(0.7, (0.45, 0.9), 0.012, 0.004, 12)
    assert line.startswith("ranks (Kendall τ 0.70")
    assert "above 1.20 points kept their order" in line and "below 0.40 points" in line
    assert "no pair changed order" in ranking.verdict(1.0, (1.0, 1.0), 0.0, None, 12)
    assert ranking.verdict(0.9, (0.8, 1.0), 0.0, None, 3).startswith("too few subnets")
    assert ranking.verdict(math.nan, None, 0.0, None, 12).startswith("cannot tell")


# --- hwnas rank-check end to end ------------------------------------------------------------------


def weights_mtimes(run: Path) -> dict[str, int]:
    return {str(p.relative_to(run)): p.stat().st_mtime_ns for p in run.glob("retrain/*/weights.h5")}


def test_rank_check_retrains_compares_reuses_and_reports(run_copy, capfd):
    run = steps.RunDir.open(run_copy)
    before = weights_mtimes(run_copy)
    status, out, err = cli(capfd, "rank-check", run_copy, "--subnets", 3, "--epochs", 1,
                           "--quiet")
    assert status == 0, err
    assert "(3 trained now, 0 reused)" in out
    assert "verdict: too few subnets" in out or "verdict: cannot tell" in out
    record = steps.read_rank_check(run)
    selected = json.loads((run_copy / "selected.json").read_text())["key"]
    estimates = {e.arch.key: e.metrics["accuracy"] for e in evaluations(load_read_only(run_copy))}
    rows = record["subnets"]
    assert len(rows) == 3 and record["selected"] == selected and record["seeds"] == 1
    assert [r["key"] for r in rows if r["selected"]] == [selected]
    assert [r["estimate"] for r in rows] == sorted((estimates[r["key"]] for r in rows),
                                                   reverse=True)
    assert rows[0]["estimate"] == max(estimates.values())  # the extremes are picked
    assert rows[-1]["estimate"] == min(estimates.values())
    for r in rows:  # the numbers are those of the retrainings, made with this recipe
        (where,) = r["retrain_dirs"]
        result = json.loads((run_copy / where / "result.json").read_text())
        assert result["recipe"]["epochs"] == 1 and result["seed"] == run.config.seed
        assert [r["val_accuracy"], r["test_accuracy"]] == \
            [result["val_accuracy"], result["test_accuracy"]]
    # The selected subnet's own retraining (the config's 2 epochs) stays as it was; the
    # 1-epoch recipe trains beside it.
    assert weights_mtimes(run_copy).items() >= before.items()
    assert str(retrain_dir(run_copy, selected).relative_to(run_copy)) not in \
        [w for r in rows for w in r["retrain_dirs"]]
    val = [r["val_accuracy"] for r in rows]
    tau = ranking.kendall_tau([r["estimate"] for r in rows], val)
    assert record["val"]["kendall_tau"] == (None if math.isnan(tau) else pytest.approx(tau))
    assert record["top_k"] == 1 and record["regret"] == pytest.approx(
        max(r["val_accuracy"] for r in rows if r["within_budgets"])
        - next(r["val_accuracy"] for r in rows if r["selected"]))
    assert record["seed_noise_sd"] is None
    assert (run_copy / "rank_check.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Again: nothing trained, the same numbers.
    trained = weights_mtimes(run_copy)
    status, out, _ = cli(capfd, "rank-check", run_copy, "--subnets", 3, "--epochs", 1, "--quiet")
    assert status == 0 and "(0 trained now, 3 reused)" in out
    assert weights_mtimes(run_copy) == trained
    again = steps.read_rank_check(run)
    assert again["subnets"] == rows and again["val"] == record["val"]
    # A second seed: three more retrainings of their own, seed noise measured.
    status, out, _ = cli(capfd, "rank-check", run_copy, "--subnets", 3, "--epochs", 1,
                         "--seeds", 2, "--quiet")
    assert status == 0 and "(3 trained now, 3 reused)" in out
    record = steps.read_rank_check(run)
    assert weights_mtimes(run_copy).items() >= trained.items()
    for r in record["subnets"]:
        first, second = (json.loads((run_copy / w / "arch.json").read_text())
                         for w in r["retrain_dirs"])
        assert (first["seed"], second["seed"]) == (run.config.seed, run.config.seed + 1)
        assert r["val_accuracy"] == pytest.approx(np.mean(r["val_accuracies"]))
    assert record["seed_noise_sd"] == pytest.approx(
        ranking.pooled_sd([r["val_accuracies"] for r in record["subnets"]]))
    assert record["seed_ceiling"] == pytest.approx(ranking.seed_ceiling(
        [r["val_accuracy"] for r in record["subnets"]], record["seed_noise_sd"]))
    assert f"would rank them at about tau {record['seed_ceiling']:.2f}" in out
    # The report shows it.
    assert cli(capfd, "report", run_copy)[0] == 0
    html = (run_copy / "report.html").read_text()
    section = html[html.index('<section id="rank-check">'):]
    section = section[:section.index("</section>")]
    assert "Kendall τ" in section and "data:image/png;base64" in section
    assert record["verdict"] in section.replace("&#x27;", "'")
    assert "seed noise" in section.lower() and "hwnas rank-check" not in section
    assert f"<td>{record['seed_ceiling']:.2f}</td>" in section
    assert "--subnets 3 --epochs 1 --seeds 2" in html[html.index('<section id="reproduce">'):]


def test_seed_zero_with_the_config_recipe_is_hwnas_retrains_directory(run_copy, capfd):
    run = steps.RunDir.open(run_copy)
    selected = json.loads((run_copy / "selected.json").read_text())["key"]
    plain = retrain_dir(run_copy, selected)
    recipe, seed = run_recipe(run), run.config.seed
    assert replicate_dir(run, selected, recipe, seed) == plain
    assert replicate_dir(run, selected, recipe, seed + 1) != plain
    assert replicate_dir(run, selected, run_recipe(run, 1), seed) != plain
    # The config's recipe (2 epochs): the selected subnet's retraining by 'hwnas run' is reused.
    status, out, err = cli(capfd, "rank-check", run_copy, "--subnets", 2, "--quiet")
    assert status == 0, err
    assert "(1 trained now, 1 reused)" in out
    rows = steps.read_rank_check(run)["subnets"]
    assert [str(plain.relative_to(run_copy))] in [r["retrain_dirs"] for r in rows]
    # And 'hwnas retrain' finds what the rank check trained under its own claim.
    other = next(r for r in rows if not r["selected"])
    before = weights_mtimes(run_copy)
    status, out, _ = cli(capfd, "retrain", run_copy, "--arch", other["key"], "--quiet")
    assert status == 0 and f"test accuracy {other['test_accuracy']:.4f}" in out
    assert weights_mtimes(run_copy) == before
    # A directory never mixes seeds: another seed is refused there before anything trains.
    with pytest.raises(RunDirError, match=f"seed {seed}, not {seed + 1}"):
        steps.retrain(run, Arch.from_key(selected), seed=seed + 1, where=plain, progress=False)
    assert weights_mtimes(run_copy) == before


# --- Ctrl-C ---------------------------------------------------------------------------------

ROOT = Path(hwnas.__file__).resolve().parent.parent


def test_ctrl_c_after_the_first_subnet_exits_130_and_the_same_command_resumes(run_copy):
    argv = [sys.executable, "-m", "hwnas", "rank-check", str(run_copy), "--subnets", "3",
            "--epochs", "1", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results = set(run_copy.glob("retrain/*/result.json"))
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    # A generous deadline: one epoch of one subnet takes seconds, minutes on a loaded machine.
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline and \
            set(run_copy.glob("retrain/*/result.json")) == results:
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()  # the first subnet done, the rest not
    assert set(run_copy.glob("retrain/*/result.json")) != results, "no subnet done in 600 s"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.splitlines() == ["hwnas: interrupted; run the same command again to resume"]
    assert not (run_copy / "rank_check.json").exists()
    done = len(set(run_copy.glob("retrain/*/result.json")) - results)
    assert 1 <= done < 3
    finished = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert f"({3 - done} trained now, {done} reused)" in finished.stdout
    assert len(json.loads((run_copy / "rank_check.json").read_text())["subnets"]) == 3
