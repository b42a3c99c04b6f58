"""Files in the state dir, written safely: atomic replacement, private modes, and the
directory listings the store needs.  Blocking: call from a worker thread (or before
the event loop runs).  No trio.
"""

from __future__ import annotations

import os
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
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    kept = None
    try:
        for chunk in chunks:
            write_all(fd, chunk)
        os.fsync(fd)
        kept = open(os.open(tmp, os.O_RDONLY | os.O_CLOEXEC), "rb", buffering=0)  # noqa: SIM115
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


def write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only, whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
        write_all(fd, data)
    finally:
        os.close(fd)


def cut_torn_tail(path: Path) -> None:
    """Cut a partial last line (a write that failed half way) off a journal file."""
    try:
        data = path.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut != len(data):
            os.truncate(path, cut)
    except OSError:
        pass
