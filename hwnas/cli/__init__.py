"""The ``hwnas`` command."""
from __future__ import annotations

import os
import sys

# nnabla reads its log level from config files when first imported: keep its
# INFO lines (one per file saved) off the console. Set before any nnabla import.
os.environ.setdefault("NNABLA_CONFIG_FILE_PATH",
                      os.path.join(os.path.dirname(__file__), "nnabla.conf"))

from hwnas import __version__  # noqa: E402
from hwnas import run as steps  # noqa: E402
from hwnas.cli import _cost, _report, _retrain, _steps  # noqa: E402
from hwnas.cli._common import Parser, UsageError  # noqa: E402
from hwnas.errors import HwnasError  # noqa: E402


def build_parser() -> Parser:
    parser = Parser(prog="hwnas", description="Hardware-aware neural architecture search "
                    "for NNabla: train a weight-sharing supernet, search its subnets for the "
                    "best accuracy/latency/size trade-offs, select one within budgets, export.")
    parser.add_argument("--version", action="version", version=f"hwnas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    _steps.add_commands(sub)
    _retrain.add_commands(sub)
    _cost.add_commands(sub)
    _report.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status (2 for bad input)."""
    args = writer = None
    try:
        args = build_parser().parse_args(argv)
        # The one place a command's run directories are locked: the command declares
        # how it writes them (``writes``), RunDir.open/create take the lock for it.
        writer = args.writer = _writer(args)
        args.func(args)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except HwnasError as exc:
        print(f"hwnas: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Commands that compute something resume; the others (resumes=False) just stop.
        resumes = getattr(args, "resumes", True)
        print("hwnas: interrupted" + ("; run the same command again to resume" if resumes else ""),
              file=sys.stderr)
        return 2
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"hwnas: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    finally:
        if writer is not None:
            writer.release()
    return 0


def _writer(args) -> steps.Writer | None:
    """The lock holder of a command that writes run directories; None for one that reads."""
    writes = getattr(args, "writes", None)
    if writes is None:
        return None
    shared = {"exclusive": False, "shared": True, "shared-on-database": None}[writes]
    return steps.Writer(f"hwnas {args.command}", shared=shared)


if __name__ == "__main__":
    sys.exit(main())
