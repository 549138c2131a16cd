"""Do the supernets rank subnets the way training them alone would? Kendall τ per learner.

Issue 16, item 5: on the digits-hard task, one fixed pool of subnets is trained
alone from scratch (the experiment's retrain recipe, the code of ``hwnas
retrain``), some of them twice with another seed; then for each learner a
supernet is trained (``hwnas train`` with the learner's settings) and scores
every subnet of the pool with inherited weights, as the search does (batch-norm
recalibration on ``search.bn_samples`` training examples, val accuracy). For
each learner it reports Kendall τ and Spearman ρ of estimate against
stand-alone val accuracy with bootstrap 95 % intervals, the share of the true
top quarter found, and the regret of the selection (the best stand-alone
accuracy among the pool's subnets within the experiment's budgets minus that
of the one the supernet ranks first among them), next to the seed noise sd.

    .venv/bin/python bench/bench_ranking.py [--config experiments/digits_hard.yaml]
        [--subnets 24] [--spread 12] [--twice 3] [--epochs E] [--supernet-epochs N]
        [--learners uniform sandwich darts proxyless ...] [--jobs 2] [--work DIR]

The pool: the space's cheapest and most expensive subnet and ``subnets - 2`` at
evenly spaced MACs quantiles of 300 random ones (``bench_task.pick_subnets``), and
``--spread`` more at evenly spaced MACs between those two (``bench_task.spread_subnets``):
the quantiles crowd the middle of the cost range, where subnets differ least (23 of the 24
quantile subnets on digits-hard lie within 0.05 val accuracy), while a search's front
spans the whole range. τ is reported over the whole pool and over the quantile subnets
alone.
Every retraining and every supernet is kept under ``--work`` (default
bench/results/ranking_work/, in a directory per experiment and quantile pool) and
reused when the command runs again with the same settings, so an interrupted run
resumes: a retraining under the digest of its subnet, seed and recipe, a supernet
under the digest of the whole config it trains with (the experiment with the row's
overrides), so that two rows training the same supernet share it and an edited
experiment reuses none; its estimates by subnet, so that a larger pool scores only
the subnets it adds. ``--jobs``
processes train at once (nnabla's CPU backend uses one core each). Writes
bench/results/ranking.json and ranking.md; exits 1 when the default learner (the
row that trains the experiment as it is) misses τ >= 0.6 with its interval's lower
end above 0.3, or a learner misses τ >= 0.4.
"""
from __future__ import annotations

