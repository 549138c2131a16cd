"""Does the task tell architectures apart? Stand-alone accuracy spread against seed noise.

Issue 16's requirement for a task where architecture matters: over the
experiment's space, the spread (max - min) of the stand-alone val accuracy
of subnets trained from scratch is at least 5x the seed-to-seed sd, and the
val split's binomial standard error sqrt(p (1 - p) / n) is below a third of
that spread.

    .venv/bin/python bench/bench_task.py [--config experiments/digits_hard.yaml]
        [--subnets 8] [--twice 3] [--epochs E] [--train-limit N]

Subnets: the space's cheapest and most expensive, and ``subnets - 2`` more
at evenly spaced quantiles of MACs among 300 random subnets (seeded). Each
is trained from scratch with the experiment's retrain recipe (the code of
``hwnas retrain``: ``RetrainLearner``, the recipe's augmentation, cosine lr)
on the experiment's split; ``twice`` of them (cheapest, most expensive, the
middle one first) are trained again with another training seed (weights,
batch order and augmentation change, the split does not). ``--epochs`` and
``--train-limit`` (a random subset of the train split) shorten the
run; the full measurement uses neither. Writes bench/results/task_NAME.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("NNABLA_CONFIG_FILE_PATH",
                      str(Path(__file__).resolve().parent.parent / "hwnas/cli/nnabla.conf"))

import nnabla as nn  # noqa: E402
import numpy as np  # noqa: E402

from hwnas.config import TrainConfig, load_config  # noqa: E402
from hwnas.data import Split, load_dataset  # noqa: E402
from hwnas.evaluate import split_accuracy  # noqa: E402
from hwnas.hwcost import count_graph_params, count_macs, inference_output  # noqa: E402
from hwnas.io import atomic_write_json  # noqa: E402
from hwnas.run.retrain import RetrainLearner, fresh_subnet, recipe_of  # noqa: E402
from hwnas.run.workspace import space_from_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
POOL = 300  # random subnets whose MACs quantiles pick the middle ones


def costs(supernet, arch, input_shape) -> tuple[int, int]:
    """(params, MACs) of ``arch``'s standalone subnet at batch 1."""
    subnet = supernet.extract(arch)
    x = nn.Variable((1,) + tuple(input_shape))
    y = inference_output(subnet, x)
    return count_graph_params(y, inputs=[x]), count_macs(y)


def pick_subnets(space, input_shape, n: int, seed: int = 0) -> list[tuple]:
    """The cheapest, the most expensive and ``n - 2`` between, as (arch, params, macs), by MACs."""
    rng = np.random.default_rng(seed)
    pool = {a.key: a for a in (space.sample(rng) for _ in range(POOL))}
    cheapest, largest = space.extremes()
    supernet = space.supernet()
    scored = sorted(((a, *costs(supernet, a, input_shape)) for a in pool.values()),
                    key=lambda row: row[2])
    middle = [scored[round(q)] for q in np.linspace(0, len(scored) - 1, n)[1:-1]] if n > 2 else []
    ends = [(a, *costs(supernet, a, input_shape)) for a in (cheapest, largest)]
    return sorted([ends[0], *middle, ends[1]], key=lambda row: row[2])


def spread_subnets(space, input_shape, picked: list[tuple], k: int, seed: int = 0,
                   sample: int = 1000) -> list[tuple]:
    """``k`` more subnets at evenly spaced MACs between the cheapest and the most expensive of
    ``picked`` (as (arch, params, macs)): for each target, the one of ``sample`` random
    subnets (seeded, drawn apart from ``picked``'s) nearest to it that is not taken yet.

    Quantiles of random subnets crowd the middle of the cost range, where architectures
    differ least; these cover it evenly, as a front does."""
    rng = np.random.default_rng([seed, 1])
    taken = {a.key for a, _, _ in picked}
    supernet = space.supernet()
    drawn = {a.key: a for a in (space.sample(rng) for _ in range(sample)) if a.key not in taken}
    scored = [(a, *costs(supernet, a, input_shape)) for a in drawn.values()]
    low, high = min(m for *_, m in picked), max(m for *_, m in picked)
    out = []
    for target in np.linspace(low, high, k + 2)[1:-1]:
        free = [row for row in scored if row[0].key not in taken]
        if not free:
            break
        best = min(free, key=lambda row: abs(row[2] - target))
        taken.add(best[0].key)
        out.append(best)
    return out


