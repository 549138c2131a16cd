"""Files several processes share: atomic writes (a crash never leaves a half-written
artifact) and the temporaries they leave when killed, file locks (a dead holder's lock is
released by the kernel), and JSON records read back with their shape checked."""
from __future__ import annotations

import fcntl
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

from hwnas.errors import RunDirError

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

#: A shape: ``str``, ``int``, ``float`` (any number, not a bool), ``bool``, ``dict``, ``list``,
#: ``object`` (anything), ``None``; ``{"key": shape, "optional?": shape}`` (a mapping with these
#: keys, others allowed); ``{str: shape}`` (a mapping of names to values of one shape);
#: ``[shape]`` (a list of them); a tuple of shapes (any one of them).
Shape = Any

_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
          dict: "a mapping", list: "a list", type(None): "null"}


def _kind(value: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", dict: "a mapping",
            list: "a list", str: "a string", type(None): "null"}.get(type(value), "a value")


def _describe(shape: Shape) -> str:
    if isinstance(shape, tuple):
        return " or ".join(_describe(s) for s in shape)
    if isinstance(shape, dict):
        return "a mapping"
    if isinstance(shape, list):
        return "a list"
    return _NAMES.get(type(None) if shape is None else shape, "a value")


def _wrong(where: str, value: Any, wanted: str) -> str:
    return (f"'{where}' is " if where else "holds ") + f"{_kind(value)}, not {wanted}"


def shape_error(value: Any, shape: Shape, where: str = "") -> str | None:
    """What in ``value`` does not have ``shape`` (see :data:`Shape`), as a short phrase naming
    the field (``'costs.params' is a string, not a number``); None when it fits."""
    if isinstance(shape, tuple):
        if all(shape_error(value, s, where) for s in shape):
            return _wrong(where, value, _describe(shape))
        return None
    if shape is object:
        return None
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return _wrong(where, value, "a mapping")
        if len(shape) == 1 and next(iter(shape)) is str:
            inner = shape[str]
            for key, item in value.items():
                error = shape_error(item, inner, f"{where}.{key}" if where else str(key))
                if error:
                    return error
            return None
        for key, inner in shape.items():
            name = key.rstrip("?")
            full = f"{where}.{name}" if where else name
            if name not in value:
                if key.endswith("?"):
                    continue
                return f"'{full}' missing"
            error = shape_error(value[name], inner, full)
            if error:
                return error
        return None
    if isinstance(shape, list):
        if not isinstance(value, list):
            return _wrong(where, value, "a list")
        for i, item in enumerate(value):
            error = shape_error(item, shape[0], f"{where}[{i}]")
            if error:
                return error
        return None
    if shape is None:
        ok = value is None
    elif shape is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif shape is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, shape)
    return None if ok else _wrong(where, value, _describe(shape))


def read_json_record(path: str | Path, shape: Shape, *, remedy: str = "") -> Any:
    """The JSON in ``path``, checked against ``shape``; None when the file does not exist.

    Raises:
        RunDirError: the file is unreadable, no JSON, or of another shape; one line naming
            ``path`` and what is wrong, then ``remedy`` when given.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path} is unreadable ({exc})" + (f"; {remedy}" if remedy else "")) \
            from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        problem = f"not JSON ({exc})"
    else:
        problem = shape_error(data, shape)
        if problem is None:
            return data
    raise RunDirError(f"{path} is damaged: {problem}" + (f"; {remedy}" if remedy else ""))
class LockHeld(Exception):
    """Another process holds a ``FileLock``; ``holder`` is what it wrote into the file
    (``pid``, ``host``, ``command``, ``since``), or empty when it is not readable yet."""

    def __init__(self, path: Path, holder: dict[str, Any]) -> None:
        super().__init__(f"{path} is locked by {holder or 'another process'}")
        self.path, self.holder = path, holder


class FileLock:
    """An ``flock(2)`` on ``path``: exclusive (one holder) or shared (any number of
    shared holders, no exclusive one).

    The kernel releases the lock when its holder dies, so a lock left by a killed
    process is simply taken over. The file is created on acquiring and removed on
    releasing: a holder removes it only while it holds the lock exclusively, and an
    acquirer that locked a file removed meanwhile (its inode no longer at ``path``)
    tries again, so two processes never both hold it. Not thread safe; one process
    holds one ``FileLock`` per path (a second descriptor would conflict with the first).

    Args:
        path: the lock file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, shared: bool = False, blocking: bool = False,
                command: str | None = None) -> None:
        """Takes the lock; with ``command``, records this holder (pid, host, command, time).

        Raises:
            LockHeld: ``blocking`` is false and another process holds a conflicting lock.
            OSError: the lock file cannot be created.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this FileLock")
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                fcntl.flock(fd, mode)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise LockHeld(self.path, holder) from None
            except BaseException:
                os.close(fd)
                raise
            if _is_at(fd, self.path):
                break
            os.close(fd)  # its holder removed it on release: lock the one now there
        self._fd = fd
        if command is not None:
            record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "command": command, "since": time.time()}).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, record, 0)

    def release(self) -> None:
        """Releases the lock and removes the file when no one else holds it."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            # A shared holder removes the file only if it is the last one (and the
            # conversion to exclusive succeeds); the lock is released by close anyway.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _is_at(fd, self.path):
                os.unlink(self.path)
        except OSError:
            pass  # held by another (shared) holder, or already gone: it stays
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire(blocking=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _is_at(fd: int, path: Path) -> bool:
    """Whether the file open as ``fd`` is the one at ``path`` (not removed or replaced)."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        holder = json.loads(os.pread(fd, 4096, 0))
    except (OSError, ValueError):
        return {}  # being written, or not ours
    return holder if isinstance(holder, dict) else {}
