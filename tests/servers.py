"""Real servers on 127.0.0.1 for tests of multi-machine search: PostgreSQL and a Dask cluster."""
from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator, NoReturn

import psycopg2
import pytest
from sqlalchemy.engine import make_url

#: How long a server may take to start; a loaded CI machine is slow, a broken one fails anyway.
START_TIMEOUT = 120.0
#: How long a server may take to stop before it is killed.
STOP_TIMEOUT = 30.0
#: The database that ``postgres_server`` creates.
DATABASE = "hwnas"
#: The database superuser that ``postgres_server`` creates (trusted, no password).
SUPERUSER = "postgres"


class ServerError(RuntimeError):
    """A test server could not start; the message carries the server's log tail."""


class MissingProgram(ServerError):
    """A program a test server needs is not installed."""


def in_ci() -> bool:
    """Whether the tests run in CI (``CI`` is "true" or "1"), where every server must run."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def skip_or_fail(reason: str) -> NoReturn:
    """Skips the requesting test outside CI; in CI, where servers must run, fails it."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: server tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"(no log at {path})"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return f"last {len(text)} lines of {path}:\n" + "\n".join(text)


def _wait_for_port(port: int, proc: subprocess.Popen | None, timeout: float) -> bool:
    """Whether 127.0.0.1:port accepts connections within ``timeout`` (False once ``proc`` dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1.0):
            return True
        time.sleep(0.1)
    return False


def _spawn(args: list, log: Path, cwd: Path, **popen) -> subprocess.Popen:
    """Starts ``args`` in the background, its output appended to ``log``."""
    with open(log, "ab") as out:
        # A session of its own, so that stopping it reaches every process it started.
        return subprocess.Popen([str(a) for a in args], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True,
                                **popen)


def _stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Asks ``proc`` to shut down (by ``sig``), then kills whatever is left of its process group."""
    if proc.poll() is None:
        proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(STOP_TIMEOUT)


# ---------------------------------------------------------------------------------------
# PostgreSQL


def postgres_bin() -> Path:
    """The directory holding initdb and postgres: from PATH, else the newest
    /usr/lib/postgresql/*/bin.

    Raises:
        MissingProgram: no directory holds both.
    """
    candidates = []
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).resolve().parent)
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += [Path(p) for p in sorted(versions, key=_version, reverse=True)]
    for directory in candidates:
        if all(os.access(directory / name, os.X_OK) for name in ("initdb", "postgres")):
            return directory
    raise MissingProgram("PostgreSQL is not installed: no initdb and postgres in PATH "
                         "or /usr/lib/postgresql/*/bin (apt-get install postgresql)")


def _version(path: str) -> tuple[int, ...]:
    name = Path(path).parent.name
    return tuple(int(p) for p in name.split(".") if p.isdigit())


def _server_user() -> pwd.struct_passwd | None:
    """The unprivileged account that runs postgres when we are root (postgres refuses
    root), or None to run it as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServerError("running as root, and neither a 'postgres' nor a 'nobody' account "
                      "exists to run PostgreSQL (it refuses to run as root)")


def _as(user: pwd.struct_passwd | None) -> dict:
    """Arguments of ``subprocess.Popen`` that run a program as ``user`` (None: as ourselves)."""
    if user is None:
        return {}
    return dict(user=user.pw_uid, group=user.pw_gid, extra_groups=[])


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 (trust authentication, durability off),
    with an empty database ``hwnas``; stopped and deleted on exit.

    Yields:
        The SQLAlchemy URL of database ``hwnas``,
        ``postgresql+psycopg2://postgres@127.0.0.1:PORT/hwnas``.

    Raises:
        MissingProgram: PostgreSQL is not installed.
        ServerError: it is installed but did not start; the message has its log tail.
    """
    bin_dir = postgres_bin()
    user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="hwnas-postgres-"))
    data, log = root / "data", root / "server.log"
    port = free_port()
    server = None
    try:
        if user is not None:
            # The server's account must reach its files through the temp dir's parents.
            os.chmod(root, 0o755)
            os.chown(root, user.pw_uid, user.pw_gid)
        initdb = [bin_dir / "initdb", "-D", data, "-U", SUPERUSER, "--auth=trust",
                  "--encoding=UTF8", "--no-locale", "--no-sync"]
        result = subprocess.run([str(a) for a in initdb], stdin=subprocess.DEVNULL, cwd="/",
                                capture_output=True, text=True, timeout=START_TIMEOUT, **_as(user))
        if result.returncode != 0:
            raise ServerError(f"PostgreSQL's initdb failed ({result.returncode}): "
                              f"{' '.join(map(str, initdb))}\n{result.stdout}{result.stderr}")
        # Our own child rather than pg_ctl's orphan, so that we reap it and can kill its
        # whole process group. Tests need no durability: fsync off makes commits cheap.
        args = [bin_dir / "postgres", "-D", data, "-p", port, "-k", root,
                "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200",
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        server = _spawn(args, log, Path("/"), **_as(user))
        url = f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}"
        _create_when_ready(url, server, log)
        yield url
    finally:
        if server is not None:
            _stop_group(server, signal.SIGINT)  # "fast" shutdown, as pg_ctl stop -m fast
        shutil.rmtree(root, ignore_errors=True)


