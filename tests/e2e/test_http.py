"""The read-only HTTP listener against real daemons on real sockets (spec/http.md).

Each daemon listens on 127.0.0.1 port 0 (or a unix: path) and `status` names the real
address; the answers are compared with the socket's for the same request.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Conn, Daemon

LOCAL = "127.0.0.1:0"
# status counters that move between two calls
VOLATILE = {"cpu_seconds", "connections", "last_sweep_seconds", "sweeps", "snapshot_writes"}


def http_daemon(spawn: Callable[..., Daemon], **config: Any) -> tuple[Daemon, str]:
    d = spawn({"http_listen": LOCAL, **config})
    address = d.call("status")["http"]
    assert address.startswith("127.0.0.1:") and not address.endswith(":0"), address
    return d, address


def get(
    address: str, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"http://{address}{path}", method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get_json(address: str, path: str) -> Any:
    status, _, body = get(address, path)
    assert status == 200, body
    return json.loads(body)


@pytest.fixture
def served(spawn_daemon: Callable[..., Daemon]) -> tuple[Daemon, str]:
    return http_daemon(spawn_daemon)


def test_healthz(served: tuple[Daemon, str]) -> None:
    _, address = served
    status, headers, body = get(address, "/healthz")
    assert (status, body) == (200, b"ok\n")
    assert headers["content-type"].startswith("text/plain")


def test_status_is_the_sockets(served: tuple[Daemon, str]) -> None:
    d, address = served
    over_http = get_json(address, "/api/status")
    over_socket = d.call("status")
    assert over_http.keys() == over_socket.keys()
    assert {k: v for k, v in over_http.items() if k not in VOLATILE} == {
        k: v for k, v in over_socket.items() if k not in VOLATILE
    }
    assert over_http["http"] == address


def test_procs_is_the_sockets_list(served: tuple[Daemon, str], sleeper: Any) -> None:
    d, address = served
    a, b, c = sleeper(), sleeper(), sleeper()
    d.call("add", {"pid": a.pid, "tags": ["web"], "groups": ["g1"]})
    d.call("add", {"pid": b.pid, "tags": ["web", "db"]})
    d.call("add", {"pid": c.pid, "name": "third"})
    cases: dict[str, dict[str, Any]] = {
        "": {},
        "?tags_any=web": {"tags_any": ["web"]},
        "?tags_all=web,db": {"tags_all": ["web", "db"]},
        "?tags_all=web&tags_all=db": {"tags_all": ["web", "db"]},
        "?ids=1,3": {"ids": [1, 3]},
        f"?pids={b.pid}": {"pids": [b.pid]},
        "?names=third": {"names": ["third"]},
        "?groups_any=g1": {"groups_any": ["g1"]},
        "?alive=true": {"alive": True},
        "?alive=false": {"alive": False},
        "?search=sleep": {"search": "sleep"},
    }
    for query, selector in cases.items():
        assert get_json(address, "/api/procs" + query) == d.call("list", selector), query
    assert len(get_json(address, "/api/procs?tags_any=web")) == 2


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("ids=x", "ids"),
        ("ids=0", "ids"),
        ("pids=-2", "pids"),
        ("alive=maybe", "alive"),
        ("names=", "names"),
        ("colour=red", "colour"),
        ("search=a&search=b", "search"),
    ],
)
def test_a_bad_selector_is_400_naming_it(
    served: tuple[Daemon, str], query: str, names: str
) -> None:
    _, address = served
    status, headers, body = get(address, "/api/procs?" + query)
    assert status == 400, body
    assert headers["content-type"] == "application/json"
    assert names in json.loads(body)["error"]


def test_only_get_and_known_paths(served: tuple[Daemon, str]) -> None:
    d, address = served
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, headers, _ = get(address, "/api/procs", method)
        assert status == 405 and headers["allow"] == "GET, HEAD", method
    assert get(address, "/nope")[0] == 404
    assert get(address, "/api/procs/1")[0] == 404
    status, headers, body = get(address, "/api/status", "HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    assert d.call("list") == []  # nothing changed


def test_a_token_is_required(spawn_daemon: Callable[..., Daemon]) -> None:
    _, address = http_daemon(spawn_daemon, http_token="s3cret-token")
    for path in ("/healthz", "/api/status", "/api/procs", "/api/events", "/nope"):
        status, headers, _ = get(address, path)
        assert status == 401 and headers["www-authenticate"] == "Bearer", path
    wrong = {"Authorization": "Bearer s3cret-tokeN"}
    assert get(address, "/healthz", headers=wrong)[0] == 401
    right = {"Authorization": "Bearer s3cret-token"}
    assert get(address, "/healthz", headers=right)[:1] == (200,)
    assert get(address, "/api/procs", headers=right)[2] == b"[]\n"


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0", "192.0.2.1:8080"])
def test_beyond_loopback_needs_a_token(spawn_daemon: Callable[..., Daemon], listen: str) -> None:
    d = spawn_daemon({"http_listen": listen}, start=False)
    d.start(wait=False)
    assert d.proc is not None and d.proc.wait(15) == 2
    lines = d.log().splitlines()
    assert len(lines) == 1 and "http_token" in lines[0] and listen in lines[0], lines


@pytest.mark.parametrize(
    "listen", ["localhost:80", "127.0.0.1", "127.0.0.1:99999", "::1:80", "unix:rel/path", ""]
)
def test_a_bad_address_is_refused_naming_the_key(
    spawn_daemon: Callable[..., Daemon], listen: str
) -> None:
    d = spawn_daemon({"http_listen": listen}, start=False)
    d.start(wait=False)
    assert d.proc is not None and d.proc.wait(15) == 2
    lines = d.log().splitlines()
    assert len(lines) == 1 and "'http_listen'" in lines[0], lines


def test_the_flag_overrides_the_config(spawn_daemon: Callable[..., Daemon]) -> None:
    d = spawn_daemon({"http_listen": "0.0.0.0:0"}, start=False)
    d.start("--http", LOCAL)
    assert d.call("status")["http"].startswith("127.0.0.1:")
    assert spawn_daemon().call("status")["http"] is None  # off by default
    bad = spawn_daemon(start=False)
    bad.start("--http", "nowhere", wait=False)
    assert bad.proc is not None and bad.proc.wait(15) == 2
    assert "--http" in bad.log()


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def test_a_unix_address(spawn_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    path = tmp_path / "http.sock"
    d = spawn_daemon({"http_listen": f"unix:{path}"})
    assert d.call("status")["http"] == f"unix:{path}"
    assert path.stat().st_mode & 0o777 == 0o600
    conn = UnixConnection(str(path))
    conn.request("GET", "/api/procs")
    r = conn.getresponse()
    assert (r.status, r.read()) == (200, b"[]\n")
    conn.close()
    assert d.stop() == 0
    assert not path.exists()


def test_show_cmd_false_hides_cmd(spawn_daemon: Callable[..., Daemon], sleeper: Any) -> None:
    d, address = http_daemon(spawn_daemon, http_show_cmd=False)
    d.call("add", {"pid": sleeper().pid})
    (entry,) = get_json(address, "/api/procs")
    assert entry["cmd"] is None
    assert {**d.call("list")[0], "cmd": None} == entry
    status, _, body = get(address, "/api/procs?search=sleep")
    assert status == 400 and b"search" in body
    with EventStream(address) as events:
        d.call("add", {"pid": sleeper().pid})
        added = events.next()
        assert added["kind"] == "added" and added["proc"]["cmd"] is None


@pytest.mark.parametrize("show_cmd", [True, False])
def test_a_started_commands_environment_is_never_served(
    spawn_daemon: Callable[..., Daemon], show_cmd: bool
) -> None:
    """`spawned.env` can hold secrets: no HTTP output carries it (and `spawned.argv`
    only with http_show_cmd), though the socket's `list` does."""
    d, address = http_daemon(spawn_daemon, http_show_cmd=show_cmd)
    secret = "GOPROC_TEST_SECRET=hunter2"
    params = {"argv": ["sleep", "300"], "cwd": "/", "env": [secret]}
    with EventStream(address) as events:
        started = d.call("spawn", params)
        try:
            added = events.next()
            status, _, body = get(address, "/api/procs")
            assert status == 200 and b"hunter2" not in body
            (entry,) = json.loads(body)
            assert d.call("list")[0]["spawned"]["env"] == [secret]
            assert entry["spawned"]["env"] is None and added["proc"]["spawned"]["env"] is None
            argv = ["sleep", "300"] if show_cmd else None
            assert entry["spawned"]["argv"] == added["proc"]["spawned"]["argv"] == argv
        finally:
            os.killpg(started["pid"], signal.SIGKILL)


