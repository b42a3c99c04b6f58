"""Registry events with real daemons and real processes: `subscribe`/`unsubscribe` over a
raw socket, every kind of event (`added`, `updated`, `removed`, `exited`), `exited_at`,
selectors, many subscribers, a subscriber that never reads (dropped after `overflow`
while others are served), 200 deaths at once, and `goproc events` (JSON and text).

Every test runs twice: with exit detection by pidfd (the default, on the default 10 s
liveness interval, so only the pidfd can report a death within a second) and with the
poll-only fallback forced (`GOPROC_EXIT_WATCH=poll`, a 100 ms liveness interval, since
the poll is then the only detector).  Most tests share one daemon per mode; each keeps
to entries it labels with a tag of its own.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import select
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from conftest import GOPROC, Daemon
from helpers import wait_until as shared_wait_until

Sleeper = Callable[..., subprocess.Popen[bytes]]


@dataclass(frozen=True)
class Mode:
    """How a daemon detects exits: its config file and environment."""

    config: dict[str, Any] | None = None
    env: dict[str, str] = field(default_factory=dict)


MODES = {
    "pidfd": Mode(),
    "poll": Mode({"liveness_interval": "100ms"}, {"GOPROC_EXIT_WATCH": "poll"}),
}
_labels = itertools.count(1)


def fresh_label(prefix: str = "t") -> str:
    """A tag or group no other test uses, so tests on a shared daemon keep apart."""
    return f"{prefix}{next(_labels)}"


wait_until = functools.partial(shared_wait_until, every=0.01)


def timestamp(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time as the daemon writes it."""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", text), text
    return datetime.fromisoformat(text).timestamp()


class Conn:
    """One raw connection to a daemon: requests and their replies, and the `event`
    notifications that arrive on it, in the order they arrive."""

    def __init__(self, d: Daemon) -> None:
        self.sock = d.connect()
        self._buf = b""
        self._ids = itertools.count(1)
        self.pending: deque[dict[str, Any]] = deque()  # events read while awaiting a reply

    def close(self) -> None:
        self.sock.close()

    def send(self, method: str, params: dict[str, Any] | None = None) -> int:
        request_id = next(self._ids)
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            msg["params"] = params
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        return request_id

    def read_message(self, timeout: float) -> dict[str, Any] | None:
        """The next line, decoded; None at EOF; TimeoutError if none comes in time."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                assert not self._buf, f"the connection ended inside a line: {self._buf[:200]!r}"
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def request(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        """The reply to one request; events that come first are kept in `pending`."""
        request_id = self.send(method, params)
        deadline = time.monotonic() + timeout
        while True:
            msg = self.read_message(max(0.0, deadline - time.monotonic()))
            assert msg is not None, f"the connection closed before the reply to {method}"
            if msg.get("id") == request_id:
                return msg
            assert is_event(msg), msg
            self.pending.append(msg["params"])

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        reply = self.request(method, params)
        assert "error" not in reply, reply
        return reply["result"]

    def subscribe(self, **selector: Any) -> int:
        sub: int = self.call("subscribe", selector)["subscription"]
        return sub

    def next_event(self, timeout: float = 5.0) -> dict[str, Any]:
        if self.pending:
            return self.pending.popleft()
        try:
            msg = self.read_message(timeout)
        except TimeoutError:
            pytest.fail(f"no event within {timeout} s")
        assert msg is not None, "the connection closed while waiting for an event"
        assert is_event(msg), msg
        params: dict[str, Any] = msg["params"]
        return params

    def events_until(
        self, last: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Events up to and including the first for which `last` holds."""
        deadline = time.monotonic() + timeout
        out: list[dict[str, Any]] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"the awaited event did not come within {timeout} s; got {out}")
            out.append(self.next_event(remaining))
            if last(out[-1]):
                return out


def is_event(msg: dict[str, Any]) -> bool:
    return msg.get("method") == "event" and "id" not in msg and isinstance(msg.get("params"), dict)


def kind_of(kind: str, proc_id: int) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["kind"] == kind and e["id"] == proc_id


def without_subscription(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "subscription"}


# ---- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module", params=list(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def shared(mode: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp(f"events-{mode}"), MODES[mode].config, MODES[mode].env)
    d.start()
    try:
        yield d
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()


