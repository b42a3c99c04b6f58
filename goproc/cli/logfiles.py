"""The files `goproc run` gives a command as its output, made before it starts.  Standard
library only (the CLI stays light); blocking.

- default: `<state_dir>/logs/<id>.out` and `<id>.err`.  `logs/` is made 0700 if missing
  and used only when it is a directory of ours that nobody else may enter (opened with
  `O_NOFOLLOW`, then checked through its descriptor, which every later step uses, so a
  path swapped under us is never written through).  The files are made there before
  the id is known, as `.run-<random>.out|.err` (`O_CREAT | O_EXCL | O_NOFOLLOW`, mode
  0600), given to the command, and renamed (in the same dir: atomically) to the names
  the daemon's `add` answers with; on any failure they are removed.  Only `.`-prefixed
  temp names and `<id>.out|.err` are put in `logs/`: rotated names (`<id>.out.1`) stay
  free.  A file left by an id given before a `reset` is replaced.
- `--log PATH`: PATH for both, opened for appending (`O_NOFOLLOW`, created 0600).
- `--attach`: the terminal's own stdio, no log.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import subprocess
from typing import Any

from goproc.model import LogFiles
from goproc.paths import LOG_DIR

_NEW = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class LogFileError(Exception):
    """A log file could not be made, opened or put in place; the message says why."""


def _why(e: OSError, path: str) -> str:
    if e.errno == errno.ELOOP:
        return f"{path} is a symlink; goproc does not follow it"
    return f"{path}: {e.strerror or e}"


class Outputs:
    """A command's stdin, stdout and stderr, and the `log` its `add` gives.  Close the
    descriptors (`close`) once the command has them; then `place` the files by the
    entry's answer, or `discard` them when the command is not tracked."""

    def __init__(
        self,
        log: bool | LogFiles = False,
        out: int | None = None,
        err: int | None = None,
        dir_fd: int | None = None,
        temps: tuple[str, str] = ("", ""),
    ) -> None:
        self.log = log
        self.stdin: int | None = None if out is None else subprocess.DEVNULL
        self.stdout = out
        self.stderr = err
        self._dir_fd = dir_fd
        self._temps = temps

    @classmethod
    def attached(cls) -> Outputs:
        return cls()

    @classmethod
    def appended(cls, path: str) -> Outputs:
        """Both streams to `path` (appended, created 0600 if missing)."""
        full = os.path.abspath(path)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(full, flags, 0o600)
        except OSError as e:
            raise LogFileError(f"--log: {_why(e, full)}") from None
        return cls(LogFiles(full, full), fd, fd)

    @classmethod
    def fresh(cls, state_dir: str) -> Outputs:
        """New temp files in the state dir's `logs/` (see the module doc)."""
        logs = os.path.join(os.path.abspath(state_dir), LOG_DIR)
        dir_fd = open_log_dir(logs)
        token = secrets.token_hex(8)
        temps = (f".run-{token}.out", f".run-{token}.err")
        fds: list[int] = []
        try:
            for name in temps:
                fd = os.open(name, _NEW, 0o600, dir_fd=dir_fd)
                fds.append(fd)
                os.fchmod(fd, 0o600)  # whatever the umask
        except OSError as e:
            for fd in fds:
                os.close(fd)
            for name in temps[: len(fds)]:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=dir_fd)
            os.close(dir_fd)
            raise LogFileError(_why(e, logs)) from None
        return cls(True, fds[0], fds[1], dir_fd, temps)

    def close(self) -> None:
        """Close this process's copies of the command's descriptors."""
        for fd in {self.stdout, self.stderr} - {None}:
            assert fd is not None
            os.close(fd)
        self.stdout = self.stderr = None

    def place(self, entry: Any) -> None:
        """Rename the temp files to the entry's `log` paths (which must name this very
        dir); LogFileError otherwise, the temp files left for `discard`."""
        if self._dir_fd is None:
            return
        log = entry.get("log") if isinstance(entry, dict) else None
        if not isinstance(log, dict):
            raise LogFileError("the daemon gave the entry no log files")
        here = os.fstat(self._dir_fd)
        for temp, key in zip(self._temps, ("out", "err"), strict=True):
            path = str(log.get(key))
            try:
                there = os.stat(os.path.dirname(path))
                if (there.st_dev, there.st_ino) != (here.st_dev, here.st_ino):
                    raise LogFileError(f"the daemon's log file {path} is not in its logs dir")
                os.rename(
                    temp, os.path.basename(path), src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd
                )
            except OSError as e:
                raise LogFileError(f"cannot put the log file in place: {_why(e, path)}") from None
        self._temps = ("", "")
        self.release()

    def discard(self) -> None:
        """Remove the temp files not yet placed (the command is not tracked)."""
        self.close()
        if self._dir_fd is not None:
            for name in self._temps:
                if name:
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=self._dir_fd)
        self.release()

    def release(self) -> None:
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None


def open_log_dir(logs: str) -> int:
    """`logs` (made 0700 if missing) opened as a directory, when it is ours and private."""
    old_umask = os.umask(0o077)
    try:
        os.mkdir(logs, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise LogFileError(f"cannot create {logs}: {e.strerror or e}") from None
    finally:
        os.umask(old_umask)
    try:
        fd = os.open(logs, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise LogFileError(f"{logs} is not a directory (a symlink?); remove it") from None
        raise LogFileError(_why(e, logs)) from None
    st = os.fstat(fd)
    uid, mode = os.geteuid(), stat.S_IMODE(st.st_mode)
    problem = None
    if st.st_uid != uid:
        problem = f"is owned by uid {st.st_uid}, not {uid}"
    elif mode & 0o077:
        problem = f"has mode {mode:04o}, open to others (it must be 0700)"
    if problem is not None:
        os.close(fd)
        raise LogFileError(f"{logs} {problem}: refusing to write logs there")
    return fd
