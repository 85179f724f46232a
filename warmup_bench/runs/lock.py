"""A run folder's lock: an OS file lock held by the one process writing the run, with its
pid written in the file. The OS releases it when its holder dies, however it dies; a
holder that ends normally also removes the file, so a finished run folder holds only the
run's own files."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..errors import UserError
from .csvlogs import RunFileError

LOCK = "lock"


class RunBusy(UserError):
    """Another live process holds the run folder's lock."""


class RunLock:
    """An exclusive flock on the run's lock file, with the holder's pid written in it. The
    file is opened without following a link, and must be a regular file."""

    def __init__(self, path: Path):
        # the holder removes the file as it lets go: the file locked may have been removed
        # between our open and our lock, so lock until the file locked is the one there
        for _ in range(100):
            self._take(path)
            if self._still_there(path):
                break
            self.handle.close()
        else:
            raise RunBusy(f"{path.parent} keeps changing hands between other processes; "
                          "try again.")
        self.path = path
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"{os.getpid()}\n")
        self.handle.flush()

    def _still_there(self, path: Path) -> bool:
        try:
            there = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        mine = os.fstat(self.handle.fileno())
        return (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino)

    def _take(self, path: Path) -> None:
        import fcntl

        damaged = RunFileError(f"{path} is not a lock file (a symbolic or hard link, a folder "
                               "or a device): the run folder is damaged; delete it to start "
                               "over.")
        try:
            handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK,
                             0o644)
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
                raise damaged from None
            raise
        status = os.fstat(handle)
        if not stat.S_ISREG(status.st_mode) or status.st_nlink > 1:  # a hard link: another
            os.close(handle)                                          # file's, truncated below
            raise damaged
        self.handle = os.fdopen(handle, "r+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "unknown"
            self.handle.close()
            raise RunBusy(f"{path.parent} is being written by another process (pid {holder}); "
                          "wait for it to finish, or stop it first.") from None

    def release(self) -> None:
        """Removes the lock file, then lets go of the lock (in that order: a process that
        opened the file meanwhile finds, once it holds the lock, that it is gone)."""
        if not self.handle.closed:
            try:
                if self._still_there(self.path):
                    self.path.unlink()
            except OSError:  # a folder removed or made read-only: the lock still goes
                pass
            self.handle.close()  # closing the descriptor releases the flock


def lock_held(folder: Path) -> bool:
    """Whether a live process holds the run folder's lock (probed without creating it,
    with a shared lock held for an instant)."""
    import fcntl

    lock = folder / LOCK
    try:  # not through a link, and without blocking on a FIFO
        with os.fdopen(os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:  # no lock file: nobody ever wrote the run
        return False
    return False
