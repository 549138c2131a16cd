"""The exit statuses of ``hwnas`` beyond 0 and 2, and how to tell that stdout was closed."""
from __future__ import annotations

import select
import sys

#: Exit status after Ctrl-C (128 + SIGINT, what a shell reports for a process it stopped).
INTERRUPTED = 130
#: Exit status when stdout was closed early (``hwnas front RUN | head -1``): 128 + SIGPIPE.
CLOSED_STDOUT = 141


def stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error on it)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no file descriptor behind stdout
        return False
