"""What the benchmarks stand on: which `goproc` to run, a daemon or echo server in a temp
dir for the length of a `with` block, and one blocking line-JSON client for both.

Everything started here is stopped (and reaped) when its block ends, also on errors and
Ctrl+C, so a benchmark run leaves nothing behind.  Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
READY_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class Runner:
    """How `goproc` is invoked, and the Python interpreter that runs it (the baseline
    `python -c "import cyclopts"` uses the same one)."""

    argv: tuple[str, ...]
    python: str
    kind: str  # "script" (the installed console script) or "module" (python -m goproc)

    def describe(self) -> str:
        return f"{' '.join(self.argv)}  [{self.kind}; interpreter {self.python}]"


def find_runner(kind: str) -> Runner:
    """The console script installed beside this interpreter (what users run), or
    `python -m goproc` with this interpreter."""
    if kind == "module":
        return Runner((sys.executable, "-m", "goproc"), sys.executable, "module")
    script = Path(sys.executable).parent / "goproc"
    if not script.exists():
        found = shutil.which("goproc")
        if found is None:
            raise SystemExit(
                f"no 'goproc' script beside {sys.executable} nor on PATH: install goproc into "
                "this interpreter's environment, or use --runner module"
            )
        script = Path(found)
    return Runner((str(script),), _shebang_python(script) or sys.executable, "script")


def _shebang_python(script: Path) -> str | None:
    """The interpreter named by the script's `#!` line, when it is a plain path."""
    try:
        first = script.read_bytes().split(b"\n", 1)[0].decode()
    except (OSError, UnicodeDecodeError):
        return None
    if not first.startswith("#!"):
        return None
    parts = first[2:].split()
    if len(parts) == 1 and Path(parts[0]).exists():
        return parts[0]
    return None


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without any GOPROC_* variable (benchmarks run on the
    defaults), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPROC_")}
    env.update(extra)
    return env


# ---- the blocking client -------------------------------------------------------------------


class LineClient:
    """One UNIX-socket connection speaking one JSON line each way.  The same code drives
    the daemon and the echo server, so both pay the same client cost."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rb")
        self.next_id = 1

    def roundtrip(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one request, read its reply; raises on an error reply or a wrong id."""
        request_id = self.next_id
        self.next_id += 1
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            request["params"] = params
        self.sock.sendall(json.dumps(request, separators=(",", ":")).encode() + b"\n")
        line = self.file.readline()
        if not line:
            raise ConnectionError("the server closed the connection")
        reply: dict[str, Any] = json.loads(line)
        if reply.get("id") != request_id or "error" in reply:
            raise RuntimeError(f"unexpected reply to {method} #{request_id}: {reply}")
        return reply

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return self.roundtrip(method, params)["result"]

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> LineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventReader:
    """A `subscribe` connection read by a thread: each event of `kind` with the wall
    time it arrived, on the queue `events`."""

    def __init__(self, path: Path, kind: str, params: dict[str, Any] | None = None) -> None:
        self.kind = kind
        self.client = LineClient(path)
        self.client.call("subscribe", params)
        self.client.sock.settimeout(None)  # from now on the thread waits for events
        self.events: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in self.client.file:
                arrived = time.time()
                msg = json.loads(line)
                event = msg.get("params") or {}
                if msg.get("method") == "event" and event.get("kind") == self.kind:
                    self.events.put((arrived, event))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.client.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread: EOF
        self._thread.join(5)
        self.client.close()


