"""The README stays true: every config key, command, result file and job is documented,
and jobs.sh names and gates its experiments as the README says."""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import typing
from pathlib import Path

import pytest

from hwnas.cli import build_parser
from hwnas.config import ExperimentConfig

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    """The README's text under the level-2 heading that starts with ``title``."""
    match = re.search(rf"^## {re.escape(title)}.*?$(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README has no section '{title}'"
    return match.group(1)


def config_keys(cls: type = ExperimentConfig, prefix: str = "") -> list[tuple[str, list[str]]]:
    """(dotted key, names of its own fields when it is a nested record) for every config key."""
    keys = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        inner = [a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)] or [hint]
        record = inner[0] if dataclasses.is_dataclass(inner[0]) else None
        if record is not None and not prefix:  # a section: its keys are rows of their own
            keys.extend(config_keys(record, f"{field.name}."))
        else:
            keys.append((prefix + field.name,
                         [f.name for f in dataclasses.fields(record)] if record else []))
    return keys


def test_every_config_key_is_in_the_config_reference():
    table = section("Experiment config")
    rows = {line for line in table.splitlines() if line.startswith("|")}
    missing = []
    for key, fields in config_keys():
        row = next((r for r in rows if f"`{key}`" in r), None)
        if row is None:
            missing.append(key)
            continue
        missing.extend(f"{key}.{f}" for f in fields if f not in row)
    assert not missing, f"README's config reference lacks {missing}"


def test_every_command_is_in_the_command_reference():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    table = section("Command line")
    missing = [c for c in commands if f"`hwnas {c}" not in table]
    assert not missing, f"README's command reference lacks {missing}"


def test_every_file_of_a_finished_run_is_in_the_result_files(finished_run):
    table = section("Result files")
    names = sorted({p.relative_to(finished_run).parts[0] + ("/" if p.is_dir() else "")
                    for p in finished_run.iterdir()})
    names += sorted({p.name for p in (finished_run / "retrain").rglob("*") if p.is_file()})
    missing = [n for n in names if n.rstrip("/").split("/")[-1] not in table]
    assert not missing, f"README's result files lack {missing}"


def jobs(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "jobs.sh"), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)


def test_jobs_list_names_every_experiment_and_the_readme_describes_them():
    listed = jobs("--list")
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    experiments = sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml"))
    assert set(experiments) <= set(names)
    assert {"strategies", "digits-all"} <= set(names)
    text = section("Experiments")
    assert not [n for n in names if f"`{n}`" not in text]


def test_digits_all_runs_every_learner_and_every_strategy():
    from hwnas.strategies import STRATEGIES
    plan = jobs("--dry-run", "digits-all")
    assert plan.returncode == 0, plan.stderr
    commands = [line for line in plan.stdout.splitlines() if not line.startswith("==")]
    runs = [c.split()[2] for c in commands if c.split()[1] == "run"]
    learners = set()
    for path in runs:
        text = (ROOT / path).read_text()
        learner = re.search(r"^\s*learner:\s*(\w+)", text, re.M)
        estimator = re.search(r"^\s*estimator:\s*(\w+)", text, re.M)
        order = re.search(r"^\s*order:\s*(\d)", text, re.M)
        learners.add((learner.group(1) if learner else "uniform",
                      estimator.group(1) if estimator else None, order.group(1) if order else None))
    assert {lr for lr, _, _ in learners} == {"uniform", "darts", "proxyless"}
    assert {e for lr, e, _ in learners if lr == "proxyless"} == {"binary_gate", "reinforce"}
    assert {o for lr, _, o in learners if lr == "darts"} >= {"1", "2"}
    searched = [c.split("--strategy ")[1].split()[0] for c in commands if "--strategy" in c]
    assert sorted(searched) == sorted(STRATEGIES)
    assert commands[-1].split()[1] == "compare"
    # Each job writes its own run directory.
    outs = [c.split("--out ")[1].split()[0] for c in commands if "--out " in c]
    assert len(outs) == len(set(outs))


@pytest.mark.parametrize("job,variable", [("cifar10", "HWNAS_CIFAR10"), ("mnist", "HWNAS_MNIST")])
def test_data_jobs_say_what_is_missing(job, variable, tmp_path):
    env = {variable: ""}
    result = jobs("--dry-run", job, env=env)
    assert result.returncode == 2 and not result.stdout
    assert variable in result.stderr and "nothing is downloaded" in result.stderr
    result = jobs("--dry-run", job, env={variable: str(tmp_path / "absent")})
    assert result.returncode == 2 and "no such file" in result.stderr
    result = jobs("--dry-run", job, env={variable: str(tmp_path)})
    assert result.returncode == 0 and f"experiments/{job}.yaml --out runs/{job}" in result.stdout
    config = (ROOT / "experiments" / f"{job}.yaml").read_text()
    assert f"path: ${variable}" in config


def test_an_unknown_job_is_refused():
    result = jobs("--dry-run", "digits", "nosuch")
    assert result.returncode == 2 and "nosuch" in result.stderr and not result.stdout
