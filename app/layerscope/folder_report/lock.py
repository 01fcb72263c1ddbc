"""One writer per report folder: a second ``report`` into the same ``--out`` is refused in
one line that says who holds the folder.

Two runs appending to one ``records.jsonl`` would write every record twice. The lock is
``flock`` on ``OUT/.layerscope.lock``, which the kernel drops when the holder's process
ends, however it ends (``kill -9`` too): a killed run's lock is never stale, so a resume
simply takes it. The file's text (pid, host, start time) is only there to tell the second
run whom it is waiting for; it is read bounded and never trusted for anything else.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
import time
import weakref
from pathlib import Path

from layerscope.errors import LayerscopeError

LOCK_NAME = ".layerscope.lock"
HOLDER_BYTES = 4096  # the holder's line is ~100 bytes; a larger file was not written by us


class FolderLock:
    """The lock on ``root``, taken at once; ``release()`` (or the object's collection) frees it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / LOCK_NAME
        self._close: weakref.finalize | None = None
        self.acquire()

    @property
    def held(self) -> bool:
        return self._close is not None and self._close.alive

    def acquire(self) -> None:
        """Take the lock (again, after a ``release``); a one-line error names the current holder."""
        if self.held:
            return
        fd = _open(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder(fd)
            os.close(fd)
            if isinstance(exc, BlockingIOError):
                raise LayerscopeError(
                    f"--out {self.root} is being written by another report ({holder}); wait for "
                    "it to end, or give another --out"
                ) from None
            raise LayerscopeError(f"cannot lock {self.path}: {exc.strerror or exc}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(
            fd,
            json.dumps(
                {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}
            ).encode()
            + b"\n",
            0,
        )
        self._close = weakref.finalize(self, os.close, fd)

    def release(self) -> None:
        if self._close is not None:
            self._close()


def _open(path: Path) -> int:
    """The lock file, created if missing: a regular file only (never a FIFO or a symlink's target)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise LayerscopeError(f"cannot lock {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LayerscopeError(f"cannot lock {path}: not a regular file; remove it")
    return fd


def _holder(fd: int) -> str:
    """``pid 4242 on host-a, started 2026-12-07 10:11:12 +0000`` from the lock file, or what is known."""
    try:
        found = json.loads(os.pread(fd, HOLDER_BYTES, 0))
        return f"pid {int(found['pid'])} on {str(found['host'])[:100]}, started {str(found['started'])[:40]}"
    except (OSError, ValueError, TypeError, KeyError, RecursionError):
        return "a process that has not yet said who it is"
