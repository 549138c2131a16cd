"""The check-space command: the conformance suite on any search space."""
from __future__ import annotations

import argparse

from hwnas import run as steps
from hwnas.errors import HwnasError


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-space", help="run the conformance checks on a search space",
                       description="Build a search space (a registered name, "
                       "my_pkg.spaces:MySpace, ./my_space.py:MySpace or an installed entry "
                       "point) and check that it keeps the contract hwnas relies on: sample "
                       "and validate agree, keys round-trip (and canonical is idempotent), "
                       "extract computes what set_active computes, the parameter groups are "
                       "what a path reads, the units count every MAC of a subnet and "
                       "arch_units names every option, and an exported .nnp computes what the "
                       "subnet computes. One line per check; exit status 1 if one fails.")
    p.add_argument("spec", nargs="?", metavar="SPEC",
                   help="the space (default: the config's space.name)")
    p.add_argument("--config", metavar="FILE",
                   help="experiment YAML whose space section (keys, space.options) builds it, "
                   "and whose data gives the input shape and classes")
    p.add_argument("--input-shape", metavar="C,H,W", type=_shape,
                   help="input shape (default: the config's data, or 1,16,16)")
    p.add_argument("--classes", metavar="K", type=int,
                   help="classes (default: the config's data, or 10)")
    p.set_defaults(func=cmd_check_space, resumes=False)


def _shape(text: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected C,H,W (three positive integers), got {text!r}")
    return shape  # type: ignore[return-value]


def cmd_check_space(args: argparse.Namespace) -> None:
    if args.classes is not None and args.classes < 2:
        raise HwnasError(f"--classes must be >= 2, got {args.classes}")
    results = steps.check_space_spec(args.spec, config_path=args.config,
                                     input_shape=args.input_shape, n_classes=args.classes)
    for result in results:
        print(result.line())
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)} of {len(results)} checks passed")
    if failed:
        raise SystemExit(1)
