"""End to end: ``hwnas run`` with DARTS and ProxylessNAS, a latency regularizer, and derivation."""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from conftest import TINY_CONFIG

from hwnas.arch import Arch
from hwnas.cli import main
from hwnas.run import RunDir, workspace
from hwnas.studies import evaluations, open_study
from hwnas.supernet.learners._base import ARCH_LOG
from hwnas.run.train import derived_arch, make_regularizer

DERIVED, ARCH_PLOT, DERIVED_PLOT = RunDir.DERIVED, RunDir.ARCH_PLOT, RunDir.DERIVED_PLOT

#: Learner sections of the tiny experiment: DARTS with a latency budget, and a
#: ProxylessNAS search of the DARTS cell space.
RUNS = {
    "darts": ({"learner": "darts", "epochs": 2, "batch_size": 16, "arch_lr": 0.05,
               "regularizer": {"objective": "latency_ms", "budget": 0.2, "weight": 2.0}},
              None),
    "proxyless-cells": ({"learner": "proxyless", "epochs": 1, "batch_size": 16,
                         "warmup_epochs": 0},
                        {"name": "darts", "cells": 3, "channels": 4, "nodes": 2,
                         "operations": ["max_k3", "skip", "sep_k3"]}),
}


def _config(tmp: Path, name: str) -> Path:
    cfg = yaml.safe_load(TINY_CONFIG)
    train, space = RUNS[name]
    cfg["train"] = train
    if space is not None:
        cfg["space"] = space
    cfg["search"]["trials"] = 4
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run_of(tmp_path_factory: pytest.TempPathFactory):
    """name -> the run directory of ``RUNS[name]``, run once per module."""
    done: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in done:
            tmp = tmp_path_factory.mktemp(name)
            run = tmp / "run"
            status, out, err = _run(["run", str(_config(tmp, name)), "--out", str(run),
                                     "--quiet"])
            assert status == 0, f"stdout:\n{out}\nstderr:\n{err}"
            done[name] = run
        return done[name]
    return get


@pytest.fixture(scope="module", params=list(RUNS))
def gradient_run(request, run_of) -> Path:
    return run_of(request.param)


@pytest.fixture(scope="module")
def regularized_run(run_of) -> Path:
    """The DARTS run with a latency budget."""
    return run_of("darts")


def test_a_gradient_run_writes_the_derived_architecture_and_its_plots(gradient_run: Path) -> None:
    for name in (DERIVED, ARCH_LOG, ARCH_PLOT, DERIVED_PLOT, "model.nnp", "selected.json"):
        assert (gradient_run / name).stat().st_size > 0, name
    record = json.loads((gradient_run / DERIVED).read_text())
    run = RunDir.open(gradient_run)
    ws = workspace(run, progress=False)
    arch = ws.space.validate(Arch(record["choices"]))
    assert arch.key == record["key"]
    # The derived Arch is what the trained architecture parameters favour (under the
    # regularizer's budget when it has one: the default form derives within it).
    reg_cfg = run.config.train.regularizer
    assert arch == (ws.supernet.derive() if reg_cfg is None
                    else make_regularizer(run, ws, reg_cfg).derive(ws.supernet))
    for edge, probs in record["probabilities"].items():
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-6)
        assert list(probs) == list(ws.supernet.arch_options()[edge])


def test_the_search_evaluates_the_derived_architecture_first(gradient_run: Path) -> None:
    run = RunDir.open(gradient_run)
    study = open_study(run.path, run.config.search.objectives, create=False)
    first = min((t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE),
                key=lambda t: t.number)
    assert first.user_attrs["key"] == derived_arch(run).key
    keys = {e.arch.key for e in evaluations(study)}
    assert derived_arch(run).key in keys


def test_the_derived_architecture_exports(gradient_run: Path, tmp_path: Path) -> None:
    run_dir = Path(shutil.copytree(gradient_run, tmp_path / "run"))
    key = derived_arch(RunDir.open(run_dir)).key
    status, out, err = _run(["export", str(run_dir), "--arch", key])
    assert status == 0, err
    info = json.loads((run_dir / "export.json").read_text())
    assert info["key"] == key


def test_the_regularized_run_logs_its_expected_latency(regularized_run: Path) -> None:
    run = RunDir.open(regularized_run)
    reg_cfg = run.config.train.regularizer
    assert reg_cfg is not None and reg_cfg.objective == "latency_ms"
    log = pd.read_csv(regularized_run / "train_log.csv")
    # Every search epoch (the fine-tuning epochs after it leave the architecture alone).
    searched = log[log["phase"] != "finetune"]
    assert "expected_latency_ms" in log and (searched["expected_latency_ms"] > 0).all()
    assert len(searched) == run.config.train.epochs
    record = json.loads((regularized_run / DERIVED).read_text())
    assert record["regularizer"]["objective"] == "latency_ms"
    # The latency regularizer prices units with the run's latency table: the
    # expected latency of a one-hot distribution is the table's prediction.
    ws = workspace(run, progress=False)
    reg = make_regularizer(run, ws, reg_cfg)
    table_arch = derived_arch(run)
    from hwnas.run.lut import load_table, make_profiler
    table = load_table(run, ws.space, make_profiler(run.config.latency))
    counts = {n: (pd.Series(opts) == table_arch[n]).to_numpy(float)
              for n, opts in ws.supernet.arch_options().items()}
    assert reg.path_cost(counts) == pytest.approx(table.predict(table_arch)[0], rel=1e-6)


def test_a_corrupt_derived_file_is_one_clear_error(gradient_run: Path, tmp_path: Path) -> None:
    run_dir = Path(shutil.copytree(gradient_run, tmp_path / "run"))
    (run_dir / DERIVED).write_text("{not json")
    (run_dir / "study.journal").unlink()
    status, out, err = _run(["search", str(run_dir), "--quiet"])
    assert status == 2
    assert DERIVED in err and "Traceback" not in err
