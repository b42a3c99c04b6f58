"""Socket activation: the listening socket systemd (or `systemd-socket-activate`) passes
by the sd_listen_fds protocol, instead of one the daemon binds itself.

The protocol: `LISTEN_PID` is the pid the fds are meant for and `LISTEN_FDS` how many
there are, from fd 3 on (`LISTEN_FDNAMES` names them).  The fds are taken only when
`LISTEN_PID` is our pid: a variable inherited by a process it was not meant for names
fds that are not what it says.  The three variables are unset once read, as
`sd_listen_fds(unset=1)` does, so they never reach a child.  What is passed must be a
listening AF_UNIX stream socket bound to a path (the CLI connects to a path; the PID
file goes beside it), else the start is refused (`StartError`, one line).  Of several
fds the first is used and a warning names the rest.

Only reading the environment and checking fd 3; binding, and the dirs, are
`goproc.daemon.main`'s.  Synchronous, before the event loop.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from goproc.daemon.places import StartError

log = logging.getLogger("goproc.daemon")

FIRST_FD = 3  # SD_LISTEN_FDS_START
VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def passed_socket() -> socket.socket | None:
    """The listening socket passed to this process, or None when none was (the
    variables are unset either way); StartError when what was passed is unusable."""
    pid, fds, names = (os.environ.pop(name, None) for name in VARIABLES)
    if pid is None or fds is None:
        return None
    try:
        meant_for, count = int(pid), int(fds)
    except ValueError:
        log.warning("ignoring LISTEN_PID=%r LISTEN_FDS=%r: not numbers", pid, fds)
        return None
    if meant_for != os.getpid() or count < 1:
        return None  # another process's fds, or none: bind as usual
    sock = _listening_unix_socket(FIRST_FD)
    os.set_inheritable(FIRST_FD, False)  # FD_CLOEXEC, as for every fd the daemon opens
    if count > 1:
        extra = ", ".join(str(fd) for fd in range(FIRST_FD + 1, FIRST_FD + count))
        log.warning(
            "%d sockets were passed (names %s); using fd %d, ignoring fds %s",
            count,
            names or "unset",
            FIRST_FD,
            extra,
        )
    return sock


def socket_address(sock: socket.socket) -> Path:
    """The path `sock` is bound to; StartError for an abstract or unnamed socket."""
    name = sock.getsockname()
    if isinstance(name, str) and name.startswith("/"):
        return Path(name)
    # Linux gives an abstract name as bytes starting with NUL (or as a str with one).
    shown = "unnamed" if not name else repr(name)
    raise StartError(
        f"the passed socket (fd {FIRST_FD}) is not bound to an absolute path ({shown}); "
        "point the socket unit's ListenStream= at a file path"
    )


def _listening_unix_socket(fd: int) -> socket.socket:
    """fd `fd` as a socket object, when it is a listening AF_UNIX stream socket."""
    problem = f"LISTEN_FDS passes fd {fd}, but it"
    try:
        sock = socket.socket(fileno=fd)
    except OSError as e:  # EBADF: not open; ENOTSOCK: a file, a pipe
        raise StartError(f"{problem} is not a socket ({e.strerror or e})") from None
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError as e:
        sock.detach()
        raise StartError(f"{problem} cannot be checked ({e.strerror or e})") from None
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM or not listening:
        kinds = " ".join(str(getattr(k, "name", k)) for k in (sock.family, sock.type))
        what = kinds if listening else f"{kinds}, not listening"
        sock.detach()  # not ours to close: the start is refused anyway
        raise StartError(f"{problem} is not a listening AF_UNIX SOCK_STREAM socket ({what})")
    return sock
