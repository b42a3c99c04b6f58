"""Protocol fuzzing, live: hostile lines on a real daemon's socket; every reply is a valid
JSON-RPC 2.0 reply (the oracle of tests/fuzzing.py), the daemon keeps answering, and its
registry is unchanged."""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Daemon
from fuzzing import _decode, check_reply, lines, strict_json
from hypothesis import HealthCheck, given, settings, strategies as st

from goproc.api import METHODS

# Methods the live fuzz may call: they change nothing and answer at once (`wait` blocks,
# `subscribe` turns the connection into an event stream).
READ_ONLY_METHODS = {"ping", "status", "list", "show", "tags.list", "groups.list"}

# ---- the live half ---------------------------------------------------------------------


def _mutates(line: bytes) -> bool:
    """Whether the line holds a request for a method that may change the registry."""
    ok, value = _decode(line)
    if not ok:
        return False
    items = value if isinstance(value, list) else [value]
    return any(
        isinstance(i, dict)
        and isinstance(i.get("method"), str)
        and i["method"] in METHODS
        and i["method"] not in READ_ONLY_METHODS
        for i in items
    )


hostile_lines = lines.filter(lambda line: not _mutates(line))


class LiveDaemon:
    """One daemon for the whole fuzz run, with two real processes tracked before it."""

    def __init__(self, root: Path) -> None:
        self.sleepers = [subprocess.Popen(["sleep", "300"]) for _ in range(2)]
        # last_seen must not move during the run: "list unchanged" compares it too.
        self.daemon = Daemon(root, config={"last_seen_interval": "1h"}).start()
        a, b = self.sleepers
        self.daemon.call("add", {"pid": a.pid, "tags": ["db", "web"], "name": "fuzz-a"})
        self.daemon.call("add", {"pid": b.pid, "groups": ["prod"]})
        self.initial = self.daemon.call("list")
        self.marker = f"fuzz-{uuid.uuid4()}"

    def ensure_running(self) -> None:
        """Start it again when an earlier example broke it, so that each failing example
        is one that breaks it, not one that finds it broken."""
        try:
            if self.daemon.call("ping") == "pong":
                return
        except (OSError, AssertionError):
            pass
        self.daemon.stop()  # dead, or dying after a crash: let it finish
        self.daemon.start()

    def close(self) -> None:
        try:
            if self.daemon.proc is not None:
                self.daemon.stop()
        finally:
            for p in self.sleepers:
                p.kill()
                p.wait(10)

    def exchange(self, conn: LineSocket, line: bytes, n: int) -> list[bytes]:
        """Send one hostile line and a ping behind it; the lines before the ping's reply
        are the hostile line's replies (requests are answered in order)."""
        mark = f"{self.marker}-{n}"
        ping = json.dumps({"jsonrpc": "2.0", "id": mark, "method": "ping"}).encode()
        conn.sock.sendall(line + b"\n" + ping + b"\n")
        got: list[bytes] = []
        while True:
            reply = conn.next_line()
            if reply is None:
                log = self.daemon.log()[-3000:]
                pytest.fail(f"connection closed after {line!r}; daemon log:\n{log}")
            value = strict_json(reply)
            if isinstance(value, dict) and value.get("id") == mark:
                assert value.get("result") == "pong", value
                return got
            got.append(reply)


class LineSocket:
    """Reply lines from one connection, keeping what arrives beyond the current line."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def next_line(self) -> bytes | None:
        """The next line with its newline, or None at EOF."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDaemon]:
    d = LiveDaemon(tmp_path_factory.mktemp("fuzz"))
    try:
        yield d
    finally:
        d.close()


def _server_view(line: bytes) -> bytes:
    """The server strips a trailing CR (`\\r\\n` line ends) before answering."""
    return line[:-1] if line.endswith(b"\r") else line


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(hostile_lines, min_size=1, max_size=4))
def test_daemon_answers_hostile_lines_and_keeps_its_registry(
    live: LiveDaemon, batch: list[bytes]
) -> None:
    live.ensure_running()
    with live.daemon.connect() as s:
        conn = LineSocket(s)
        for n, line in enumerate(batch):
            got = live.exchange(conn, line, n)
            seen = _server_view(line)
            if not seen.strip():
                # A blank line is no request: skipping it or a parse error are both fine.
                assert len(got) <= 1, got
                if got:
                    check_reply(seen, got[0])
                continue
            assert len(got) <= 1, f"{len(got)} reply lines to one request line: {got}"
            check_reply(seen, got[0] if got else None)
    assert live.daemon.call("ping") == "pong"
    assert live.daemon.call("list") == live.initial


def test_daemon_survives_an_id_with_a_lone_surrogate(daemon: Daemon) -> None:
    r"""One line with the legal JSON escape `"\ud800"` as its id."""
    line = b'{"jsonrpc":"2.0","id":"\\ud800","method":"ping"}'
    replies = daemon.raw(line + b"\n")
    try:
        assert daemon.call("ping") == "pong"
    except OSError as e:
        pytest.fail(f"the daemon stopped answering ({e}); its log:\n{daemon.log()[-3000:]}")
    assert len(replies) == 1
    check_reply(line, replies[0] + b"\n")
