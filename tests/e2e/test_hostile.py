"""Hostile clients, and the claims of spec/security.md that no other test file holds.

- Peer credentials: a client of another uid is refused (-32002, then closed) even when
  the socket is world-writable; a user's daemon serves that user and root only.
- Limits, each set small in the config file: request line size, connections at once,
  idle connections, clients that never read their replies.
- Fuzz: `goproc.rpc.jsonrpc.respond_line` with the real method table over a real Registry
  (the table probe of test_protocol_fuzz.py, whose processes die of TERM and KILL here,
  its in-memory journal, its line strategies and its JSON-RPC oracle): every reply a
  valid JSON-RPC response, no crash, no hang; a `slow` run of 100,000 examples also
  bounds the memory left behind.
- What a client can make the daemon do: no process started, no untracked pid signalled,
  signals through a pidfd, no parameter that is a path or a command; file modes.
- spec/security.md itself: its limits table matches goproc.config, and every test it
  cites exists.
"""

from __future__ import annotations

import ast
import functools
import gc
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import fuzzing as pf
import psutil
import pytest
import trio
import trio.testing
from conftest import GOPROC, Conn, Daemon, message
from fakes import TableProbe, make_parts
from helpers import Strace, forged_entries, wait_until as shared_wait_until
from hypothesis import HealthCheck, given, settings, strategies as st

from goproc.api import METHODS, wire_names
from goproc.config import Config
from goproc.daemon.handlers import Ctx, make_dispatch
from goproc.durations import parse_duration
from goproc.rpc import jsonrpc

REPO = Path(__file__).resolve().parents[2]
SECURITY_MD = REPO / "spec" / "security.md"
NOBODY_UID = 65534
NOGROUP_GID = 65534
STRANGER_UID = 4321  # a uid with no account: nobody the daemon knows
PERMISSION_DENIED, TOO_MANY_CONNECTIONS, INVALID_REQUEST = -32002, -32008, -32600


# ---- helpers ---------------------------------------------------------------------------


wait_until = functools.partial(shared_wait_until, timeout=10.0, every=0.01)


