"""Protocol fuzzing: any line gets a valid JSON-RPC 2.0 reply (or none, for notifications).

Two halves:
- pure: `goproc.protocol.respond_line` with the real method table over a real Registry,
  a fixed-table probe and an in-memory journal; arbitrary bytes, arbitrary JSON values,
  near-valid requests and batches.  Nothing may escape, no reply may be an internal error,
  and every journaled change replays to the registry as it is.
- live: hostile lines on a real daemon's socket; every reply is valid, the daemon keeps
  answering, and its registry is unchanged.

An independent oracle below says, for any line, which replies JSON-RPC 2.0 requires.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from conftest import Daemon
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from goproc import errors, protocol
from goproc.errors import NoSuchProcess, PermissionDenied
from goproc.handlers import METHODS, Context, make_dispatch
from goproc.model import Change, Proc, ProcessFacts
from goproc.registry import Registry

# Every code the daemon documents, except -32603: an internal error is a bug.
DOCUMENTED_CODES = {v for k, v in vars(errors).items() if k.isupper() and type(v) is int} - {
    errors.INTERNAL_ERROR
}
REQUEST_KEYS = {"jsonrpc", "method", "params", "id"}
# Methods the live fuzz may call: they change nothing and answer at once (`wait` blocks,
# `subscribe` turns the connection into an event stream).
READ_ONLY_METHODS = {"ping", "status", "list", "show", "tags.list", "groups.list"}

# ---- strategies ------------------------------------------------------------------------

# Lone surrogates are legal in JSON text as escapes ("\ud800"), so a request can carry them.
SURROGATES = ["\ud800", "\udcff", "\udfff"]
texts = st.text(st.characters() | st.sampled_from(SURROGATES), max_size=12)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**300), 10**300),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(texts, kids, max_size=4),
    max_leaves=15,
)
valid_ids = st.none() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | texts
invalid_ids = (
    st.booleans()
    | st.lists(json_scalars, max_size=2)
    | st.dictionaries(texts, json_scalars, max_size=2)
)

PARAM_NAMES = ["pid", "tags", "groups", "name", "ids", "pids", "names", "tags_any", "tags_all"]
PARAM_NAMES += ["groups_any", "groups_all", "alive", "search", "bogus", ""]
typical_values = st.sampled_from(
    [4242, 4343, 1, 999_999, 0, -5, 2**31, 2**63, "abc", 1.5, True, None, "db", "", "x" * 70]
)
param_values = st.one_of(
    typical_values,
    st.lists(st.sampled_from(["db", " web", "", "prod"]) | typical_values, max_size=3),
    json_values,
)
params_objects = st.dictionaries(st.sampled_from(PARAM_NAMES) | texts, param_values, max_size=4)
_pids = st.sampled_from([4242, 4343, 1, 999_999])
_labels = st.lists(st.sampled_from(["db", " web", "", "prod"]), max_size=3)
# Values as a client that gets things right sends them, by parameter name: well typed,
# so that requests reach the handlers (which may still refuse them: no such process...).
PLAUSIBLE_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "pid": _pids,
    "pids": st.lists(_pids, min_size=1, max_size=3),
    "ids": st.lists(st.sampled_from([1, 2, 3]), max_size=3),
    "names": st.lists(st.sampled_from(["pg", "web"]), max_size=2),
    "name": st.sampled_from(["web", "pg", None]),
    "tags": _labels,
    "groups": _labels,
    "labels": _labels,
    "tags_any": _labels,
    "tags_all": _labels,
    "groups_any": _labels,
    "groups_all": _labels,
    "alive": st.booleans(),
    "search": st.sampled_from(["sleep", "", "postgres"]),
    "all": st.booleans(),
    "old": st.sampled_from(["db", "prod"]),
    "new": st.sampled_from(["database", "web"]),
    "signal": st.sampled_from([0, 9, 15]),
    "timeout": st.sampled_from([0, 0.05, 5]),
    "any": st.booleans(),
    "confirm": st.sampled_from(["RESET", "yes"]),
    "subscription": st.sampled_from([1, 2]),
}


def plausible_params(method: str) -> st.SearchStrategy[dict[str, Any]]:
    """Some of the method's own parameters (all of PLAUSIBLE_VALUES for an unknown one)."""
    known = METHODS.get(method)
    names = [f.name for f in attrs.fields(known.params)] if known else sorted(PLAUSIBLE_VALUES)
    optional = {n: PLAUSIBLE_VALUES.get(n, json_values) for n in names}
    return st.fixed_dictionaries({}, optional=optional)


method_names = st.sampled_from([*sorted(METHODS), "", "PING", "rpc.discover", "list ", "nope"])


