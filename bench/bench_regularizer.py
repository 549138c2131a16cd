"""Latency budgets on learned architectures: DARTS and ProxylessNAS, with and without a regularizer.

Issue 4's target, on the digits experiment with short runs: with a tight
latency budget, a regularized DARTS run and a regularized ProxylessNAS run
each derive an architecture whose *measured* latency is at most 1.1x the
budget and lower than the same learner's unregularized result.

    .venv/bin/python bench/bench_regularizer.py [--epochs 2] [--slack 1.25]

The latency table is built once (as ``hwnas lut`` does) and shared by every
run; the budget is ``slack`` times the measured latency of the space's
cheapest subnet. Every derived subnet is measured whole, gated by the probe
network like the table. Writes bench/results/regularizer.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NNABLA_CONFIG_FILE_PATH",
                      str(Path(__file__).resolve().parent.parent / "hwnas/cli/nnabla.conf"))

from hwnas import run as steps  # noqa: E402
from hwnas.run.files import configure_run  # noqa: E402
from hwnas.io import atomic_write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LEARNERS = {
    "darts": {"learner": "darts", "order": 1, "arch_lr": 0.05},
    "proxyless": {"learner": "proxyless", "estimator": "binary_gate", "arch_lr": 0.05},
}


def configure(root: Path, name: str, epochs: int, learner: dict,
              regularizer: dict | None) -> steps.RunDir:
    overrides = {"name": name, "train.epochs": epochs, "train.regularizer": regularizer,
                 **{f"train.{k}": v for k, v in learner.items()}}
    return configure_run(None, str(root / name), overrides)


def measure(run: steps.RunDir, arch) -> float:
    ws = steps.workspace(run, progress=False)
    return steps.remeasure(run, ws, [arch])[arch.key]["latency_ms"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--slack", type=float, default=1.25,
                        help="budget = slack x the cheapest subnet's measured latency")
    parser.add_argument("--weight", type=float, default=5.0, help="additive penalty weight")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_regularizer_"))
    began = time.perf_counter()
    # One latency table for every run: build it in a first run directory.
    base = configure(root, "table", args.epochs, LEARNERS["darts"], None)
    ws = steps.workspace(base, trained=False, progress=True)
    table = steps.ensure_table(base, ws, progress=True)
    # The budget is set from the cheapest subnet measured whole: a table that
    # mispredicts the low end must not make the budget unreachable.
    low = min(ws.space.extremes(), key=lambda a: table.predict(a)[0])
    cheapest = steps.remeasure(base, ws, [low])[low.key]["latency_ms"]
    budget = args.slack * cheapest
    print(f"cheapest subnet {cheapest:.4f} ms measured "
          f"({table.predict(low)[0]:.4f} predicted); budget {budget:.4f} ms")
    rows = {}
    for name, learner in LEARNERS.items():
        for regularized in (False, True):
            reg = ({"objective": "latency_ms", "budget": budget, "form": "additive",
                    "weight": args.weight} if regularized else None)
            tag = f"{name}-{'reg' if regularized else 'plain'}"
            run = configure(root, tag, args.epochs, learner, reg)
            shutil.copy(base / steps.RunDir.LUT, run / steps.RunDir.LUT)
            t = time.perf_counter()
            steps.train(run, progress=False)
            arch = steps.derived_arch(run)
            rows[tag] = {"key": arch.key, "predicted_ms": table.predict(arch)[0],
                         "measured_ms": measure(run, arch),
                         "train_seconds": round(time.perf_counter() - t, 1)}
            print(tag, json.dumps(rows[tag]))
    verdict = {}
    for name in LEARNERS:
        plain, reg = rows[f"{name}-plain"], rows[f"{name}-reg"]
        verdict[name] = {
            "measured_over_budget": reg["measured_ms"] / budget,
            "within_1.1x_budget": reg["measured_ms"] <= 1.1 * budget,
            "faster_than_unregularized": reg["measured_ms"] < plain["measured_ms"]}
    result = {"budget_ms": budget, "cheapest_measured_ms": cheapest, "slack": args.slack,
              "epochs": args.epochs, "weight": args.weight, "runs": rows, "verdict": verdict,
              "device": table.device, "seconds": round(time.perf_counter() - began, 1),
              "load_after": os.getloadavg()}
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "regularizer.json", result)
    print(json.dumps(verdict, indent=1))
    shutil.rmtree(root, ignore_errors=True)
    ok = all(v["within_1.1x_budget"] and v["faster_than_unregularized"] for v in verdict.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