@pytest.fixture
def d(shared: Daemon) -> Iterator[Daemon]:
    """The shared daemon of this mode; it must still be serving after the test."""
    yield shared
    assert shared.proc is not None and shared.proc.poll() is None, shared.log()
    assert shared.call("ping") == "pong"


@pytest.fixture
def connect() -> Iterator[Callable[[Daemon], Conn]]:
    """Opens raw connections, closed at teardown."""
    opened: list[Conn] = []

    def open_conn(d: Daemon) -> Conn:
        conn = Conn(d)
        opened.append(conn)
        return conn

    yield open_conn
    for conn in opened:
        conn.close()


@pytest.fixture
def popen() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Starts CLI subprocesses with a stdout pipe, killed and reaped at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(d: Daemon, *args: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(
            [*GOPROC, *args], env=d.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        started.append(p)
        return p

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=10)


def no_subscriptions(d: Daemon) -> bool:
    return bool(d.call("status")["subscriptions"] == 0)


# ---- the mode --------------------------------------------------------------------------


def test_status_reports_exit_watch_mode(d: Daemon, mode: str, sleeper: Sleeper) -> None:
    d.call("add", {"pid": sleeper().pid, "tags": [fresh_label()]})
    status = d.call("status")
    assert status["exit_watch"] == mode
    if mode == "pidfd":
        assert status["alive"] >= 1
        wait_until(
            lambda: (s := d.call("status"))["watched"] == s["alive"],
            what="every alive entry to be watched by a pidfd",
        )
    else:
        assert status["watched"] == 0


# ---- added, exited, exited_at --------------------------------------------------------------


def test_subscriber_sees_added_then_exited_within_1s_of_sigkill(
    d: Daemon, connect: Callable[[Daemon], Conn], sleeper: Sleeper
) -> None:
    tag = fresh_label()
    sub_conn = connect(d)
    sub = sub_conn.subscribe(tags_any=[tag])
    p = sleeper()
    e = connect(d).call("add", {"pid": p.pid, "tags": [tag]})

    added = sub_conn.next_event()
    assert (added["subscription"], added["kind"], added["id"], added["pid"]) == (
        sub,
        "added",
        e["id"],
        p.pid,
    )
    assert added["proc"] == e

    killed_at = time.monotonic()
    os.kill(p.pid, signal.SIGKILL)
    exited = sub_conn.next_event(timeout=10)
    latency = time.monotonic() - killed_at
    assert (exited["subscription"], exited["kind"], exited["id"], exited["pid"]) == (
        sub,
        "exited",
        e["id"],
        p.pid,
    )
    assert exited["proc"]["alive"] is False
    assert latency <= 1.0, f"the exited event came {latency:.3f} s after SIGKILL"


def test_exited_at_null_while_alive_and_set_after_death(d: Daemon, sleeper: Sleeper) -> None:
    p = sleeper()
    e = d.call("add", {"pid": p.pid, "tags": [fresh_label()]})
    assert e["exited_at"] is None
    [listed] = d.call("list", {"ids": [e["id"]]})
    assert listed["alive"] is True and listed["exited_at"] is None

    before = time.time()
    p.kill()
    dead = wait_until(
        lambda: next(iter(d.call("list", {"ids": [e["id"]], "alive": False})), None),
        what="the entry to turn dead",
    )
    after = time.time()
    assert dead["exited_at"] is not None
    assert before - 0.001 <= timestamp(dead["exited_at"]) <= after + 0.001, (
        before,
        dead["exited_at"],
        after,
    )
    assert d.call("show", {"ids": [e["id"]]})["exited_at"] == dead["exited_at"]


def test_exited_event_time_is_the_entry_exited_at(
    d: Daemon, connect: Callable[[Daemon], Conn], sleeper: Sleeper
) -> None:
    p = sleeper()
    e = d.call("add", {"pid": p.pid, "tags": [fresh_label()]})
    conn = connect(d)
    conn.subscribe(ids=[e["id"]])
    p.kill()
    exited = conn.next_event(timeout=10)
    assert exited["kind"] == "exited"
    assert exited["proc"]["exited_at"] == exited["time"]
    assert d.call("show", {"ids": [e["id"]]})["exited_at"] == exited["time"]


# ---- updated, removed ----------------------------------------------------------------------


def test_updated_on_tag_group_name_changes(
    d: Daemon, connect: Callable[[Daemon], Conn], sleeper: Sleeper
) -> None:
    tag, extra, group = fresh_label("tag"), fresh_label("x"), fresh_label("g")
    renamed = fresh_label("renamed")
    name = fresh_label("web-")
    e = d.call("add", {"pid": sleeper().pid, "tags": [tag]})
    conn = connect(d)
    conn.subscribe(ids=[e["id"]])
    other = connect(d)
    one = {"ids": [e["id"]]}
    other.call("tag.add", {**one, "labels": [extra]})
    other.call("group.add", {**one, "labels": [group]})
    other.call("name.set", {**one, "name": name})
    other.call("tag.remove", {**one, "labels": [extra]})
    other.call("group.rename", {"old": group, "new": renamed})
    other.call("name.set", {**one, "name": None})
    other.call("group.remove", {**one, "labels": [renamed]})

    events = [conn.next_event() for _ in range(7)]
    assert [ev["kind"] for ev in events] == ["updated"] * 7
    assert all(ev["id"] == e["id"] and ev["pid"] == e["pid"] for ev in events)
    seen = [(ev["proc"]["tags"], ev["proc"]["groups"], ev["proc"]["name"]) for ev in events]
    assert seen == [
        (sorted([tag, extra]), [], None),
        (sorted([tag, extra]), [group], None),
        (sorted([tag, extra]), [group], name),
        ([tag], [group], name),
        ([tag], [renamed], name),
        ([tag], [renamed], None),
        ([tag], [], None),
    ]
    assert [ev["name"] for ev in events] == [None, None, name, name, name, None, None]


def test_update_that_takes_the_matching_tag_away_is_still_shown(
    d: Daemon, connect: Callable[[Daemon], Conn], sleeper: Sleeper
) -> None:
    """A subscriber to tag x sees the update that removes x (it matched before), and
    nothing about the entry after that."""
    tag, other_tag = fresh_label("gone"), fresh_label("other")
    e = d.call("add", {"pid": sleeper().pid, "tags": [tag]})
    conn = connect(d)
    conn.subscribe(tags_any=[tag])
    changer = connect(d)
    changer.call("tag.remove", {"ids": [e["id"]], "labels": [tag]})
    changer.call("tag.add", {"ids": [e["id"]], "labels": [other_tag]})
    marker = d.call("add", {"pid": sleeper().pid, "tags": [tag]})
    first, second = conn.next_event(), conn.next_event()
    assert (first["kind"], first["id"], first["proc"]["tags"]) == ("updated", e["id"], [])
    assert (second["kind"], second["id"]) == ("added", marker["id"])


def test_removed_on_rm(d: Daemon, connect: Callable[[Daemon], Conn], sleeper: Sleeper) -> None:
    tag = fresh_label()
    e = d.call("add", {"pid": sleeper().pid, "tags": [tag], "name": fresh_label("rm-")})
    conn = connect(d)
    conn.subscribe(tags_any=[tag])
    [removed_entry] = d.call("remove", {"ids": [e["id"]]})
    removed = conn.next_event()
    assert (removed["kind"], removed["id"], removed["pid"], removed["name"]) == (
        "removed",
        e["id"],
        e["pid"],
        e["name"],
    )
    assert removed["proc"] == e == removed_entry  # as it was
    assert d.call("list", {"ids": [e["id"]]}) == []


# ---- selectors, unsubscribe, many subscribers --------------------------------------------


def test_subscribe_selectors_filter_events(
    d: Daemon, connect: Callable[[Daemon], Conn], sleeper: Sleeper
) -> None:
    """A subscriber gets events of matching entries only: the entry that does not match
    changes first, so its events would come before the awaited ones."""
    tag, other_tag, g1, g2 = fresh_label(), fresh_label(), fresh_label("g"), fresh_label("g")
    by_tag, by_groups = connect(d), connect(d)
    by_tag.subscribe(tags_any=[tag])
    by_groups.subscribe(groups_all=[g1, g2])

    p_other, p_tag, p_groups = sleeper(), sleeper(), sleeper()
    e_other = d.call("add", {"pid": p_other.pid, "tags": [other_tag], "groups": [g1]})
    e_tag = d.call("add", {"pid": p_tag.pid, "tags": [tag], "groups": [g2]})
    e_groups = d.call("add", {"pid": p_groups.pid, "groups": [g1, g2]})

    p_other.kill()
    wait_until(
        lambda: d.call("list", {"ids": [e_other["id"]], "alive": False}),
        what="the unmatched entry to turn dead",
    )
    d.call("tag.add", {"ids": [e_other["id"]], "labels": [fresh_label()]})
    p_tag.kill()
    p_groups.kill()

    got_tag = by_tag.events_until(kind_of("exited", e_tag["id"]), timeout=10)
    got_groups = by_groups.events_until(kind_of("exited", e_groups["id"]), timeout=10)
    assert [(ev["kind"], ev["id"]) for ev in got_tag] == [
        ("added", e_tag["id"]),
        ("exited", e_tag["id"]),
    ]
    assert [(ev["kind"], ev["id"]) for ev in got_groups] == [
        ("added", e_groups["id"]),
        ("exited", e_groups["id"]),
    ]


def test_unsubscribe_stops_events(
    d: Daemon, connect: Callable[[Daemon], Conn], sleeper: Sleeper
) -> None:
    """Two subscriptions on one connection; once the reply to unsubscribing the first is
    in, only the second's events arrive."""
    tag = fresh_label()
    conn = connect(d)
    first, second = conn.subscribe(tags_any=[tag]), conn.subscribe(tags_any=[tag])
    p = sleeper()
    e = d.call("add", {"pid": p.pid, "tags": [tag]})
    added = [conn.next_event(), conn.next_event()]
    assert sorted(ev["subscription"] for ev in added) == sorted([first, second])
    assert all(ev["kind"] == "added" for ev in added)

    assert conn.call("unsubscribe", {"subscription": first}) == {"unsubscribed": True}
    conn.pending.clear()  # queued before the reply: may still come before it
    d.call("tag.add", {"ids": [e["id"]], "labels": [fresh_label()]})
    p.kill()
    after = conn.events_until(kind_of("exited", e["id"]), timeout=10)
    assert [(ev["subscription"], ev["kind"]) for ev in after] == [
        (second, "updated"),
        (second, "exited"),
    ]


def test_unsubscribe_of_a_subscription_not_on_this_connection_is_refused(
    d: Daemon, connect: Callable[[Daemon], Conn]
) -> None:
    owner, stranger = connect(d), connect(d)
    sub = owner.subscribe()
    reply = stranger.request("unsubscribe", {"subscription": sub})
    assert reply["error"]["code"] == -32006, reply
    assert owner.call("unsubscribe", {"subscription": sub}) == {"unsubscribed": True}
    again = owner.request("unsubscribe", {"subscription": sub})
    assert again["error"]["code"] == -32006, again


def test_twenty_subscribers_all_get_the_same_events(
    d: Daemon, connect: Callable[[Daemon], Conn], sleeper: Sleeper
) -> None:
    tag = fresh_label()
    conns = [connect(d) for _ in range(20)]
    subs = [c.subscribe(tags_any=[tag]) for c in conns]
    assert len(set(subs)) == 20
    p = sleeper()
    e = d.call("add", {"pid": p.pid, "tags": [tag]})
    d.call("tag.add", {"ids": [e["id"]], "labels": [fresh_label()]})
    p.kill()

    received = [c.events_until(kind_of("exited", e["id"]), timeout=10) for c in conns]
    for sub, events in zip(subs, received, strict=True):
        assert [ev["kind"] for ev in events] == ["added", "updated", "exited"]
        assert all(ev["subscription"] == sub for ev in events)
    first = [without_subscription(ev) for ev in received[0]]
    assert all([without_subscription(ev) for ev in events] == first for events in received)


# ---- a subscriber that never reads ---------------------------------------------------------

SMALL_QUEUE = 8


def flood_until_dropped(d: Daemon, proc_id: int, flood: Conn) -> float:
    """Make `updated` events as fast as one client can (a tag added and removed, over
    and over) until the daemon holds no subscription; returns the slowest round trip of
    the pings (each on a fresh connection) made meanwhile and 20 times after."""
    one = {"ids": [proc_id], "labels": ["flip"]}
    worst_ping = 0.0
    made = 0
    deadline = time.monotonic() + 30

    def ping() -> None:
        nonlocal worst_ping
        started = time.monotonic()
        assert d.call("ping") == "pong"
        worst_ping = max(worst_ping, time.monotonic() - started)

    while d.call("status")["subscriptions"] > 0:
        assert time.monotonic() < deadline, f"not dropped after {made} events"
        for _ in range(50):
            flood.call("tag.add", one)
            flood.call("tag.remove", one)
        made += 100
        ping()
    for _ in range(20):
        ping()
    return worst_ping


def read_to_eof(conn: Conn) -> list[dict[str, Any]]:
    """Every event left on the connection; the daemon must close it (whole lines only)."""
    events: list[dict[str, Any]] = []
    while (msg := conn.read_message(timeout=10)) is not None:
        assert is_event(msg), msg
        events.append(msg["params"])
    return events


@pytest.fixture
def small_queue_daemon(spawn_daemon: Callable[..., Daemon], mode: str) -> Daemon:
    """A daemon of this mode whose subscribers may leave only 8 events unread."""
    m = MODES[mode]
    return spawn_daemon(config={**(m.config or {}), "event_queue": SMALL_QUEUE}, env=m.env)


def test_subscriber_that_never_reads_is_dropped_after_overflow_while_ping_answers(
    small_queue_daemon: Daemon, connect: Callable[[Daemon], Conn], sleeper: Sleeper
) -> None:
    """The subscriber reads nothing until its connection has ended: pings on fresh
    connections answer promptly all along, the daemon ends the connection by itself, and
    what was sent is whole event lines (an `overflow` one only as the last), then EOF."""
    d = small_queue_daemon
    e = d.call("add", {"pid": sleeper().pid})
    slow = connect(d)
    sub = slow.subscribe()
    assert d.call("status")["subscriptions"] == 1
    flood = connect(d)

    worst_ping = flood_until_dropped(d, e["id"], flood)
    assert worst_ping < 0.5, f"a ping took {worst_ping:.3f} s"
    flood.close()
    wait_until(
        lambda: d.call("status")["connections"] == 1,  # only this status request's own
        what="the daemon to end the unread subscriber's connection",
    )

    events = read_to_eof(slow)
    assert events, "nothing at all was delivered"
    assert all(ev["subscription"] == sub for ev in events)
    kinds = [ev["kind"] for ev in events]
    assert "overflow" not in kinds[:-1], "an overflow event must be the last one"
    assert set(kinds[:-1]) <= {"updated"}
    assert d.call("status")["subscriptions"] == 0
    assert d.call("ping") == "pong"


def test_dropped_subscriber_that_reads_at_once_gets_overflow_as_last_event(
    small_queue_daemon: Daemon, connect: Callable[[Daemon], Conn], sleeper: Sleeper
) -> None:
    """Dropped, but reading as soon as it is: it gets one `overflow` event, last, then
    EOF; the events before it are the ones made in order up to the overflow."""
    d = small_queue_daemon
    e = d.call("add", {"pid": sleeper().pid})
    slow = connect(d)
    sub = slow.subscribe()
    flood = connect(d)
    flood_until_dropped(d, e["id"], flood)

    events = read_to_eof(slow)
    kinds = [ev["kind"] for ev in events]
    assert kinds[-1] == "overflow", kinds[-5:]
    assert set(kinds[:-1]) == {"updated"}
    overflow = events[-1]
    assert overflow["subscription"] == sub
    assert isinstance(overflow["dropped_after"], int) and overflow["dropped_after"] >= 1
    timestamp(overflow["time"])
    # Tags alternate with each event made: the delivered ones are consecutive.
    flips = [ev["proc"]["tags"] for ev in events[:-1]]
    assert all(a != b for a, b in itertools.pairwise(flips)), "an event was skipped"
    flood.close()
    wait_until(lambda: d.call("status")["connections"] == 1, what="the connection to end")


# ---- many deaths at once -------------------------------------------------------------------


def test_200_processes_killed_at_once_give_exactly_200_exited_events(
    d: Daemon, mode: str, connect: Callable[[Daemon], Conn], sleeper: Sleeper
) -> None:
    tag = fresh_label()
    procs = [sleeper() for _ in range(200)]
    entries = d.call("add", {"pids": [p.pid for p in procs], "tags": [tag]})
    ids = {e["id"] for e in entries}
    assert len(ids) == 200
    conn = connect(d)
    conn.subscribe(tags_any=[tag])

    for p in procs:
        os.kill(p.pid, signal.SIGKILL)
    exited: list[dict[str, Any]] = []
    deadline = time.monotonic() + 15
    while len(exited) < 200:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"only {len(exited)} of 200 exited events arrived")
        ev = conn.next_event(remaining)
        assert ev["kind"] == "exited", ev
        exited.append(ev)

    # A duplicate would come from a later sweep: let two more pass (on the poll mode's
    # 100 ms interval), then change one entry; its event closes the count.
    if mode == "poll":
        sweeps = d.call("status")["sweeps"]
        wait_until(lambda: d.call("status")["sweeps"] >= sweeps + 2, what="two more sweeps")
    marker = min(ids)
    d.call("tag.add", {"ids": [marker], "labels": [fresh_label()]})
    rest = conn.events_until(kind_of("updated", marker), timeout=5)
    assert len(rest) == 1, f"more events after the 200 exits: {rest[:-1][:5]}"
    assert sorted(ev["id"] for ev in exited) == sorted(ids), "lost or duplicated"
    assert {ev["pid"] for ev in exited} == {p.pid for p in procs}
    assert len(d.call("list", {"tags_any": [tag], "alive": False})) == 200


