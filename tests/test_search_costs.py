"""Search with the latency predictor: predicted costs in trials, re-measured front and selection."""
from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest
from conftest import TINY_CONFIG

from hwnas.cli import main


def _trials(run: Path) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run / "study.journal")))
    study = optuna.load_study(study_name="hwnas", storage=storage)
    return study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))


def test_search_predicts_latency_from_the_table(finished_run: Path) -> None:
    table = json.loads((finished_run / "lut.json").read_text())
    assert table  # the table was built for the run
    for trial in _trials(finished_run):
        costs = trial.user_attrs["costs"]
        assert costs["latency_source"] == "predicted"
        assert costs["latency_ms"] > 0 and costs["latency_uncertainty_ms"] >= 0
        # The latency objective is the predicted number, as the constraints are.
        assert trial.values[1] == pytest.approx(costs["latency_ms"])


def test_front_is_remeasured_whole(finished_run: Path) -> None:
    front = pd.read_csv(finished_run / "front.csv")
    assert len(front) >= 1
    assert (front["latency_ms_measured"] > 0).all()
    measured = json.loads((finished_run / "measured.json").read_text())
    for key, ms in zip(front["key"], front["latency_ms_measured"]):
        assert measured[key]["latency_ms"] == pytest.approx(ms)
        assert measured[key]["protocol"]["statistic"] == "cpu_median"


def test_selected_records_predicted_and_measured_latency(finished_run: Path) -> None:
    selected = json.loads((finished_run / "selected.json").read_text())
    assert selected["latency_ms_predicted"] == pytest.approx(selected["costs"]["latency_ms"])
    assert selected["latency_ms_measured"] > 0
    assert selected["measured_protocol"]["batch_size"] == 1


def test_selection_under_a_latency_budget_meets_it_when_remeasured(run_copy: Path,
                                                                   capsys) -> None:
    predicted = sorted(t.user_attrs["costs"]["latency_ms"] for t in _trials(run_copy))
    budget = predicted[len(predicted) // 2] * 1.02
    status = main(["select", str(run_copy), "--budget", f"latency_ms={budget}"])
    out = capsys.readouterr().out
    assert status == 0, out
    selected = json.loads((run_copy / "selected.json").read_text())
    assert selected["latency_ms_measured"] <= budget
    for key, ms in selected.get("rejected_after_measurement", {}).items():
        assert ms > budget and key != selected["key"]


def test_measure_predictor_measures_every_subnet(tmp_path: Path) -> None:
    config = tmp_path / "measure.yaml"
    config.write_text(TINY_CONFIG.replace("latency: {", "latency: {predictor: measure, ")
                      .replace("trials: 6", "trials: 3"))
    run = tmp_path / "run"
    assert main(["run", str(config), "--out", str(run), "--quiet"]) == 0
    assert not (run / "lut.json").exists()
    for trial in _trials(run):
        assert trial.user_attrs["costs"]["latency_source"] == "measured"
        assert trial.user_attrs["costs"]["latency_uncertainty_ms"] == 0
    selected = json.loads((run / "selected.json").read_text())
    assert "latency_ms_measured" not in selected  # the search's number is the measurement


def test_search_starts_from_the_extremes_of_the_space(finished_run: Path) -> None:
    trials = sorted(_trials(finished_run), key=lambda t: t.number)
    first = [t.user_attrs["arch"] for t in trials[:2]]
    assert first[0] == {"b0": "skip", "b1": "ir_k3_e2"}
    assert first[1] == {"b0": "ir_k5_e3", "b1": "ir_k5_e3"}  # kernels [3, 5], expansions [2, 3]