import argparse
import concurrent.futures as futures
import hashlib
import json
import math
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("NNABLA_CONFIG_FILE_PATH",
                      str(Path(__file__).resolve().parent.parent / "hwnas/cli/nnabla.conf"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench_task import pick_subnets, spread_subnets, train_once  # noqa: E402
from hwnas import ranking  # noqa: E402
from hwnas import run as steps  # noqa: E402
from hwnas.arch import Arch  # noqa: E402
from hwnas.budgets import excess  # noqa: E402
from hwnas.config import load_config  # noqa: E402
from hwnas.data import load_dataset  # noqa: E402
from hwnas.evaluate import Evaluator, split_accuracy  # noqa: E402
from hwnas.io import atomic_write_json  # noqa: E402
from hwnas.run.files import configure_run, overridden_config  # noqa: E402
from hwnas.run.names import with_learner_defaults  # noqa: E402
from hwnas.run.rank_check import statistics  # noqa: E402
from hwnas.run.retrain import recipe_of  # noqa: E402
from hwnas.run.workspace import space_from_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

#: Each learner's settings (train.* overrides; ``space``: the whole of space.options, so
#: that a row means the same whatever the experiment sets); ``warmup`` and ``finetune`` are
#: shares of the epochs. A learner ``after`` another continues that one's finished training
#: (its fine-tuning epochs alone are trained). The rows without ``-nested`` have separate
#: weights per option (space.options empty).
_SEPARATE, _NESTED = {"space": {}}, {"space": {"weight_sharing": "nested"}}
LEARNERS: dict[str, dict] = {
    "uniform": {**_SEPARATE},
    "uniform-2x": {"epochs_factor": 2, **_SEPARATE},  # longer training: twice the epochs
    "uniform-3x": {"epochs_factor": 3, **_SEPARATE},  # no better than 2x, full recipe
    "sandwich": {"sampling": "sandwich", **_SEPARATE},
    "sandwich-distill": {"sampling": "sandwich", "distill": True, **_SEPARATE},
    "distill": {"distill": True, **_SEPARATE},
    "darts": {"learner": "darts", "order": 1, "arch_lr": 0.01, "arch_fraction": 0.5,
              "warmup": 0.2, **_SEPARATE},
    "proxyless": {"learner": "proxyless", "estimator": "binary_gate", "arch_lr": 0.01,
                  "arch_weight_decay": 0.0, "arch_fraction": 0.5, "warmup": 0.25,
                  **_SEPARATE},
    "uniform-fewshot": {"after": "uniform", "split_epochs": 3},  # per option of one choice
    "darts-finetune": {"after": "darts", "finetune": 0.25},
    "proxyless-finetune": {"after": "proxyless", "finetune": 0.25},
    # As many fine-tuning epochs as the search had: the weights relearn every path.
    "darts-finetune-long": {"after": "darts", "finetune": 1.0},
    "darts-finetune-2x": {"after": "darts", "finetune": 2.0},
}
# Nested weight sharing (space.options.weight_sharing): a block's inverted residuals slice
# the weights of its largest.
LEARNERS.update({
    "uniform-nested": {**_NESTED},
    "uniform-2x-nested": {"epochs_factor": 2, **_NESTED},
    "proxyless-nested": {**LEARNERS["proxyless"], **_NESTED},
    "darts-nested": {**LEARNERS["darts"], **_NESTED},
    "darts-finetune-2x-nested": {"after": "darts-nested", "finetune": 2.0}})
# ProxylessNAS fine-tuned as long as DARTS is by default.
LEARNERS.update({"proxyless-finetune-2x": {"after": "proxyless", "finetune": 2.0},
                 "proxyless-finetune-2x-nested": {"after": "proxyless-nested", "finetune": 2.0}})
#: Where a row's supernet trains, in its directory under the work directory.
SUPERNET = "supernet"
#: What a resumed training needs of the one it continues.
TRAINING_FILES = ("train_state.npz", "supernet.h5", "train_log.csv", "arch_log.csv")
DEFAULT_LEARNERS = ("uniform-nested", "uniform-2x-nested", "proxyless-nested",
                    "proxyless-finetune-2x-nested", "darts-nested", "darts-finetune-2x-nested",
                    "uniform", "uniform-2x", "uniform-3x", "uniform-fewshot", "sandwich",
                    "darts", "proxyless", "darts-finetune", "proxyless-finetune",
                    "proxyless-finetune-2x", "darts-finetune-long", "darts-finetune-2x")
#: The done-when of issue 16: the default learner's τ and its interval's lower end; every
#: learner's τ.
DEFAULT_TAU, DEFAULT_LOWER, EVERY_TAU = 0.6, 0.3, 0.4

_CACHE: dict = {}


def _task(config: str):
    """(config, data, space) of ``config``, loaded once per process."""
    if config not in _CACHE:
        cfg = load_config(config)
        data = load_dataset(cfg.data, seed=cfg.seed)
        _CACHE.clear()
        _CACHE[config] = (cfg, data, space_from_config(cfg, data))
    return _CACHE[config]


def standalone(config: str, choices: dict, seed: int, recipe: dict, out: str) -> dict:
    """Trains one subnet alone (unless ``out`` holds its result) and records its accuracies."""
    if Path(out).exists():
        return json.loads(Path(out).read_text())
    cfg, data, space = _task(config)
    arch = Arch(choices)
    val, seconds, subnet = train_once(space, data, arch, recipe, seed)
    record = {"key": arch.key, "seed": seed, "recipe": recipe, "val_accuracy": val,
              "test_accuracy": split_accuracy(subnet, data.test), "seconds": round(seconds, 1)}
    atomic_write_json(Path(out), record)
    return record


def supernet(config: str, name: str, overrides: dict, work: str, pool: list[dict],
             bn_samples: list[int], base: str | None = None) -> dict:
    """Trains ``name``'s supernet (resuming one begun; continuing the finished training in
    ``base`` when given) and scores every subnet of the pool with inherited weights as the
    search does, recalibrating batch norm on each of ``bn_samples`` examples; records the
    estimates, adding those of subnets new to the pool to a finished supernet's."""
    out = Path(work) / f"estimates_bn{'-'.join(map(str, bn_samples))}.json"
    record = json.loads(out.read_text()) if out.exists() else None
    missing = [c for c in pool if record is None
               or any(Arch(c).key not in record["estimates"][str(n)] for n in bn_samples)]
    if not missing:
        return record
    run = configure_run(config, str(Path(work) / SUPERNET), overrides)
    if record is None:
        if base is not None and not (run / TRAINING_FILES[0]).exists():
            for file in TRAINING_FILES:
                if (Path(base) / file).exists():
                    shutil.copy(Path(base) / file, run / file)
        steps.train(run, progress=False)
        record = {"first_trained_as": name, "overrides": overrides,
                  "estimates": {str(n): {} for n in bn_samples}, "run": str(run.path),
                  "train_seconds": _train_seconds(run.path / "train_log.csv"),
                  "score_seconds": 0.0}
    scoring = time.perf_counter()
    ws = steps.workspace(run, progress=False)
    for n in bn_samples:
        evaluator = Evaluator(space=ws.space, supernet=ws.supernet, data=ws.data,
                              latency=run.config.latency, bn_samples=n, split=ws.split)
        record["estimates"][str(n)].update(
            {Arch(c).key: evaluator.accuracy(Arch(c), ws.data.val) for c in missing})
    record["score_seconds"] = round(record["score_seconds"] + time.perf_counter() - scoring, 1)
    atomic_write_json(out, record)
    return record


def _train_seconds(log: Path) -> float:
    """The seconds the supernet's epochs took, as its train log recorded them."""
    return round(float(pd.read_csv(log)["seconds"].sum()), 1)


def overrides_of(name: str, epochs: int) -> dict:
    """The overrides of learner ``name`` for ``epochs`` epochs; a row fine-tunes only where
    its settings say so (DARTS's default would)."""
    settings = dict(LEARNERS[name])
    base = settings.pop("after", None)
    finetune = settings.pop("finetune", None)
    out = overrides_of(base, epochs) if base else {"train.finetune_epochs": 0}
    warmup = settings.pop("warmup", None)
    epochs *= settings.pop("epochs_factor", 1)
    if "space" in settings:
        out["space.options"] = dict(settings.pop("space"))
    out.update({"train.epochs": epochs, **{f"train.{k}": v for k, v in settings.items()}})
    if warmup is not None:
        out["train.warmup_epochs"] = max(1, round(warmup * epochs))
    if finetune is not None:
        out["train.finetune_epochs"] = max(1, round(finetune * epochs))
    return out


def digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def trained_as(config: str, overrides: dict) -> str:
    """The digest of what a supernet trains with: the experiment with ``overrides`` and the
    learner's defaults resolved. A row's supernet is kept under it, so that rows (or a changed
    experiment) that train the same supernet share it, and an edited experiment does not reuse
    another's."""
    return digest(with_learner_defaults(overridden_config(config, overrides)).to_dict())


def compare(estimate: list[float], val: list[list[float]], test: list[list[float]],
            within: list[bool]) -> dict:
    """``hwnas rank-check``'s statistics of the estimates against the stand-alone accuracies
    (each subnet's list over seeds), the selection being the subnet with the highest estimate
    within the budgets."""
    chosen = max((i for i, ok in enumerate(within) if ok), key=lambda i: estimate[i])
    rows = [{"estimate": e, "val_accuracy": float(np.mean(v)), "test_accuracy": float(np.mean(t)),
             "val_accuracies": v, "test_accuracies": t, "selected": i == chosen,
             "within_budgets": ok}
            for i, (e, v, t, ok) in enumerate(zip(estimate, val, test, within))]
    return {**statistics(rows, seeds=max(map(len, val))), "selected": chosen}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "experiments" / "digits_hard.yaml"))
    parser.add_argument("--subnets", type=int, default=24,
                        help="the extremes and MACs quantiles of random subnets")
    parser.add_argument("--spread", type=int, default=12,
                        help="subnets added at evenly spaced MACs between the extremes")
    parser.add_argument("--twice", type=int, default=3,
                        help="quantile subnets trained with 2 seeds")
    parser.add_argument("--epochs", type=int, default=None,
                        help="stand-alone epochs instead of the recipe's retrain.epochs")
    parser.add_argument("--supernet-epochs", type=int, default=None,
                        help="instead of the config's train.epochs")
    parser.add_argument("--learners", nargs="+", choices=list(LEARNERS),
                        default=list(DEFAULT_LEARNERS))
    parser.add_argument("--bn-samples", type=int, nargs="+", default=None,
                        help="batch-norm recalibration sizes to score with (default: the "
                             "config's search.bn_samples and 4x it); the first is reported")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--supernets-only", action="store_true",
                        help="train and score the supernets, nothing else (to run beside "
                             "another bench_ranking on the same --work)")
    parser.add_argument("--work", default=str(RESULTS / "ranking_work"))
    parser.add_argument("--out", default=str(RESULTS / "ranking"))
    args = parser.parse_args()
    if args.subnets < 4 or args.spread < 0 or not 1 <= args.twice <= args.subnets:
        parser.error("need --subnets >= 4, --spread >= 0 and 1 <= --twice <= --subnets")
    began = time.perf_counter()
    config = str(Path(args.config).resolve())
    cfg, data, space = _task(config)
    recipe = recipe_of(cfg.retrain, cfg.data.name)
    if args.epochs is not None:
        recipe["epochs"] = args.epochs
    epochs = args.supernet_epochs or cfg.train.epochs
    quantiles = pick_subnets(space, data.input_shape, args.subnets, seed=cfg.seed)
    work = Path(args.work) / digest(config, [dict(arch) for arch, _, _ in quantiles])
    work.mkdir(parents=True, exist_ok=True)
    # Second seeds: the middle quantile subnets outward (the extremes are the least
    # informative).
    mid = len(quantiles) // 2
    twice_keys = {quantiles[i][0].key for i in sorted(range(len(quantiles)),
                                                      key=lambda i: abs(i - mid))[:args.twice]}
    spread = spread_subnets(space, data.input_shape, quantiles, args.spread, seed=cfg.seed)
    picked = sorted(quantiles + spread, key=lambda row: row[2])
    pool = [dict(arch) for arch, _, _ in picked]
    twice = {i for i, (arch, _, _) in enumerate(picked) if arch.key in twice_keys}
    quantile_keys = {arch.key for arch, _, _ in quantiles}
    in_quantiles = [arch.key in quantile_keys for arch, _, _ in picked]
    print(f"{cfg.name}: {len(pool)} subnets ({len(spread)} spread over MACs), {len(twice)} "
          f"twice; recipe {recipe}; supernets "
          f"{epochs} epochs: {', '.join(args.learners)}; work {work}", flush=True)
    bn = args.bn_samples or [cfg.search.bn_samples, 4 * cfg.search.bn_samples]
    # A continuation's base trains first, unless --supernets-only: its base is then finished
    # (or being finished by another bench_ranking, which holds its run directory).
    bases = [] if args.supernets_only else [b for n in args.learners
                                            if (b := LEARNERS[n].get("after"))]
    learners = list(dict.fromkeys(bases + args.learners))
    where = {}
    for name in learners + [b for n in learners if (b := LEARNERS[n].get("after"))]:
        where[name] = work / trained_as(config, overrides_of(name, epochs))
        where[name].mkdir(exist_ok=True)
    context = multiprocessing.get_context("spawn")
    results: dict = {}
    with futures.ProcessPoolExecutor(args.jobs, mp_context=context) as executor:
        jobs = {}

        def train(name: str) -> None:
            base = LEARNERS[name].get("after")
            jobs[executor.submit(supernet, config, name, overrides_of(name, epochs),
                                 str(where[name]), pool, bn,
                                 str(where[base] / SUPERNET) if base else None)] = name

        # The supernets first (the longest tasks); a continuation once its base is done.
        for name in learners:
            if LEARNERS[name].get("after") not in learners:
                train(name)
        for i, choices in enumerate([] if args.supernets_only else pool):
            for seed in ([cfg.seed, cfg.seed + 1] if i in twice else [cfg.seed]):
                out = work / f"standalone_{digest(choices, seed, recipe)}.json"
                jobs[executor.submit(standalone, config, choices, seed, recipe,
                                     str(out))] = (i, seed)
        while jobs:
            done, _ = futures.wait(jobs, return_when=futures.FIRST_COMPLETED)
            for job in done:
                what = jobs.pop(job)
                results[what] = record = job.result()
                if isinstance(what, str):
                    print(f"supernet {what}: trained in {record['train_seconds']:.0f} s",
                          flush=True)
                    for name in learners:
                        if LEARNERS[name].get("after") == what:
                            train(name)
                else:
                    print(f"subnet {what[0]:2d} seed {what[1]}: val "
                          f"{record['val_accuracy']:.4f} ({record['seconds']:.0f} s)",
                          flush=True)
    if args.supernets_only:
        return 0
    seeds = [[cfg.seed, cfg.seed + 1] if i in twice else [cfg.seed] for i in range(len(pool))]
    replicates, tests = ([[results[(i, s)][f"{split}_accuracy"] for s in seeds[i]]
                          for i in range(len(pool))] for split in ("val", "test"))
    val = [float(np.mean(r)) for r in replicates]
    budgets = dict(cfg.budgets)
    within = [not excess({"params": p, "macs": m}, {k: v for k, v in budgets.items()
                                                    if k in ("params", "macs")})
              for _, p, m in picked]
    rows = {}
    for name in args.learners:
        scored = {n: [results[name]["estimates"][str(n)][Arch(c).key] for c in pool]
                  for n in bn}
        part = [i for i, q in enumerate(in_quantiles) if q]
        rows[name] = {**compare(scored[bn[0]], replicates, tests, within),
                      "quantile_pool": compare(*([x[i] for i in part] for x in (
                          scored[bn[0]], replicates, tests, within))),
                      "bn_samples": bn[0],
                      "kendall_tau_by_bn_samples": {
                          n: ranking.kendall_tau(e, val) for n, e in scored.items()},
                      "train_seconds": results[name]["train_seconds"],
                      "estimates": scored}
    # The stand-alone trainings' seed noise: the same in every row.
    noise = next(iter(rows.values()))["seed_noise_sd"] if rows else None
    report = {"config": config, "recipe": recipe, "supernet_epochs": epochs,
              "subnets": [{"key": Arch(c).key, "params": p, "macs": m, "val_accuracy": r,
                           "test_accuracy": t, "within_budgets": ok, "quantile": q}
                          for c, (_, p, m), r, t, ok, q in zip(pool, picked, replicates, tests,
                                                                within, in_quantiles)],
              "budgets": budgets, "learners": rows,
              "default": next((n for n in rows if where[n].name == trained_as(config, {})),
                              None),
              "spread": max(val) - min(val),
              "seed_ceiling": ranking.seed_ceiling(val, noise),
              "quantile_seed_ceiling": ranking.seed_ceiling(
                  [v for v, q in zip(val, in_quantiles) if q], noise),
              "seconds": round(time.perf_counter() - began, 1)}
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(Path(args.out + ".json"), report)
    table = table_md(report)
    Path(args.out + ".md").write_text(table)
    print(table)
    failed = [n for n, r in rows.items() if not (r["val"]["kendall_tau"] or 0) >= EVERY_TAU]
    # The experiment's own training (its learner and epochs, nothing overridden) is the default.
    default = report["default"]
    if default is not None:
        tau, low = rows[default]["val"]["kendall_tau"], rows[default]["val"]["kendall_tau_interval"]
        if not ((tau or 0) >= DEFAULT_TAU and low and low[0] > DEFAULT_LOWER):
            failed.append(f"{default} (the experiment's default)")
    print("misses: " + ", ".join(failed) if failed else "every target met")
    return 1 if failed else 0


