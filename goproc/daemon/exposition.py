"""The Prometheus exposition: every metric of spec/metrics.md, made at scrape time.

`GoprocCollector` reads its explicit sources (the registry, the metrics store, the
request counts, the exit and alert counters, the connection count) when it is
collected (the per-entry families: `goproc.daemon.entryfamilies`), so nothing on the
request or sampling path knows Prometheus exists.  `Exposition` holds the collector
and the library's `ProcessCollector` (the daemon's own `process_*` metrics); `collect`
gathers their families in the event loop and `Scrape.encode` encodes them, in the
format an Accept header asks for, by the library's encoders; the encoded entries' part
is kept, per format, while the collector's revision stands.  No HTTP here: the
/metrics route calls them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from attrs import frozen
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString as _untyped_go_string

from goproc.daemon.counters import RpcStats
from goproc.daemon.entryfamilies import EntryFamilies
from goproc.metrics import MetricsStore
from goproc.registry import Registry

# A float as the formats write a bucket bound (`+Inf`, `0.005`): the library's function,
# which has no annotations.
go_string: Callable[[float], str] = _untyped_go_string
RuleKey = tuple[int, str | None]
Revision = tuple[int, int]  # the registry's and the metrics store's
OPENMETRICS_EOF = b"# EOF\n"


def rule_label(key: RuleKey) -> str:
    """A rule as the `rule` label shows it: its name, or its number when it has none."""
    rule_id, name = key
    return str(rule_id) if name is None else name


@frozen
class GoprocCollector(Collector):
    """goproc's metrics, read from these sources at every `collect`: the entries'
    families (`entry_families`, the same while `revision` is), then the daemon-wide
    ones (`daemon_families`)."""

    registry: Registry
    metrics: MetricsStore
    rpc: RpcStats
    exits: Callable[[], int]  # entries seen to exit (`Vitals.exits`)
    alerts: Callable[[], Mapping[RuleKey, int]]  # firings by rule (`Alerter.fired_by_rule`)
    connections: Callable[[], int]  # client connections open now (`Server.connections`)
    show_cmd: bool = False  # whether `goproc_process_info` carries the command line

    def collect(self) -> Iterator[Metric]:
        yield from self.entry_families()
        yield from self.daemon_families()

    def revision(self) -> Revision:
        """What `entry_families` reads, as two numbers: while they stand, it yields the
        same families."""
        return self.registry.revision, self.metrics.revision

    def entry_families(self) -> list[Metric]:
        entries = EntryFamilies(self.show_cmd)
        for p in self.registry:
            entries.add(p, self.metrics)
        return entries.families()

    def daemon_families(self) -> Iterator[Metric]:
        alive = sum(p.alive for p in self.registry)
        state = GaugeMetricFamily("goproc_entries", "Registry entries by state.", labels=["state"])
        state.add_metric(["alive"], alive)
        state.add_metric(["dead"], len(self.registry) - alive)
        yield state
        yield CounterMetricFamily(
            "goproc_exits_total", "Tracked processes seen to exit.", value=self.exits()
        )
        yield self._alerts()
        yield from self._rpc()
        yield GaugeMetricFamily(
            "goproc_connections", "Client connections open.", value=self.connections()
        )

    def _alerts(self) -> CounterMetricFamily:
        by_label: dict[str, int] = {}
        for key, n in self.alerts().items():
            label = rule_label(key)  # a name may spell another rule's number: summed
            by_label[label] = by_label.get(label, 0) + n
        family = CounterMetricFamily(
            "goproc_alerts_total", "Alert rule firings, by rule.", labels=["rule"]
        )
        for label, n in sorted(by_label.items()):
            family.add_metric([label], n)
        return family

    def _rpc(self) -> Iterator[Metric]:
        rpc = self.rpc
        requests = CounterMetricFamily(
            "goproc_rpc_requests_total",
            "JSON-RPC requests answered, by method and outcome.",
            labels=["method", "outcome"],
        )
        for (method, outcome), n in sorted(rpc.requests.items()):
            requests.add_metric([method, outcome], n)
        yield requests
        buckets = [(go_string(le), n) for le, n in rpc.cumulative()]
        yield HistogramMetricFamily(
            "goproc_rpc_request_duration_seconds",
            "How long JSON-RPC requests took to answer.",
            buckets=buckets,
            sum_value=rpc.seconds,
            unit="seconds",
        )


class Exposition:
    """goproc's collector and the daemon's own `process_*` metrics (never in the
    library's global registry), collected in the event loop and encoded anywhere.

    The entries' part of a body (nearly all of it) is collected and encoded again only
    when the collector's `revision` moved or the format is another: a scrape between two
    metrics sweeps costs the daemon-wide families only.  Made again, a family whose
    samples are those it had last time (most of them: the start times, the info, the
    memory of processes that did not grow) keeps its encoded text too."""

    def __init__(self, collector: GoprocCollector, *, own_process: bool = True) -> None:
        self.collector = collector
        self.own = ProcessCollector(registry=None) if own_process else None
        # By format: the revision an encoded entries part was made at, and the part.
        self.kept: dict[str, tuple[Revision, bytes]] = {}
        # By format and family name: its samples when last encoded, and their text.
        self.kept_families: dict[str, dict[str, tuple[list[Sample], bytes]]] = {}

    def render(self, accept_header: str | None) -> tuple[bytes, str]:
        """The body and Content-Type of a scrape (`collect`, then `Scrape.encode`)."""
        return self.collect(accept_header).encode()

    def collect(self, accept_header: str | None) -> Scrape:
        """Every metric family as of now (the entries' part may be encoded already).
        It reads the registry: call it in the event loop (about 9 ms for 1,000 entries
        when the entries' part is made anew); encode the result anywhere."""
        encoder, content_type = choose_encoder(accept_header or "")
        revision = self.collector.revision()
        kept = self.kept.get(content_type)
        entries: list[Metric] | bytes
        if kept is not None and kept[0] == revision:
            entries = kept[1]
        else:
            entries = self.collector.entry_families()
        daemon = list(self.collector.daemon_families())
        if self.own is not None:
            daemon += self.own.collect()
        return Scrape(self, encoder, content_type, revision, entries, daemon)

    def keep(self, content_type: str, revision: Revision, entries: bytes) -> None:
        self.kept[content_type] = (revision, entries)


@frozen(eq=False)
class Scrape:
    """One scrape's families, collected: `encode` touches nothing but them and the
    owner's kept texts, so it may run in a worker thread (one scrape at a time: the
    /metrics route makes them one after another)."""

    owner: Exposition
    encoder: Callable[[CollectorRegistry], bytes]
    content_type: str
    revision: Revision
    entries: list[Metric] | bytes  # the entries' families, or their part encoded
    daemon: list[Metric]

    def encode(self) -> tuple[bytes, str]:
        """The body, by the library's own encoder (OpenMetrics when the Accept header
        named application/openmetrics-text, else the text format 0.0.4), and its
        Content-Type.  Both formats write family after family, so the body is the
        families' encodings joined, each but the last without OpenMetrics' `# EOF`."""
        entries = self.entries
        if not isinstance(entries, bytes):
            kept = self.owner.kept_families.setdefault(self.content_type, {})
            texts = []
            for family in entries:
                last = kept.get(family.name)
                if last is None or last[0] != family.samples:
                    text = self.encoder(_registry_of([family])).removesuffix(OPENMETRICS_EOF)
                    last = kept[family.name] = (family.samples, text)
                texts.append(last[1])
            entries = b"".join(texts)
            self.owner.keep(self.content_type, self.revision, entries)
        return entries + self.encoder(_registry_of(self.daemon)), self.content_type


@frozen(eq=False)  # a registry keys its collectors by identity
class Collected(Collector):
    """Metric families collected already, as a collector the library's encoders read."""

    families: list[Metric]

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def _registry_of(families: list[Metric]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collected(families))
    return registry
