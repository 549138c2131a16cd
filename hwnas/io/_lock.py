"""File locks several processes share: a dead holder's lock is released by the kernel."""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

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
