"""The ``hwnas`` command's entry point: Ctrl-C, a closed stdout and the console's encoding.

Only the standard library is imported here, so that the SIGINT handler is in place
before numpy, nnabla or matplotlib load; the commands themselves are in ``_commands``.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys

from hwnas.cli._exit import CLOSED_STDOUT, INTERRUPTED

# nnabla reads its log level from config files when first imported: keep its
# INFO lines (one per file saved) off the console. Set before any nnabla import.
os.environ.setdefault("NNABLA_CONFIG_FILE_PATH",
                      os.path.join(os.path.dirname(__file__), "nnabla.conf"))


class _Sigint:
    """The SIGINT handler: the first one raises KeyboardInterrupt, later ones are ignored.

    nnabla calls back into Python from its C++ graph engine and turns an exception raised
    there into ``SystemError`` (or loses it), so the interrupt is recorded here: the command
    line treats whatever ends the command after it as the interrupt. Later Ctrl-Cs are
    ignored so that the ``finally`` blocks that stop workers and remove temporaries finish.
    """

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count == 1:
            raise KeyboardInterrupt

    @property
    def happened(self) -> bool:
        return self.count > 0


def _ignored_when_interrupted(sigint: _Sigint):
    """An unraisable-exception hook that drops what a Ctrl-C leaves inside nnabla's callbacks."""
    default = sys.unraisablehook

    def hook(unraisable) -> None:
        if not (sigint.happened or issubclass(unraisable.exc_type, KeyboardInterrupt)):
            default(unraisable)
    return hook


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status: 0, 2 for bad input, 130 after Ctrl-C.

    Called without ``argv`` (the ``hwnas`` script, ``python -m hwnas``) it owns the process:
    the console never fails on an unencodable character, a closed stdout ends the command
    quietly with status 141, and after Ctrl-C the process ends at once (``os._exit``) once
    the command's ``finally`` blocks have run, skipping the interpreter's teardown, which a
    half-finished import of nnabla can crash.
    """
    owns_process = argv is None
    sigint = _Sigint()
    try:
        previous = signal.signal(signal.SIGINT, sigint)
    except ValueError:  # an in-process caller in another thread: no signal arrives there
        previous = None
    if owns_process:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(AttributeError, ValueError):
                stream.reconfigure(errors="backslashreplace")
        sys.unraisablehook = _ignored_when_interrupted(sigint)
    try:
        status = _run(argv, sigint)
    finally:
        if owns_process:  # the command is over: nothing may interrupt the teardown
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        elif previous is not None:
            signal.signal(signal.SIGINT, previous)
    return _end_process(status) if owns_process else status


def _run(argv: list[str] | None, sigint: _Sigint) -> int:
    try:
        # Imported here, after the handler is in place: Ctrl-C during the imports of
        # numpy, nnabla and optuna is handled like any other.
        from hwnas.cli._commands import run
        return run(argv, interrupted=lambda: sigint.happened)
    except BaseException as exc:  # the imports, before a command could start
        if not (sigint.happened or isinstance(exc, KeyboardInterrupt)):
            raise
        print("hwnas: interrupted before the command started", file=sys.stderr)
        return INTERRUPTED


def _end_process(status: int) -> int:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        status = CLOSED_STDOUT if status == 0 else status
    except (OSError, ValueError):
        pass
    if status == CLOSED_STDOUT:
        # The Python docs' recipe: stdout points at /dev/null, so that the flush at exit
        # does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if status == INTERRUPTED:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os._exit(INTERRUPTED)
    return status


def build_parser():
    """The ``hwnas`` argument parser (see ``hwnas.cli._commands``)."""
    # Imported here so that importing hwnas.cli stays free of the heavy modules.
    from hwnas.cli._commands import build_parser as build
    return build()


if __name__ == "__main__":
    sys.exit(main())