def table_md(report: dict) -> str:
    """The README's table: one row per learner."""
    first = next(iter(report["learners"].values()))
    more = [n for n in first["kendall_tau_by_bn_samples"] if n != first["bn_samples"]]
    lines = ["| learner | Kendall τ, val (95 % CI) | τ, test | Spearman ρ, val | top-quarter "
             "overlap | regret | " + "".join(f"τ, BN on {n} | " for n in more)
             + "τ, quantile subnets alone | supernet training |",
             "|---|---|---|---|---|---|" + "---|" * len(more) + "---|---|"]
    noise = None
    for name, r in report["learners"].items():
        lo, hi = r["val"]["kendall_tau_interval"] or (math.nan, math.nan)
        label = f"**{name}** (default)" if name == report["default"] else name
        lines.append(f"| {label} | {_number(r['val']['kendall_tau'])} ({lo:.2f} … {hi:.2f}) | "
                     f"{_number(r['test']['kendall_tau'])} | "
                     f"{_number(r['val']['spearman_rho'])} | {r['top_k_overlap']:.2f} | "
                     f"{r['regret']:.4f} | "
                     + "".join(f"{_number(r['kendall_tau_by_bn_samples'][n])} | " for n in more)
                     + f"{_number(r['quantile_pool']['val']['kendall_tau'])} | "
                     + f"{r['train_seconds'] / 60:.1f} min |")
        noise = r["seed_noise_sd"]
    lines.append("")
    quantile = sum(s["quantile"] for s in report["subnets"])
    ceilings = (report.get("seed_ceiling"), report.get("quantile_seed_ceiling"))
    lines.append(f"{len(report['subnets'])} subnets ({quantile} at MACs quantiles of random "
                 f"ones, {len(report['subnets']) - quantile} spread evenly over MACs), "
                 f"{report['recipe']['epochs']} stand-alone "
                 f"epochs, supernets {report['supernet_epochs']} epochs; stand-alone val "
                 f"spread {report['spread']:.3f}, seed noise sd "
                 + ("n/a" if noise is None else f"{noise:.4f}")
                 + ("" if None in ceilings else
                    f" (a second stand-alone training would rank the pool at τ "
                    f"{ceilings[0]:.2f} against the first, the quantile subnets alone at "
                    f"{ceilings[1]:.2f})")
                 + f"; {report['seconds'] / 60:.0f} min in all.")
    return "\n".join(lines) + "\n"


def _number(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}"


if __name__ == "__main__":
    sys.exit(main())
