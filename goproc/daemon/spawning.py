"""Starting a command for the supervisor: its output files, the fork and exec, and the
daemon as a child subreaper.  Blocking but short (a few milliseconds): run on the trio
thread, so that no exit can be reaped between a child's start and its being known.

- log files: `<log_dir>/<id>.out` and `.err`; `log_dir` is made 0700 if missing and
  used only when it is a directory of ours that nobody else may enter (opened with
  `O_NOFOLLOW`, checked through its descriptor, the files opened relative to it), the
  files opened `O_NOFOLLOW`, mode 0600; truncated for a new entry (a file left by an
  id given before a `reset` is replaced), appended to when the entry's process is
  started again.  Given paths (`spawn` with `log: {...}`) are appended to.  A new
  entry's own files also lose the rotated files and indexes an old id left.
- the pipes: the command writes to pipes the log pump (`goproc.daemon.pumping`) reads
  into those files, rotating them; when no pump takes them, to the files themselves.
  The pump itself is started here too (`start_log_pump`): of the code behind the
  socket, only this module starts processes.
- the process: its own session and process group, stdin /dev/null, no descriptor of
  the daemon's but its stdout and stderr (`close_fds`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Sequence

from attrs import frozen

from goproc.errors import CannotRun, GoprocError, PermissionDenied
from goproc.logformat import KEEP_MAX, index_of, rotated
from goproc.model import LogFiles

log = logging.getLogger("goproc.spawning")

PR_SET_CHILD_SUBREAPER = 36
# A started child, held until reaped (the only module behind the socket that can start one).
Started = subprocess.Popen[bytes]
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


def become_subreaper() -> bool:
    """Make the daemon a child subreaper (Linux): orphans of its children are
    re-parented to it, not to init.  Whether that worked."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        ok = bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        ok = False
    if not ok:
        log.warning("cannot become a child subreaper: orphans of started commands go to init")
    return ok


@frozen
class Outputs:
    """A command's stdout and stderr descriptors (the same one twice for one file),
    owned by whoever holds this until `close`."""

    out: int
    err: int

    def close(self) -> None:
        for fd in {self.out, self.err}:
            os.close(fd)


def _why(e: OSError, path: str) -> str:
    if e.errno == errno.ELOOP:
        return f"{path} is a symlink; goproc does not follow it"
    return f"{path}: {e.strerror or e}"


def _failed(e: OSError, path: str) -> GoprocError:
    """A log file that cannot be opened: refused (a symlink, no permission) or not
    there to be made (CannotRun)."""
    refused = e.errno in (errno.ELOOP, errno.EACCES, errno.EPERM)
    return (PermissionDenied if refused else CannotRun)(f"log: {_why(e, path)}")


def open_log_dir(logs: str) -> int:
    """`logs` (made 0700 if missing) opened as a directory, when it is ours and private;
    CannotRun otherwise."""
    old_umask = os.umask(0o077)
    try:
        os.mkdir(logs, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise CannotRun(f"log: cannot create {logs}: {e.strerror or e}") from None
    finally:
        os.umask(old_umask)
    try:
        fd = os.open(logs, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise _failed(e, logs) from None
    st = os.fstat(fd)
    uid, mode = os.geteuid(), stat.S_IMODE(st.st_mode)
    problem = None
    if st.st_uid != uid:
        problem = f"is owned by uid {st.st_uid}, not {uid}"
    elif mode & 0o077:
        problem = f"has mode {mode:04o}, open to others (it must be 0700)"
    if problem is not None:
        os.close(fd)
        raise PermissionDenied(f"log: {logs} {problem}: refusing to write logs there")
    return fd


def remove_own_files(files: LogFiles, log_dir: str | None) -> None:
    """Remove an entry's own files that were made for a command that did not start."""
    if log_dir is None or os.path.dirname(files.out) != log_dir:
        return
    try:
        dir_fd = open_log_dir(log_dir)
    except GoprocError:
        return
    try:
        for path in {files.out, files.err}:
            for name in (os.path.basename(path), index_of(os.path.basename(path))):
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def open_outputs(files: LogFiles, *, fresh: bool, log_dir: str | None) -> Outputs:
    """The descriptors of an entry's log files: in `log_dir` (its own files, truncated
    when `fresh`) when they are there, else the given paths, appended to."""
    if log_dir is not None and os.path.dirname(files.out) == log_dir == os.path.dirname(files.err):
        dir_fd = open_log_dir(log_dir)
        try:
            flags = _APPEND | (os.O_TRUNC if fresh else 0)
            outputs = _open_pair(files, flags, dir_fd)
            if fresh:
                _forget_rotated(files, dir_fd)
            return outputs
        finally:
            os.close(dir_fd)
    return _open_pair(files, _APPEND, None)


def _forget_rotated(files: LogFiles, dir_fd: int) -> None:
    """Remove the rotated files and the indexes of an earlier entry with these names."""
    for path in {files.out, files.err}:
        base = os.path.basename(path)
        with contextlib.suppress(OSError):
            os.unlink(index_of(base), dir_fd=dir_fd)
        for n in range(1, KEEP_MAX + 1):
            try:
                os.unlink(rotated(base, n), dir_fd=dir_fd)
            except FileNotFoundError:
                break
            except OSError:
                continue
            with contextlib.suppress(OSError):
                os.unlink(index_of(rotated(base, n)), dir_fd=dir_fd)


def _open_pair(files: LogFiles, flags: int, dir_fd: int | None) -> Outputs:
    fds: list[int] = []
    try:
        for path in dict.fromkeys((files.out, files.err)):
            name = path if dir_fd is None else os.path.basename(path)
            fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
            fds.append(fd)
            if flags & os.O_TRUNC:
                os.fchmod(fd, 0o600)  # whatever the umask, and an old file's mode
    except OSError as e:
        for fd in fds:
            os.close(fd)
        raise _failed(e, path) from None
    return Outputs(fds[0], fds[-1])


def environment(env: Sequence[str]) -> dict[str, str]:
    """ "KEY=VALUE" strings as the mapping exec takes (a later KEY wins)."""
    return dict(item.split("=", 1) for item in env)


def start(argv: Sequence[str], cwd: str, env: Sequence[str], outputs: Outputs) -> Started:
    """Fork and exec the command; CannotRun when it cannot be (no such file, not
    executable, no such cwd).  The caller holds the Popen until its exit is reaped,
    and gives it the status (`returncode`), so that subprocess never waits on it."""
    try:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=environment(env),
            stdin=subprocess.DEVNULL,
            stdout=outputs.out,
            stderr=outputs.err,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as e:
        raise CannotRun(f"cannot run {argv[0]!r}: {e.strerror or e}") from None


def start_log_pump(listener: int) -> Started:
    """The log pump (`goproc.logpump`), serving the listening socket `listener`: in a
    session of its own (a Ctrl+C of the daemon's terminal is not for it), no other
    descriptor of the daemon's, stdin and stdout /dev/null, stderr the daemon's."""
    return subprocess.Popen(
        [sys.executable, "-m", "goproc.logpump", "--fd", str(listener)],
        pass_fds=[listener],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