def read_to_end(sock: socket.socket) -> bytes:
    """Everything until the daemon closes (EOF, or a reset when it left bytes unread)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def connections(d: Daemon) -> int:
    """Connections the daemon has open, not counting the one that asks."""
    return int(d.call("status")["connections"]) - 1


def system_python() -> str | None:
    """A Python any user may run (the test environment's lives under /root)."""
    for path in ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"):
        if os.access(path, os.X_OK):
            return path
    return None


def as_user(uid: int, gid: int, *caps: str, python: str | None = None) -> list[str] | None:
    """A command prefix running what follows as uid/gid with no supplementary groups
    (and the given capabilities kept, ambient); None when this system cannot.  Checked
    by running `python` (by default the system's) that way."""
    python = python or system_python()
    if python is None:
        return None
    prefixes = []
    if shutil.which("setpriv"):
        prefix = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
        if caps:
            wanted = ",".join(f"+{c}" for c in caps)
            prefix += [f"--inh-caps={wanted}", f"--ambient-caps={wanted}"]
        prefixes.append(prefix)
    if shutil.which("runuser") and not caps and uid == NOBODY_UID:
        prefixes.append(["runuser", "-u", "nobody", "--"])
    for prefix in prefixes:
        probe = subprocess.run(
            [*prefix, python, "-c", "import os; print(os.getuid())"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if probe.returncode == 0 and probe.stdout.strip() == str(uid):
            return prefix
    return None


# A stdlib-only client for other users: sends its payload, closes its sending side, and
# reports every line it got and how the connection ended.
CLIENT = r"""
import json, os, socket, sys
path, payload = sys.argv[1], sys.argv[2].encode()
out = {"uid": os.getuid(), "lines": [], "end": None}
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(path)
except OSError as e:
    out["end"] = "connect failed: " + str(e)
    print(json.dumps(out))
    sys.exit()
try:
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
except OSError:
    pass  # closed by the daemon already
data = b""
while True:
    try:
        chunk = s.recv(65536)
    except ConnectionResetError:
        out["end"] = "reset"
        break
    except socket.timeout:
        out["end"] = "timeout"
        break
    if not chunk:
        out["end"] = "eof"
        break
    data += chunk
out["lines"] = [json.loads(x) for x in data.splitlines()]
print(json.dumps(out))
"""


def run_client_as(prefix: list[str], sock: Path, payload: bytes) -> dict[str, Any]:
    python = system_python()
    assert python is not None
    done = subprocess.run(
        [*prefix, python, "-c", CLIENT, str(sock), payload.decode()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.fixture
def open_root() -> Iterator[Path]:
    """A daemon root any user can traverse (pytest's own temp dirs are root's only)."""
    root = Path(tempfile.mkdtemp(prefix="goproc-hostile-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def hostile_payload(pid: int) -> bytes:
    """Requests that would change the registry, were they served."""
    return b"".join(
        [
            message("reset", {"confirm": "RESET"}, 1),
            message("add", {"pid": pid, "tags": ["intruder"]}, 2),
            message("tag.add", {"all": True, "labels": ["intruder"]}, 3),
        ]
    )


def assert_refused(out: dict[str, Any], uid: int, daemon_uid: int) -> None:
    assert out["uid"] == uid, out
    assert out["end"] in ("eof", "reset"), f"the connection must be closed: {out}"
    assert len(out["lines"]) == 1, f"one error line, nothing served: {out}"
    [reply] = out["lines"]
    assert reply["jsonrpc"] == "2.0" and reply["id"] is None, reply
    error = reply["error"]
    assert error["code"] == PERMISSION_DENIED, reply
    assert f"uid {uid}" in error["message"], error
    assert f"uid {daemon_uid}" in error["message"], error


# ---- peer credentials: a daemon of root ------------------------------------------------


def test_peer_of_another_uid_is_refused_even_on_a_world_writable_socket(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any], open_root: Path
) -> None:
    """Root's daemon with its socket made 0777 in a 0755 directory: `nobody` can reach
    it, and is refused by its peer credentials: one -32002 naming its uid, then closed,
    and none of its requests (reset, add, tag.add) takes effect."""
    prefix = as_user(NOBODY_UID, NOGROUP_GID)
    if prefix is None:
        pytest.skip("neither setpriv nor runuser can run a Python as nobody here")
    d = spawn_daemon(root=open_root)
    mine = d.call("add", {"pid": sleeper().pid, "tags": ["mine"]})
    d.runtime_dir.chmod(0o755)
    d.socket.chmod(0o777)
    before, next_id = d.call("list"), d.call("status")["next_id"]

    out = run_client_as(prefix, d.socket, hostile_payload(sleeper().pid))

    assert_refused(out, NOBODY_UID, os.getuid())
    assert d.call("list") == before == [mine], "the registry changed"
    assert d.call("status")["next_id"] == next_id
    assert f"refused a connection from uid {NOBODY_UID}" in d.log()
    # A client of the daemon's own uid is still served as usual.
    assert d.call("ping") == "pong"
    added = d.call("add", {"pid": sleeper().pid})
    assert added["id"] == next_id


def test_second_daemon_does_not_take_over_a_live_daemons_socket(
    spawn_daemon: Callable[..., Daemon],
) -> None:
    """Another daemon (its own state dir, so its own lock) pointed at the same socket
    exits 1 and leaves the socket and the PID file of the one that answers there."""
    first = spawn_daemon()
    second = spawn_daemon(env={"GOPROC_RUNTIME_DIR": str(first.runtime_dir)}, start=False)
    second.start(wait=False)
    assert second.proc is not None
    assert second.proc.wait(15) == 1
    assert f"another goproc daemon listens on {first.socket}" in second.log()
    assert first.call("ping") == "pong"
    assert first.proc is not None
    assert (first.runtime_dir / "goproc.pid").read_text().strip() == str(first.proc.pid)


# ---- peer credentials: a daemon of an ordinary user ------------------------------------


@attrs.define
class UsersDaemon:
    """A daemon run as `nobody` (uid 65534)."""

    proc: subprocess.Popen[bytes]
    root: Path
    socket: Path
    log: Path

    def request(self, method: str, params: Any = None) -> Any:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        with s:
            s.connect(str(self.socket))
            s.sendall(message(method, params))
            s.shutdown(socket.SHUT_WR)
            return json.loads(read_to_end(s).splitlines()[0])


@pytest.fixture(scope="module")
def users_daemon() -> Iterator[UsersDaemon]:
    """`goproc daemon` as uid 65534.  It keeps CAP_DAC_READ_SEARCH only so that it can
    read this test environment's Python under /root; that gives no say over sockets
    or signals."""
    prefix = as_user(NOBODY_UID, NOGROUP_GID, "dac_read_search", python=sys.executable)
    if prefix is None:
        pytest.skip("setpriv cannot run a process as nobody with an ambient capability here")
    root = Path(tempfile.mkdtemp(prefix="goproc-user-"))
    root.chmod(0o755)
    os.chown(root, NOBODY_UID, NOGROUP_GID)
    env = {
        **os.environ,
        "GOPROC_RUNTIME_DIR": str(root / "run"),
        "GOPROC_STATE_DIR": str(root / "state"),
    }
    env.pop("GOPROC_SOCKET", None)
    log_path = root.with_name(root.name + ".log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([*prefix, *GOPROC, "daemon"], env=env, stdout=log, stderr=log)
    d = UsersDaemon(proc, root, root / "run" / "goproc.sock", log_path)
    try:

        def ready() -> bool:
            assert proc.poll() is None, log_path.read_text()
            try:
                return bool(d.request("ping").get("result") == "pong")
            except (OSError, IndexError):
                return False

        wait_until(ready, timeout=20, what="the daemon of nobody to answer")
        yield d
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)
        log_path.unlink(missing_ok=True)


def test_users_daemon_runs_as_that_user_with_private_files(users_daemon: UsersDaemon) -> None:
    status = users_daemon.request("status")["result"]
    assert psutil.Process(status["pid"]).uids().real == NOBODY_UID
    st = users_daemon.socket.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (NOBODY_UID, 0o600)
    run_dir = users_daemon.socket.parent.stat()
    assert (run_dir.st_uid, stat.S_IMODE(run_dir.st_mode)) == (NOBODY_UID, 0o700)


def test_users_daemon_serves_root(users_daemon: UsersDaemon) -> None:
    """Root may talk to any user's daemon (root can do all it does anyway)."""
    reply = users_daemon.request("status")
    assert reply["result"]["pid"] == users_daemon.proc.pid  # setpriv execs the daemon


def test_users_daemon_serves_its_own_uid(users_daemon: UsersDaemon) -> None:
    prefix = as_user(NOBODY_UID, NOGROUP_GID)
    assert prefix is not None
    out = run_client_as(prefix, users_daemon.socket, message("ping", None, 7))
    assert out["uid"] == NOBODY_UID
    assert out["lines"] == [{"jsonrpc": "2.0", "id": 7, "result": "pong"}], out
    assert out["end"] == "eof", out


def test_users_daemon_refuses_another_uid(users_daemon: UsersDaemon) -> None:
    """The socket made reachable (0777 in a 0755 directory) for a uid with no account:
    the peer credentials still refuse it, and its requests change nothing."""
    prefix = as_user(STRANGER_UID, STRANGER_UID)
    if prefix is None:
        pytest.skip("setpriv cannot run a Python as an arbitrary uid here")
    users_daemon.socket.parent.chmod(0o755)
    users_daemon.socket.chmod(0o777)
    try:
        before = users_daemon.request("list")["result"]
        next_id = users_daemon.request("status")["result"]["next_id"]
        out = run_client_as(prefix, users_daemon.socket, hostile_payload(os.getpid()))
        assert_refused(out, STRANGER_UID, NOBODY_UID)
        assert users_daemon.request("list")["result"] == before
        assert users_daemon.request("status")["result"]["next_id"] == next_id
    finally:
        users_daemon.socket.chmod(0o600)
        users_daemon.socket.parent.chmod(0o700)


def test_users_daemon_refuses_to_track_another_users_process(
    users_daemon: UsersDaemon, sleeper: Callable[..., Any]
) -> None:
    """A daemon may only track (and so only ever signal) processes its uid may signal:
    a process of root is -32002, even when root asks."""
    reply = users_daemon.request("add", {"pid": sleeper().pid})
    assert reply["error"]["code"] == PERMISSION_DENIED, reply
    assert users_daemon.request("list")["result"] == []


# ---- limits ----------------------------------------------------------------------------


def test_request_line_over_max_request_bytes_is_refused_and_closed(
    spawn_daemon: Callable[..., Daemon],
) -> None:
    limit = 1000
    d = spawn_daemon(config={"max_request_bytes": limit})
    head, tail = b'{"jsonrpc":"2.0","id":"', b'","method":"ping"}'
    exact = head + b"x" * (limit - len(head) - len(tail)) + tail
    assert len(exact) == limit
    with Conn(d) as ok:
        ok.sock.sendall(exact + b"\n")
        assert ok.line()["result"] == "pong", "a line of exactly the limit is read"
        with Conn(d) as big:
            big.sock.sendall(exact[:-1] + b"x}\n")  # one byte over
            reply = big.line()
            assert reply == {
                "jsonrpc": "2.0",
                "id": None,
                "error": {
                    "code": INVALID_REQUEST,
                    "message": f"request too large (limit {limit} bytes); closing",
                },
            }
            assert big.line() is None, "the connection is closed after the error"
        assert ok.call("ping") == "pong", "other connections are unaffected"


def test_request_line_over_the_limit_is_refused_before_its_end_arrives(
    spawn_daemon: Callable[..., Daemon],
) -> None:
    """The daemon holds at most `max_request_bytes` of a line: it does not wait for a
    newline that may never come."""
    limit = 1000
    d = spawn_daemon(config={"max_request_bytes": limit})
    with Conn(d) as big:
        big.sock.sendall(
            b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"' + b"x" * limit
        )
        reply = big.line()  # no newline was sent; the socket stays open on our side
        assert reply["error"]["code"] == INVALID_REQUEST, reply
        assert big.line() is None
    assert d.call("ping") == "pong"


def test_connections_over_max_connections_get_32008_and_existing_keep_working(
    spawn_daemon: Callable[..., Daemon],
) -> None:
    limit = 3
    d = spawn_daemon(config={"max_connections": limit})
    wait_until(lambda: connections(d) == 0, what="the readiness probes to go")
    held = [Conn(d) for _ in range(limit)]
    try:
        for conn in held:  # subscribed, so none is idle (an idle one would make room)
            assert "subscription" in conn.call("subscribe")
        for _ in range(2):  # each excess one is refused on its own
            with Conn(d) as excess:
                reply = excess.line()
                assert reply == {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {
                        "code": TOO_MANY_CONNECTIONS,
                        "message": f"too many connections (limit {limit}); try again later",
                    },
                }
                assert excess.line() is None, "the excess connection is closed"
        for conn in held:
            assert conn.call("ping") == "pong", "existing connections keep working"
        held.pop().close()

        def served_again() -> bool:
            with Conn(d) as conn:
                conn.sock.sendall(message("ping"))
                reply = conn.line()
                return reply is not None and reply.get("result") == "pong"

        wait_until(served_again, what="a freed slot to be usable")
    finally:
        for conn in held:
            conn.close()


def test_idle_connection_is_closed_after_idle_timeout_but_a_subscriber_is_not(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any]
) -> None:
    idle_timeout = 0.3
    d = spawn_daemon(config={"idle_timeout": "300ms"})
    with Conn(d) as subscriber:
        subscription = subscriber.call("subscribe")["subscription"]
        # Two idle connections one after the other: the subscriber outlives both.
        for _ in range(2):
            with Conn(d) as idle:
                assert idle.call("ping") == "pong"
                quiet_since = time.monotonic()
                assert idle.line() is None, "an idle connection is closed"
                took = time.monotonic() - quiet_since
                assert idle_timeout * 0.9 <= took < idle_timeout + 5, took
        assert subscriber.call("ping") == "pong", "a subscriber is not idle"
        added = d.call("add", {"pid": sleeper().pid})
        event = subscriber.line()
        assert event["method"] == "event", event
        assert (event["params"]["subscription"], event["params"]["kind"]) == (subscription, "added")
        assert event["params"]["id"] == added["id"]


def test_request_in_flight_is_not_cut_by_the_idle_timeout(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any]
) -> None:
    """A `wait` three times as long as `idle_timeout` gets its answer."""
    d = spawn_daemon(config={"idle_timeout": "300ms"})
    entry = d.call("add", {"pid": sleeper().pid})
    with Conn(d) as waiting:
        result = waiting.call("wait", {"ids": [entry["id"]], "timeout": 0.9})
        assert result["timed_out"] is True
        assert waiting.call("ping") == "pong"


@pytest.fixture(scope="module")
def bulky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon with 3,000 entries (a `list` reply of about 2 MB) and a 1 s send timeout."""
    d = Daemon(tmp_path_factory.mktemp("bulky"), config={"send_timeout": "1s"})
    d.state_dir.mkdir(mode=0o700)
    snapshot = {"version": 1, "next_id": 3001, "journal": 0, "procs": forged_entries(3000, 600)}
    (d.state_dir / "goproc.snapshot.json").write_text(json.dumps(snapshot))
    d.start()
    try:
        yield d
    finally:
        d.stop()


def test_client_that_never_reads_is_dropped_after_send_timeout_while_others_are_served(
    bulky: Daemon,
) -> None:
    send_timeout = 1.0
    full = len(bulky.raw(message("list"))[0]) + 1  # the whole reply line, newline included
    wait_until(lambda: connections(bulky) == 0, what="earlier connections to end")
    hog = bulky.connect()
    try:
        hog.sendall(message("list"))
        sent_at = time.monotonic()
        wait_until(lambda: connections(bulky) == 1, what="the hog to be served")
        pings: list[float] = []
        while connections(bulky) == 1 and time.monotonic() - sent_at < send_timeout * 0.8:
            t0 = time.perf_counter()
            assert bulky.call("ping") == "pong"
            pings.append(time.perf_counter() - t0)
        assert pings, "no ping was tried while the hog stalled"
        assert max(pings) < 0.5, f"others waited {max(pings):.3f}s for a ping meanwhile"
        wait_until(lambda: connections(bulky) == 0, timeout=send_timeout + 10, what="the drop")
        dropped_after = time.monotonic() - sent_at
        assert dropped_after >= send_timeout * 0.9, f"dropped after {dropped_after:.2f}s"
        got = read_to_end(hog)
        assert 0 < len(got) < full, (len(got), full)
        assert not got.endswith(b"\n"), "the reply was cut, not finished"
    finally:
        hog.close()
    assert bulky.proc is not None and bulky.proc.poll() is None
    assert bulky.call("ping") == "pong"


def test_client_that_reads_late_but_within_send_timeout_gets_the_whole_reply(
    bulky: Daemon,
) -> None:
    with Conn(bulky) as late:
        late.sock.sendall(message("list"))
        time.sleep(0.3)  # a slow reader on purpose: well within the 1 s send timeout
        reply = late.line()
        assert reply is not None and len(reply["result"]) == 3000
        assert late.call("ping") == "pong"


# ---- fuzzing the parser and dispatcher -------------------------------------------------

# Virtual seconds: beyond the longest a request may legitimately wait (86400 s).
HANG_AFTER = 30 * 86400.0
WALL_LIMIT = 20.0  # real seconds one example may take before it counts as a hang


@attrs.define
class DyingProbe(TableProbe):
    """The table probe, where TERM, KILL and INT end the process (as they do by default),
    so that a `kill` does not wait out its timeout for a process that cannot die."""

    def send_signal(
        self, pid: int, started_at: float, signum: int, *, group: bool, pidfd: int | None = None
    ) -> None:
        super().send_signal(pid, started_at, signum, group=group, pidfd=pidfd)
        if signum in (signal.SIGTERM, signal.SIGKILL, signal.SIGINT):
            self.procs.pop(pid, None)


async def answer_all(lines: list[bytes], ctx: Ctx) -> list[bytes | None]:
    dispatch = make_dispatch(ctx)
    replies = []
    for line in lines:
        with trio.fail_after(HANG_AFTER):
            replies.append(await jsonrpc.respond_line(line, dispatch))
    return replies


@attrs.define
class FuzzRun:
    inputs: int = 0
    examples: int = 0
    slowest: float = 0.0


# Liveness is not journaled (it is probed again at every start): a `kill` changes it.
LIVENESS_KEYS = ("alive", "last_seen", "exited_at")


def journaled_part(registry: Any) -> tuple[list[dict[str, Any]], int]:
    procs, next_id = pf.wire(registry)
    return [{k: v for k, v in p.items() if k not in LIVENESS_KEYS} for p in procs], next_id


def fuzz_once(batch: list[bytes], run: FuzzRun) -> None:
    """One example: a few lines against one fresh context (so that an `add` changes
    what later lines see); each reply checked against the JSON-RPC oracle; the journal
    replays to the registry as it stands (liveness apart)."""
    parts = make_parts(pf.initial_registry(), DyingProbe(dict(pf.LIVE)))
    ctx, journal = parts.ctx, parts.journal
    t0 = time.perf_counter()
    clock = trio.testing.MockClock(autojump_threshold=0)
    try:
        replies = trio.run(answer_all, batch, ctx, clock=clock)
    except trio.TooSlowError:
        pytest.fail(f"a request never finished (in virtual time): {batch!r}")
    took = time.perf_counter() - t0
    assert took < WALL_LIMIT, f"{took:.1f}s for {batch!r}"
    for line, reply in zip(batch, replies, strict=True):
        pf.check_reply(line, reply)
    replayed = pf.initial_registry()
    for change in journal.changes:
        replayed.apply(change)
    assert journaled_part(replayed) == journaled_part(ctx.registry)
    run.inputs += len(batch)
    run.examples += 1
    run.slowest = max(run.slowest, took)


FUZZ_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
batches = st.lists(pf.lines, min_size=1, max_size=3)


def test_fuzz_respond_line_and_dispatch() -> None:
    """A few hundred examples: the variant that runs by default."""
    run = FuzzRun()

    @settings(max_examples=300, **FUZZ_SETTINGS)
    @given(batch=batches)
    def fuzz(batch: list[bytes]) -> None:
        fuzz_once(batch, run)

    fuzz()
    assert run.examples >= 300


SLOW_EXAMPLES = 100_000
TRACED_EXAMPLES = 5_000  # the last ones run with tracemalloc on (it slows them ten-fold)
# Bytes the traced examples may leave allocated: 15-45 KiB were seen, the same after
# 1,000 traced examples as after 5,000 (caches filling up, not growth).
MEMORY_BOUND = 256 * 1024


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_fuzz_respond_line_and_dispatch_100k_inputs_without_memory_growth() -> None:
    """100,000 examples (each 1-3 lines).  The last 5,000 run with tracemalloc on; once
    hypothesis has let go of its own data, what they left allocated must be small:
    handling a request keeps nothing."""
    run = FuzzRun()
    trace_from = SLOW_EXAMPLES - TRACED_EXAMPLES
    started = time.monotonic()

    @settings(max_examples=SLOW_EXAMPLES, **FUZZ_SETTINGS)
    @given(batch=batches)
    def fuzz(batch: list[bytes]) -> None:
        if run.examples == trace_from and not tracemalloc.is_tracing():
            gc.collect()
            tracemalloc.start(1)
        fuzz_once(batch, run)

    try:
        fuzz()
        assert tracemalloc.is_tracing(), f"fewer examples than expected: {run}"
        gc.collect()
        left = tracemalloc.take_snapshot().filter_traces(
            [
                tracemalloc.Filter(False, tracemalloc.__file__),
                tracemalloc.Filter(False, "*/hypothesis/*"),
                tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
            ]
        )
    finally:
        tracemalloc.stop()
    took = time.monotonic() - started
    kept = sum(s.size for s in left.statistics("filename"))
    top = "\n".join(str(s) for s in left.statistics("lineno")[:5])
    print(
        f"\nfuzz: {run.examples} examples, {run.inputs} lines in {took:.0f}s "
        f"({run.inputs / took:.0f} lines/s); slowest example {run.slowest * 1000:.0f} ms; "
        f"{kept} bytes left allocated by the last {TRACED_EXAMPLES} examples"
    )
    assert run.examples >= SLOW_EXAMPLES and run.inputs >= SLOW_EXAMPLES
    assert kept < MEMORY_BOUND, f"{kept} bytes kept; largest:\n{top}"


# ---- what a client can make the daemon do ----------------------------------------------


def test_kill_of_an_untracked_pid_matches_nothing_and_signals_nothing(
    daemon: Daemon, sleeper: Callable[..., Any]
) -> None:
    tracked, stranger = sleeper(), sleeper()
    entry = daemon.call("add", {"pid": tracked.pid})
    for params in (
        {"pids": [stranger.pid], "signal": "KILL"},
        {"pids": [stranger.pid], "signal": "KILL", "all": True, "group": True},
        {"ids": [entry["id"] + 1], "signal": "KILL"},
    ):
        reply = daemon.request("kill", params)
        assert reply["error"]["code"] == -32006, reply
    assert stranger.poll() is None and tracked.poll() is None, "nothing was signalled"
    assert daemon.call("list") == [entry]


def test_kill_signals_through_a_pidfd(
    daemon: Daemon, sleeper: Callable[..., Any], tmp_path: Path
) -> None:
    """The signal goes to the pidfd opened (and identity-checked) when the process was
    added and held since, not to a bare pid number another process may hold by then:
    no pidfd is opened for the kill itself."""
    p = sleeper()
    assert daemon.proc is not None
    trace = Strace(daemon.proc.pid, "pidfd_open,pidfd_send_signal,kill,tgkill", tmp_path / "st")
    try:
        entry = daemon.call("add", {"pid": p.pid})
        result = daemon.call("kill", {"ids": [entry["id"]]})
    finally:
        calls = trace.stop()
    assert [r["outcome"] for r in result] == ["exited"], result
    opened = re.findall(rf"pidfd_open\({p.pid}, 0\)\s*= (\d+)", calls)
    assert len(opened) == 1, calls
    assert re.search(rf"pidfd_send_signal\({opened[0]}, SIGTERM,", calls), calls
    assert not re.search(rf"\bkill\({p.pid}, SIG(TERM|KILL)\)", calls), calls


def every_method_once(d: Daemon, pid: int, spare: int) -> None:
    """Each method of the daemon, successfully; `spare` is a second sleeper of
    ours, alive to the end, for discovery to find (`pid` is killed on the way)."""
    with Conn(d) as conn:
        conn.call("ping")
        conn.call("status")
        adopting = conn.call("adopt.add", {"match": {"pattern": "^sleep$"}, "tags": ["t"]})
        entry = conn.call("add", {"pid": pid, "tags": ["t"], "groups": ["g"]})
        ids = {"ids": [entry["id"]]}
        conn.call("list")
        conn.call("show", ids)
        for kind in ("tag", "group"):
            conn.call(f"{kind}.add", {**ids, "labels": ["x"]})
            conn.call(f"{kind}.remove", {**ids, "labels": ["x"]})
            conn.call(f"{kind}.rename", {"old": kind[0], "new": kind[0] + "2"})
            conn.call(f"{kind}.list")
        conn.call("name.set", {**ids, "name": "n"})
        sub = conn.call("subscribe")["subscription"]
        conn.call("unsubscribe", {"subscription": sub})
        conn.call("kill", {**ids, "signal": "CONT"})
        conn.call("wait", {**ids, "timeout": 0})
        conn.call("kill", {**ids, "timeout": 5})
        conn.call("wait", {**ids, "timeout": 5})
        conn.call("metrics.history", {**ids, "since": "2020-01-01T00:00:00Z"})
        rule = conn.call("alert.add", {**ids, "condition": "threads > 0", "action": "kill"})
        conn.call("alert.list")
        conn.call("alert.remove", {"rule": rule["id"]})
        found = conn.call(
            "add", {"match": {"pattern": "^sleep$", "parent": [os.getpid()]}, "dry_run": True}
        )
        assert [m["pid"] for m in found["matched"]] == [spare], found
        conn.call("adopt.list")
        conn.call("adopt.remove", {"rule": adopting["id"]})
        conn.call("remove", ids)
        conn.call("reset", {"confirm": "RESET"})
    assert set(METHODS) - SUPERVISING_METHODS == {
        "ping", "status", "add", "list", "show", "remove", "kill", "wait", "reset",
        "name.set", "subscribe", "unsubscribe", "metrics.history",
        "alert.add", "alert.list", "alert.remove", "adopt.add", "adopt.list", "adopt.remove",
        *(f"{k}.{op}" for k in ("tag", "group") for op in ("add", "remove", "rename", "list")),
    }, "a new method: call it above too"  # fmt: skip


# The methods of what the daemon starts: the command a peer of the daemon's own uid
# gives (`spawn`), that same command again (`start`, `restart`), and `stop`.
SUPERVISING_METHODS = {"spawn", "start", "restart", "stop"}


def test_daemon_starts_no_process_whatever_it_is_asked(
    daemon: Daemon, sleeper: Callable[..., Any], tmp_path: Path
) -> None:
    """Every method but the spawning ones, traced: not one execve in the daemon or any
    child, and no child."""
    assert daemon.proc is not None
    trace = Strace(daemon.proc.pid, "execve,execveat", tmp_path / "st")
    try:
        every_method_once(daemon, sleeper().pid, sleeper().pid)
    finally:
        calls = trace.stop()
    assert "exec" not in calls, calls
    assert psutil.Process(daemon.proc.pid).children(recursive=True) == []


def test_spawn_execs_exactly_the_argv_it_is_given_and_nothing_else(
    daemon: Daemon, tmp_path: Path
) -> None:
    """`spawn`, traced: one execve of the given program with the given argv and
    environment (no shell between), as the daemon's own user; besides it only the
    daemon's log pump (its own Python, `-m goproc.logpump`), started for the first
    command whose output it keeps."""
    assert daemon.proc is not None
    trace = Strace(daemon.proc.pid, "execve,execveat", tmp_path / "st")
    try:
        entry = daemon.call(
            "spawn", {"argv": ["/bin/sleep", "3;id"], "cwd": str(tmp_path), "env": ["A=$(id)"]}
        )
        shared_wait_until(
            lambda: not daemon.call("show", {"ids": [entry["id"]]})["alive"], 10, "its exit"
        )
    finally:
        calls = trace.stop()
    execs = [line for line in calls.splitlines() if "execve" in line and "resumed" not in line]
    pump = [line for line in execs if '"-m", "goproc.logpump", "--fd"' in line]
    assert len(pump) == 1, calls
    assert f'execve("{sys.executable}", ' in pump[0], calls
    command = [line for line in execs if line not in pump]
    assert len(command) == 1, calls
    assert 'execve("/bin/sleep", ["/bin/sleep", "3;id"], ' in command[0], calls
    assert "/* 1 var */" in command[0], calls  # the one given, nothing of the daemon's
    assert daemon.call("show", {"ids": [entry["id"]]})["exit_code"] == 1  # "3;id": no number


# What starts a program or a process, by module and by attribute.
SPAWNING_MODULES = {"subprocess", "multiprocessing", "pty", "concurrent.futures.process"}
SPAWNING_OS = re.compile(r"system|popen|fork\w*|exec\w*|spawn\w*|posix_spawn\w*")
SPAWNING_TRIO = {"run_process", "open_process"}


def spawning_calls(source: str) -> list[str]:
    """Imports and attribute uses in `source` that can start a process."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in SPAWNING_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in SPAWNING_MODULES or node.module.split(".")[0] in SPAWNING_MODULES:
                found.append(node.module)
            if node.module == "os":
                found += [a.name for a in node.names if SPAWNING_OS.fullmatch(a.name)]
            found += [a.name for a in node.names if a.name in SPAWNING_TRIO]
        elif isinstance(node, ast.Attribute):
            base = node.value
            if isinstance(base, ast.Name) and base.id == "os" and SPAWNING_OS.fullmatch(node.attr):
                found.append(f"os.{node.attr}")
            if node.attr in SPAWNING_TRIO:
                found.append(node.attr)
    return found


def test_spawning_calls_finds_what_starts_processes() -> None:
    """The check below sees each way of starting a process (and not look-alikes)."""
    source = (
        "import subprocess\nfrom multiprocessing import Process\nimport os\n"
        "os.execvp('x', [])\nos.posix_spawn\nawait trio.run_process(['x'])\n"
        "os.getpid()\nos.kill(1, 0)\n# subprocess in a comment\n'os.system in a string'\n"
    )
    assert sorted(spawning_calls(source)) == [
        "multiprocessing",
        "os.execvp",
        "os.posix_spawn",
        "run_process",
        "subprocess",
    ]


def test_no_code_behind_the_socket_can_start_a_process() -> None:
    """Of the goproc modules a daemon loads (everything but the CLI), only the one that
    starts what `spawn` asks (`goproc.daemon.spawning`, `subprocess.Popen` of an argv,
    never a shell) imports or calls anything that starts a process."""
    code = "import sys, goproc.daemon.main; print(*(m for m in sys.modules if 'goproc' in m))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "goproc.daemon.server" in loaded and "goproc.daemon.handlers" in loaded
    assert "goproc.cli" not in loaded
    found = {}
    for name in loaded:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        calls = spawning_calls(Path(spec.origin).read_text())
        if calls:
            found[name] = calls
    assert found == {"goproc.daemon.spawning": ["subprocess"]}, found


# Every request parameter of every method, and what it is.  None is a path, a command,
# an environment or a file the daemon acts on: a client names tracked entries and
# labels, nothing on disk (`log`'s paths are recorded text, see there).
PARAMETERS = {
    "pid": "a pid to track (only a live process the daemon's user may signal)",
    "pids": "pids to track, or a selector over tracked entries",
    "ids": "selector: entry ids",
    "names": "selector: entry names",
    "tags_any": "selector: labels",
    "tags_all": "selector: labels",
    "groups_any": "selector: labels",
    "groups_all": "selector: labels",
    "alive": "selector: a boolean",
    "search": "selector: text compared with the recorded command line",
    "all": "a boolean",
    "tags": "labels",
    "groups": "labels",
    "labels": "labels",
    "name": "an entry name (letters, digits, . - _)",
    "old": "a label",
    "new": "a label",
    "signal": "a signal name or number",
    "timeout": "seconds, 0 to 86400",
    "group": "a boolean",
    "rm": "a boolean",
    "any": "a boolean",
    "confirm": "the word RESET",
    "subscription": "a subscription id of this connection",
    "since": "an RFC 3339 timestamp (metrics.history), compared with sample times",
    # Reviewed: `add`: text the daemon stores and sends back, never opens; `spawn`: the
    # files it opens O_NOFOLLOW (appended to, made 0600) for the command's output, as
    # the user, who could open them anyway.  `true` makes the daemon name (and, for
    # spawn, make) files under its own logs dir, which must be ours and 0700.
    "log": "true, false, or two absolute paths: add records them, spawn appends to them",
    # Reviewed: alert rules.  The condition is parsed (never run); the action is a signal
    # sent through kill's path, to tracked entries only.
    "condition": "an alert condition, parsed by goproc.alerts",
    "action": "event, signal:NAME or kill, done to tracked entries through kill's path",
    "rule": "an alert rule's name or number",
    # Reviewed: finding processes.  The pattern is compiled by the C library's regcomp
    # (matching only); the cgroup is a directory whose cgroup.procs the daemon reads as
    # its own user (the client's), for pids only; nothing found is run or signalled.
    "match": "a pgrep-style match: pattern, users, parent pids, a cgroup v2 dir, an entry",
    "dry_run": "a boolean",
    # Reviewed: adoption rules add entries (as `add` does: identity-checked, never run
    # or signalled); `forget_after` removes the rule's dead entries only.
    "forget_after": "seconds, 0 to ten years",
    "limit": "a positive integer",
    # Reviewed: `spawn` (and `start`/`restart` of what it started) runs a command as the
    # daemon's user, which is the peer's (only peers of the daemon's own uid, or root,
    # are served): exactly `argv` by execve (no shell), in `cwd`, with exactly `env`;
    # what it could run from a shell of its own anyway.
    "argv": "spawn: the program and its arguments, run by execve as the daemon's own user",
    "cwd": "spawn: the absolute directory it runs in",
    "env": "spawn: its whole environment, KEY=VALUE strings",
    "attach": "spawn: a boolean: its stdout and stderr are the 2 descriptors sent (SCM_RIGHTS)",
    "restart": "spawn: never, on-failure or always",
    "max_restarts": "spawn: a positive integer or null",
    "restart_window": "spawn: seconds, 0 to 86400",
    "backoff_min": "spawn: seconds, 0 to 86400",
    "backoff_max": "spawn: seconds, 0 to 86400",
    # Reviewed: the size at which the log pump rotates the files `log` names (or the
    # daemon's own); a number of bytes, 4096 to 2**50, no path.
    "log_max_bytes": "spawn: bytes, 4096 to 2**50, or null for the daemon's log_max_bytes",
}


def test_no_method_takes_a_path_or_a_command() -> None:
    """The parameters of every method are the reviewed ones above; a new one must be
    reviewed (and spec/security.md updated) before this passes."""
    names = {n for m in METHODS.values() for n in wire_names(m.params)}
    assert names == set(PARAMETERS)
    spec = json.loads((REPO / "spec" / "openrpc.json").read_text())

    def resolve(param: dict[str, Any]) -> dict[str, Any]:
        ref = param.get("$ref")
        if ref is None:
            return param
        node: Any = spec
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return resolve(node)

    in_spec = {resolve(p)["name"] for m in spec["methods"] for p in m.get("params", [])}
    assert in_spec == set(PARAMETERS)


# ---- file modes ------------------------------------------------------------------------


def private_modes(d: Daemon) -> dict[str, int]:
    """The mode of the daemon's directories and of every file of its state dir."""
    paths = [d.runtime_dir, d.state_dir, *d.state_dir.iterdir()]
    if d.socket.exists():
        paths.append(d.socket)
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in paths}


def journals(modes: dict[str, int]) -> list[str]:
    return [n for n in modes if re.fullmatch(r"goproc\.journal\.\d+", n)]


def test_state_dir_is_0700_and_lock_and_journal_are_0600(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any]
) -> None:
    d = spawn_daemon(config={"snapshot_delay": "1h"})  # the journal is not folded meanwhile
    d.call("add", {"pid": sleeper().pid})
    modes = private_modes(d)
    assert modes[d.state_dir.name] == 0o700
    assert journals(modes), modes
    assert {n: modes[n] for n in ["goproc.lock", *journals(modes)]} == dict.fromkeys(
        ["goproc.lock", *journals(modes)], 0o600
    )


@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask-022", "umask-000"])
def test_pid_file_is_0600(spawn_daemon: Callable[..., Daemon], umask: int) -> None:
    """Like every other file of the daemon, whatever the umask it was started with."""
    old = os.umask(umask)
    try:
        d = spawn_daemon()
    finally:
        os.umask(old)
    pid_file = d.runtime_dir / "goproc.pid"
    assert stat.S_IMODE(pid_file.stat().st_mode) == 0o600


def test_socket_dirs_and_state_files_are_private_even_under_umask_000(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any]
) -> None:
    """Started with umask 000, the socket, its directory, the state dir, the lock, the
    journal and the snapshot (the first one, and the one written at the stop) are still
    private (the PID file: `test_pid_file_is_0600`)."""
    old = os.umask(0)
    try:
        d = spawn_daemon(config={"snapshot_delay": "1h"})
    finally:
        os.umask(old)
    d.call("add", {"pid": sleeper().pid})
    running = private_modes(d)
    assert {"goproc.sock", "goproc.lock", "goproc.snapshot.json"} <= set(running)
    assert journals(running), running
    assert d.stop() == 0
    snapshot = d.state_dir / "goproc.snapshot.json"
    assert json.loads(snapshot.read_text())["procs"], "the stop wrote the entry"
    stopped = private_modes(d)
    for modes in (running, stopped):
        dirs = {d.runtime_dir.name, d.state_dir.name}
        assert modes == {n: 0o700 if n in dirs else 0o600 for n in modes}


# ---- spec/security.md ------------------------------------------------------------------


def _limit_rows() -> dict[str, str]:
    """`config key -> default` from the limits table of spec/security.md."""
    rows = {}
    for line in SECURITY_MD.read_text().splitlines():
        m = re.match(r"\|[^|]*\|\s*`(\w+)`\s*\|\s*`?([^|`]+?)`?\s*\|", line)
        if m and m.group(1) in attrs.fields_dict(Config):
            rows[m.group(1)] = m.group(2)
    return rows


LIMIT_KEYS = ("max_request_bytes", "max_connections", "idle_timeout", "send_timeout")


def test_security_md_limits_are_the_config_defaults() -> None:
    rows = _limit_rows()
    assert set(LIMIT_KEYS) | {"event_queue"} <= set(rows), rows
    defaults = Config()
    for key, text in rows.items():
        want = getattr(defaults, key)
        got = parse_duration(text) if isinstance(want, float) else int(text)
        assert got == want, f"{key}: security.md says {text}, the default is {want}"


def test_security_md_cites_only_tests_that_exist() -> None:
    cited = set(re.findall(r"`(test_\w+)`", SECURITY_MD.read_text()))
    assert len(cited) >= 20, "every claim cites its test"
    defined = set()
    for path in (REPO / "tests").rglob("test_*.py"):
        defined |= set(re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), re.M))
    assert cited - defined == set()
