"""Where `goproc top` gets its data: the seam between the app and the daemon.

`Source` is what the app needs: the daemon's status, the entries with a stream of
their events, any other method, the tail of an entry's log, and a way to start a
daemon.  `SocketSource` is the real one, over the CLI's stdlib `Client` (blocking: the
app calls it from thread workers).  Tests of the screen feed fixed data through the
same protocol (tests/tui/fixed.py), so what a snapshot shows does not depend on pids or
clocks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from goproc import api, paths
from goproc.cli.client import Client, DaemonUnreachable
from goproc.cli.tail import TailError, last_lines, open_log
from goproc.config import load_config
from goproc.model import Selector

P = TypeVar("P")
Entry = dict[str, Any]
OnLoad = Callable[[list[Entry]], None]
OnEvent = Callable[[dict[str, Any]], None]

__all__ = ["DaemonUnreachable", "SocketSource", "Source", "log_tail"]


class Source(Protocol):
    """The daemon as the app sees it.  Every method may raise `DaemonUnreachable`, and
    a method's error reply is a `goproc.cli.client.RemoteError`."""

    @property
    def where(self) -> str:
        """The socket's path, for the screen."""
        ...

    def status(self) -> dict[str, Any]: ...

    def entries(self) -> list[Entry]:
        """The entries `goproc top`'s selector matches (`list`)."""
        ...

    def follow(self, on_load: OnLoad, on_event: OnEvent) -> None:
        """Subscribe, then load the entries (`on_load`), then pass each event on
        (`on_event`) until the connection ends or `stop` is called; returns then."""
        ...

    def stop(self) -> None:
        """End a `follow` in progress (from another thread)."""
        ...

    def call(self, method: api.Method[P, Any], params: P) -> Any: ...

    def log_tail(self, entry: Mapping[str, Any], lines: int) -> list[str]:
        """The last lines of the entry's output (`goproc run`); none without a log."""
        ...

    def start_daemon(self) -> None:
        """Start a daemon in the background, detached, as `goproc daemon` would."""
        ...


class SocketSource:
    """The daemon behind the socket that `config` (as `--config` does) names."""

    def __init__(self, config: Path | None, selector: Selector) -> None:
        load_config(config)  # a bad config is a usage error before the screen opens
        self.config = config
        self.selector = selector
        self.path = paths.socket_path()
        self._lock = threading.Lock()
        self._following: Client | None = None

    @property
    def where(self) -> str:
        return str(self.path)

    def status(self) -> dict[str, Any]:
        """`status`, and `uptime_seconds`: how long the daemon has run (None when its
        /proc entry cannot tell, as for a daemon in another pid namespace)."""
        status = dict(self.call(api.STATUS, api.NoParams()))
        pid = status.get("pid")
        status["uptime_seconds"] = process_age(pid) if isinstance(pid, int) else None
        return status

    def entries(self) -> list[Entry]:
        return list(self.call(api.LIST, self.selector))

    def follow(self, on_load: OnLoad, on_event: OnEvent) -> None:
        client = Client(self.path, timeout=None)
        with self._lock:
            self._following = client
        try:
            client.call(api.SUBSCRIBE, self.selector)
            # Events sent before the `list` answer are already in it.
            on_load(list(client.call(api.LIST, self.selector, on_event=lambda _: None)))
            client.listen(on_event)
        finally:
            with self._lock:
                self._following = None
            client.close()

    def stop(self) -> None:
        with self._lock:
            if self._following is not None:
                self._following.interrupt()

    def call(self, method: api.Method[P, Any], params: P) -> Any:
        with Client(self.path, timeout=CALL_TIMEOUT) as client:
            return client.call(method, params)

    def log_tail(self, entry: Mapping[str, Any], lines: int) -> list[str]:
        return log_tail(entry, lines)

    def start_daemon(self) -> None:
        argv = [sys.executable, "-m", "goproc", "daemon"]
        if self.config is not None:
            argv.append(f"--config={self.config}")
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not in the terminal's process group: Ctrl+C spares it
            env=dict(os.environ),
        )
        # Reaped if it ends while the app runs (a daemon that finds another one running);
        # once the app has gone it runs on, its own.
        threading.Thread(target=child.wait, name="goproc-daemon-reaper", daemon=True).start()


def process_age(pid: int) -> float | None:
    """Seconds since the process started, from /proc (its start in clock ticks since
    boot); None when that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        # The fields after the command (which may hold spaces and parentheses).
        started = int(stat[stat.rindex(b")") + 2 :].split()[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return max(uptime - started, 0.0)


CALL_TIMEOUT = 60.0  # a `kill` waits up to its timeout (5 s) for exits before answering


def log_tail(entry: Mapping[str, Any], lines: int) -> list[str]:
    """The last `lines` lines of an entry's standard output (and, when it differs, of
    its standard error), read as `goproc logs` reads them; decoded with replacement."""
    log = entry.get("log")
    if not isinstance(log, Mapping):
        return []
    out: list[str] = []
    names = [("out", log.get("out"))]
    if log.get("err") != log.get("out"):
        names.append(("err", log.get("err")))
    for label, path in names:
        if not isinstance(path, str):
            continue
        try:
            fd = open_log(path)
        except TailError as e:
            out.append(f"[{label}] {e}")
            continue
        try:
            data, _ = last_lines(fd, lines)
        finally:
            os.close(fd)
        out.extend(f"[{label}] {line}" for line in data.decode(errors="replace").splitlines())
    return out
