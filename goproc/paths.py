"""Where goproc keeps its files.  Environment first, then platformdirs.

- socket: $GOPROC_SOCKET, else $GOPROC_RUNTIME_DIR/goproc.sock, else the user runtime dir;
- PID file: `goproc.pid` beside the socket (the socket's dir is the runtime dir);
- state (snapshot, journal, lock): $GOPROC_STATE_DIR, else the user state dir.  Never the
  runtime dir, which is a tmpfs on Linux and empty after a reboot;
- logs: the state dir's `logs` (0700): `<id>.out` and `<id>.err` of what `goproc run`
  starts (mode 0600), and nothing else but names starting with "." (temp files), so
  rotated names (`<id>.out.1`) stay free.

When platformdirs finds no usable place (a fallback runtime dir another user made
first), `PlaceError` says so in one line naming the variable to set.  Whether a place
is private enough is checked by the daemon before it writes there
(`goproc.daemon.places`).
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "goproc"
LOG_DIR = "logs"


class PlaceError(Exception):
    """No usable place for goproc's files; the message names it and the variable to set."""


def runtime_dir() -> Path:
    env = os.environ.get("GOPROC_RUNTIME_DIR")
    if env:
        return Path(env)
    import warnings

    import platformdirs  # deferred: only needed when no variable names the place

    # Without $XDG_RUNTIME_DIR platformdirs warns (on stderr, several lines) and falls
    # back to /run/user/<uid> or a private temp dir; the place it picks is what we want,
    # and `goproc daemon` says where it listens.  It raises when that temp dir is
    # another user's (made first under the predictable name).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return Path(platformdirs.user_runtime_dir(APP))
        except OSError as e:
            raise PlaceError(_no_place("runtime", e, "GOPROC_RUNTIME_DIR")) from None


def runtime_variable() -> str:
    """The variable that names the runtime dir as things stand."""
    return "GOPROC_SOCKET" if os.environ.get("GOPROC_SOCKET") else "GOPROC_RUNTIME_DIR"


def socket_path() -> Path:
    env = os.environ.get("GOPROC_SOCKET")
    return Path(env) if env else runtime_dir() / "goproc.sock"


def pid_file(socket: Path) -> Path:
    return socket.parent / "goproc.pid"


def state_dir() -> Path:
    env = os.environ.get("GOPROC_STATE_DIR")
    if env:
        return Path(env)
    import platformdirs

    try:
        return Path(platformdirs.user_state_dir(APP))
    except OSError as e:
        raise PlaceError(_no_place("state", e, "GOPROC_STATE_DIR")) from None


def _no_place(kind: str, e: OSError, variable: str) -> str:
    # platformdirs' own advice ("; set XDG_RUNTIME_DIR instead") is replaced by ours.
    reason = " ".join(str(e.strerror or e).split()).split("; set ")[0]
    return (
        f"no usable user {kind} dir: {reason}; set {variable} to a directory of yours "
        "that only you can write"
    )