def _often(draw: st.DrawFn) -> bool:
    """True about nine times in ten (hypothesis favours the ends of a range: 0 and 99
    both land on the usual side)."""
    return not 40 <= draw(st.integers(0, 99)) < 50


def _rarely(draw: st.DrawFn) -> bool:
    return 60 <= draw(st.integers(0, 99)) < 65


@st.composite
def near_valid_requests(draw: st.DrawFn) -> dict[str, Any]:
    """Request objects that are mostly right: each member usually present and well typed."""
    obj: dict[str, Any] = {}
    if _often(draw):
        obj["jsonrpc"] = "2.0"
    elif draw(st.booleans()):
        obj["jsonrpc"] = draw(json_values)
    if _often(draw):
        obj["method"] = draw(method_names) if _often(draw) else draw(texts)
    elif draw(st.booleans()):
        obj["method"] = draw(json_values)
    params = draw(
        st.sampled_from(["plausible"] * 4 + ["any names"] * 2 + ["array", "junk"] + ["none"] * 2)
    )
    if params == "plausible":
        method = obj.get("method")
        obj["params"] = draw(plausible_params(method if isinstance(method, str) else ""))
    elif params == "any names":
        obj["params"] = draw(params_objects)
    elif params == "array":
        obj["params"] = draw(st.lists(param_values, max_size=2))
    elif params == "junk":
        obj["params"] = draw(json_values)
    request_id = draw(st.sampled_from(["valid"] * 6 + ["invalid"] + ["none"] * 3))
    if request_id == "valid":
        obj["id"] = draw(valid_ids)
    elif request_id == "invalid":
        obj["id"] = draw(invalid_ids)
    if _rarely(draw):
        obj[draw(texts)] = draw(json_values)
    return obj


def _to_line(value: Any, ascii_only: bool) -> bytes:
    text = json.dumps(value, ensure_ascii=ascii_only)
    # A lone surrogate written raw (not escaped) is not UTF-8: that is a line too.
    return text.encode("utf-8", "surrogatepass")


# Numbers and strings spelled as JSON text only: they do not come back as Python floats.
RAW_ID_TOKENS = ["1e400", "-1e999", "1E+309", "123456789012345678901234567890", "-0", "0.0"]
RAW_ID_TOKENS += ['"\\ud800"', '"a\\u0000b"', '"\\udfff\\ud800"']

lines = st.one_of(
    st.binary(max_size=120).map(lambda b: b.replace(b"\n", b"")),
    st.builds(_to_line, json_values, st.booleans()),
    st.builds(_to_line, near_valid_requests(), st.booleans()),
    st.builds(
        _to_line,
        st.lists(near_valid_requests() | json_values, max_size=5),
        st.booleans(),
    ),
    st.builds(
        lambda tok, method, with_id: (
            '{"jsonrpc":"2.0",' + (f'"id":{tok},' if with_id else "") + f'"method":"{method}"}}'
        ).encode(),
        st.sampled_from(RAW_ID_TOKENS),
        st.sampled_from(["ping", "list", "nope"]),
        st.booleans(),
    ),
)

# ---- the oracle ------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(text: bytes) -> Any:
    """Parse as JSON, refusing what is not JSON (NaN, Infinity); raises ValueError."""
    return json.loads(text.decode("utf-8"), parse_constant=_reject_constant)


def _decode(line: bytes) -> tuple[bool, Any]:
    try:
        return True, strict_json(line)
    except (ValueError, RecursionError):
        return False, None


def _valid_id(value: Any) -> bool:
    return value is None or type(value) in (int, float, str)


def _well_formed(obj: Any) -> bool:
    """A Request object as JSON-RPC 2.0 defines it (params by name or by position)."""
    return (
        isinstance(obj, dict)
        and set(obj) <= REQUEST_KEYS
        and obj.get("jsonrpc") == "2.0"
        and isinstance(obj.get("method"), str)
        and ("params" not in obj or isinstance(obj["params"], dict | list))
        and ("id" not in obj or _valid_id(obj["id"]))
    )


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@attrs.frozen
class Reply:
    """What one request must get: an id among `ids`, and an error code among `codes`
    (None: a result or any documented error)."""

    ids: frozenset[str]
    codes: frozenset[int] | None = None

    def accepts(self, r: dict[str, Any]) -> bool:
        if _key(r["id"]) not in self.ids:
            return False
        return self.codes is None or ("error" in r and r["error"]["code"] in self.codes)


NULL_ID = frozenset({_key(None)})


