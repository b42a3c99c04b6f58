"""Files in the daemon's dirs, written safely: atomic replacement, private modes, and
the directory listings the store needs.  Blocking: call from a worker thread (or before
the event loop runs).  No trio.

Nothing here follows a symlink.  A file made anew is a temp file with a random name,
created with `O_EXCL | O_NOFOLLOW` (a name planted in advance is never reused), then
renamed into place, which replaces a directory entry and never writes through one.  A
file that must be opened again (the lock, a journal generation) is opened with
`O_NOFOLLOW` and used only when it is a regular file of ours with one link
(`file_problem`).
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from goproc.store.format import JOURNAL_RE, journal_name


def journal_path(state_dir: Path, gen: int) -> Path:
    return state_dir / journal_name(gen)


def journal_generations(state_dir: Path) -> list[int]:
    """The journal generations present in the state dir, oldest first."""
    gens = []
    for p in state_dir.iterdir():
        m = JOURNAL_RE.fullmatch(p.name)
        if m:
            gens.append(int(m.group(1)))
    return sorted(gens)


def atomic_write(path: Path, chunks: Iterable[bytes]) -> None:
    """Replace `path` with the chunks' bytes, or leave it as it was (mode 0600): a temp
    file, fsync, rename, fsync of the directory."""
    atomic_write_kept(path, chunks).close()


def atomic_write_kept(path: Path, chunks: Iterable[bytes]) -> BinaryIO:
    """`atomic_write`, keeping the new file open for reading (unbuffered; read-only, so
    the file system can still be remounted read-only)."""
    fd, tmp = create_temp(path)
    kept = None
    try:
        for chunk in chunks:
            write_all(fd, chunk)
        os.fsync(fd)
        kept = open(open_same(tmp, fd), "rb", buffering=0)  # noqa: SIM115
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        if kept is not None:
            kept.close()
        tmp.unlink(missing_ok=True)
        raise
    return kept


def create_temp(path: Path) -> tuple[int, Path]:
    """A new empty file beside `path`, `<name>.tmp-<random>`, mode 0600, open for
    writing (its fd and path).  `O_EXCL | O_NOFOLLOW`: whatever sits at a name already
    (a symlink included) is never opened; another random name is tried instead."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        tmp = path.with_name(f"{path.name}.tmp-{secrets.token_hex(8)}")
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue


def open_same(path: Path, fd: int) -> int:
    """`path` opened again, read-only, when it still is the file `fd` has open."""
    again = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    a, b = os.fstat(again), os.fstat(fd)
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
        os.close(again)
        raise OSError(errno.ESTALE, f"{path} was replaced while it was written")
    return again


def replace_private(path: Path, data: bytes) -> None:
    """Put a file with `data` at `path` (mode 0600 whatever the umask): written as a new
    temp file, then renamed over whatever was there.  No fsync: for files a crash may
    lose (the PID file)."""
    fd, tmp = create_temp(path)
    try:
        os.fchmod(fd, 0o600)
        write_all(fd, data)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise


class UnsafeFile(OSError):
    """A file at one of the daemon's names that it must not use; the message says why."""


def file_problem(st: os.stat_result, links_here: int = 1) -> str | None:
    """What makes a file (as `lstat` or `fstat` saw it) other than the daemon's own
    regular file: a symlink, another kind, another owner, another name for it than the
    `links_here` the caller found among the daemon's own names (the previous snapshot
    is a second name of the newest one until the next write)."""
    uid = os.geteuid()
    if stat.S_ISLNK(st.st_mode):
        return "is a symlink"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_uid != uid:
        return f"is owned by uid {st.st_uid}, not {uid}"
    if st.st_nlink > links_here:
        return f"has {st.st_nlink} hard links"
    return None


def open_ours(path: Path, flags: int) -> int:
    """`path` opened with `flags` (plus `O_NOFOLLOW`; created 0600 with `O_CREAT`), only
    when it is a regular file of ours with one link; else `UnsafeFile`."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafeFile(errno.ELOOP, f"{path} is a symlink") from None
        raise
    problem = file_problem(os.fstat(fd))
    if problem is not None:
        os.close(fd)
        raise UnsafeFile(errno.EPERM, f"{path} {problem}")
    return fd


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def cut_torn_tail(path: Path) -> None:
    """Cut a partial last line (a write that failed half way) off a journal file."""
    try:
        fd = open_ours(path, os.O_RDWR)
    except OSError:
        return
    try:
        size = os.fstat(fd).st_size
        data = os.pread(fd, size, 0)
        cut = data.rfind(b"\n") + 1
        if cut != len(data):
            os.ftruncate(fd, cut)
    except OSError:
        pass
    finally:
        os.close(fd)
