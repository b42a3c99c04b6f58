"""The HTTP listener, measured: what a Prometheus scrape of /metrics costs with 1,000
tracked processes, beside Prometheus's process-exporter exporting the same processes,
and the socket's `ping` while 100 HTTP clients scrape in a loop.

    python bench/scrape.py                     # the table
    python bench/scrape.py --json              # the raw numbers as JSON on stdout
    python bench/scrape.py --check             # exit 1 when a bar is missed
    python bench/scrape.py --entries 1000 --seconds 30 --clients 100

1. Scrape: `--entries` real `sleep` processes tracked by a daemon (default config, so
   metrics sampled every 2 s, with `http_listen` on 127.0.0.1), one sweep waited for;
   then 20 GETs of /metrics, each collected anew: at least 0.6 s apart (the daemon
   sends a body again only to scrapers within 0.5 s of it) and each just after a
   metrics sweep (between sweeps the daemon keeps the entries' part of a body, which
   is nearly all of it; after one, it encodes again only the families whose samples
   changed): latency p50, p99 (bar p50 <= 50 ms); beside it, the worst case those kept
   texts hide, a body whose every family changed, collected and encoded in this
   process (no HTTP, same bar); and the daemon's CPU (utime + stime of /proc/PID/stat)
   over --seconds while it is scraped once a second (so every other scrape finds the
   entries' part kept, as a Prometheus scraping every second does), beside the same
   span unscraped (bar: scraped <= 5% of one core).
   prometheus-process-exporter (when installed), configured to export each of the
   same processes as its own group, is measured the same way, side by side.
2. Clients: --clients HTTP clients (keep-alive connections, in 4 worker processes so
   this one only measures) GET /metrics in a loop for --seconds while this process
   sends `ping` on the socket, one after another; bar: no HTTP error, ping p99 <= 5 ms.

Every process started here is killed and reaped at the end.  Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import multiprocessing
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from exits import percentiles_ms
from harness import (
    LineClient,
    Runner,
    cpu_seconds,
    find_runner,
    report,
    running_daemon,
    sleep_processes,
)

BARS = {"scrape_p50_ms": 50.0, "scrape_cpu_percent": 5.0, "ping_p99_ms": 5.0}
WORKERS = 4
SCRAPES, GAP = 20, 0.6  # goproc sends a body again to other scrapers for 0.5 s


def progress(message: str) -> None:
    print(f"scrape: {message}", file=sys.stderr, flush=True)


def get(address: str, path: str, conn: http.client.HTTPConnection | None = None) -> bytes:
    host, port = address.rsplit(":", 1)
    own = conn is None
    c = conn or http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {r.status}")
        return body
    finally:
        if own:
            c.close()


def scrape_numbers(
    address: str, pid: int, seconds: float, sweeps: Callable[[], int] | None = None
) -> dict[str, Any]:
    """Latency of SCRAPES scrapes, each made anew: GAP apart (longer than a body is
    sent again to other scrapers) and, for goproc, each just after a metrics sweep
    (`sweeps` counts them), so none finds its entries' part kept; then the CPU of
    `pid` over `seconds` unscraped and over `seconds` scraped once a second."""
    latencies = []
    size = 0
    for _ in range(SCRAPES):
        time.sleep(GAP)
        if sweeps is not None:
            last = sweeps()
            while sweeps() == last:
                time.sleep(0.02)
        started = time.perf_counter()
        size = len(get(address, "/metrics"))
        latencies.append(time.perf_counter() - started)
    before = cpu_seconds(pid)
    time.sleep(seconds)
    idle = cpu_seconds(pid) - before
    before, started = cpu_seconds(pid), time.monotonic()
    for n in range(int(seconds)):
        time.sleep(max(0.0, started + n - time.monotonic()))
        get(address, "/metrics")
    time.sleep(max(0.0, started + seconds - time.monotonic()))
    scraped = cpu_seconds(pid) - before
    return {
        "latency_ms": percentiles_ms(latencies),
        "bytes": size,
        "idle_cpu_percent": 100 * idle / seconds,
        "scraped_cpu_percent": 100 * scraped / seconds,
        "cpu_per_scrape_ms": 1000 * (scraped - idle) / int(seconds),
    }


def every_family_anew_ms(entries: int, rounds: int = 10) -> dict[str, float]:
    """The worst case the daemon's kept texts hide: a body whose every family changed
    (each scrape by a new `Exposition`, which has kept nothing), in this process over
    `entries` sampled entries: collect and encode, no HTTP."""
    from goproc.daemon.counters import RpcStats
    from goproc.daemon.exposition import Exposition, GoprocCollector
    from goproc.metrics import MetricsStore, Reading
    from goproc.model import ProcessFacts
    from goproc.registry import Registry
    from goproc.rpc.entries import metrics_text

    registry, now = Registry(), time.time()
    facts = [ProcessFacts(pid=10_000 + n, started_at=now - n, cmd="sleep 3600", pgid=None)
             for n in range(entries)]  # fmt: skip
    registry.apply(registry.plan_add(facts, now=now)[1])
    store = MetricsStore(300, metrics_text)
    for p in registry:
        store.record(p, Reading(0.01, 1_600_000, 8_000_000, 1, 0, 0, 4), now, 10.0)
    collector = GoprocCollector(registry, store, RpcStats(), lambda: 0, dict, lambda: 0)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        Exposition(collector).render(None)
        times.append(time.perf_counter() - started)
    return percentiles_ms(times)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def process_exporter(pids: list[int]) -> Iterator[tuple[str, int] | None]:
    """prometheus-process-exporter exporting each of `pids` as its own group (its
    address and pid), or None when it is not installed."""
    binary = shutil.which("prometheus-process-exporter") or shutil.which("process-exporter")
    if binary is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="goproc-bench-pe-") as tmp:
        config = Path(tmp) / "config.yml"
        config.write_text('process_names:\n  - name: "{{.PID}}"\n    comm: [sleep]\n')
        port = free_port()
        p = subprocess.Popen(
            [binary, f"--config.path={config}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            address = f"127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    get(address, "/metrics")
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            yield address, p.pid
        finally:
            p.terminate()
            p.wait(10)


def _client_worker(address: str, clients: int, until: float, out: Any) -> None:
    """`clients` keep-alive connections in threads, each GET /metrics in a loop."""
    import threading

    counts = {"ok": 0, "errors": 0, "first_error": ""}
    lock = threading.Lock()

    def loop() -> None:
        host, port = address.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        while time.time() < until:
            try:
                get(address, "/metrics", conn)
                with lock:
                    counts["ok"] += 1
            except Exception as e:  # every failure counts; the loop goes on
                with lock:
                    counts["errors"] += 1
                    counts["first_error"] = counts["first_error"] or repr(e)
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.close()

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(counts)


def concurrent(address: str, sock: Path, clients: int, seconds: float) -> dict[str, Any]:
    until = time.time() + seconds
    results: Any = multiprocessing.Queue()
    shares = [clients // WORKERS + (n < clients % WORKERS) for n in range(WORKERS)]
    workers = [
        multiprocessing.Process(target=_client_worker, args=(address, k, until, results))
        for k in shares
        if k
    ]
    for w in workers:
        w.start()
    pings = []
    with LineClient(sock) as client:
        while time.time() < until:
            started = time.perf_counter()
            client.call("ping")
            pings.append(time.perf_counter() - started)
    counts = [results.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(30)
    return {
        "clients": clients,
        "seconds": seconds,
        "scrapes": sum(c["ok"] for c in counts),
        "errors": sum(c["errors"] for c in counts),
        "first_error": next((c["first_error"] for c in counts if c["first_error"]), ""),
        "ping_ms": percentiles_ms(pings),
    }


def run(runner: Runner, entries: int, seconds: float, clients: int) -> dict[str, Any]:
    config = {"http_listen": "127.0.0.1:0"}
    with sleep_processes(entries) as pids, running_daemon(runner, config=config) as d:
        assert d.proc is not None
        with LineClient(d.socket) as client:
            for start in range(0, len(pids), 500):
                client.call("add", {"pids": pids[start : start + 500]})
            address = client.call("status")["http"]
            deadline = time.monotonic() + 30
            while client.call("status")["metrics_sampled"] < entries:
                if time.monotonic() > deadline:
                    raise RuntimeError("the sampler did not sweep every entry")
                time.sleep(0.2)
        progress(f"scraping goproc: {entries} entries")
        with LineClient(d.socket) as client:
            goproc = scrape_numbers(
                address, d.proc.pid, seconds, lambda: int(client.call("status")["metrics_sweeps"])
            )
        with process_exporter(pids) as exporter:
            other = None
            if exporter is not None:
                progress("scraping prometheus-process-exporter, the same processes")
                other = scrape_numbers(exporter[0], exporter[1], seconds)
        progress(f"{clients} clients scraping for {seconds:g}s, ping on the socket")
        together = concurrent(address, d.socket, clients, seconds)
    progress("every family encoded anew, in this process")
    worst = every_family_anew_ms(entries)
    return {
        "entries": entries,
        "goproc": goproc,
        "every_family_anew_ms": worst,
        "process_exporter": other,
        "clients": together,
    }


def rows_of(r: dict[str, Any]) -> list[dict[str, Any]]:
    g, pe, c = r["goproc"], r["process_exporter"], r["clients"]
    beside = (
        f"; process-exporter: p50 {pe['latency_ms']['median']:.1f} ms,"
        f" {pe['cpu_per_scrape_ms']:.0f} ms CPU a scrape"
        if pe
        else "; process-exporter not installed"
    )
    return [
        {
            "metric": f"/metrics with {r['entries']} entries ({g['bytes']} bytes)",
            "measured": f"p50 {g['latency_ms']['median']:.1f} ms,"
            f" p99 {g['latency_ms']['p99']:.1f} ms" + beside,
            "bar": f"p50 <= {BARS['scrape_p50_ms']:g} ms",
            "ok": g["latency_ms"]["median"] <= BARS["scrape_p50_ms"],
        },
        {
            "metric": "  the same body, every family changed (no HTTP)",
            "measured": f"p50 {r['every_family_anew_ms']['median']:.1f} ms in-process"
            " (a scrape after a sweep encodes only the families that changed)",
            "bar": f"p50 <= {BARS['scrape_p50_ms']:g} ms",
            "ok": r["every_family_anew_ms"]["median"] <= BARS["scrape_p50_ms"],
        },
        {
            "metric": "daemon CPU, one scrape a second",
            "measured": f"{g['scraped_cpu_percent']:.2f}% (unscraped {g['idle_cpu_percent']:.2f}%,"
            f" {g['cpu_per_scrape_ms']:.1f} ms a scrape)"
            + (f"; process-exporter {pe['scraped_cpu_percent']:.2f}%" if pe else ""),
            "bar": f"<= {BARS['scrape_cpu_percent']:g}% of one core",
            "ok": g["scraped_cpu_percent"] <= BARS["scrape_cpu_percent"],
        },
        {
            "metric": f"{c['clients']} HTTP clients scraping for {c['seconds']:g}s",
            "measured": f"{c['scrapes']} scrapes, {c['errors']} errors; ping p99"
            f" {c['ping_ms']['p99']:.2f} ms (median {c['ping_ms']['median']:.2f},"
            f" {c['ping_ms']['count']} pings)",
            "bar": f"no errors, ping p99 <= {BARS['ping_p99_ms']:g} ms",
            "ok": c["errors"] == 0 and c["ping_ms"]["p99"] <= BARS["ping_p99_ms"],
        },
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/scrape.py", description=__doc__.split("\n")[0])
    p.add_argument("--entries", type=int, default=1000, help="tracked processes (1000)")
    p.add_argument("--seconds", type=float, default=30.0, help="each measured span (30)")
    p.add_argument("--clients", type=int, default=100, help="concurrent HTTP clients (100)")
    p.add_argument("--runner", choices=["script", "module"], default="script")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--check", action="store_true", help="exit 1 when a bar is missed")
    args = p.parse_args(argv)
    runner = find_runner(args.runner)
    result = run(runner, args.entries, args.seconds, args.clients)
    table = rows_of(result)
    return report("scrape", runner, result, table, as_json=args.json, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
