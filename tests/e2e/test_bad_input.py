"""Bad input on the daemon's socket, one case per test: each gets its JSON-RPC error
(or, for notifications, silence), and afterwards the daemon still answers `ping` and
its registry is exactly what it was.

The cases share one daemon (with two entries), which also shows that none of them
leaves damage behind for the next.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Daemon

# The parameter named as such: `pid:`, `pid,` or quoted, not "a positive integer pid".
NAMES_PID = re.compile(r"""(^|[\s'"`(,])pid(['"`]|:|,)""")
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, list[int]]]:
    """A daemon tracking two real processes; yields it and their pids."""
    d = Daemon(tmp_path_factory.mktemp("bad-input")).start()
    procs = [subprocess.Popen(["sleep", "300"]) for _ in range(2)]
    try:
        d.call("add", {"pid": procs[0].pid, "tags": ["db"], "name": "first"})
        d.call("add", {"pid": procs[1].pid, "groups": ["prod"]})
        yield d, [p.pid for p in procs]
    finally:
        d.stop()
        for p in procs:
            p.kill()
            p.wait()


@pytest.fixture
def served(shared: tuple[Daemon, list[int]]) -> Iterator[Daemon]:
    """The shared daemon; after the test it must still answer and hold the same entries."""
    d, _ = shared
    before = d.call("list")
    yield d
    assert d.proc is not None
    assert d.proc.poll() is None, f"the daemon died: {d.log()}"
    assert d.call("ping") == "pong"
    assert d.call("list") == before, "the registry changed"


@pytest.fixture
def fresh_pid() -> Iterator[int]:
    """A live process nobody tracks: a request to add it must not take effect."""
    p = subprocess.Popen(["sleep", "300"])
    yield p.pid
    p.kill()
    p.wait()


def request(method: str, params: Any = None, id: Any = 1) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if id is not None:
        msg["id"] = id
    if params is not None:
        msg["params"] = params
    return msg


def line(obj: Any) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def one_reply(d: Daemon, data: bytes) -> Any:
    """Send `data` on a fresh connection and return the one reply, decoded."""
    [reply] = d.raw(data, expect=1)
    return json.loads(reply)


def assert_error(reply: Any, code: int) -> dict[str, Any]:
    assert isinstance(reply, dict) and reply.get("jsonrpc") == "2.0", reply
    assert "result" not in reply, reply
    assert reply["error"]["code"] == code, reply
    assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
    assert "Traceback" not in reply["error"]["message"]
    return reply["error"]


def read_all(s: socket.socket) -> bytes:
    """Everything the daemon sends until it closes (a reset also ends the stream)."""
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


# ---- envelopes ---------------------------------------------------------------------------


def test_non_json_is_parse_error(served: Daemon) -> None:
    reply = one_reply(served, b"this is not json\n")
    assert_error(reply, PARSE_ERROR)
    assert reply["id"] is None


def test_invalid_utf8_is_parse_error(served: Daemon) -> None:
    reply = one_reply(served, b'{"jsonrpc":"2.0","id":1,"method":"p\xff\xfeng"}\n')
    assert_error(reply, PARSE_ERROR)


@pytest.mark.parametrize("value", [b"5", b'"x"', b"null", b"true", b"1.5"])
def test_json_that_is_not_an_object_is_invalid_request(served: Daemon, value: bytes) -> None:
    reply = one_reply(served, value + b"\n")
    assert_error(reply, INVALID_REQUEST)
    assert reply["id"] is None


def test_missing_jsonrpc_is_invalid_request(served: Daemon) -> None:
    assert_error(one_reply(served, line({"id": 1, "method": "ping"})), INVALID_REQUEST)


def test_wrong_jsonrpc_version_is_invalid_request(served: Daemon) -> None:
    msg = {"jsonrpc": "1.0", "id": 1, "method": "ping"}
    assert_error(one_reply(served, line(msg)), INVALID_REQUEST)


def test_missing_method_is_invalid_request(served: Daemon) -> None:
    assert_error(one_reply(served, line({"jsonrpc": "2.0", "id": 1})), INVALID_REQUEST)


def test_unknown_method_is_method_not_found(served: Daemon) -> None:
    reply = one_reply(served, line(request("no.such.method")))
    assert_error(reply, METHOD_NOT_FOUND)
    assert reply["id"] == 1


# ---- params ------------------------------------------------------------------------------


@pytest.mark.parametrize("pid", ["abc", -5, 0, 2**63, 1.5, True, None, [1], {"pid": 1}], ids=repr)
def test_bad_pid_is_invalid_params_naming_pid(served: Daemon, pid: Any) -> None:
    err = assert_error(one_reply(served, line(request("add", {"pid": pid}))), INVALID_PARAMS)
    assert NAMES_PID.search(err["message"]), err


def test_unknown_add_params_are_invalid_params_naming_them(served: Daemon, fresh_pid) -> None:
    params = {"pid": fresh_pid, "colour": "blue", "size": 3}
    err = assert_error(one_reply(served, line(request("add", params))), INVALID_PARAMS)
    assert "colour" in err["message"] and "size" in err["message"], err


@pytest.mark.parametrize(
    ("method", "params", "unknown"),
    [
        ("ping", {"loud": True}, "loud"),
        ("list", {"tag": ["db"]}, "tag"),
        ("status", {"verbose": 1}, "verbose"),
    ],
)
def test_unknown_params_are_invalid_params_naming_them(
    served: Daemon, method: str, params: dict[str, Any], unknown: str
) -> None:
    err = assert_error(one_reply(served, line(request(method, params))), INVALID_PARAMS)
    assert unknown in err["message"], err


