"""`/metrics`, `/api/history` and `/` of a real daemon's HTTP listener, read by real
clients: prometheus_client's own parsers, `promtool check metrics`, and a real
Prometheus server scraping the daemon every second, read back through Prometheus's
HTTP API: an entry's resident memory there is the daemon's `rss_bytes`, and its
`goproc_process_up` drops to 0 within two scrapes of the process dying.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon
from helpers import wait_until

parser = pytest.importorskip("prometheus_client.parser")
openmetrics = pytest.importorskip("prometheus_client.openmetrics.parser")

HTTP = {"http_listen": "127.0.0.1:0", "metrics_interval": "100ms"}
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


def get(d: Daemon, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://{d.call('status')['http']}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def samples(text: str, name: str) -> dict[str, float]:
    """The values of metric samples `name`, by the entry name label (headers come back
    with lower-case names)."""
    out = {}
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[s.labels["name"]] = s.value
    return out


def test_metrics_parse_in_both_formats_and_agree_with_the_socket(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., subprocess.Popen[bytes]]
) -> None:
    d = spawn_daemon({**HTTP, "metrics_interval": "1s"})
    p = sleeper()
    d.call("add", {"pid": p.pid, "name": "nap", "tags": ["t"]})
    wait_until(lambda: d.call("show", {"ids": [1]})["metrics"], 10, "a sample")

    def agree() -> bool:
        rss = d.call("show", {"ids": [1]})["metrics"]["rss_bytes"]
        status, headers, body = get(d, "/metrics")
        assert status == 200 and headers["content-type"].startswith("text/plain"), headers
        got = samples(body.decode(), "goproc_process_resident_memory_bytes")
        return got == {"nap": rss}

    wait_until(agree, 10, "the scrape and the socket to show one sample")
    status, headers, body = get(d, "/metrics", Accept="application/openmetrics-text")
    assert status == 200 and headers["content-type"].startswith("application/openmetrics-text")
    families = list(openmetrics.text_string_to_metric_families(body.decode()))
    by_sample = {s.name: s for f in families for s in f.samples}
    info = by_sample["goproc_process_info"].labels
    assert info == {"id": "1", "name": "nap", "pid": str(p.pid), "tags": "t", "groups": "",
                    "cmd": "sleep 300"}  # fmt: skip
    assert by_sample["goproc_process_up"].value == 1
    names = {f.name for f in families}
    assert {"process_cpu_seconds", "goproc_rpc_requests", "goproc_entries"} <= names


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (apt prometheus)")
def test_promtool_finds_nothing_wrong_with_a_real_scrape(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., subprocess.Popen[bytes]]
) -> None:
    d = spawn_daemon(HTTP)
    for n in range(3):
        d.call("add", {"pid": sleeper().pid, "name": f"n{n}"})
    d.call("ping")
    _, _, body = get(d, "/metrics")
    done = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), done


def test_history_and_the_page_over_http(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., subprocess.Popen[bytes]]
) -> None:
    d = spawn_daemon({**HTTP, "http_token": "tok-en"})
    d.call("add", {"pid": sleeper().pid, "name": "h"})
    wait_until(lambda: len(d.call("metrics.history", {"ids": [1]})[0]["samples"]) >= 2, 10)
    bearer = {"Authorization": "Bearer tok-en"}
    status, _, body = get(d, "/api/history?ids=1&since=2020-01-01T00:00:00Z", **bearer)
    assert status == 200
    over_http = json.loads(body)[0]
    over_socket = d.call("metrics.history", {"ids": [1]})[0]
    assert over_http["id"] == 1 and over_http["samples"][0] == over_socket["samples"][0]
    assert get(d, "/api/history?ids=9", **bearer)[2] == b"[]\n"  # none: not an error
    status, _, body = get(d, "/api/history?since=yesterday", **bearer)
    assert status == 400 and b"since" in body
    assert get(d, "/api/history")[0] == 401
    assert get(d, "/metrics")[0] == 401
    status, headers, page = get(d, "/")  # the page holds no data: no token needed
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"/api/events" in page and b"<script" in page and b"http://" not in page


# ---- a real Prometheus ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Starts a real Prometheus scraping the given target every second; yields its
    base URL once it is ready."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: goproc\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
        log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115  # closed with the process
        procs.append(
            subprocess.Popen(
                [
                    PROMETHEUS or "prometheus",
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=log,
            )
        )
        base = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                with urllib.request.urlopen(base + "/-/ready", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_until(ready, 60, "prometheus to be ready", every=0.2)
        return base

    yield start
    for p in procs:
        p.terminate()
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def query(base: str, promql: str) -> list[dict[str, Any]]:
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as r:
        reply = json.load(r)
    assert reply["status"] == "success", reply
    result: list[dict[str, Any]] = reply["data"]["result"]
    return result


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (apt prometheus)")
def test_a_real_prometheus_scrapes_the_daemon(
    spawn_daemon: Callable[..., Daemon],
    sleeper: Callable[..., subprocess.Popen[bytes]],
    prometheus: Callable[[str], str],
) -> None:
    d = spawn_daemon({**HTTP, "metrics_interval": "1s"})
    p = sleeper()
    d.call("add", {"pid": p.pid, "name": "x"})
    base = prometheus(d.call("status")["http"])

    def same_rss() -> bool:
        got = query(base, 'goproc_process_resident_memory_bytes{name="x"}')
        rss = (d.call("show", {"names": ["x"]})["metrics"] or {}).get("rss_bytes")
        return bool(got) and float(got[0]["value"][1]) == rss

    wait_until(same_rss, 30, "Prometheus to hold the daemon's rss_bytes", every=0.2)
    up = query(base, 'goproc_process_up{name="x"}')
    assert float(up[0]["value"][1]) == 1
    assert up[0]["metric"]["pid"] == str(p.pid) and up[0]["metric"]["id"] == "1"
    p.kill()
    p.wait()
    killed = time.monotonic()

    def down() -> bool:
        got = query(base, 'goproc_process_up{name="x"}')
        return bool(got) and float(got[0]["value"][1]) == 0

    wait_until(down, 10, "goproc_process_up to drop to 0", every=0.1)
    assert time.monotonic() - killed <= 2.5, "more than two scrapes (1 s each) and a margin"
