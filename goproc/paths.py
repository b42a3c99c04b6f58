"""Where goproc keeps its files.  Environment first, then platformdirs.

- socket: $GOPROC_SOCKET, else $GOPROC_RUNTIME_DIR/goproc.sock, else the user runtime dir;
- PID file: `goproc.pid` beside the socket;
- state (snapshot, journal, lock): $GOPROC_STATE_DIR, else the user state dir.  Never the
  runtime dir, which is a tmpfs on Linux and empty after a reboot.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "goproc"


def runtime_dir() -> Path:
    env = os.environ.get("GOPROC_RUNTIME_DIR")
    if env:
        return Path(env)
    import warnings

    import platformdirs  # deferred: only needed when no variable names the place

    # Without $XDG_RUNTIME_DIR platformdirs warns (on stderr, several lines) and falls
    # back to /run/user/<uid> or a private temp dir; the place it picks is what we want,
    # and `goproc daemon` says where it listens.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Path(platformdirs.user_runtime_dir(APP))


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

    return Path(platformdirs.user_state_dir(APP))
