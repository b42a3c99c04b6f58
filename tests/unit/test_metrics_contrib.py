"""spec/metrics.md names every metric the exposition writes, and nothing else; the
Prometheus example (scrape config and alerting rules) and the Grafana dashboard in
contrib/ use only metrics it names, and are what their tools accept (`promtool check
config` and `check rules`, when promtool is installed; PyYAML is not a dependency, so
without promtool the YAML gets a plain text check)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from goproc.daemon.counters import RpcStats
from goproc.daemon.exposition import Exposition, GoprocCollector
from goproc.metrics import MetricsStore, Reading
from goproc.model import ProcessFacts
from goproc.registry import Registry
from goproc.rpc.entries import metrics_text

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "spec" / "metrics.md"
PROMETHEUS = ROOT / "contrib" / "prometheus"
DASHBOARD = ROOT / "contrib" / "grafana" / "goproc.json"
METRIC = re.compile(r"\b(goproc_[a-z_]+)")


def documented() -> set[str]:
    return set(re.findall(r"`(goproc_[a-z_]+)`", SPEC.read_text()))


def one_sampled_entry() -> GoprocCollector:
    """A collector with every metric present: one entry sampled with io and fds."""
    registry, store = Registry(), MetricsStore(10, metrics_text)
    facts = ProcessFacts(pid=100, started_at=1_700_000_000.0, cmd="sleep 9", pgid=None)
    (entry,), change = registry.plan_add([facts], now=1_700_000_010.0)
    registry.apply(change)
    store.record(entry, Reading(1.0, 4096, 8192, 1, 0, 0, 3), 1_700_000_020.0, 5.0)
    alerts: dict[tuple[int, str | None], int] = {(1, None): 1}
    return GoprocCollector(registry, store, RpcStats(), lambda: 0, lambda: alerts, lambda: 0)


def test_the_spec_names_exactly_the_metrics_written() -> None:
    body, _ = Exposition(one_sampled_entry(), own_process=False).render(None)
    written = set(re.findall(r"^# TYPE (goproc_\w+) ", body.decode(), re.MULTILINE))
    assert written == documented()


def test_the_dashboard_queries_only_documented_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 6
    used = {m for e in exprs for m in METRIC.findall(e)}
    assert used <= documented(), used - documented()
    assert {
        "goproc_process_cpu_seconds_total",
        "goproc_process_resident_memory_bytes",
        "goproc_process_read_bytes_total",
        "goproc_process_write_bytes_total",
        "goproc_process_up",
        "goproc_alerts_total",
    } <= used
    assert "rate(goproc_process_cpu_seconds_total" in " ".join(exprs)
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert all(t["datasource"]["uid"] == "${DS_PROMETHEUS}" for t in panel["targets"])
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(set(ids)) == len(ids)


def test_the_prometheus_example_scrapes_goproc_and_alerts_on_documented_metrics() -> None:
    config = (PROMETHEUS / "goproc.yml").read_text()
    assert "job_name: goproc" in config and '"localhost:9184"' in config
    assert "\t" not in config
    rules = (PROMETHEUS / "goproc-rules.yml").read_text()
    exprs = re.findall(r"^\s+expr: (.+)$", rules, re.MULTILINE)
    assert exprs == [
        "goproc_process_up == 0",
        "goproc_process_resident_memory_bytes > 1e9",
    ]
    assert {m for e in exprs for m in METRIC.findall(e)} <= documented()
    assert re.findall(r"^\s+for: (\S+)$", rules, re.MULTILINE)[0] == "1m"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
@pytest.mark.parametrize(
    ("check", "name"), [("config", "goproc.yml"), ("rules", "goproc-rules.yml")]
)
def test_promtool_accepts_the_prometheus_example(check: str, name: str) -> None:
    done = subprocess.run(
        ["promtool", "check", check, str(PROMETHEUS / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
