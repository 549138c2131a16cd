"""The commands: run (the whole pipeline) and its steps train, search, front, select, export."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from optuna.trial import TrialState

from hwnas import run as steps
from hwnas.arch import Arch
from hwnas.cli._common import add_quiet, describe, print_front
from hwnas.cli._retrain import print_retrained
from hwnas.deploy import FORMATS
from hwnas.errors import HwnasError
from hwnas.budgets import parse_budgets
from hwnas.strategies import STRATEGIES, strategy_class
from hwnas.studies import masked


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the whole pipeline: train, search, front, select, retrain, "
                       "export, report",
                       description="Train the supernet, search it, write the front, select "
                       "the subnet within the config's budgets, retrain it from scratch, "
                       "export it (.nnp and ONNX, each checked on the test split) and write "
                       "report.html. Resumes a run directory that holds the same experiment.")
    p.add_argument("config", nargs="?", help="experiment YAML (default: experiments/digits.yaml)")
    p.add_argument("--out", help="run directory (default: runs/NAME)")
    _budget_arg(p, "budget for the final selection only, e.g. latency_ms=1.5 (repeatable; "
                "default: the config's budgets, which also mark the front and the trials)")
    _parallel_args(p)
    add_quiet(p)
    p.set_defaults(func=cmd_run, writes="exclusive")

    p = sub.add_parser("train", help="train (or resume training) the supernet",
                       description="Train the supernet of an experiment with the config's "
                       "learner (uniform path sampling, DARTS or ProxylessNAS) and regularizer; "
                       "writes supernet.h5, train_state.npz and train_log.csv, and for DARTS "
                       "and ProxylessNAS arch_log.csv, derived.json, arch_params.png and "
                       "derived.png.")
    p.add_argument("config", nargs="?", help="experiment YAML, or an existing run directory")
    p.add_argument("--out", help="run directory (default: runs/NAME)")
    add_quiet(p)
    p.set_defaults(func=cmd_train, writes="exclusive")

    p = sub.add_parser("search", help="search the trained supernet (resumes)",
                       description="Evaluate subnets proposed by the strategy until the study "
                       "holds search.trials evaluations; each is one Optuna trial in "
                       "study.journal.")
    p.add_argument("run", help="run directory")
    p.add_argument("--trials", type=int,
                   help="distinct subnets to evaluate in total (default: the config's)")
    p.add_argument("--strategy", metavar="NAME",
                   help="search strategy instead of the config's: " + _strategy_names()
                   + ", or MODULE:CLASS, ./FILE.py:CLASS")
    _parallel_args(p)
    add_quiet(p)
    p.set_defaults(func=cmd_search, writes="shared-on-database")

    p = sub.add_parser("study", help="create the run's study in a database for workers",
                       description="Create (or reopen) the run's study in an Optuna RDB "
                       "storage such as PostgreSQL and record it in storage.json; then start "
                       "'hwnas worker RUN' on every machine that reaches the database and reads "
                       "the run directory. Prints the study's trial counts.")
    p.add_argument("run", help="run directory (its supernet trained)")
    p.add_argument("--storage", required=True, metavar="URL",
                   help="e.g. postgresql+psycopg2://user@db-host:5432/hwnas")
    p.set_defaults(func=cmd_study, writes="shared-on-database")

    p = sub.add_parser("worker", help="evaluate subnets for a study in a database",
                       description="One worker of a study created with 'hwnas study': asks its "
                       "own sampler (its own --seed) for subnets and evaluates them until the "
                       "study holds search.trials distinct ones. A heartbeat keeps its running "
                       "trial alive; the trial of a worker that died is retried by another.")
    p.add_argument("run", help="run directory (the same files on every machine)")
    p.add_argument("--storage", metavar="URL",
                   help="the database, when this copy of the run directory does not record it")
    p.add_argument("--seed", type=int, help="this worker's seed, for a reproducible worker "
                   "(default: the config's seed + 1 + the process id)")
    p.add_argument("--strategy", metavar="NAME", help="an Optuna strategy instead of the config's")
    add_quiet(p)
    p.set_defaults(func=cmd_worker, writes="shared")

    p = sub.add_parser("compare", help="compare the searches of several runs",
                       description="Lay runs (strategies, seeds) side by side: hypervolume "
                       "with one shared reference point, the share of the best front known, "
                       "evaluations to reach 95% of it. Writes compare.csv and compare.png.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    p.add_argument("--out", default="runs/compare",
                   help="where compare.csv and compare.png go (default: runs/compare)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("front", help="write and print the Pareto front",
                       description="Write front.csv and front.png from the study and print "
                       "the feasible non-dominated subnets.")
    p.add_argument("run", help="run directory")
    p.set_defaults(func=cmd_front, writes="exclusive")

    p = sub.add_parser("select", help="choose the most accurate subnet within budgets",
                       description="Choose the most accurate evaluated subnet within every "
                       "budget and write selected.json; says which subnet comes nearest when "
                       "none fits.")
    p.add_argument("run", help="run directory")
    _budget_arg(p, "hard upper limit, e.g. latency_ms=1.5 or params=20000 "
                "(repeatable; default: the config's budgets)")
    p.set_defaults(func=cmd_select, writes="exclusive")

    p = sub.add_parser("export", help="export the selected subnet as model.nnp and model.onnx",
                       description="Write the selected subnet (or --arch KEY) as model.nnp "
                       "(nnabla) and model.onnx (onnxruntime), run each file in its runtime "
                       "on the test split and check its logits against the in-process subnet "
                       "(within 1e-4); writes export.json.")
    p.add_argument("run", help="run directory")
    p.add_argument("--arch", help="an Arch key to export instead of selected.json's")
    p.add_argument("--format", action="append", choices=list(FORMATS), dest="formats",
                   help="a format to write (repeatable; default: nnp and onnx)")
    p.set_defaults(func=cmd_export, writes="exclusive")


def _budget_arg(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--budget", action="append", default=None, metavar="OBJECTIVE=VALUE",
                   help=text)


def _parallel_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="evaluate each batch of search.batch subnets with N local processes "
                   "(default 1; results do not depend on N)")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="evaluate on a Dask cluster, e.g. tcp://10.0.0.5:8786 (the run "
                   "directory must be at the same path on its workers)")


def _parallel(args: argparse.Namespace) -> dict:
    if args.workers < 1:
        raise HwnasError(f"--workers must be >= 1, got {args.workers}")
    if args.dask is not None and args.workers != 1:
        raise HwnasError("give either --workers or --dask, not both")
    return {"workers": args.workers, "dask": args.dask}


def _budgets(args: argparse.Namespace) -> dict[str, float] | None:
    if args.budget is None:
        return None
    try:
        return parse_budgets(args.budget)
    except ValueError as exc:
        raise HwnasError(f"--budget: {exc}") from None


def _run_for(config: str | None, out: str | None, writer: steps.Writer) -> steps.RunDir:
    if config is not None and Path(config).is_dir():
        if out is not None:
            raise HwnasError("give either a run directory or a config with --out, not both")
        return steps.RunDir.open(config, writer=writer)
    return steps.configure_run(config, out, writer=writer)


def cmd_train(args: argparse.Namespace) -> None:
    run = _run_for(args.config, args.out, args.writer)
    history = steps.train(run, progress=not args.quiet)
    last = history[-1] if history else None
    if last:
        print(f"trained {last['epoch']} epochs: loss {last['loss']:.4f}, "
              f"train accuracy {last['train_accuracy']:.4f} -> {run / steps.RunDir.WEIGHTS}"
              + (f" (the few-shot copies: {run / steps.RunDir.SPLIT_WEIGHTS})"
                 if run.config.train.split_epochs else ""))


def cmd_search(args: argparse.Namespace) -> None:
    run = steps.RunDir.open(args.run, writer=args.writer)
    if args.trials is not None and args.trials < 1:
        raise HwnasError(f"--trials must be >= 1, got {args.trials}")
    parallel = _parallel(args)
    if args.strategy is not None:
        try:
            strategy_class(args.strategy)  # a name, or a spec such as ./mine.py:Mine
        except ValueError as exc:
            raise HwnasError(f"--strategy: {exc}") from None
    evs = steps.search(run, progress=not args.quiet, strategy=args.strategy,
                       trials=args.trials, **parallel)
    failed = steps.failed_subnets_of(run)
    print(f"{len({e.arch.key for e in evs})} subnets evaluated ({len(evs)} trials), "
          f"{len(failed)} failed, in {run / steps.RunDir.JOURNAL}")
    _print_caveat(run)


def _print_caveat(run: steps.RunDir) -> None:
    caveat = steps.ranking_caveat(run.config.train)
    if caveat:
        print(f"note: {caveat}")


def _strategies() -> dict:
    return STRATEGIES


def _strategy_names() -> str:
    return ", ".join(_strategies())


def cmd_study(args: argparse.Namespace) -> None:
    run = steps.RunDir.open(args.run, writer=args.writer)
    study, created = steps.create_study(run, args.storage)
    counts = {state.name.lower(): 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name.lower()] += 1
    print(f"{'created' if created else 'reopened'} study {study.study_name!r} in "
          f"{masked(args.storage)} (recorded in {run / steps.RunDir.STORAGE})")
    print("trials: " + (", ".join(f"{n} {state}" for state, n in counts.items() if n) or "none"))
    print(f"start workers with: hwnas worker {run.path} --seed N")


def cmd_worker(args: argparse.Namespace) -> None:
    run = steps.RunDir.open(args.run, writer=args.writer)
    # Each worker needs its own seed, or they would all propose the same subnets.
    seed = args.seed if args.seed is not None else run.config.seed + 1 + os.getpid()
    n = steps.run_worker(run, url=args.storage, seed=seed, strategy=args.strategy,
                progress=not args.quiet)
    print(f"this worker (seed {seed}) evaluated {n} subnets; the study holds "
          f"{run.config.search.trials}")


def cmd_compare(args: argparse.Namespace) -> None:
    table = steps.compare(args.runs, args.out)
    shown = table.drop(columns=["hypervolume"])
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {Path(args.out) / 'compare.csv'} and {Path(args.out) / 'compare.png'}")


def cmd_front(args: argparse.Namespace) -> None:
    run = steps.RunDir.open(args.run, writer=args.writer)
    print_front(steps.front(run))
    print(f"wrote {run / steps.RunDir.FRONT} and {run / steps.RunDir.FRONT_PLOT}")


def cmd_select(args: argparse.Namespace) -> None:
    run = steps.RunDir.open(args.run, writer=args.writer)
    selection = steps.select(run, _budgets(args))
    print(f"selected (budgets {selection.budgets or 'none'}):")
    print(describe(selection.chosen))
    _print_measured(run)
    print(f"wrote {run / steps.RunDir.SELECTED}")


def cmd_export(args: argparse.Namespace) -> None:
    run = steps.RunDir.open(args.run, writer=args.writer)
    arch = None
    if args.arch is not None:
        try:
            arch = Arch.from_key(args.arch)
        except ValueError as exc:
            raise HwnasError(f"--arch: {exc}") from None
    formats = tuple(args.formats or FORMATS)
    info = steps.export(run, arch, formats=formats)
    print(f"exported {info['key']} ({info['weights']} weights); each file run without hwnas "
          f"on {info['test_examples']} test examples:")
    _print_exported(run, info, formats)


def _print_exported(run: steps.RunDir, info: dict, formats: tuple[str, ...]) -> None:
    for name in formats:
        entry = info["formats"][name]
        print(f"  {run / entry['model']} ({entry['runtime']}): test accuracy "
              f"{entry['test_accuracy']:.4f}, max |difference| to the in-process subnet "
              f"{entry['max_abs_diff']:.2e}")


def cmd_run(args: argparse.Namespace) -> None:
    budgets = _budgets(args)  # before anything is written
    parallel = _parallel(args)
    run = steps.configure_run(args.config, args.out, writer=args.writer)
    print(f"run directory: {run.path}")
    progress = not args.quiet
    steps.train(run, progress=progress)
    ws = steps.workspace(run, progress=progress)
    steps.search(run, progress=progress, ws=ws, **parallel)
    print_front(steps.front(run, ws=ws))
    _print_caveat(run)
    selection = steps.select(run, budgets, ws=ws)
    print(f"\nselected (budgets {selection.budgets or 'none'}):")
    print(describe(selection.chosen))
    _print_measured(run)
    print()
    print_retrained(run, steps.retrain(run, selection.chosen.arch, progress=progress, ws=ws))
    info = steps.export(run, ws=ws)
    print("\nexported (each file run without hwnas on the test split):")
    _print_exported(run, info, tuple(FORMATS))
    print(f"report: {steps.write_report(run)}")


def _print_measured(run: steps.RunDir) -> None:
    record = steps.read_selected(run)
    if "latency_ms_measured" in record:
        print(f"  latency predicted {record['latency_ms_predicted']:.4f} ms, measured whole "
              f"{record['latency_ms_measured']:.4f} ms")
    for key, ms in record.get("rejected_after_measurement", {}).items():
        print(f"  passed over {key}: measured {ms:.4f} ms breaks the latency budget")
