"""The HTTP listener's socket, bound before the event loop starts (as the daemon's own
socket is), so that an address in use or a path that is not ours stops the start with
one line; hypercorn is then given the descriptor (`fd://N`).  Synchronous, stdlib only.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat

from goproc.daemon.places import StartError


def bind_http(listen: str) -> socket.socket:
    """A socket bound to a checked `http_listen` value (not listening yet: hypercorn
    calls listen with its backlog).  A `unix:` path is made mode 0600; a leftover socket
    file nobody listens on is replaced, anything else there is refused."""
    if listen.startswith("unix:"):
        return _bind_unix(listen[5:])
    host, port = listen.rsplit(":", 1)
    family = socket.AF_INET6 if host.startswith("[") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host.strip("[]"), int(port)))
    except OSError as e:
        sock.close()
        raise StartError(f"cannot bind http_listen {listen}: {e.strerror or e}") from None
    return sock


def _bind_unix(path: str) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        mode = os.lstat(path).st_mode
        if not stat.S_ISSOCK(mode):
            raise StartError(f"http_listen unix:{path}: the path exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: nobody listens
        else:
            raise StartError(f"http_listen unix:{path}: another process listens there")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(path)
    except OSError as e:
        sock.close()
        raise StartError(f"cannot bind http_listen unix:{path}: {e.strerror or e}") from None
    finally:
        os.umask(old_umask)
    return sock
