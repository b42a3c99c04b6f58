"""The metrics sampler, measured: accuracy against the kernel's own figures, what sampling
1,000 processes costs the daemon, and what their history costs in memory.

    python bench/metrics.py                  # a table
    python bench/metrics.py --json           # the raw numbers as JSON on stdout
    python bench/metrics.py --check          # exit 1 when a bar is missed
    python bench/metrics.py --procs 200 --seconds 20    # a shorter run (the table says so)

1. Accuracy, one daemon at `metrics_interval` 1s:
   - a busy loop (`python -c 'while True: pass'`): `cpu_percent` once three sweeps have
     sampled it; bar 100 +- 10;
   - a process holding 200 MB (touched): `rss_bytes` against /proc/PID/status VmRSS
     read right after; bar within 2%;
   - a `dd if=/dev/zero bs=1M count=64 oflag=direct` writer (in a shell that then waits,
     so the daemon reads its counters with dd's reaped into them), on a filesystem that
     takes O_DIRECT (/var/tmp, else the temp dir; skipped if neither): `write_bytes`
     against the 64 MiB dd wrote; bar within 5%;
   - a process that burns 2 s of CPU when told, then sleeps: `cpu_seconds` against
     psutil's user + system for it; bar within 2%; and what the burn added to it against
     what Prometheus's process-exporter (when installed; it counts a process's CPU from
     when it first sees it, so it is shown the process before the burn) counted for it.
2. Cost, two daemons side by side over the same --seconds (default 60) window, both
   tracking the same --procs (default 1,000) `sleep` processes and each pinged on one
   connection every 100 ms: "on" at `metrics_interval` --interval (default 1s), "off"
   with sampling off.  Daemon CPU (utime + stime, /proc/PID/stat) as % of one core, bar
   <= 4% for "on"; the sampler's own share (on - off) per sampled process per sweep;
   `ping` p99 on "on", bar <= 5 ms.
3. Memory: the two daemons' VmRSS at the end of that window; history is allocated whole
   at an entry's first sample (300 samples), so "on" holds full history for every entry.
   Bar: on - off <= 10 MB.

Every process started here is stopped and reaped at the end, also on errors and Ctrl+C.
Progress goes to stderr; the table (or JSON) to stdout.  Nothing is hard-coded: every
number printed was measured in this run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
from harness import LineClient, Runner, find_runner, running_daemon, sleep_processes

CPU_BAR = (90.0, 110.0)
RSS_BAR = 0.02
WRITE_BAR = 0.05
CPU_SECONDS_BAR = 0.02
COST_BAR_PERCENT = 4.0
PING_P99_BAR_MS = 5.0
HISTORY_BAR_MB = 10.0
DD_MB = 64

BUSY = [sys.executable, "-c", "while True: pass"]
HOLD = [
    sys.executable,
    "-c",
    "import time; b = bytearray(200 << 20); b[::4096] = b'x' * len(b[::4096]);"
    " print('ok', flush=True); time.sleep(3600)",
]
BURN_MARKER = f"goproc-bench-burner-{os.getpid()}"
BURN = [  # burns 2 s of CPU once told to (a line on stdin), then sleeps
    sys.executable,
    "-c",
    "import sys, time; sys.stdin.readline(); t = time.process_time()\n"
    "while time.process_time() - t < 2: pass\nprint('ok', flush=True); time.sleep(3600)",
    BURN_MARKER,
]


def progress(message: str) -> None:
    print(f"metrics: {message}", file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


@contextlib.contextmanager
def started(cmd: list[str], **kw: Any) -> Iterator[subprocess.Popen[bytes]]:
    p = subprocess.Popen(cmd, **kw)
    try:
        yield p
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()


def call(c: LineClient, method: str, params: dict[str, Any] | None = None) -> Any:
    return c.call(method, params)  # an error reply raises


def after_sweeps(c: LineClient, n: int, timeout: float = 60.0) -> None:
    first = call(c, "status")["metrics_sweeps"]
    deadline = time.monotonic() + timeout
    while call(c, "status")["metrics_sweeps"] < first + n:
        if time.monotonic() > deadline:
            raise TimeoutError("the sampler does not sweep")
        time.sleep(0.05)


def metrics(c: LineClient, proc_id: int) -> dict[str, Any]:
    m: dict[str, Any] | None = call(c, "show", {"ids": [proc_id]})["metrics"]
    if m is None:
        raise RuntimeError(f"entry {proc_id} has no metrics")
    return m


def direct_io_dir() -> Path | None:
    for base in ("/var/tmp", tempfile.gettempdir()):
        probe = Path(base) / f"goproc-bench-odirect-{os.getpid()}"
        r = subprocess.run(
            ["dd", "if=/dev/zero", f"of={probe}", "bs=4096", "count=1", "oflag=direct"],
            capture_output=True,
        )
        probe.unlink(missing_ok=True)
        if r.returncode == 0:
            return Path(base)
    return None


def accuracy(runner: Runner) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with (
        running_daemon(runner, config={"metrics_interval": "1s"}) as d,
        LineClient(d.socket) as c,
    ):
        progress("accuracy: a busy loop, 200 MB held, 2 s of CPU burned")
        with (
            started(BUSY) as busy,
            started(HOLD, stdout=subprocess.PIPE) as hold,
            started(BURN, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as burn,
            contextlib.ExitStack() as stack,
        ):
            assert hold.stdout is not None and burn.stdout is not None and burn.stdin is not None
            hold.stdout.readline()
            ids = [call(c, "add", {"pid": p.pid})["id"] for p in (busy, hold, burn)]
            # process-exporter counts a process's CPU from when it first sees it: it is
            # shown the burner before the burn, and compared on what the burn added.
            url = None
            if EXPORTER is not None:
                config = f"process_names:\n  - name: one\n    cmdline:\n      - '{BURN_MARKER}'\n"
                url = stack.enter_context(exporter(config))[1]
                exported_before = exporter_cpu(url)
            after_sweeps(c, 1)
            before = metrics(c, ids[2])["cpu_seconds"]
            burn.stdin.write(b"go\n")
            burn.stdin.flush()
            burn.stdout.readline()
            after_sweeps(c, 3)
            out["busy_cpu_percent"] = metrics(c, ids[0])["cpu_percent"]
            m = metrics(c, ids[1])
            out["rss_bytes"], out["vmrss_bytes"] = m["rss_bytes"], vm(hold.pid, "VmRSS")
            t = psutil.Process(burn.pid).cpu_times()
            out["cpu_seconds"] = metrics(c, ids[2])["cpu_seconds"]
            out["psutil_cpu_seconds"] = t.user + t.system
            out["burn_cpu_seconds"] = out["cpu_seconds"] - before
            out["exporter_burn_cpu_seconds"] = (
                None if url is None else exporter_cpu(url) - exported_before
            )
        out["dd"] = dd_writer(c)
    return out


def dd_writer(c: LineClient) -> dict[str, Any] | None:
    where = direct_io_dir()
    if where is None:
        return None
    target = where / f"goproc-bench-dd-{os.getpid()}"
    script = f"dd if=/dev/zero of={target} bs=1M count={DD_MB} oflag=direct status=none; read x"
    progress(f"accuracy: a dd writer of {DD_MB} MiB with oflag=direct in {where}")
    try:
        with started(["sh", "-c", script], stdin=subprocess.PIPE) as p:
            proc_id = call(c, "add", {"pid": p.pid})["id"]
            deadline = time.monotonic() + 60
            while not target.exists() or target.stat().st_size < DD_MB << 20:
                if time.monotonic() > deadline:
                    raise TimeoutError("dd did not finish")
                time.sleep(0.05)
            time.sleep(0.2)  # dd exits and is reaped by the shell
            after_sweeps(c, 6)  # io counters are read every fifth sweep
            return {"dir": str(where), "written": DD_MB << 20, **metrics(c, proc_id)}
    finally:
        target.unlink(missing_ok=True)


EXPORTER = shutil.which("prometheus-process-exporter") or shutil.which("process-exporter")


@contextlib.contextmanager
def exporter(config: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Prometheus's process-exporter on a free local port with `config` (YAML)."""
    assert EXPORTER is not None
    with tempfile.TemporaryDirectory(prefix="goproc-bench-exporter-") as tmp:
        cfg = Path(tmp) / "config.yml"
        cfg.write_text(config)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        argv = [EXPORTER, "-config.path", str(cfg), "-web.listen-address", f"127.0.0.1:{port}"]
        argv += ["-threads=false", "-gather-smaps=false"]
        with started(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as p:
            url = f"http://127.0.0.1:{port}/metrics"
            deadline = time.monotonic() + 10
            while True:
                try:
                    scrape(url)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield p, url


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        text: str = r.read().decode()
        return text


def exporter_cpu(url: str) -> float:
    """process-exporter's user + system CPU seconds of its one group."""
    total = 0.0
    for line in scrape(url).splitlines():
        if line.startswith("namedprocess_namegroup_cpu_seconds_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def exporter_cost(seconds: float, procs: int) -> dict[str, Any] | None:
    """process-exporter over the same `sleep`s, scraped once a second for `seconds`:
    its CPU (% of a core) and per process per scrape."""
    if EXPORTER is None:
        return None
    progress(f"cost: process-exporter over the same {procs} sleeps, {seconds:.0f} s")
    with exporter("process_names:\n  - comm:\n      - sleep\n") as (p, url):
        scrape(url)
        cpu0, t0, scrapes = cpu_seconds(p.pid), time.monotonic(), 0
        while time.monotonic() - t0 < seconds:
            scrape(url)
            scrapes += 1
            time.sleep(max(0.0, t0 + scrapes - time.monotonic()))
        cpu, elapsed = cpu_seconds(p.pid) - cpu0, time.monotonic() - t0
    return {
        "cpu_percent": cpu / elapsed * 100,
        "per_process_us": cpu / max(1, scrapes * procs) * 1e6,
        "scrapes": scrapes,
    }


class Pinger:
    """`ping` on one connection every `every` seconds, in a thread; latencies kept."""

    def __init__(self, path: Path, every: float = 0.1) -> None:
        self.client = LineClient(path)
        self.every = every
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.perf_counter()
            call(self.client, "ping")
            self.latencies.append(time.perf_counter() - t)
            self._stop.wait(self.every)

    def __enter__(self) -> Pinger:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.client.close()


def p99_ms(seconds: list[float]) -> float:
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000 if ordered else 0.0


def cost(runner: Runner, args: argparse.Namespace) -> dict[str, Any]:
    on_config = {"metrics_interval": args.interval}
    with (
        sleep_processes(args.procs) as pids,
        running_daemon(runner, config=on_config) as on,
        running_daemon(runner, config={"metrics_interval": "off"}) as off,
    ):
        for d in (on, off):
            with LineClient(d.socket) as c:
                for at in range(0, len(pids), 500):
                    call(c, "add", {"pids": pids[at : at + 500]})
        with LineClient(on.socket) as c:
            after_sweeps(c, 2)
            before = call(c, "status")
        progress(f"cost: {args.procs} processes, both daemons, {args.seconds} s")
        cpu0 = {n: cpu_seconds(d.proc.pid) for n, d in (("on", on), ("off", off))}
        t0 = time.monotonic()
        with Pinger(on.socket) as ping_on, Pinger(off.socket) as ping_off:
            time.sleep(args.seconds)
        elapsed = time.monotonic() - t0
        cpu = {n: cpu_seconds(d.proc.pid) - cpu0[n] for n, d in (("on", on), ("off", off))}
        with LineClient(on.socket) as c:
            after = call(c, "status")
        rss = {n: vm(d.proc.pid, "VmRSS") for n, d in (("on", on), ("off", off))}
        exported = exporter_cost(args.exporter_seconds, len(pids))
    sweeps = after["metrics_sweeps"] - before["metrics_sweeps"]
    return {
        "elapsed": elapsed,
        "cpu_percent": {n: v / elapsed * 100 for n, v in cpu.items()},
        "sweeps": sweeps,
        "sampled": after["metrics_sampled"],
        "last_sweep_seconds": after["metrics_last_sweep_seconds"],
        "per_process_us": (cpu["on"] - cpu["off"])
        / max(1, sweeps * after["metrics_sampled"])
        * 1e6,
        "ping_p99_ms": {"on": p99_ms(ping_on.latencies), "off": p99_ms(ping_off.latencies)},
        "pings": len(ping_on.latencies),
        "rss_mb": {n: v / 2**20 for n, v in rss.items()},
        "exporter": exported,
    }


def rows(
    acc: dict[str, Any], cst: dict[str, Any], args: argparse.Namespace
) -> list[dict[str, Any]]:
    def within(got: float, want: float, bar: float) -> tuple[str, bool]:
        off = abs(got - want) / want if want else float("inf")
        return f"{got:,.0f} vs {want:,.0f} ({off:+.2%})".replace("+", "±"), off <= bar

    out = []
    cpu = acc["busy_cpu_percent"]
    out.append(
        (
            "busy loop cpu_percent after 3 sweeps",
            f"{cpu:.1f}",
            "100 ± 10",
            CPU_BAR[0] <= cpu <= CPU_BAR[1],
        )
    )
    text, ok = within(acc["rss_bytes"], acc["vmrss_bytes"], RSS_BAR)
    out.append(("200 MB held: rss_bytes vs VmRSS", text, "within 2%", ok))
    dd = acc["dd"]
    if dd is None:
        out.append(
            ("dd oflag=direct: write_bytes", "skipped: no O_DIRECT filesystem", "within 5%", None)
        )
    else:
        text, ok = within(dd["write_bytes"] or 0, dd["written"], WRITE_BAR)
        out.append(
            (
                f"dd {DD_MB} MiB oflag=direct ({dd['dir']}): write_bytes vs written",
                text,
                "within 5%",
                ok,
            )
        )
    got, want = acc["cpu_seconds"], acc["psutil_cpu_seconds"]
    off = abs(got - want) / want
    out.append(
        (
            "2 s burner: cpu_seconds vs psutil",
            f"{got:.2f} vs {want:.2f} s ({off:.2%})",
            "within 2%",
            off <= CPU_SECONDS_BAR,
        )
    )
    exp, burned = acc["exporter_burn_cpu_seconds"], acc["burn_cpu_seconds"]
    if exp is None:
        out.append(("the burn: cpu_seconds vs process-exporter", "not installed", "2%", None))
    else:
        off = abs(burned - exp) / exp if exp else float("inf")
        text = f"{burned:.2f} vs {exp:.2f} s ({off:.2%})"
        out.append(("the burn: cpu_seconds added vs process-exporter's", text, "2%", off <= 0.02))
    on, offd = cst["cpu_percent"]["on"], cst["cpu_percent"]["off"]
    out.append(
        (
            f"daemon CPU, {args.procs} procs at {args.interval} over {cst['elapsed']:.0f} s",
            f"{on:.2f}% of a core (sampling off: {offd:.2f}%)",
            f"<= {COST_BAR_PERCENT}%",
            on <= COST_BAR_PERCENT,
        )
    )
    out.append(
        (
            "sampler CPU per process per sweep (on - off)",
            f"{cst['per_process_us']:.1f} us ({cst['sweeps']} sweeps of {cst['sampled']}; "
            f"last sweep {cst['last_sweep_seconds'] * 1000:.1f} ms)",
            "-",
            None,
        )
    )
    exported = cst["exporter"]
    if exported is not None:
        out.append(
            (
                f"process-exporter over the same procs, 1 scrape/s ({exported['scrapes']} scrapes)",
                f"{exported['per_process_us']:.1f} us per process per scrape; "
                f"{exported['cpu_percent']:.1f}% of a core",
                "-",
                None,
            )
        )
    p99 = cst["ping_p99_ms"]
    out.append(
        (
            f"ping p99 meanwhile ({cst['pings']} pings)",
            f"{p99['on']:.2f} ms (off: {p99['off']:.2f} ms)",
            f"<= {PING_P99_BAR_MS} ms",
            p99["on"] <= PING_P99_BAR_MS,
        )
    )
    rss = cst["rss_mb"]
    extra = rss["on"] - rss["off"]
    out.append(
        (
            f"RSS with history of {args.procs} (300 samples each) vs none",
            f"+{extra:.1f} MB ({rss['on']:.1f} vs {rss['off']:.1f} MB)",
            f"<= {HISTORY_BAR_MB} MB",
            extra <= HISTORY_BAR_MB,
        )
    )
    return [{"metric": m, "measured": v, "bar": b, "ok": ok} for m, v, b, ok in out]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/metrics.py", description=__doc__.split("\n")[0])
    p.add_argument("--procs", type=int, default=1000, help="cost: sleep processes tracked")
    p.add_argument("--seconds", type=float, default=60.0, help="cost: the measured window")
    p.add_argument("--interval", default="1s", help="cost: metrics_interval of the 'on' daemon")
    p.add_argument(
        "--exporter-seconds", type=float, default=20.0, help="cost: process-exporter's window"
    )
    p.add_argument("--runner", choices=["script", "module"], default="script")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--check", action="store_true", help="exit 1 when a bar is missed")
    args = p.parse_args(argv)
    runner = find_runner(args.runner)
    acc = accuracy(runner)
    cst = cost(runner, args)
    table = rows(acc, cst, args)
    info = {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()}
    if args.json:
        print(json.dumps({"machine": info, "accuracy": acc, "cost": cst, "rows": table}, indent=2))
    else:
        print(f"goproc metrics bench  [{runner.describe()}; {info}]")
        for r in table:
            mark = {True: "ok", False: "MISSED", None: "-"}[r["ok"]]
            print(f"  {r['metric']:<58} {r['measured']:<58} {r['bar']:<14} {mark}")
    return 1 if args.check and any(r["ok"] is False for r in table) else 0


if __name__ == "__main__":
    sys.exit(main())