def _create_when_ready(url: str, server: subprocess.Popen, log: Path) -> None:
    """Creates the database of ``url`` as soon as ``server`` accepts connections."""
    parts = make_url(url)
    admin = parts.set(database="postgres").render_as_string(hide_password=False)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if server.poll() is not None:
            raise ServerError(f"PostgreSQL exited ({server.returncode}) on start, on "
                              f"127.0.0.1:{parts.port}\n{_log_tail(log)}")
        try:
            _execute(admin, f'CREATE DATABASE "{parts.database}"')
            return
        except psycopg2.OperationalError as exc:  # not listening yet, or still starting up
            if time.monotonic() > deadline:
                raise ServerError(f"PostgreSQL did not accept connections on 127.0.0.1:"
                                  f"{parts.port} within {START_TIMEOUT:.0f} s: {exc}\n"
                                  f"{_log_tail(log)}") from None
            time.sleep(0.1)


def _execute(url: str, statement: str) -> None:
    """Runs one statement outside a transaction (CREATE DATABASE cannot run inside one)."""
    parts = make_url(url)
    connection = psycopg2.connect(host=parts.host, port=parts.port, user=parts.username,
                                  dbname=parts.database, connect_timeout=30)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def fresh_database(url: str) -> str:
    """Creates an empty, uniquely named database on the server of ``url``.

    Args:
        url: The SQLAlchemy URL of any database on a ``postgres_server``.

    Returns:
        The SQLAlchemy URL of the new database.
    """
    name = f"hwnas_{uuid.uuid4().hex[:12]}"
    _execute(url, f'CREATE DATABASE "{name}"')
    return make_url(url).set(database=name).render_as_string(hide_password=False)


# ---------------------------------------------------------------------------------------
# Dask


def dask_program() -> Path:
    """The ``dask`` command of this interpreter's environment (whose workers import hwnas).

    Raises:
        MissingProgram: distributed is not installed in this environment.
    """
    program = Path(sys.executable).parent / "dask"
    if not os.access(program, os.X_OK):
        raise MissingProgram(f"Dask is not installed: no {program} (pip install 'dask[distributed]')")
    return program


def _wait_for_workers(address: str, workers: int, procs: list[subprocess.Popen],
                      failure: Callable[[str], ServerError]) -> None:
    """Waits until ``workers`` workers joined the scheduler at ``address``; fails at once
    when one of ``procs`` (the processes that serve it) exits."""
    from distributed import Client
    from distributed.exceptions import WorkerStartTimeoutError

    deadline = time.monotonic() + START_TIMEOUT
    try:
        with Client(address, timeout=START_TIMEOUT) as client:
            while True:
                dead = [p for p in procs if p.poll() is not None]
                if dead:
                    raise failure(f"dask {dead[0].args[1]} exited ({dead[0].returncode}) before "
                                  f"{workers} workers joined {address}")
                try:
                    client.wait_for_workers(workers, timeout=1.0)
                    return
                except WorkerStartTimeoutError:
                    if time.monotonic() > deadline:
                        raise failure(f"only {len(client.scheduler_info()['workers'])} of "
                                      f"{workers} Dask workers joined {address} within "
                                      f"{START_TIMEOUT:.0f} s") from None
    except (OSError, asyncio.TimeoutError) as exc:
        raise failure(f"could not reach the Dask scheduler at {address}: {exc}") from None


@contextlib.contextmanager
def dask_cluster(workers: int = 2) -> Iterator[str]:
    """A Dask scheduler on 127.0.0.1 with ``workers`` single-threaded worker processes
    (each under a nanny) from this environment; all stopped on exit.

    Args:
        workers: How many worker processes to start.

    Yields:
        The scheduler address, ``tcp://127.0.0.1:PORT``.

    Raises:
        MissingProgram: Dask is not installed in this environment.
        ServerError: the scheduler or a worker did not start; the message has the log tails.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    program = dask_program()
    root = Path(tempfile.mkdtemp(prefix="hwnas-dask-"))
    scheduler_log, worker_log = root / "scheduler.log", root / "workers.log"
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []

    def failure(what: str) -> ServerError:
        return ServerError(f"{what}\n{_log_tail(scheduler_log)}\n{_log_tail(worker_log)}")

    try:
        procs.append(_spawn([program, "scheduler", "--host", "127.0.0.1", "--port", port,
                             "--dashboard-address", "127.0.0.1:0"], scheduler_log, root))
        if not _wait_for_port(port, procs[0], START_TIMEOUT):
            raise failure(f"the Dask scheduler did not listen on {address} "
                          f"within {START_TIMEOUT:.0f} s")
        procs.insert(0, _spawn([program, "worker", address, "--host", "127.0.0.1",
                                "--nworkers", workers, "--nthreads", 1,
                                "--dashboard-address", "127.0.0.1:0",
                                # Workers whose scheduler is gone quit instead of lingering.
                                "--death-timeout", 60,
                                "--local-directory", root / "workers"], worker_log, root))
        _wait_for_workers(address, workers, procs, failure)
        yield address
    finally:
        for proc in procs:  # workers first, so that they need not reconnect
            _stop_group(proc)
        shutil.rmtree(root, ignore_errors=True)