class EventStream:
    """A raw HTTP/1.1 request for /api/events; `next` reads the next `data:` event."""

    def __init__(self, address: str, query: str = "") -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.sock.sendall(f"GET /api/events{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"content-type: text/event-stream" in head.lower(), head
        # the first chunk (a comment naming the subscription) says it is subscribed
        assert b": subscription" in self._until(b"\n\n")

    def _until(self, end: bytes) -> bytes:
        while end not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, f"EOF; read {self.buf!r}"
            self.buf += chunk
        out, self.buf = self.buf.split(end, 1)
        return out

    def next(self) -> Any:
        while True:
            block = self._until(b"\n\n")
            for line in block.split(b"\n"):
                if line.startswith(b"data: "):
                    return json.loads(line[6:])

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_events_stream_added_and_exited(served: tuple[Daemon, str], sleeper: Any) -> None:
    d, address = served
    p = sleeper()
    with EventStream(address) as events, EventStream(address, "?tags_any=none") as quiet:
        with Conn(d) as conn:
            sub = conn.call("subscribe", {})["subscription"]
            added = conn.call("add", {"pid": p.pid})
            note = conn.line()
            assert note["method"] == "event"
        event = events.next()
        assert event["kind"] == "added" and event["proc"] == added and event["pid"] == p.pid
        assert {k: v for k, v in event.items() if k != "subscription"} == {
            k: v for k, v in note["params"].items() if k != "subscription"
        }
        assert event["subscription"] != sub
        p.kill()
        p.wait()
        exited = events.next()
        assert exited["kind"] == "exited" and exited["id"] == added["id"]
        assert exited["proc"]["alive"] is False
        quiet.sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            quiet.next()


def test_a_bad_event_selector_is_400(served: tuple[Daemon, str]) -> None:
    _, address = served
    status, _, body = get(address, "/api/events?alive=yes")
    assert status == 400 and b"alive" in body


def test_sigterm_stops_cleanly_with_a_stream_open(served: tuple[Daemon, str]) -> None:
    d, address = served
    with EventStream(address) as events:
        assert d.call("status")["subscriptions"] == 1
        started = time.monotonic()
        assert d.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 5
        events.sock.settimeout(5)
        rest = events.buf + b"".join(iter(lambda: events.sock.recv(65536), b""))
        assert rest.endswith(b"0\r\n\r\n")  # the stream was ended, not cut
    assert "stopped" in d.log()


def test_an_address_in_use_stops_the_start(spawn_daemon: Callable[..., Daemon]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        d = spawn_daemon({"http_listen": f"127.0.0.1:{port}"}, start=False)
        d.start(wait=False)
        assert d.proc is not None and d.proc.wait(15) == 1
    lines = d.log().splitlines()
    assert len(lines) == 1 and f"cannot bind http_listen 127.0.0.1:{port}" in lines[0], lines
    assert not d.socket.exists()


def test_a_unix_path_that_is_not_a_socket_is_left_alone(
    spawn_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    path = tmp_path / "http.sock"
    path.write_text("mine")
    d = spawn_daemon({"http_listen": f"unix:{path}"}, start=False)
    d.start(wait=False)
    assert d.proc is not None and d.proc.wait(15) == 1
    assert "not a socket" in d.log() and path.read_text() == "mine"
    leftover = socket.socket(socket.AF_UNIX)
    path.unlink()
    leftover.bind(str(path))  # a socket file nobody listens on: replaced
    leftover.close()
    assert spawn_daemon({"http_listen": f"unix:{path}"}).call("status")["http"] == f"unix:{path}"


def test_a_stream_that_leaves_is_unsubscribed(served: tuple[Daemon, str]) -> None:
    d, address = served
    with EventStream(address), EventStream(address, "?ids=1"):
        assert d.call("status")["subscriptions"] == 2
    deadline = time.monotonic() + 10
    while d.call("status")["subscriptions"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert d.call("status")["subscriptions"] == 0


def test_ipv6_loopback(spawn_daemon: Callable[..., Daemon]) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    d = spawn_daemon({"http_listen": "[::1]:0"})
    address = d.call("status")["http"]
    assert address.startswith("[::1]:") and not address.endswith(":0"), address
    assert get(address, "/healthz")[2] == b"ok\n"