def _expect_item(obj: Any) -> Reply | None:
    if _well_formed(obj):
        if "id" not in obj:
            return None
        request_id = obj["id"]
        if isinstance(request_id, float) and not math.isfinite(request_id):
            # A number beyond a double (1e400): echoed, or refused as unreadable (null).
            return Reply(NULL_ID | {_key(request_id)})
        return Reply(frozenset({_key(request_id)}))
    # An invalid request: -32600; its id is null, or echoed when it could be read.
    ids = NULL_ID
    if isinstance(obj, dict) and "id" in obj and _valid_id(obj["id"]):
        ids = ids | {_key(obj["id"])}
    return Reply(ids, frozenset({errors.INVALID_REQUEST}))


def expected(line: bytes) -> Reply | list[Reply] | None:
    """The reply JSON-RPC 2.0 requires for a line: one response, a batch of them, or none."""
    ok, value = _decode(line)
    if not ok:
        return Reply(NULL_ID, frozenset({errors.PARSE_ERROR}))
    if isinstance(value, list):
        if not value:
            return Reply(NULL_ID, frozenset({errors.INVALID_REQUEST}))
        items = [e for e in map(_expect_item, value) if e is not None]
        return items or None
    return _expect_item(value)


def check_response(r: Any) -> None:
    """A valid JSON-RPC 2.0 response object, with a documented, non-internal code."""
    assert isinstance(r, dict), r
    assert set(r) <= {"jsonrpc", "id", "result", "error"}, r
    assert r.get("jsonrpc") == "2.0", r
    assert "id" in r and _valid_id(r["id"]), r
    assert ("result" in r) != ("error" in r), r
    if "error" in r:
        err = r["error"]
        assert isinstance(err, dict) and set(err) <= {"code", "message", "data"}, r
        assert type(err.get("code")) is int and isinstance(err.get("message"), str), r
        assert err["code"] in DOCUMENTED_CODES, r


def _match(replies: list[dict[str, Any]], wanted: list[Reply]) -> bool:
    """Whether each reply answers a distinct request (a batch may come back in any order)."""
    if not replies:
        return True
    first, rest = replies[0], replies[1:]
    return any(
        w.accepts(first) and _match(rest, wanted[:i] + wanted[i + 1 :])
        for i, w in enumerate(wanted)
    )


def check_reply(line: bytes, reply: bytes | None) -> None:
    """The reply to `line` is what `expected` says, each line valid JSON-RPC."""
    want = expected(line)
    if want is None:
        assert reply is None, f"a notification got a reply: {reply!r}"
        return
    assert reply is not None, f"no reply; expected {want}"
    assert reply.endswith(b"\n") and reply.count(b"\n") == 1, reply
    value = strict_json(reply)  # ValueError: the reply is not JSON
    if isinstance(want, Reply):
        check_response(value)
        assert want.accepts(value), (want, value)
    else:
        assert isinstance(value, list) and len(value) == len(want), (want, value)
        for r in value:
            check_response(r)
        assert _match(value, want), (want, value)


# ---- the pure half ---------------------------------------------------------------------


@attrs.define
class TableProbe:
    """A probe over a fixed table of live processes: pid 1 is someone else's."""

    procs: dict[int, ProcessFacts]
    signals: list[tuple[int, int]] = attrs.field(factory=list)

    def inspect(self, pid: int) -> ProcessFacts:
        if pid == 1:
            raise PermissionDenied(f"pid {pid} belongs to another user")
        facts = self.procs.get(pid)
        if facts is None:
            raise NoSuchProcess(f"no process with pid {pid}")
        return facts

    def is_alive(self, pid: int, started_at: float) -> bool:
        facts = self.procs.get(pid)
        return facts is not None and facts.started_at == started_at

    def send_signal(self, pid: int, started_at: float, signum: int, *, group: bool) -> None:
        if not self.is_alive(pid, started_at):
            raise NoSuchProcess(f"pid {pid} is no longer the tracked process")
        self.signals.append((pid, signum))


@attrs.define
class MemoryJournal:
    changes: list[Change] = attrs.field(factory=list)

    async def append(self, change: Change) -> None:
        self.changes.append(change)


LIVE = {
    4242: ProcessFacts(pid=4242, started_at=1_700_000_000.0, cmd="sleep 300", pgid=4242),
    4343: ProcessFacts(pid=4343, started_at=1_700_000_100.0, cmd="postgres -D /db", pgid=1),
}


def initial_registry() -> Registry:
    """One entry already tracked (pid 4343, tagged), so `list` has something to say."""
    reg = Registry()
    _, change = reg.plan_add([LIVE[4343]], tags=["db"], name="pg", now=1_700_000_200.0)
    reg.apply(change)
    return reg


def wire(reg: Registry) -> tuple[list[Any], int]:
    return [protocol.CONVERTER.unstructure(p, Proc) for p in reg], reg.next_id


def respond(line: bytes, ctx: Context) -> bytes | None:
    """One line through the real method table.  Trio's clock jumps ahead whenever all
    tasks wait, so a `wait` or `kill` that waits for a timeout does not take it."""
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(protocol.respond_line, line, make_dispatch(ctx), clock=clock)


