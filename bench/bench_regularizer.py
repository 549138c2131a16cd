"""Latency budgets on learned architectures: does the derived subnet land on the budget?

Issue 16's target, on the digits experiment with short runs: for latency
budgets at 25 %, 50 % and 75 % of the way from the cheapest to the most
expensive subnet (both measured whole), regularized DARTS and regularized
ProxylessNAS (binary gates) each derive a subnet whose *measured* latency is
0.8-1.05x the budget.

    .venv/bin/python bench/bench_regularizer.py [--epochs 2] [--form absolute] [--weight 5]

``--form additive`` gives the one-sided penalty of before (the default is the
config's default form). The latency table is built once (as ``hwnas lut``
does) and shared by every run. Every derived subnet is measured whole, gated
by the probe network like the table; the subnet each run's architecture
parameters favour most (argmax) is reported too, predicted from the table.
Writes bench/results/regularizer[_FORM].json; exits 1 when a ratio is outside
the band.
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
from hwnas.arch import Arch  # noqa: E402
from hwnas.config import RegularizerConfig  # noqa: E402
from hwnas.io import atomic_write_json  # noqa: E402
from hwnas.run.files import configure_run  # noqa: E402
from hwnas.run.records import read_derived  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LEARNERS = {
    # No fine-tuning: it leaves the derived architecture, which is what is measured, alone.
    "darts": {"learner": "darts", "order": 1, "arch_lr": 0.05, "finetune_epochs": 0},
    "proxyless": {"learner": "proxyless", "estimator": "binary_gate", "arch_lr": 0.05,
                  "finetune_epochs": 0},
}
#: Where the budgets lie between the cheapest and the most expensive subnet.
FRACTIONS = (0.25, 0.5, 0.75)
#: The measured latency of a derived subnet must be within this band of the budget.
BAND = (0.8, 1.05)


def configure(root: Path, name: str, epochs: int, learner: dict,
              regularizer: dict | None) -> steps.RunDir:
    overrides = {"name": name, "train.epochs": epochs, "train.regularizer": regularizer,
                 **{f"train.{k}": v for k, v in learner.items()}}
    return configure_run(None, str(root / name), overrides)


def most_likely(record: dict) -> Arch:
    """The subnet of a chain space that derived.json's probabilities favour."""
    probs = record["probabilities"]
    return Arch({**record["choices"],
                 **{name: max(p, key=p.get) for name, p in probs.items()}})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--form", default=RegularizerConfig("latency_ms", 1.0).form,
                        help="regularizer form (default: the config's default)")
    parser.add_argument("--weight", type=float, default=5.0, help="penalty weight")
    parser.add_argument("--learners", nargs="+", choices=list(LEARNERS), default=list(LEARNERS))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_regularizer_"))
    began = time.perf_counter()
    # One latency table for every run: build it in a first run directory.
    base = configure(root, "table", args.epochs, LEARNERS["darts"], None)
    ws = steps.workspace(base, trained=False, progress=True)
    table = steps.ensure_table(base, ws, progress=True)
    # Budgets from the extremes measured whole: a table that mispredicts the ends
    # must not put a budget out of reach.
    extremes = sorted(ws.space.extremes(), key=lambda a: table.predict(a)[0])
    measured = steps.remeasure(base, ws, extremes)
    low, high = (measured[a.key]["latency_ms"] for a in extremes)
    print(f"cheapest {low:.4f} ms, dearest {high:.4f} ms measured "
          f"({table.predict(extremes[0])[0]:.4f}, {table.predict(extremes[1])[0]:.4f} predicted)")
    rows = {}
    for name, learner in LEARNERS.items():
        if name not in args.learners:
            continue
        for fraction in FRACTIONS:
            budget = low + fraction * (high - low)
            reg = {"objective": "latency_ms", "budget": budget, "form": args.form,
                   "weight": args.weight}
            tag = f"{name}-{round(100 * fraction)}"
            run = configure(root, tag, args.epochs, learner, reg)
            shutil.copy(base / steps.RunDir.LUT, run / steps.RunDir.LUT)
            t = time.perf_counter()
            steps.train(run, progress=False)
            record = read_derived(run)
            arch, argmax = Arch(record["choices"]), most_likely(record)
            ms = steps.remeasure(run, steps.workspace(run, progress=False), [arch])[arch.key]
            rows[tag] = {"budget_ms": budget, "key": arch.key,
                         "measured_ms": ms["latency_ms"],
                         "measured_over_budget": ms["latency_ms"] / budget,
                         "predicted_over_budget": table.predict(arch)[0] / budget,
                         "expected_over_budget": record["regularizer"]["expected"] / budget,
                         "argmax_predicted_over_budget": table.predict(argmax)[0] / budget,
                         "train_seconds": round(time.perf_counter() - t, 1)}
            rows[tag]["within_band"] = BAND[0] <= rows[tag]["measured_over_budget"] <= BAND[1]
            print(tag, json.dumps(rows[tag]), flush=True)
    result = {"form": args.form, "weight": args.weight, "epochs": args.epochs,
              "cheapest_measured_ms": low, "dearest_measured_ms": high, "band": BAND,
              "runs": rows, "device": table.device,
              "seconds": round(time.perf_counter() - began, 1), "load_after": os.getloadavg()}
    RESULTS.mkdir(exist_ok=True)
    default = args.form == RegularizerConfig("latency_ms", 1.0).form
    atomic_write_json(RESULTS / f"regularizer{'' if default else '_' + args.form}.json", result)
    print(f"{'run':14s} {'measured/budget':>16s} {'argmax predicted/budget':>24s}")
    for tag, row in rows.items():
        print(f"{tag:14s} {row['measured_over_budget']:16.2f} "
              f"{row['argmax_predicted_over_budget']:24.2f}")
    print(f"{result['seconds']:.0f} s")
    shutil.rmtree(root, ignore_errors=True)
    return 0 if all(row["within_band"] for row in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
