"""examples/custom_space end to end: ``hwnas run`` through ``space.name: ./vgg_space.py:VggSpace``,
``hwnas check-space`` on it, and broken copies of it that the checks name."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from _cli_helpers import cli

from hwnas.run import RunDir, worker_evaluator
from hwnas.supernet import SPACES
from hwnas.testing import SPACE_CHECKS, check_space

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "custom_space"

#: The example's config made tiny (the space's options and the schedule), as the test runs it.
TINY = {
    "data": {"name": "synthetic", "image_size": 8},
    "space": {"options": {"widths": [4, 8], "blocks": 2, "kernels": [3],
                          "width_ratios": [0.5, 1.0], "head_channels": 8}},
    "train": {"epochs": 1, "batch_size": 32},
    "search": {"trials": 6, "bn_samples": 64},
    "latency": {"repeats": 10, "warmup": 2, "max_spread": 10.0},
    "retrain": {"epochs": 2},
    "budgets": {"params": 100000},
}


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the example with its config made tiny (``tiny.yaml`` beside it)."""
    where = tmp_path / "example"
    where.mkdir()
    shutil.copy(EXAMPLE / "vgg_space.py", where)
    config = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    assert config["space"]["name"] == "./vgg_space.py:VggSpace"
    for section, values in TINY.items():
        merged = {**config.get(section, {}), **values}
        if section == "space":
            merged["options"] = {**config["space"]["options"], **values["options"]}
        config[section] = merged
    (where / "tiny.yaml").write_text(yaml.safe_dump(config))
    return where


def test_the_example_runs_end_to_end(example: Path, tmp_path: Path, capfd, monkeypatch) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the space's file is found from the config's directory
    status, out, err = cli(capfd, "run", example / "tiny.yaml", "--out", "runs/vgg", "--quiet")
    assert status == 0, err
    run = RunDir.open(elsewhere / "runs" / "vgg")
    assert run.config.space.name == f"{example / 'vgg_space.py'}:VggSpace"
    for name in (RunDir.WEIGHTS, RunDir.LUT, RunDir.JOURNAL, RunDir.FRONT, RunDir.SELECTED,
                 RunDir.REPORT, *RunDir.MODELS):
        assert (run / name).exists(), name
    selected = yaml.safe_load((run / RunDir.SELECTED).read_text())
    assert set(selected["arch"]) == {"s0b0", "s0b1", "pool1", "s1b0", "s1b1"}
    assert not (example / "__pycache__").exists()
    # A worker (--workers, Dask, hwnas worker) reopens the run from wherever it starts.
    monkeypatch.chdir(tmp_path)
    evaluator = worker_evaluator(str(elsewhere / "runs" / "vgg"))
    assert type(evaluator.space).__name__ == "VggSpace"
    assert evaluator.space.widths == [4, 8] and evaluator.space.choices["s0b0"][0] == "conv_k3_w2"
    cheapest = evaluator.space.extremes()[0]
    assert evaluator(cheapest).arch == cheapest
    # ... and so do worker processes (spawned: nothing of this process is inherited).
    status, out, err = cli(capfd, "search", run.path, "--workers", "2", "--trials", "8",
                           "--quiet")
    assert status == 0, err
    assert out.startswith("8 subnets evaluated"), out
    # check-space on the same config: every check passes.
    status, out, err = cli(capfd, "check-space", "--config", example / "tiny.yaml")
    assert status == 0, out + err
    lines = out.splitlines()
    assert [line.split("  ", 1) for line in lines[:-1]] == [["pass", n] for n in SPACE_CHECKS]
    assert lines[-1] == f"{len(SPACE_CHECKS)} of {len(SPACE_CHECKS)} checks passed"