def new_context(procs: dict[int, ProcessFacts] = LIVE) -> tuple[Context, MemoryJournal]:
    journal = MemoryJournal()
    return Context(
        registry=initial_registry(), probe=TableProbe(dict(procs)), journal=journal
    ), journal


def _outcome(reply: bytes | None) -> str:
    """A label for hypothesis' statistics: which kinds of reply the run produced."""
    if reply is None:
        return "no reply"
    value = strict_json(reply)
    if isinstance(value, list):
        return "batch reply"
    return "result" if "result" in value else f"error {value['error']['code']}"


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(lines, min_size=1, max_size=3))
def test_respond_line_gives_a_valid_reply_to_any_line_and_journals_every_change(
    batch: list[bytes],
) -> None:
    """Several lines against one context: a successful add changes what later ones see.
    Every change journaled replays to the registry as it stands."""
    ctx, journal = new_context()
    for line in batch:
        reply = respond(line, ctx)
        check_reply(line, reply)
        event(_outcome(reply))
    replayed = initial_registry()
    for change in journal.changes:
        replayed.apply(change)
    assert wire(replayed) == wire(ctx.registry)


@pytest.mark.parametrize(
    "line",
    [
        b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
        b'{"jsonrpc":"2.0","method":"ping"}',
        b'{"jsonrpc":"2.0","method":"add","params":{"pid":"abc"}}',
        b"[]",
        b"[1]",
        b'[{"jsonrpc":"2.0","method":"ping"}]',
        b'[{"jsonrpc":"2.0","method":"ping","id":"a"},{"jsonrpc":"2.0","method":"ping"},5]',
        b'{"jsonrpc":"2.0","id":1,"method":"add","params":{"pid":4242,"tags":[" db"]}}',
        b'{"jsonrpc":"2.0","id":[],"method":"ping"}',
        b'{"jsonrpc":"2.0","id":true,"method":"ping"}',
        b'{"jsonrpc":"1.0","id":7,"method":"ping"}',
        b'{"jsonrpc":"2.0","id":7,"method":"ping","extra":1}',
        b"\xff\xfe",
        b"NaN",
        b'{"jsonrpc":"2.0","id":1,"method":"list","params":{"ids":[NaN]}}',
        b"[" * 100_000,
        b"[" * 900 + b"]" * 900,
        b'{"jsonrpc":"2.0","id":1,"method":"list","params":{"search":'
        + b"[" * 900
        + b"]" * 900
        + b"}}",
        b'{"jsonrpc":"2.0","id":1,"method":"add","params":{"pid":'
        + b"[" * 900
        + b"]" * 900
        + b"}}",
    ],
)
def test_respond_line_examples(line: bytes) -> None:
    ctx, _ = new_context()
    check_reply(line, respond(line, ctx))


def test_notification_with_params_by_position_gets_no_reply() -> None:
    """JSON-RPC 2.0: a Request without "id" is a notification, params may be an array,
    and the server must not reply to a notification."""
    ctx, _ = new_context()
    assert respond(b'{"jsonrpc":"2.0","method":"ping","params":[]}', ctx) is None


def test_reply_to_an_id_with_a_lone_surrogate_is_valid_json() -> None:
    r"""`"\ud800"` is a legal JSON string escape; the reply must echo it as valid JSON."""
    ctx, _ = new_context()
    line = b'{"jsonrpc":"2.0","id":"\\ud800","method":"ping"}'
    check_reply(line, respond(line, ctx))


def test_reply_to_an_id_too_large_for_a_double_is_valid_json() -> None:
    """`1e400` is valid JSON; Python reads it as infinity, which must not come back as
    the non-JSON token `Infinity`."""
    ctx, _ = new_context()
    reply = respond(b'{"jsonrpc":"2.0","id":1e400,"method":"ping"}', ctx)
    assert reply is not None
    strict_json(reply)


def test_add_of_a_process_with_non_utf8_argv_gets_a_valid_reply() -> None:
    """psutil reports argv bytes that are not UTF-8 as lone surrogates; such a process
    can be added and listed, and the replies are valid JSON."""
    odd = ProcessFacts(pid=4444, started_at=1_700_000_300.0, cmd="python x.py \udcff", pgid=None)
    ctx, journal = new_context({**LIVE, 4444: odd})
    for line in (
        b'{"jsonrpc":"2.0","id":1,"method":"add","params":{"pid":4444}}',
        b'{"jsonrpc":"2.0","id":2,"method":"list","params":{"pids":[4444]}}',
    ):
        reply = respond(line, ctx)
        check_reply(line, reply)
        assert reply is not None and "result" in strict_json(reply), reply
    assert len(journal.changes) == 1


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