# ---- goproc events -------------------------------------------------------------------------


def read_stdout_lines(p: subprocess.Popen[bytes], count: int, timeout: float = 10.0) -> list[str]:
    """The first `count` lines the subprocess prints, waiting at most `timeout`."""
    assert p.stdout is not None
    fd = p.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while buf.count(b"\n") < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"printed only {buf!r} within {timeout} s")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                pytest.fail(f"exited ({p.wait()}) after printing only {buf!r}")
            buf += chunk
    return buf.decode().splitlines()[:count]


def start_events_cli(
    d: Daemon, popen: Callable[..., subprocess.Popen[bytes]], *args: str
) -> subprocess.Popen[bytes]:
    """`goproc events ARGS` once its subscription is in place."""
    wait_until(lambda: no_subscriptions(d), what="earlier subscriptions to end")
    p = popen(d, "events", *args)
    wait_until(
        lambda: p.poll() is not None or d.call("status")["subscriptions"] == 1,
        timeout=10,
        what="goproc events to subscribe",
    )
    assert p.poll() is None, p.communicate()
    return p


def test_cli_events_json_prints_one_json_object_per_line(
    d: Daemon, popen: Callable[..., subprocess.Popen[bytes]], sleeper: Sleeper
) -> None:
    tag = fresh_label()
    p_cli = start_events_cli(d, popen, "--json", "--tag", tag)
    p = sleeper()
    e = d.call("add", {"pid": p.pid, "tags": [tag]})
    p.kill()
    lines = read_stdout_lines(p_cli, 2)
    p_cli.terminate()
    p_cli.wait(10)

    events = [json.loads(line) for line in lines]
    assert [(ev["kind"], ev["id"], ev["pid"]) for ev in events] == [
        ("added", e["id"], p.pid),
        ("exited", e["id"], p.pid),
    ]
    assert events[0]["proc"] == e
    assert events[1]["proc"]["alive"] is False
    for ev in events:
        timestamp(ev["time"])
        assert isinstance(ev["subscription"], int)


def test_cli_events_human_format_has_time_kind_id_pid_name(
    d: Daemon, popen: Callable[..., subprocess.Popen[bytes]], sleeper: Sleeper
) -> None:
    tag = fresh_label()
    name = fresh_label("human-")
    p_cli = start_events_cli(d, popen, "--tag", tag)
    p = sleeper()
    e = d.call("add", {"pid": p.pid, "tags": [tag], "name": name})
    p.kill()
    lines = read_stdout_lines(p_cli, 2)
    p_cli.terminate()
    p_cli.wait(10)

    for line, kind in zip(lines, ["added", "exited"], strict=True):
        fields = line.split()
        timestamp(fields[0])
        assert kind in fields, line
        for value in (e["id"], p.pid, name):
            assert re.search(rf"(^|[\s=]){re.escape(str(value))}(\s|$)", line), (value, line)
