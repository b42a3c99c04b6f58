"""Shared fixtures: real daemons on real sockets in temp dirs, real target processes.

- `daemon`: a running `goproc daemon` (a subprocess) with its own runtime and state dir.
- `spawn_daemon`: a factory for more (or differently configured) daemons.
- `no_daemon`, `stale_daemon`: where none answers: no socket, or one nobody listens on.
- `sleeper`: a factory of real `sleep` processes, killed and reaped at teardown.
- `run_cli`: runs `goproc ...` as a user would, against a given daemon's environment.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# A suite started with SIGINT ignored (a background job of a shell script) would pass
# that on to every command it runs, and the tests that stop `goproc logs -f` with
# SIGINT, as a user's Ctrl+C does, could not: the commands get the default back.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

GOPROC = [sys.executable, "-m", "goproc"]


class Daemon:
    """A `goproc daemon` subprocess and the ways tests talk to it."""

    def __init__(
        self, root: Path, config: dict[str, Any] | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.root = root
        self.runtime_dir = root / "run"
        self.state_dir = root / "state"
        self.socket = self.runtime_dir / "goproc.sock"
        self.env = {
            **os.environ,
            "GOPROC_RUNTIME_DIR": str(self.runtime_dir),
            "GOPROC_STATE_DIR": str(self.state_dir),
            **(env or {}),
        }
        self.env.pop("GOPROC_SOCKET", None)
        # Metrics change from one sample to the next, so a daemon of a test samples only
        # when its config asks for it (tests of metrics do, and the spec's world daemon):
        # answers compared across calls or restarts stay the same.
        if "metrics_interval" not in (config or {}):
            self.env.setdefault("GOPROC_METRICS_INTERVAL", "off")
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = root / "config.json"
            self.config_path.write_text(json.dumps(config))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / "daemon.log"

    # ---- life cycle ----------------------------------------------------------------------

    # What runs the daemon's command, if anything (`prlimit ... --`, say), and the fds
    # the launcher inherits (all others are closed).
    launcher: tuple[str, ...] = ()
    pass_fds: tuple[int, ...] = ()

    def start(self, *extra: str, wait: bool = True) -> Daemon:
        args = [*self.launcher, *GOPROC, "daemon", *extra]
        if self.config_path is not None:
            args += ["--config", str(self.config_path)]
        self._log = open(self.log_path, "ab")  # noqa: SIM115  # closed in stop()
        self.proc = subprocess.Popen(
            args, env=self.env, stdout=self._log, stderr=self._log, pass_fds=self.pass_fds
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}: {self.log()}")
            try:
                if self.call("ping") == "pong":
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise TimeoutError(f"daemon not ready: {self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._log.close()
        return code

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # ---- talking -------------------------------------------------------------------------

    def connect(self, timeout: float = 10.0) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(str(self.socket))
        return s

    def request(self, method: str, params: dict[str, Any] | None = None, id: Any = 1) -> Any:
        """The whole JSON-RPC response object."""
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            msg["params"] = params
        return json.loads(self.raw(json.dumps(msg).encode() + b"\n")[0])

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """The result; raises AssertionError carrying the error object otherwise."""
        reply = self.request(method, params)
        if "error" in reply:
            raise AssertionError(reply["error"])
        return reply["result"]

    def error(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """The error object; raises AssertionError carrying the result otherwise."""
        reply = self.request(method, params)
        if "error" not in reply:
            raise AssertionError(f"{method} {params} must fail, got {reply}")
        return reply["error"]

    def raw(self, data: bytes, expect: int = 1, timeout: float = 10.0) -> list[bytes]:
        """Send bytes on a fresh connection; read `expect` reply lines (fewer on EOF)."""
        with self.connect(timeout) as s:
            s.sendall(data)
            return read_lines(s, expect)

    def cli(
        self, *args: str, timeout: float = 30.0, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*GOPROC, *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def message(method: str, params: Any = None, request_id: Any = 1) -> bytes:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        msg["params"] = params
    return json.dumps(msg).encode() + b"\n"


class Conn:
    """One connection kept open; reads whole lines and tells EOF apart."""

    def __init__(self, d: Daemon, timeout: float = 10.0) -> None:
        self.sock = d.connect(timeout)
        self.buf = b""
        self._ids = iter(range(1, 1 << 30))

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def raw_line(self) -> bytes | None:
        """The next line's bytes; None at EOF (or a reset: the daemon closed with our
        bytes unread)."""
        chunks = [self.buf]
        while b"\n" not in chunks[-1]:
            try:
                chunk = self.sock.recv(1 << 20)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            chunks.append(chunk)
        data, self.buf = b"".join(chunks).split(b"\n", 1)
        return data

    def line(self) -> Any:
        """The next line, parsed; None at EOF."""
        data = self.raw_line()
        return None if data is None else json.loads(data)

    def request(self, method: str, params: Any = None) -> Any:
        """The whole response (event notifications before it are skipped); None at EOF."""
        request_id = next(self._ids)
        self.sock.sendall(message(method, params, request_id))
        while (reply := self.line()) is not None:
            if reply.get("id") == request_id:
                return reply
        return None

    def call(self, method: str, params: Any = None) -> Any:
        reply = self.request(method, params)
        assert reply is not None, f"connection closed before the reply to {method}"
        assert "result" in reply, reply
        return reply["result"]


def read_lines(s: socket.socket, expect: int) -> list[bytes]:
    buf = b""
    lines: list[bytes] = []
    while len(lines) < expect:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf and len(lines) < expect:
            line, buf = buf.split(b"\n", 1)
            lines.append(line)
    return lines


@pytest.fixture
def spawn_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []
    counter = iter(range(1000))

    def spawn(
        config: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        root: Path | None = None,
        start: bool = True,
    ) -> Daemon:
        if root is None:
            root = tmp_path / f"d{next(counter)}"
            root.mkdir()
        d = Daemon(root, config, env)
        started.append(d)
        return d.start() if start else d

    yield spawn
    for d in started:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)


@pytest.fixture(scope="module")
def no_daemon(tmp_path_factory: pytest.TempPathFactory) -> Daemon:
    """A daemon's environment where none runs: no socket at all."""
    return Daemon(tmp_path_factory.mktemp("no-daemon"))


@pytest.fixture(scope="module")
def stale_daemon(tmp_path_factory: pytest.TempPathFactory) -> Daemon:
    """A daemon killed -9: its socket stays, and nobody listens on it."""
    d = Daemon(tmp_path_factory.mktemp("stale")).start()
    d.kill9()
    assert d.socket.exists()
    return d


@pytest.fixture
def daemon(spawn_daemon: Callable[..., Daemon]) -> Daemon:
    return spawn_daemon()


@pytest.fixture
def sleeper() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(*cmd: str, **popen: Any) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(list(cmd) if cmd else ["sleep", "300"], **popen)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(10)