# ---- batches and notifications -----------------------------------------------------------


def test_empty_batch_is_invalid_request(served: Daemon) -> None:
    reply = one_reply(served, b"[]\n")
    assert not isinstance(reply, list), "an empty batch gets one error object, not an array"
    assert_error(reply, INVALID_REQUEST)
    assert reply["id"] is None


def test_mixed_batch_replies_for_non_notifications_in_order(served: Daemon, fresh_pid) -> None:
    batch = [
        request("ping", id=1),
        {"jsonrpc": "2.0", "id": 2},  # no method
        request("ping", id=None),  # a notification
        5,  # not an object
        request("list", {"tags_any": ["db"]}, id="three"),
        request("add", {"pid": "abc"}, id=4),
        request("add", {"pid": -1}, id=None),  # a notification, even though invalid
        request("no.such.method", id=5),
        request("ping", id=None),
    ]
    [raw] = served.raw(line(batch), expect=1)
    replies = json.loads(raw)
    assert isinstance(replies, list)
    assert [r["id"] for r in replies] == [1, 2, None, "three", 4, 5]
    assert replies[0]["result"] == "pong"
    assert_error(replies[1], INVALID_REQUEST)
    assert_error(replies[2], INVALID_REQUEST)
    assert [p["name"] for p in replies[3]["result"]] == ["first"]
    assert_error(replies[4], INVALID_PARAMS)
    assert_error(replies[5], METHOD_NOT_FOUND)


def test_notifications_get_no_reply(served: Daemon) -> None:
    data = (
        line(request("ping", id=None))
        + line([request("ping", id=None), request("list", id=None)])  # a batch of them
        + line(request("status", {"bad": 1}, id=None))  # no reply even for an error
        + line(request("ping", id=7))
    )
    with served.connect() as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        replies = read_all(s).splitlines()
    assert [json.loads(r)["id"] for r in replies] == [7]


# ---- framing ---------------------------------------------------------------------------


@pytest.mark.parametrize("newline", [True, False], ids=["line", "no-newline"])
def test_two_mib_line_is_refused_and_connection_closed(served: Daemon, newline: bool) -> None:
    pad = "x" * (2 * 1024 * 1024)
    data = json.dumps(request("ping", {"pad": pad})).encode() + (b"\n" if newline else b"")
    with served.connect() as s:
        # The daemon may stop reading before the end: a broken pipe is expected.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)
        replies = read_all(s).splitlines()
    assert len(replies) == 1, replies
    err = assert_error(json.loads(replies[0]), INVALID_REQUEST)
    assert "request too large" in err["message"]


def test_half_a_line_then_disconnect_changes_nothing(served: Daemon, fresh_pid: int) -> None:
    whole = line(request("add", {"pid": fresh_pid, "tags": ["half"]}))
    with served.connect() as s:
        s.sendall(whole[: len(whole) // 2])
        s.shutdown(socket.SHUT_WR)
        assert read_all(s) == b"", "no reply to half a line"


def test_unterminated_request_then_disconnect_is_not_executed(
    served: Daemon, fresh_pid: int
) -> None:
    """A whole JSON object without its newline is not a line, so not a request."""
    whole = line(request("add", {"pid": fresh_pid, "tags": ["half"]}))
    with served.connect() as s:
        s.sendall(whole[:-1])
        s.shutdown(socket.SHUT_WR)
        assert read_all(s) == b"", "no reply to an unterminated line"


def test_crlf_line_endings_work(served: Daemon) -> None:
    data = (
        json.dumps(request("ping", id=1)).encode()
        + b"\r\n"
        + json.dumps(request("list", {"names": ["first"]}, id=2)).encode()
        + b"\r\n"
    )
    replies = [json.loads(r) for r in served.raw(data, expect=2)]
    assert [r["id"] for r in replies] == [1, 2]
    assert replies[0]["result"] == "pong"
    assert [p["name"] for p in replies[1]["result"]] == ["first"]


def test_pipelined_requests_get_replies_in_order(served: Daemon) -> None:
    n = 300
    kinds = [
        request("ping"),
        request("list", {"tags_any": ["db"]}),
        request("status"),
        request("add", {"pid": 0}),
        request("nope"),
    ]
    data = b"".join(line({**kinds[i % len(kinds)], "id": i}) for i in range(n))
    replies = [json.loads(r) for r in served.raw(data, expect=n)]
    assert [r["id"] for r in replies] == list(range(n))
    for i, r in enumerate(replies):
        assert ("result" in r) == (i % len(kinds) < 3), r


def test_client_that_never_reads_does_not_block_others(served: Daemon) -> None:
    """A client pipelines requests and never reads the replies, until its socket is
    full both ways; meanwhile other clients' pings answer promptly."""
    hog = served.connect()
    try:
        hog.setblocking(False)
        chunk = b"".join(line(request("list", id=i)) for i in range(1000))
        sent = 0
        stalled_since = None
        deadline = time.monotonic() + 10
        # Write until the daemon stops taking requests for a while: it is then stuck
        # on replies that nobody reads.
        while time.monotonic() < deadline:
            try:
                sent += hog.send(chunk)
                stalled_since = None
            except BlockingIOError:
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 0.3:
                    break
                time.sleep(0.01)
        assert stalled_since is not None, f"the daemon took {sent} bytes and never stalled"
        worst = 0.0
        for _ in range(10):
            t0 = time.perf_counter()
            assert served.call("ping") == "pong"
            worst = max(worst, time.perf_counter() - t0)
        assert worst < 0.5, f"slowest ping took {worst:.3f}s"
    finally:
        hog.close()
