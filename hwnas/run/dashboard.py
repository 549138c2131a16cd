"""optuna-dashboard on a run's study, read-only, bound to one local address."""
from __future__ import annotations

import errno
from collections.abc import Callable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from hwnas.errors import HwnasError
from hwnas.run.files import RunDir
from hwnas.studies import load_read_only, read_only_store

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080


class _Server(ThreadingMixIn, WSGIServer):
    # The page polls the API while another request is open: serve them side by side.
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """No line per request: the terminal keeps the URL and nothing else."""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base's name)
        pass


def dashboard_server(run: RunDir, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> _Server:
    """A server of optuna-dashboard on the run's study, bound and ready for ``serve_forever``.

    The study is opened read-only (``hwnas.studies.load_read_only``): the journal file
    is read as it is, never repaired or appended to, and the dashboard's buttons
    that would change the study fail instead.

    Raises:
        RunDirError: no study yet, or a study that cannot be read.
        HwnasError: the address is in use or cannot be bound.
    """
    from bottle import HTTPError
    from optuna_dashboard import wsgi

    load_read_only(run.path)  # a clear error now, not a failing page later
    # An HTTP error is shown in the page as its reason, without a traceback on the console.
    storage, _, _ = read_only_store(run.path, refuse=lambda what: HTTPError(
        403, f"hwnas dashboard shows the study read-only; it cannot {what}"))
    app = wsgi(storage)
    try:
        return make_server(host, port, app, server_class=_Server, handler_class=_QuietHandler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise HwnasError(f"port {port} on {host} is already in use; choose another "
                             "with --port") from None
        raise HwnasError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None


def serve(run: RunDir, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
          announce: Callable[[str], None] | None = None) -> None:
    """Serves the dashboard until Ctrl-C; ``announce`` gets the URL once it listens."""
    server = dashboard_server(run, host, port)
    if host in ("0.0.0.0", "::", ""):  # every address: name one other machines can use
        import socket
        host = socket.gethostname()
    where = f"[{host}]" if ":" in host else host
    url = f"http://{where}:{server.server_port}/dashboard/"
    try:  # from the announcement on: a Ctrl-C right after it is how the dashboard ends
        (announce or (lambda u: print(u, flush=True)))(url)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

