"""The Prometheus exposition (`goproc.daemon.exposition`): a real registry and metrics
store rendered in both formats and parsed back with prometheus_client's parsers, every
goproc sample checked; the bytes are the library encoders' own; `promtool check
metrics` finds nothing to lint; and RpcStats is fed by the real dispatch, for results
and errors."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from typing import Any

import pytest
import trio
from fakes import ErrorReply, call, make_parts
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from goproc.alerts import parse_condition
from goproc.daemon.alerting import Act, Alerter
from goproc.daemon.counters import BUCKETS, OK, RpcStats, outcome_of
from goproc.daemon.entryfamilies import clean
from goproc.daemon.events import EventBus
from goproc.daemon.exposition import Exposition, GoprocCollector
from goproc.errors import METHOD_NOT_FOUND, NO_MATCH
from goproc.metrics import MetricsStore, Reading
from goproc.model import ProcessFacts, Selector
from goproc.registry import Registry
from goproc.rpc.entries import metrics_text

T0 = 1_700_000_000.0
# Quotes, backslashes, a newline and a byte that is not UTF-8 (as os.fsdecode gives it).
ODD_CMD = 'sh -c "echo \\"hi\\"" C:\\dir\nsecond line \udcff'
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
Key = tuple[str, frozenset[tuple[str, str]]]


def world() -> tuple[Registry, MetricsStore]:
    """Four entries: 1 `web` sampled with everything, 2 sampled without io and fds,
    3 alive and never sampled, 4 dead."""
    registry = Registry()

    def add(pid: int, cmd: str, **kw: Any) -> None:
        facts = ProcessFacts(pid=pid, started_at=T0 + pid, cmd=cmd, pgid=None)
        _, change = registry.plan_add([facts], now=T0 + 100, **kw)
        registry.apply(change)

    add(101, ODD_CMD, name="web", tags=["b", "a"], groups=["g"])
    add(102, "sleep 2")
    add(103, "sleep 3", tags=['q"t'])
    add(104, "sleep 4", name="gone")
    registry.set_alive(4, False, T0 + 200)
    store = MetricsStore(10, metrics_text)
    one, two = registry.get(1), registry.get(2)
    assert one is not None and two is not None
    store.record(one, Reading(2.5, 4096, 8192, 3, 100, 200, 7), T0 + 150, 50.0)
    store.record(two, Reading(0.25, 1024, 2048, 1), T0 + 150, 50.0)
    return registry, store


def collector(show_cmd: bool = True, rpc: RpcStats | None = None) -> GoprocCollector:
    registry, store = world()
    if rpc is None:
        rpc = RpcStats()
        rpc.record("ping", OK, 0.0001)
        rpc.record("ping", OK, 0.003)
        rpc.record("no.such", outcome_of(METHOD_NOT_FOUND), 20.0)
    alerts = {(1, None): 2, (2, "hot"): 1}
    return GoprocCollector(
        registry, store, rpc, lambda: 5, lambda: alerts, lambda: 3, show_cmd=show_cmd
    )


def samples(families: Iterable[Metric]) -> dict[Key, float]:
    """goproc's samples by name and labels (the daemon's own process_* left out)."""
    out: dict[Key, float] = {}
    for family in families:
        for s in family.samples:
            if s.name.startswith("goproc_"):
                key = (s.name, frozenset(s.labels.items()))
                assert key not in out, f"{key} twice"
                out[key] = s.value
    return out


def entry(name: str, value: float, proc_id: int, pid: int, proc_name: str = "") -> Any:
    return (
        (name, frozenset({("id", str(proc_id)), ("name", proc_name), ("pid", str(pid))})),
        value,
    )


def expected(show_cmd: bool = True) -> dict[Key, float]:
    web = dict(id="1", name="web", pid="101", tags="a,b", groups="g")
    infos = [
        {**web, "cmd": ODD_CMD.replace("\udcff", "\ufffd")},
        dict(id="2", name="", pid="102", tags="", groups="", cmd="sleep 2"),
        dict(id="3", name="", pid="103", tags='q"t', groups="", cmd="sleep 3"),
    ]
    if not show_cmd:
        for info in infos:
            del info["cmd"]
    out = dict(
        [
            entry("goproc_process_up", 1, 1, 101, "web"),
            entry("goproc_process_up", 1, 2, 102),
            entry("goproc_process_up", 1, 3, 103),
            entry("goproc_process_up", 0, 4, 104, "gone"),
            entry("goproc_process_start_time_seconds", T0 + 101, 1, 101, "web"),
            entry("goproc_process_start_time_seconds", T0 + 102, 2, 102),
            entry("goproc_process_start_time_seconds", T0 + 103, 3, 103),
            entry("goproc_process_cpu_seconds_total", 2.5, 1, 101, "web"),
            entry("goproc_process_cpu_seconds_total", 0.25, 2, 102),
            entry("goproc_process_resident_memory_bytes", 4096, 1, 101, "web"),
            entry("goproc_process_resident_memory_bytes", 1024, 2, 102),
            entry("goproc_process_virtual_memory_bytes", 8192, 1, 101, "web"),
            entry("goproc_process_virtual_memory_bytes", 2048, 2, 102),
            entry("goproc_process_threads", 3, 1, 101, "web"),
            entry("goproc_process_threads", 1, 2, 102),
            entry("goproc_process_read_bytes_total", 100, 1, 101, "web"),
            entry("goproc_process_write_bytes_total", 200, 1, 101, "web"),
            entry("goproc_process_open_fds", 7, 1, 101, "web"),
        ]
    )
    out.update({("goproc_process_info", frozenset(i.items())): 1 for i in infos})
    plain: list[tuple[str, dict[str, str], float]] = [
        ("goproc_entries", {"state": "alive"}, 3),
        ("goproc_entries", {"state": "dead"}, 1),
        ("goproc_exits_total", {}, 5),
        ("goproc_alerts_total", {"rule": "1"}, 2),
        ("goproc_alerts_total", {"rule": "hot"}, 1),
        ("goproc_rpc_requests_total", {"method": "ping", "outcome": "ok"}, 2),
        ("goproc_rpc_requests_total", {"method": "unknown", "outcome": "method_not_found"}, 1),
        ("goproc_rpc_request_duration_seconds_count", {}, 3),
        ("goproc_rpc_request_duration_seconds_sum", {}, 20.0031),
        ("goproc_connections", {}, 3),
    ]
    for bound in BUCKETS:
        n = (bound >= 0.0001) + (bound >= 0.003)
        plain.append(("goproc_rpc_request_duration_seconds_bucket", {"le": repr(bound)}, n))
    plain.append(("goproc_rpc_request_duration_seconds_bucket", {"le": "+Inf"}, 3))
    out.update({(n, frozenset(labels.items())): v for n, labels, v in plain})
    return out


def approx(found: dict[Key, float]) -> dict[Key, Any]:
    return {k: pytest.approx(v) for k, v in found.items()}


def test_text_format_parses_back_to_every_metric_label_and_value() -> None:
    body, content_type = Exposition(collector()).render(None)
    assert content_type.startswith("text/plain; version=0.0.4")
    assert samples(parse_text(body.decode())) == approx(expected())
    assert b"\nprocess_cpu_seconds_total " in body  # the daemon's own, from the library


def test_openmetrics_parses_back_alike_and_ends_with_eof() -> None:
    body, content_type = Exposition(collector()).render(OPENMETRICS)
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith(b"# EOF\n") and body.count(b"# EOF") == 1
    families = list(parse_openmetrics(body.decode()))
    assert samples(families) == approx(expected())
    types = {f.name: f.type for f in families if f.name.startswith("goproc_")}
    assert types["goproc_process"] == "info"
    assert types["goproc_process_cpu_seconds"] == "counter"
    assert types["goproc_rpc_request_duration_seconds"] == "histogram"


def test_any_other_accept_header_gets_the_text_format() -> None:
    for accept in (None, "", "*/*", "text/html,application/xhtml+xml"):
        _, content_type = Exposition(collector()).render(accept)
        assert content_type.startswith("text/plain")


def test_show_cmd_false_leaves_the_command_out() -> None:
    body, _ = Exposition(collector(show_cmd=False)).render(None)
    assert b"cmd=" not in body and b"echo" not in body
    assert samples(parse_text(body.decode())) == approx(expected(show_cmd=False))


def test_dead_entries_only_in_up_and_labels_only_in_info() -> None:
    found = samples(parse_text(Exposition(collector()).render(None)[0].decode()))
    for (name, labels), _ in found.items():
        keys = {k for k, _ in labels}
        if ("pid", "104") in labels:
            assert name == "goproc_process_up"
        if keys & {"tags", "groups", "cmd"}:
            assert name == "goproc_process_info"


def test_the_bytes_are_the_library_encoders_own() -> None:
    """The body, though encoded in two parts, is what the library's encoders make of a
    registry holding the collector itself, in both formats, made anew or kept."""
    c = collector()
    whole = CollectorRegistry(auto_describe=False)
    whole.register(c)
    expo = Exposition(c, own_process=False)
    for _ in range(2):  # the second time with the entries' part kept
        assert expo.render(None)[0] == generate_latest(whole)
        assert expo.render(OPENMETRICS)[0] == generate_openmetrics(whole)
    formats = {expo.collect(None).content_type, expo.collect(OPENMETRICS).content_type}
    assert set(expo.kept) == formats


def test_the_entries_part_is_kept_only_while_nothing_it_shows_changed() -> None:
    """Every change an entry's samples show moves the revision, so a kept part is
    never stale: after each change the body is the one an exposition with nothing
    kept makes, and it shows the change."""
    c = collector()
    expo = Exposition(c, own_process=False)
    registry, store = c.registry, c.metrics

    def check() -> bytes:
        body = expo.render(OPENMETRICS)[0]
        assert body == Exposition(c, own_process=False).render(OPENMETRICS)[0]
        return body

    first = check()
    assert isinstance(expo.collect(OPENMETRICS).entries, bytes)  # kept: nothing moved
    families = expo.kept_families[expo.collect(OPENMETRICS).content_type]
    texts = {name: text for name, (_, text) in families.items()}
    web = registry.get(1)
    assert web is not None
    store.record(web, Reading(9.0, 4096, 8192, 3, 100, 200, 7), T0 + 160, 60.0)
    assert b'goproc_process_cpu_seconds_total{id="1",name="web",pid="101"} 9.0' in check()
    # Only the CPU family was encoded again: every other one is the text kept before.
    again = {name for name, (_, text) in families.items() if text is not texts[name]}
    assert again == {"goproc_process_cpu_seconds"}
    registry.touch(1, T0 + 170)  # last_seen is not shown: the part stays kept
    assert isinstance(expo.collect(OPENMETRICS).entries, bytes)
    registry.set_alive(1, False, T0 + 180)
    assert b'goproc_process_up{id="1",name="web",pid="101"} 0.0' in check()
    _, change = registry.plan_set_name(2, "renamed")
    registry.apply(change)
    assert b'name="renamed"' in check()
    store.retain({3})
    assert check() != first


def test_an_empty_daemon_still_has_its_daemon_wide_metrics() -> None:
    rpc, store = RpcStats(), MetricsStore(10, metrics_text)
    empty = GoprocCollector(Registry(), store, rpc, lambda: 0, dict, lambda: 0)
    body, _ = Exposition(empty, own_process=False).render(OPENMETRICS)
    found = samples(parse_openmetrics(body.decode()))
    assert found[("goproc_entries", frozenset({("state", "alive")}))] == 0
    assert found[("goproc_rpc_request_duration_seconds_count", frozenset())] == 0


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_finds_nothing_to_lint() -> None:
    body, _ = Exposition(collector()).render(None)
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=body, capture_output=True, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


def test_rpc_stats_are_fed_by_the_real_dispatch() -> None:
    parts = make_parts()
    stats = parts.ctx.rpc_stats

    async def main() -> None:
        await call(parts.ctx, "ping")
        await call(parts.ctx, "ping")
        for method, params in (("show", {"ids": [9]}), ("show", {"ids": "x"}), ("no.such", None)):
            with pytest.raises(ErrorReply):
                await call(parts.ctx, method, params)

    trio.run(main)
    assert stats.requests == {
        ("ping", "ok"): 2,
        ("show", outcome_of(NO_MATCH)): 1,
        ("show", "invalid_params"): 1,
        ("unknown", "method_not_found"): 1,
    }
    assert stats.count == 5 and stats.cumulative()[-1][1] == 5 and stats.seconds >= 0


def test_every_outcome_is_a_bounded_name() -> None:
    assert outcome_of(None) == "ok"
    assert outcome_of(NO_MATCH) == "no_match"
    assert outcome_of(-1) == "internal_error"  # a code goproc does not make
    assert clean("x\udcff") == "x\ufffd" and clean("\ud800").encode() == b"\xef\xbf\xbd" * 3
    stats = RpcStats()
    stats.record("ping", "ok", BUCKETS[0])  # a bound is inclusive (`le`)
    stats.record("ping", "ok", BUCKETS[-1] * 2)
    cumulative = dict(stats.cumulative())
    assert cumulative[BUCKETS[0]] == 1 and cumulative[float("inf")] == 2


def test_exits_are_counted_once_per_entry_that_really_dies() -> None:
    registry, _ = world()
    parts = make_parts(registry)
    one = registry.get(1)
    assert one is not None
    assert parts.ctx.vitals.mark_dead(one) is not None
    assert parts.ctx.vitals.mark_dead(one) is None  # dead already
    dead = registry.get(4)
    assert dead is not None and parts.ctx.vitals.mark_dead(dead) is None
    assert parts.ctx.vitals.exits == 1


def test_alert_firings_are_counted_per_rule() -> None:
    registry, store = world()
    send, _receive = trio.open_memory_channel[Act](10)
    alerter = Alerter(registry, store, EventBus(), send, lambda: T0 + 150)
    for name in (None, "big"):
        _, change = registry.rules.plan_add(
            name=name,
            select=Selector(),
            all=True,
            condition=parse_condition("mem > 2KB"),
            action="event",
            now=T0,
            next_entry_id=registry.next_id,
        )
        registry.apply(change)
    sampled = [p for p in registry if store.latest(p) is not None]
    alerter.on_sweep(sampled)
    # Entry 1 (4096 bytes) crosses both; entry 2 (1024) neither.
    assert alerter.fired_by_rule == {(1, None): 1, (2, "big"): 1}
    assert alerter.fired == 2
