"""The retrain and rank-check commands: subnets trained from scratch with the config's recipe."""
from __future__ import annotations

import argparse

from hwnas import run as steps
from hwnas.cli._common import add_quiet
from hwnas.errors import HwnasError
from hwnas.run.rank_check import DEFAULT_SUBNETS
from hwnas.supernet import Arch


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retrain", help="train the selected subnet from scratch (resumes)",
                       description="Train the selected subnet (or --arch / --arch-json) from "
                       "freshly initialised weights with the config's 'retrain' recipe "
                       "(epochs, cosine learning rate, weight decay, augmentation), "
                       "checkpointing every epoch in RUN/retrain/; rerunning resumes. Reports "
                       "test accuracy beside the supernet's estimate with inherited weights. "
                       "'hwnas export' then exports the retrained weights.")
    p.add_argument("run", help="run directory (its supernet trained)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--arch", metavar="KEY", help="an Arch key instead of selected.json's")
    which.add_argument("--arch-json", metavar="FILE",
                       help="a JSON file with the choices (or a record with an 'arch' entry)")
    p.add_argument("--epochs", type=int, metavar="N",
                   help="epochs instead of the config's retrain.epochs")
    add_quiet(p)
    p.set_defaults(func=cmd_retrain, writes="exclusive")

    p = sub.add_parser("rank-check", help="does the supernet rank subnets as training them "
                       "alone would? (resumes)",
                       description="Pick N subnets of the study spread evenly over the ranks of "
                       "their estimates (validation accuracy with inherited weights; the "
                       "selected subnet always among them), train each from scratch with the "
                       "'retrain' recipe (S seeds each; finished retrainings in RUN/retrain/ "
                       "are reused, rerunning resumes), and compare: Kendall tau and Spearman "
                       "rho with bootstrap 95 % intervals, top-k overlap, the selection's "
                       "regret, seed noise. Writes rank_check.json and rank_check.png; "
                       "'hwnas report' shows them.")
    p.add_argument("run", help="run directory (searched)")
    p.add_argument("--subnets", type=int, metavar="N",
                   help=f"subnets to train (default {DEFAULT_SUBNETS}, at most the "
                   "distinct subnets the study evaluated)")
    p.add_argument("--epochs", type=int, metavar="E",
                   help="epochs instead of the config's retrain.epochs")
    p.add_argument("--seeds", type=int, metavar="S", default=1,
                   help="trainings of each subnet with different seeds (default 1)")
    add_quiet(p)
    p.set_defaults(func=cmd_rank_check, writes="exclusive")


def chosen_arch(args: argparse.Namespace, run: steps.RunDir) -> Arch:
    """The subnet a command acts on: --arch, --arch-json, or selected.json's."""
    if getattr(args, "arch_json", None) is not None:
        return steps.read_arch_json(args.arch_json)
    if args.arch is not None:
        try:
            return Arch.from_key(args.arch)
        except ValueError as exc:
            raise HwnasError(f"--arch: {exc}") from None
    return steps.selected_arch(run)


def cmd_retrain(args: argparse.Namespace) -> None:
    if args.epochs is not None and args.epochs < 1:
        raise HwnasError(f"--epochs must be >= 1, got {args.epochs}")
    run = steps.RunDir.open(args.run, writer=args.writer)
    arch = chosen_arch(args, run)
    print_retrained(run, steps.retrain(run, arch, epochs=args.epochs, progress=not args.quiet))


def print_retrained(run: steps.RunDir, result: dict) -> None:
    """What a finished retraining prints."""
    print(f"retrained {result['key']} for {result['epochs']} epochs "
          f"({result['recipe']['augmentation']} augmentation, {result['seconds']:.0f} s)")
    print(f"  test accuracy {result['test_accuracy']:.4f} on {result['test_examples']} examples; "
          f"the supernet's estimate with inherited weights: test "
          f"{result['supernet_test_accuracy']:.4f}, val {result['supernet_val_accuracy']:.4f}")
    weights = run / result["weights"]
    print(f"wrote {weights} and {weights.parent / steps.RunDir.RETRAIN_RESULT}")


def cmd_rank_check(args: argparse.Namespace) -> None:
    run = steps.RunDir.open(args.run, writer=args.writer)
    print_rank_check(run, steps.rank_check(run, subnets=args.subnets, epochs=args.epochs,
                                           seeds=args.seeds, progress=not args.quiet))


def print_rank_check(run: steps.RunDir, record: dict) -> None:
    """The short table a finished rank check prints."""
    rows = record["subnets"]
    epochs, seeds = record["recipe"]["epochs"], record["seeds"]
    print(f"rank check: {len(rows)} subnets trained alone for {epochs} "
          f"epoch{'s' if epochs != 1 else ''}, {seeds} seed{'s' if seeds != 1 else ''} each "
          f"({record['trained']} trained now, {record['reused']} reused)")
    print(f"  {'estimate':>8}  {'val':>6}  {'test':>6}  subnet")
    for r in rows:
        print(f"  {r['estimate']:8.4f}  {r['val_accuracy']:6.4f}  {r['test_accuracy']:6.4f}  "
              f"{r['key']}{'  (selected)' if r['selected'] else ''}"
              f"{'' if r.get('within_budgets', True) else '  (over budget)'}")
    for split in ("val", "test"):
        s = record[split]
        print(f"  {split:>4}: Kendall tau "
              f"{_with_interval(s['kendall_tau'], s['kendall_tau_interval'])}, Spearman rho "
              f"{_with_interval(s['spearman_rho'], s['spearman_rho_interval'])}")
    extra = [f"top-{record['top_k']} overlap {record['top_k_overlap']:.2f}"]
    if record["regret"] is not None:
        extra.append(f"regret of the selection {100 * record['regret']:.2f} points "
                     "(against those within its budgets)")
    if record["seed_noise_sd"] is not None:
        extra.append(f"seed noise sd {100 * record['seed_noise_sd']:.2f} points")
    if record.get("seed_ceiling") is not None:
        extra.append(f"a second training would rank them at about tau "
                     f"{record['seed_ceiling']:.2f}")
    print("  " + "; ".join(extra))
    print(f"verdict: {record['verdict']}")
    print(f"wrote {run / steps.RunDir.RANK_CHECK} and {run / steps.RunDir.RANK_CHECK_PLOT}")


def _with_interval(value, interval) -> str:
    if value is None:
        return "undefined"
    return f"{value:.2f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "")
