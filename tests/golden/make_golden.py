"""Records the golden search: a trained tiny run and the study each strategy makes on it.

    .venv/bin/python tests/golden/make_golden.py

Run once, before a change that must keep the search's behaviour (issue 14's move into
``hwnas/run/``). ``tests/test_golden_search.py`` searches a copy of ``run/`` again with
each strategy and compares the trials with ``trials.json``.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
HWNAS = Path(sys.executable).parent / "hwnas"
#: Strategies recorded: an Optuna sampler with local moves, a DEAP generation loop, plain random.
STRATEGIES = ("tpe-ls", "deap-nsga2", "random")
TRIALS = 14
#: The run files the search reads; everything else is made by the search.
KEEP = ("config.yaml", "supernet.h5", "train_state.npz", "lut.json")

CONFIG = """\
name: golden
seed: 3
data: {name: synthetic, image_size: 8, limit: 600}
space:
  stem_channels: 8
  stages: [{channels: 8, blocks: 2, stride: 1}, {channels: 16, blocks: 2, stride: 2}]
  kernels: [3, 5]
  expansions: [2, 3]
  head_channels: 16
train: {epochs: 8, batch_size: 32}
search: {trials: 14, bn_samples: 64, batch: 2}
latency: {repeats: 10, warmup: 2, max_spread: 10.0, calibration_samples: 6}
budgets: {params: 6000}
"""


def trials_of(run: Path) -> list[dict]:
    sys.path.insert(0, str(HERE.parent))
    from _golden_helpers import comparable_trials
    return comparable_trials(run)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "golden.yaml"
        config.write_text(CONFIG)
        run = Path(tmp) / "run"
        for argv in (["train", str(config), "--out", str(run)], ["lut", str(run)]):
            subprocess.run([str(HWNAS), *argv, "--quiet"], check=True)
        target = HERE / "run"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        for name in KEEP:
            shutil.copy2(run / name, target / name)
        recorded = {}
        for strategy in STRATEGIES:
            copy = Path(tmp) / strategy
            shutil.copytree(target, copy)
            subprocess.run([str(HWNAS), "search", str(copy), "--strategy", strategy,
                            "--trials", str(TRIALS), "--quiet"], check=True)
            recorded[strategy] = trials_of(copy)
        (HERE / "trials.json").write_text(json.dumps(recorded, indent=1) + "\n")


if __name__ == "__main__":
    main()