def train_once(space, data, arch, recipe: dict, seed: int):
    """Val accuracy of ``arch`` trained from scratch with ``recipe`` and ``seed``, the
    seconds it took and the trained subnet (in inference mode)."""
    subnet = fresh_subnet(space, arch, seed)
    train = TrainConfig(epochs=recipe["epochs"], batch_size=recipe["batch_size"],
                        lr=recipe["lr"], momentum=recipe["momentum"],
                        weight_decay=recipe["weight_decay"])
    learner = RetrainLearner(space=space, supernet=subnet, data=data, config=train, seed=seed,
                             run_dir=None, progress=False, augmentation=recipe["augmentation"])
    began = time.perf_counter()
    learner.fit()
    subnet.training = False
    return split_accuracy(subnet, data.val), time.perf_counter() - began, subnet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "experiments" / "digits_hard.yaml"))
    parser.add_argument("--subnets", type=int, default=8)
    parser.add_argument("--twice", type=int, default=3,
                        help="subnets trained with a second seed (at least 1)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="instead of the recipe's retrain.epochs (a short run)")
    parser.add_argument("--train-limit", type=int, default=0,
                        help="train on this many examples of the train split (0: all)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.subnets < 2 or not 1 <= args.twice <= args.subnets:
        parser.error("need --subnets >= 2 and 1 <= --twice <= --subnets")
    cfg = load_config(args.config)
    began = time.perf_counter()
    data = load_dataset(cfg.data, seed=cfg.seed)
    load_seconds = time.perf_counter() - began
    if 0 < args.train_limit < len(data.train):
        keep = np.sort(np.random.default_rng(cfg.seed).permutation(len(data.train))
                       [:args.train_limit])
        data = dataclasses.replace(data, train=Split(data.train.x[keep], data.train.y[keep]))
    space = space_from_config(cfg, data)
    recipe = recipe_of(cfg.retrain, cfg.data.name)
    if args.epochs is not None:
        recipe["epochs"] = args.epochs
    picked = pick_subnets(space, data.input_shape, args.subnets, seed=cfg.seed)
    # The cheapest, the most expensive, then the middle ones outward, get the second seed.
    mid = len(picked) // 2
    order = [0, len(picked) - 1] + sorted(range(1, len(picked) - 1), key=lambda i: abs(i - mid))
    twice = set(order[:args.twice])
    print(f"{cfg.name}: {len(data.train)} train, {len(data.val)} val, {len(data.test)} test, "
          f"input {data.input_shape}, loaded in {load_seconds:.1f} s; recipe {recipe}", flush=True)
    rows = []
    for i, (arch, params, macs) in enumerate(picked):
        seeds = [cfg.seed, cfg.seed + 1] if i in twice else [cfg.seed]
        accuracies, seconds = [], 0.0
        for seed in seeds:
            acc, took, _ = train_once(space, data, arch, recipe, seed)
            accuracies.append(acc)
            seconds += took
        rows.append({"key": arch.key, "params": params, "macs": macs, "seeds": seeds,
                     "val_accuracy": accuracies, "seconds": round(seconds, 1)})
        print(f"{params:7d} params {macs:9d} MACs  val {' '.join(f'{a:.4f}' for a in accuracies)}"
              f"  {seconds:.0f} s  {arch.key}", flush=True)
    summary = summarise(rows, len(data.val))
    report = {"config": str(args.config), "recipe": recipe, "train_limit": args.train_limit,
              "train_examples": len(data.train), "val_examples": len(data.val),
              "subnets": rows, **summary, "seconds": round(time.perf_counter() - began, 1)}
    out = Path(args.out) if args.out else RESULTS / f"task_{cfg.name}.json"
    atomic_write_json(out, report)
    print(json.dumps(summary, indent=1))
    print(f"wrote {out} in {report['seconds']:.0f} s")
    return 0


def summarise(rows: list[dict], n_val: int) -> dict:
    """Spread of the per-subnet mean accuracy, pooled seed sd, their ratio, the val split's SE."""
    means = [statistics.fmean(r["val_accuracy"]) for r in rows]
    pairs = [r["val_accuracy"] for r in rows if len(r["val_accuracy"]) > 1]
    # The pooled within-subnet variance: for a pair (a, b) it is (a - b)^2 / 2.
    seed_sd = float(np.sqrt(np.mean([statistics.variance(p) for p in pairs])))
    spread = max(means) - min(means)
    p = statistics.fmean(means)
    se = float(np.sqrt(p * (1 - p) / n_val))
    return {"spread": round(spread, 4), "seed_sd": round(seed_sd, 4),
            "ratio": round(spread / seed_sd, 2) if seed_sd > 0 else None,
            "val_se": round(se, 4), "se_over_spread": round(se / spread, 3) if spread else None,
            "mean_val_accuracy": round(p, 4)}


if __name__ == "__main__":
    sys.exit(main())
