"""The retrain command: the chosen subnet trained from scratch with the config's recipe."""
from __future__ import annotations

import argparse

from hwnas import run as steps
from hwnas.cli._common import add_quiet
from hwnas.errors import HwnasError
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