#: Broken copies of the example: each subclass breaks one part of the contract for one kind
#: of option, which the checks must name.
BROKEN = '''

class UnitsMissAConv(VggSpace):
    """The units of grouped options are built as plain convolutions: they count more MACs."""

    def _unit(self, name, option):
        unit = super()._unit(name, option)
        if unit is None or not option.startswith("grp"):
            return unit
        cin, cout = self.layers[name]
        return Unit(unit.key, unit.input_shape,
                    lambda: build_option(option.replace("grp", "conv"), cin, cout))


class DropsAWeight(VggSpace):
    """extract forgets the trained weights of dilated options in s1b1 (they stay fresh)."""

    def supernet(self):
        return DroppingSupernet(self, self.choices)


class DroppingSupernet(VggSupernet):
    def extract(self, arch):
        subnet = super().extract(arch)
        if arch["s1b1"].startswith("dil"):
            for key, param in subnet.net_parameters().items():
                if key.startswith("@s1b1/") and key.endswith("conv/W"):
                    param.d = param.d * 0.5
        return subnet
'''

SMALL = dict(input_shape=(1, 8, 8), n_classes=4, widths=[4, 8], kernels=[3],
             width_ratios=[1.0], head_channels=8)


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    path = tmp_path / "broken_vgg.py"
    path.write_text((EXAMPLE / "vgg_space.py").read_text() + BROKEN)
    return path


def test_checks_name_the_choice_and_option_a_broken_space_breaks(broken: Path) -> None:
    units = SPACES.resolve(f"{broken}:UnitsMissAConv")(**SMALL)
    result, = check_space(units, checks=["units and counters"])
    assert not result.ok
    # Every grouped option, in every block, and nothing else.
    grouped = {(c, o) for c, options in units.choices.items() for o in options
               if o.startswith("grp")}
    named = {(f.split("'")[1], f.split("'")[3]) for f in result.failures}
    assert named == grouped
    assert all("MACs" in f for f in result.failures)
    dropping = SPACES.resolve(f"{broken}:DropsAWeight")(**SMALL)
    results = check_space(dropping, checks=["extract agrees with set_active",
                                            "sample and validate"])
    assert [r.ok for r in results] == [False, True]
    assert results[0].failures == ("choice 's1b1', option 'dil_k3_w8': the extracted subnet "
                                   f"computes something else than set_active "
                                   f"{results[0].failures[0].split('set_active ')[1]}",)


def test_check_space_command_fails_on_a_broken_copy(broken: Path, capfd) -> None:
    options = {k: v for k, v in SMALL.items() if k not in ("input_shape", "n_classes")}
    (broken.parent / "broken.yaml").write_text(yaml.safe_dump(
        {"space": {"name": "./broken_vgg.py:UnitsMissAConv", "options": options}}))
    status, out, err = cli(capfd, "check-space", "--config", broken.parent / "broken.yaml",
                           "--input-shape", "1,8,8", "--classes", "4")
    assert status == 1, err
    lines = out.splitlines()
    statuses = {line[6:].split(":")[0]: line[:4] for line in lines[:-1]}
    assert statuses == {n: "FAIL" if n == "units and counters" else "pass" for n in SPACE_CHECKS}
    failed = next(line for line in lines if line.startswith("FAIL"))
    assert "choice 's0b0', option 'grp_k3_w4'" in failed and "MACs" in failed, failed
    assert lines[-1] == f"{len(SPACE_CHECKS) - 1} of {len(SPACE_CHECKS)} checks passed"


@pytest.mark.parametrize("space", [{"name": "mobilenet"},
                                   {"name": "darts", "cells": 2, "channels": 4, "nodes": 2}],
                         ids=["mobilenet", "darts"])
def test_check_space_command_passes_on_the_built_in_spaces(space, tmp_path: Path, capfd) -> None:
    (tmp_path / "space.yaml").write_text(yaml.safe_dump({"space": space}))
    status, out, err = cli(capfd, "check-space", "--config", tmp_path / "space.yaml",
                           "--input-shape", "1,8,8", "--classes", "4")
    assert status == 0, err
    lines = out.splitlines()
    assert [line[6:] for line in lines[:-1]] == list(SPACE_CHECKS)
    assert all(line.startswith("pass") for line in lines[:-1]), out
    assert lines[-1] == f"{len(SPACE_CHECKS)} of {len(SPACE_CHECKS)} checks passed"