def report(
    name: str,
    runner: Runner,
    result: dict[str, Any],
    table: list[dict[str, Any]],
    *,
    as_json: bool,
    check: bool,
) -> int:
    """Print a bench's rows (each: metric, measured, bar, ok) as a table, or everything
    as JSON; the exit code: 1 when `check` and a bar is missed."""
    info = {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()}
    if as_json:
        print(json.dumps({"machine": info, **result, "rows": table}, indent=2))
    else:
        print(f"goproc {name} bench  [{runner.describe()}; {info}]")
        for r in table:
            print(f"  {r['metric']:<56} {r['measured']}")
            print(f"  {'':<56} bar: {r['bar']}  {'ok' if r['ok'] else 'MISSED'}")
    return 1 if check and not all(r["ok"] for r in table) else 0


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (utime + stime of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- servers in temp dirs ------------------------------------------------------------------


@dataclass
class Server:
    """A server subprocess listening on `socket`; `env` is what a client command needs."""

    proc: subprocess.Popen[bytes]
    socket: Path
    env: dict[str, str]
    log: Path

    def log_tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def running_daemon(
    runner: Runner,
    *,
    config: dict[str, Any] | None = None,
    snapshot: dict[str, Any] | None = None,
    prefix: tuple[str, ...] = (),
) -> Iterator[Server]:
    """A `goproc daemon` with its own GOPROC_RUNTIME_DIR and GOPROC_STATE_DIR in a temp
    dir, on the default config (or `config`, as its config file), starting from
    `snapshot` when given, its command behind `prefix` (e.g. `prlimit --nofile=64 --`);
    stopped with SIGTERM (SIGKILL if it hangs) at the end."""
    with tempfile.TemporaryDirectory(prefix="goproc-bench-") as tmp:
        root = Path(tmp)
        env = clean_env(GOPROC_RUNTIME_DIR=str(root / "run"), GOPROC_STATE_DIR=str(root / "state"))
        argv = [*prefix, *runner.argv, "daemon"]
        if config is not None:
            (root / "config.json").write_text(json.dumps(config))
            argv += ["--config", str(root / "config.json")]
        if snapshot is not None:
            (root / "state").mkdir(mode=0o700)
            (root / "state" / "goproc.snapshot.json").write_text(json.dumps(snapshot))
        with _server(argv, root / "run" / "goproc.sock", env, root) as s:
            yield s


@contextlib.contextmanager
def running_echo_server(python: str) -> Iterator[Server]:
    """bench/echo_server.py on a socket in a temp dir, run by `python`."""
    with tempfile.TemporaryDirectory(prefix="goproc-bench-echo-") as tmp:
        root = Path(tmp)
        sock = root / "echo.sock"
        argv = [python, str(BENCH_DIR / "echo_server.py"), str(sock)]
        with _server(argv, sock, clean_env(), root) as s:
            yield s


@contextlib.contextmanager
def _server(argv: list[str], sock: Path, env: dict[str, str], root: Path) -> Iterator[Server]:
    log = root / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    server = Server(proc, sock, env, log)
    try:
        _wait_ready(server)
        yield server
    except BaseException:
        _stop(server)
        print(f"{server.proc.args!r} log (last lines):\n{server.log_tail()}", file=sys.stderr)
        raise
    else:
        _stop(server)


def _wait_ready(server: Server) -> None:
    """Poll until a connection succeeds (the server is listening), with a deadline."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.proc.args!r} exited with {server.proc.returncode}:\n{server.log_tail()}"
            )
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
            s.connect(str(server.socket))
            return
        time.sleep(0.02)
    raise TimeoutError(
        f"{server.proc.args!r} not listening on {server.socket}:\n{server.log_tail()}"
    )


def _stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()
    if server.proc.returncode not in (0, -signal.SIGTERM):
        print(
            f"warning: {server.proc.args!r} exited with {server.proc.returncode}:\n"
            f"{server.log_tail()}",
            file=sys.stderr,
        )


# ---- target processes ----------------------------------------------------------------------


@contextlib.contextmanager
def sleep_processes(count: int) -> Iterator[list[int]]:
    """`count` real `sleep` processes, killed and reaped when the block ends."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            procs.append(subprocess.Popen(["sleep", "3600"], stdin=subprocess.DEVNULL))
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            p.wait()
