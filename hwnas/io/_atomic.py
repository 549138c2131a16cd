"""Atomic writes (a crash never leaves a half-written artifact) and the temporaries they
leave when killed, which name their writer so that a later command removes a dead one's."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: A temporary of this module: ``.NAME.PID@HOST.RANDOM[SUFFIX]``; RANDOM is tempfile's 8 characters.
_TEMPORARY = re.compile(r"^\..*\.(\d+)@([A-Za-z0-9_-]*)\.[a-z0-9_]{8}(\.[A-Za-z0-9]+)?$")
#: Temporaries of hwnas before their names carried the writer: removed only once this old.
_LEGACY = re.compile(r"^\.(export-[a-z0-9_]{8}|[A-Za-z0-9_-]+\.[a-z0-9_]{8}\.[A-Za-z0-9]+)$")
LEGACY_AGE_S = 24 * 3600


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "", socket.gethostname().split(".")[0])[:32]


def temporary_prefix(stem: str) -> str:
    """The prefix of a temporary file or directory this process makes for ``stem``: it names the
    process (pid and host), so that a later command can tell a dead writer's leftovers from a
    live one's (:func:`remove_stale_temporaries`)."""
    return f".{stem}.{os.getpid()}@{_host()}."


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Calls ``write(tmp_path)`` on a temporary file beside ``path``, then renames it over ``path``.

    The temporary name keeps ``path``'s suffix, since some writers (nnabla's
    savers) pick the format from it, and names this process (see
    :func:`temporary_prefix`). The data reaches the disk before the
    rename, so that not even a power cut leaves ``path`` empty or half-written.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path.stem), suffix=path.suffix,
                                   dir=path.parent)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename in (None, tmp):
            # Name the file the user knows, not the temporary one (or none: a full disk).
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Writes ``text`` to ``path`` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Writes ``data`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Removes the temporaries (files and staging directories) in ``directory`` that a killed
    writer left: those named by :func:`temporary_prefix` for a process of this host that is gone,
    and those of an older hwnas, which name no process, once a day old. A live writer's, or
    another host's, are left alone.

    Returns:
        What was removed.
    """
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    host, now = _host(), time.time()
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match:
            stale = match.group(2) == host and not _alive(int(match.group(1)))
        elif _LEGACY.match(entry.name):
            try:
                stale = now - entry.stat(follow_symlinks=False).st_mtime > LEGACY_AGE_S
            except OSError:
                continue
        else:
            continue
        if not stale:
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except FileNotFoundError:
            pass  # another command removed it first
        except OSError:
            continue  # a read-only directory: leftovers are harmless there
        removed.append(Path(entry.path))
    return removed


# ---------------------------------------------------------------- JSON records read back
