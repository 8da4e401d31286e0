"""One writer per run folder: an exclusive ``flock`` on its lock file, held while a run writes it.

The holder writes its process id, host and start time into the lock file, so that a second writer
is refused with a line naming it. The kernel drops the lock when the holder closes the file or dies
(``kill -9`` included): a lock file left behind never blocks, the next writer takes it over. The
lock belongs to the file's inode, so the lock file is the one file udarts rewrites in place instead
of by rename (only its holder writes it). Processes forked by the holder (DataLoader workers) close
their inherited copy at once, so they never keep a folder locked. Without ``fcntl`` (Windows), or
on a file system without locks (a note says so), nothing is locked.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import socket
import sys
import time
import weakref
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

_HELD: dict[int, weakref.ref] = {}  # fd -> its FolderLock, for the fork handler


def _close_inherited() -> None:
    """In a forked child: close the copies of the parent's lock files (the parent keeps its locks:
    a flock belongs to the open file, and goes only when its last descriptor is closed)."""
    for fd, lock in list(_HELD.items()):
        held = lock()
        if held is not None:
            held._finalizer.detach()
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited)


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)


NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}  # what a file system without flock says


def _try_flock(fd: int) -> bool | None:
    """True: taken; False: another open file holds it; None: the file system has no locks."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno in NO_LOCKS:
            return None
        raise
    return True


class FolderLock:
    """The held lock on ``path`` (a lock file); ``release()`` (or the process's end) lets it go."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        if fd >= 0:
            _HELD[fd] = weakref.ref(self)
        self._finalizer = weakref.finalize(self, _release_fd, fd)

    @classmethod
    def take(cls, path: str | os.PathLike) -> FolderLock | None:
        """The lock on ``path`` with this process written in as its holder, or None when another
        process (or another open ``FolderLock`` of this one) holds it."""
        path = Path(path)
        if fcntl is None:  # pragma: no cover - Windows
            return cls(path, -1)
        fd = _open(path)
        taken = _try_flock(fd)
        if not taken:
            os.close(fd)
            if taken is None:
                print(f"note: {path}: the file system does not lock files; a second writer of this run folder "
                      "would not be refused", file=sys.stderr)
                return cls(path, -1)
            return None
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd)

    def release(self) -> None:
        self._finalizer()


def _release_fd(fd: int) -> None:
    _HELD.pop(fd, None)
    if fd >= 0:
        os.close(fd)  # drops the flock (the holder's record stays in the file, read only while a lock is held)


def is_locked(path: str | os.PathLike) -> bool:
    """Whether a writer (another process, or another ``FolderLock`` of this one) holds the lock on
    ``path`` now; probed by taking it for an instant."""
    path = Path(path)
    if fcntl is None or not path.is_file():
        return False
    fd = _open(path)
    try:
        taken = _try_flock(fd)
        if taken:
            fcntl.flock(fd, fcntl.LOCK_UN)
        return taken is False
    finally:
        os.close(fd)


def holder_of(path: str | os.PathLike) -> str:
    """``"process PID on HOST, started TIME"`` as the holder of the lock on ``path`` wrote it."""
    for _ in range(20):  # the holder writes itself in just after taking the lock
        try:
            holder = json.loads(Path(path).read_text())
            return f"process {holder['pid']} on {holder['host']}, started {holder['started']}"
        except (OSError, ValueError, KeyError, TypeError):
            time.sleep(0.05)
    return f"a process that did not write itself into {path}"
