"""The Prometheus exposition: every metric of spec/metrics.md, made at scrape time.

`GoprocCollector` reads its explicit sources (the registry, the metrics store, the
request counts, the exit and alert counters, the connection count) when it is
collected and keeps nothing between scrapes, so nothing on the request or sampling
path knows Prometheus exists.  `Exposition` holds the collector and the library's
`ProcessCollector` (the daemon's own `process_*` metrics); `collect` gathers their
families in the event loop and `Scrape.encode` encodes them, in the format an Accept
header asks for, by the library's encoders.  No HTTP here: the /metrics route calls
them.

Label values: an entry's `name` is "" when it has none; tags, groups and the command
line appear only in `goproc_process_info` (the command only with `show_cmd`), so the
numeric series keep three labels, one series per entry.  Text that is not valid
Unicode (a non-UTF-8 argv comes as surrogate escapes) has its bad bytes replaced by
U+FFFD, as the formats must be UTF-8.
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
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString as _untyped_go_string

from goproc.daemon.counters import RpcStats
from goproc.metrics import MetricsStore
from goproc.model import Proc
from goproc.registry import Registry

ENTRY_LABELS = ("id", "name", "pid")
# A float as the formats write a bucket bound (`+Inf`, `0.005`): the library's function,
# which has no annotations.
go_string: Callable[[float], str] = _untyped_go_string
RuleKey = tuple[int, str | None]
Revision = tuple[int, int]  # the registry's and the metrics store's
OPENMETRICS_EOF = b"# EOF\n"


def clean(text: str) -> str:
    """`text` as valid Unicode: lone surrogates (from surrogate escapes or JSON) are
    replaced, so a scrape can always be encoded."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        return text
    try:  # a byte of a non-UTF-8 argv, as `os.fsdecode` gives it: one U+FFFD
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate of another kind (from JSON)
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")


def rule_label(key: RuleKey) -> str:
    """A rule as the `rule` label shows it: its name, or its number when it has none."""
    rule_id, name = key
    return str(rule_id) if name is None else name


class _Entries:
    """The per-entry families of one scrape, filled one entry at a time."""

    def __init__(self, show_cmd: bool) -> None:
        labels = list(ENTRY_LABELS)

        def gauge(name: str, doc: str, unit: str = "") -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=labels, unit=unit)

        def counter(name: str, doc: str, unit: str = "") -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=labels, unit=unit)

        self.show_cmd = show_cmd
        self.up = gauge("goproc_process_up", "1 while the entry's process is alive, else 0.")
        self.start = gauge(
            "goproc_process_start_time_seconds",
            "When the entry's process started, in seconds since the epoch.",
            "seconds",
        )
        self.cpu = counter(
            "goproc_process_cpu_seconds_total", "User and system CPU time spent.", "seconds"
        )
        self.rss = gauge("goproc_process_resident_memory_bytes", "Resident memory size.", "bytes")
        self.vms = gauge("goproc_process_virtual_memory_bytes", "Virtual memory size.", "bytes")
        self.read = counter("goproc_process_read_bytes_total", "Bytes read from storage.", "bytes")
        self.write = counter(
            "goproc_process_write_bytes_total", "Bytes written to storage.", "bytes"
        )
        self.threads = gauge("goproc_process_threads", "Threads in the process.")
        self.fds = gauge("goproc_process_open_fds", "Open file descriptors.")
        info_labels = [*ENTRY_LABELS, "tags", "groups", *(["cmd"] if show_cmd else [])]
        # A counter's samples are named with `_total` (as `add_metric` names them).
        self.cpu_total = self.cpu.name + "_total"
        self.read_total = self.read.name + "_total"
        self.write_total = self.write.name + "_total"
        self.info = InfoMetricFamily(
            "goproc_process",
            "What the entry is: its tags, groups (and command).",
            labels=info_labels,
        )

    def add(self, p: Proc, metrics: MetricsStore) -> None:
        """The entry's samples.  They are the library's `Sample`s, as `add_metric`
        makes them, but sharing one labels dict (the encoders only read it): a
        1,000-entry scrape makes 9,000 fewer dicts."""
        labels = {"id": str(p.id), "name": "" if p.name is None else p.name, "pid": str(p.pid)}
        if not p.alive:
            self.up.samples.append(Sample(self.up.name, labels, 0))
            return
        self.up.samples.append(Sample(self.up.name, labels, 1))
        self.start.samples.append(Sample(self.start.name, labels, p.started_at))
        info = [*labels.values(), clean(",".join(p.tags)), clean(",".join(p.groups))]
        if self.show_cmd:
            info.append(clean(p.cmd))
        self.info.add_metric(info, {})
        m = metrics.latest(p)
        if m is None:
            return
        self.cpu.samples.append(Sample(self.cpu_total, labels, m.cpu_seconds))
        self.rss.samples.append(Sample(self.rss.name, labels, m.rss_bytes))
        self.vms.samples.append(Sample(self.vms.name, labels, m.vms_bytes))
        self.threads.samples.append(Sample(self.threads.name, labels, m.threads))
        if m.read_bytes is not None:
            self.read.samples.append(Sample(self.read_total, labels, m.read_bytes))
        if m.write_bytes is not None:
            self.write.samples.append(Sample(self.write_total, labels, m.write_bytes))
        if m.fds is not None:
            self.fds.samples.append(Sample(self.fds.name, labels, m.fds))

    def families(self) -> list[Metric]:
        return [
            self.up,
            self.info,
            self.start,
            self.cpu,
            self.rss,
            self.vms,
            self.read,
            self.write,
            self.threads,
            self.fds,
        ]


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
        entries = _Entries(self.show_cmd)
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

    The entries' part of a body (nearly all of it) is encoded again only when the
    collector's `revision` moved or the format is another: a scrape between two
    metrics sweeps costs the daemon-wide families only."""

    def __init__(self, collector: GoprocCollector, *, own_process: bool = True) -> None:
        self.collector = collector
        self.own = ProcessCollector(registry=None) if own_process else None
        # By format: the revision an encoded entries part was made at, and the part.
        self.kept: dict[str, tuple[Revision, bytes]] = {}

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
    """One scrape's families, collected: `encode` touches nothing else, so it may run
    in a worker thread (it hands the entries' part back to `owner.keep`, which one
    dict assignment does)."""

    owner: Exposition
    encoder: Callable[[CollectorRegistry], bytes]
    content_type: str
    revision: Revision
    entries: list[Metric] | bytes  # the entries' families, or their part encoded
    daemon: list[Metric]

    def encode(self) -> tuple[bytes, str]:
        """The body, by the library's own encoder (OpenMetrics when the Accept header
        named application/openmetrics-text, else the text format 0.0.4), and its
        Content-Type.  Two encodings joined: the first's OpenMetrics `# EOF` dropped."""
        entries = self.entries
        if not isinstance(entries, bytes):
            entries = self.encoder(_registry_of(entries)).removesuffix(OPENMETRICS_EOF)
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
