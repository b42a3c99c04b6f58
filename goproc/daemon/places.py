"""The daemon's two dirs (runtime: the socket's; state), made or checked before a thing
is written in them.  Synchronous, before the event loop.

A dir is used only when it is ours and private, as OpenSSH and tmux ask of theirs:
owned by the daemon's uid and writable by no one else (mode & 0o022 == 0).  Else the
start is refused (`StartError`) with one line naming the dir, what is wrong and the
variable to set; nothing is written there.  A socket in a shared dir like /tmp (named
by `GOPROC_SOCKET`) is refused the same way: its dir is the runtime dir.  Missing dirs
(and their missing parents) are made 0700 whatever the umask.

Then every `goproc.*` entry in them must be a regular file of ours whose every link is
one of those entries (`goproc.store.files.file_problem`: the previous snapshot is a
second link of the newest until the next write); a socket, and whatever is at the socket's path, is
left to `main._bind`.  Anything else
(a symlink planted while the dir was open to others, a file of another uid, a hard
link to a file elsewhere) is refused at start, naming it: never followed, never
removed.  Past these checks nobody but us (and root) can add an entry, so what the
store reads and writes there later is what we made.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from pathlib import Path

from goproc.store.files import file_problem

PREFIX = "goproc."  # the daemon's names in its dirs; others are left alone
LISTEN_STREAM = "the socket unit's ListenStream="  # names a passed socket's path


class StartError(Exception):
    """The daemon cannot start; the message says why."""


def prepare(directory: Path, variable: str, socket_name: str = "") -> None:
    """Make `directory` (0700) or check it is ours and private, then check its
    `goproc.*` entries but `socket_name` (what is at the socket's path is `_bind`'s to
    judge); `variable` is the one to set to put the dir elsewhere."""
    _make(directory)
    problem = dir_problem(directory)
    if problem is not None:
        names_path = variable in ("GOPROC_SOCKET", LISTEN_STREAM)
        place = "a path in a directory" if names_path else "a directory"
        raise StartError(
            f"{directory} {problem}: refusing to use it; set {variable} to {place} of "
            "yours that only you can write"
        )
    ours = [
        (Path(entry.path), entry.stat(follow_symlinks=False))
        for entry in os.scandir(directory)
        if entry.name.startswith(PREFIX) and entry.name != socket_name
    ]
    links = Counter((st.st_dev, st.st_ino) for _, st in ours)
    for path, st in ours:
        if stat.S_ISSOCK(st.st_mode):
            continue
        problem = file_problem(st, links[st.st_dev, st.st_ino])
        if problem is not None:
            raise StartError(
                f"{path} {problem}; goproc neither follows nor replaces it: remove it "
                "and start again"
            )


def dir_problem(directory: Path) -> str | None:
    """What makes `directory` not ours and private, or None."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        return f"cannot be opened as a directory ({e.strerror})"
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    uid, mode = os.geteuid(), stat.S_IMODE(st.st_mode)
    if st.st_uid != uid:
        return f"is owned by uid {st.st_uid}, not {uid}"
    writable = [who for who, bit in (("group", 0o020), ("others", 0o002)) if mode & bit]
    if writable:
        return f"has mode {mode:04o}, writable by {' and '.join(writable)}"
    return None


def _make(directory: Path) -> None:
    old_umask = os.umask(0o077)  # parents made on the way are private too
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise StartError(f"cannot create {directory}: {e.strerror}") from None
    finally:
        os.umask(old_umask)
