"""The ``hwnas`` commands: the parser, and one exit status and stderr line for each outcome."""
from __future__ import annotations

import sys
from collections.abc import Callable

from hwnas import __version__
from hwnas import run as steps
from hwnas.cli._check import add_commands as add_check_commands
from hwnas.cli._common import Parser, UsageError
from hwnas.cli._cost import add_commands as add_cost_commands
from hwnas.cli._exit import CLOSED_STDOUT, INTERRUPTED, stdout_closed
from hwnas.cli._report import add_commands as add_report_commands
from hwnas.cli._retrain import add_commands as add_retrain_commands
from hwnas.cli._steps import add_commands as add_step_commands
from hwnas.errors import HwnasError


def build_parser() -> Parser:
    parser = Parser(prog="hwnas", description="Hardware-aware neural architecture search "
                    "for NNabla: train a weight-sharing supernet, search its subnets for the "
                    "best accuracy/latency/size trade-offs, select one within budgets, export.")
    parser.add_argument("--version", action="version", version=f"hwnas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    add_step_commands(sub)
    add_retrain_commands(sub)
    add_cost_commands(sub)
    add_report_commands(sub)
    add_check_commands(sub)
    return parser


def run(argv: list[str] | None, interrupted: Callable[[], bool] = lambda: False) -> int:
    """Runs the command line; returns the exit status (2 for bad input, 130 after Ctrl-C).

    Args:
        argv: the arguments; ``None`` for ``sys.argv[1:]``.
        interrupted: whether a SIGINT has arrived. Whatever ends the command after one
            (``SystemError`` from inside nnabla, any other exception, or a normal return
            of a command that swallowed it) is the interrupt, except the normal end of a
            command that runs until Ctrl-C (``ctrl_c_ends``: the dashboard).
    """
    args = writer = None
    try:
        args = build_parser().parse_args(argv)
        # The one place a command's run directories are locked: the command declares
        # how it writes them (``writes``), RunDir.open/create take the lock for it.
        writer = args.writer = _writer(args)
        args.func(args)
    except BaseException as exc:  # noqa: BLE001 - sorted into exit statuses here
        if interrupted() or isinstance(exc, KeyboardInterrupt):
            return _interrupted(args)
        if isinstance(exc, SystemExit):  # --help and --version
            return exc.code if isinstance(exc.code, int) else 0
        if isinstance(exc, UsageError):
            print(exc, file=sys.stderr)
            return 2
        if isinstance(exc, HwnasError):
            print(f"hwnas: error: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, BrokenPipeError) and stdout_closed():
            return CLOSED_STDOUT  # a reader such as `head` had enough: no message
        if isinstance(exc, OSError):
            where = f": {exc.filename}" if exc.filename else ""
            print(f"hwnas: error: {exc.strerror or exc}{where}", file=sys.stderr)
            return 2
        raise
    finally:
        if writer is not None:
            writer.release()
    if interrupted() and not getattr(args, "ctrl_c_ends", False):
        return _interrupted(args)
    return 0


def _interrupted(args) -> int:
    # Commands that compute something resume; the others (resumes=False) just stop.
    resumes = getattr(args, "resumes", True)
    print("hwnas: interrupted" + ("; run the same command again to resume" if resumes else ""),
          file=sys.stderr)
    return INTERRUPTED



def _writer(args) -> steps.Writer | None:
    """The lock holder of a command that writes run directories; None for one that reads."""
    writes = getattr(args, "writes", None)
    if writes is None:
        return None
    shared = {"exclusive": False, "shared": True, "shared-on-database": None}[writes]
    return steps.Writer(f"hwnas {args.command}", shared=shared)
