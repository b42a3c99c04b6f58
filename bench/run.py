"""goproc benchmarks: each one is measured side by side with its baseline, in one run,
on this machine, and checked against its bar.

    python bench/run.py                      # all benchmarks, a table
    python bench/run.py --bench ping-rps     # one (repeat --bench for more)
    python bench/run.py --json               # the raw numbers as JSON on stdout
    python bench/run.py --check              # exit 1 when a bar is missed

Benchmarks (each starts its own daemon in a temp dir and stops it afterwards):
- ping-wall: median wall time of `goproc ping` vs `python -c "import cyclopts"`, same
  interpreter (hyperfine when installed, in rounds of alternating order, else an
  interleaving subprocess timer); bar <= 1.3x.
- ping-rps: sequential `ping` requests per second over one connection vs a bare trio
  line-echo server (bench/echo_server.py), same blocking client, timed in alternating
  blocks; bar >= 0.5x.
- add: sequential `add`s over one connection of as many real `sleep` processes (started
  before the clock runs): adds/s (bar >= 2,000/s) and the snapshot writes they caused,
  read from `status` before and after the writer settles (bar <= 20).

Progress goes to stderr; the table (or JSON) to stdout.  Nothing is hard-coded: every
number printed was measured in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness import (
    LineClient,
    Runner,
    find_runner,
    running_daemon,
    running_echo_server,
    sleep_processes,
)

from goproc.config import Config

PING_WALL_BAR = 1.3  # goproc ping / import cyclopts, at most
PING_RPS_BAR = 0.5  # goproc pings/s / echo lines/s, at least
ADDS_PER_S_BAR = 2000.0  # at least
SNAPSHOT_WRITES_BAR = 20  # at most, for the whole burst of adds
SETTLE_TIMEOUT = 30.0  # the snapshot writer must go quiet within this
HYPERFINE_ROUNDS = 5  # ping-wall: hyperfine runs split into this many alternating rounds


@dataclass
class Row:
    """One bar: what goproc did, what the baseline did, and whether the bar is met."""

    bench: str
    metric: str
    goproc: str
    baseline: str
    result: str
    bar: str
    ok: bool
    raw: dict[str, Any] = field(default_factory=dict)


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# ---- ping wall time ------------------------------------------------------------------------


def bench_ping_wall(runner: Runner, args: argparse.Namespace) -> list[Row]:
    """A user's `goproc ping` (process start, imports, connect, one request) against the
    floor every cyclopts CLI pays: starting the interpreter and importing cyclopts."""
    baseline_argv = [runner.python, "-c", "import cyclopts"]
    with running_daemon(runner) as daemon:
        ping_argv = [*runner.argv, "ping"]
        check = subprocess.run(ping_argv, env=daemon.env, capture_output=True, text=True)
        if check.returncode != 0 or check.stdout != "pong\n":
            raise RuntimeError(f"goproc ping failed ({check.returncode}): {check.stderr.strip()}")
        use_hyperfine = shutil.which("hyperfine") is not None and not args.no_hyperfine
        timer = _hyperfine if use_hyperfine else _subprocess_timer
        progress(
            f"ping-wall: {args.runs} runs each ({args.warmup} warmup) with "
            f"{'hyperfine' if use_hyperfine else 'a subprocess timer'}"
        )
        goproc_t, base_t = timer([ping_argv, baseline_argv], daemon.env, args.runs, args.warmup)
    ratio = goproc_t["median"] / base_t["median"]
    cpu_ratio = goproc_t["cpu_mean"] / base_t["cpu_mean"]
    return [
        Row(
            bench="ping-wall",
            metric=f"`goproc ping` median wall time ({args.runs} runs)",
            goproc=f"{goproc_t['median'] * 1e3:.1f} ms (CPU {goproc_t['cpu_mean'] * 1e3:.1f})",
            baseline=(
                f"{base_t['median'] * 1e3:.1f} ms (CPU {base_t['cpu_mean'] * 1e3:.1f})  "
                "python -c 'import cyclopts'"
            ),
            result=f"{ratio:.2f}x (CPU {cpu_ratio:.2f}x)",
            bar=f"<= {PING_WALL_BAR:.2f}x",
            ok=ratio <= PING_WALL_BAR,
            raw={
                "ratio": ratio,
                "cpu_ratio": cpu_ratio,
                "timer": "hyperfine" if use_hyperfine else "subprocess",
                "goproc_command": shlex.join(ping_argv),
                "baseline_command": shlex.join(baseline_argv),
                "goproc_seconds": goproc_t,
                "baseline_seconds": base_t,
            },
        )
    ]


def _summary(times: list[float], cpu: float) -> dict[str, Any]:
    """Wall-time statistics of the runs; `cpu` is the mean user+system CPU seconds per
    run, which machine load disturbs far less than wall time."""
    return {
        "median": statistics.median(times),
        "mean": statistics.fmean(times),
        "stddev": statistics.stdev(times) if len(times) > 1 else 0.0,
        "min": min(times),
        "max": max(times),
        "runs": len(times),
        "cpu_mean": cpu,
    }


def _hyperfine(
    commands: list[list[str]], env: dict[str, str], runs: int, warmup: int
) -> list[dict[str, Any]]:
    """Time each command with hyperfine (no intermediate shell: -N).  The runs are split
    into rounds that alternate the order of the commands, and pooled, so a change in
    machine load during the measurement hits all commands alike."""
    rounds = min(HYPERFINE_ROUNDS, runs // 2)
    times: list[list[float]] = [[] for _ in commands]
    cpu = [0.0 for _ in commands]
    with tempfile.TemporaryDirectory(prefix="goproc-bench-hf-") as tmp:
        for r in range(rounds):
            n = runs // rounds + (1 if r < runs % rounds else 0)
            order = list(range(len(commands)))
            if r % 2:
                order.reverse()
            export = Path(tmp) / f"round-{r}.json"
            argv = ["hyperfine", "-N", "--style", "basic", "--warmup", str(warmup)]
            argv += ["--runs", str(n), "--export-json", str(export)]
            argv += [shlex.join(commands[i]) for i in order]
            subprocess.run(argv, env=env, check=True, stdout=sys.stderr)
            results = json.loads(export.read_text())["results"]
            for i, result in zip(order, results, strict=True):
                times[i].extend(result["times"])
                cpu[i] += (result["user"] + result["system"]) * len(result["times"])
    return [_summary(t, c / len(t)) for t, c in zip(times, cpu, strict=True)]


def _subprocess_timer(
    commands: list[list[str]], env: dict[str, str], runs: int, warmup: int
) -> list[dict[str, Any]]:
    """Time each command as a subprocess, interleaved so drift hits all of them alike."""
    times: list[list[float]] = [[] for _ in commands]
    cpu = [0.0 for _ in commands]
    for n in range(warmup + runs):
        for i, argv in enumerate(commands):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
            elapsed = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if n >= warmup:
                times[i].append(elapsed)
                cpu[i] += (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return [_summary(t, c / len(t)) for t, c in zip(times, cpu, strict=True)]


# ---- ping requests per second --------------------------------------------------------------


def bench_ping_rps(runner: Runner, args: argparse.Namespace) -> list[Row]:
    """Sequential round trips over one connection, the same client for both servers: what
    the daemon adds on top of trio moving one line each way.  Both servers run at once and
    are timed in alternating blocks, so a change in machine load hits both alike."""
    n = args.requests
    block = max(1, min(1000, n // 20))
    with (
        running_echo_server(runner.python) as echo,
        running_daemon(runner) as daemon,
        LineClient(echo.socket) as echo_client,
        LineClient(daemon.socket) as goproc_client,
    ):
        if goproc_client.call("ping") != "pong":
            raise RuntimeError("ping did not answer pong")
        progress(f"ping-rps: {n} pings to each server, alternating blocks of {block}")
        warmup = min(1000, max(n // 10, 1))
        _time_roundtrips(echo_client, warmup)
        _time_roundtrips(goproc_client, warmup)
        echo_s = goproc_s = 0.0
        done = 0
        while done < n:
            k = min(block, n - done)
            if (done // block) % 2:
                goproc_s += _time_roundtrips(goproc_client, k)
                echo_s += _time_roundtrips(echo_client, k)
            else:
                echo_s += _time_roundtrips(echo_client, k)
                goproc_s += _time_roundtrips(goproc_client, k)
            done += k
    goproc_rps, echo_rps = n / goproc_s, n / echo_s
    ratio = goproc_rps / echo_rps
    return [
        Row(
            bench="ping-rps",
            metric=f"sequential pings, 1 connection ({n} requests)",
            goproc=f"{goproc_rps:,.0f} req/s",
            baseline=f"{echo_rps:,.0f} req/s  trio line echo",
            result=f"{ratio:.2f}x",
            bar=f">= {PING_RPS_BAR:.2f}x",
            ok=ratio >= PING_RPS_BAR,
            raw={
                "ratio": ratio,
                "requests": n,
                "block": block,
                "goproc_seconds": goproc_s,
                "goproc_rps": goproc_rps,
                "echo_seconds": echo_s,
                "echo_rps": echo_rps,
            },
        )
    ]


def _time_roundtrips(client: LineClient, n: int) -> float:
    """Seconds for `n` sequential ping round trips on `client`."""
    start = time.perf_counter()
    for _ in range(n):
        client.roundtrip("ping")
    return time.perf_counter() - start


# ---- adds ----------------------------------------------------------------------------------


def bench_add(runner: Runner, args: argparse.Namespace) -> list[Row]:
    """A burst of adds: throughput, and whether the debounced snapshot writer folds the
    burst into a few writes instead of one per add."""
    n = args.adds
    progress(f"add: starting {n} sleep processes (not timed)")
    with (
        sleep_processes(n) as pids,
        running_daemon(runner) as daemon,
        LineClient(daemon.socket) as c,
    ):
        writes_before = c.call("status")["snapshot_writes"]
        progress(f"add: {n} sequential adds over one connection")
        replies = []
        start = time.perf_counter()
        for pid in pids:
            replies.append(c.roundtrip("add", {"pid": pid, "tags": ["bench"]}))
        elapsed = time.perf_counter() - start
        wrong = [r for r, pid in zip(replies, pids, strict=True) if r["result"]["pid"] != pid]
        if wrong:
            raise RuntimeError(f"{len(wrong)} adds answered for another pid, e.g. {wrong[0]}")
        progress("add: waiting for the snapshot writer to settle")
        status, settle_s = _settled_status(c)
        if status["entries"] != n:
            raise RuntimeError(f"the daemon holds {status['entries']} entries, expected {n}")
    writes = status["snapshot_writes"] - writes_before
    rate = n / elapsed
    raw = {
        "adds": n,
        "seconds": elapsed,
        "adds_per_second": rate,
        "snapshot_writes": writes,
        "settle_seconds": settle_s,
    }
    return [
        Row(
            bench="add",
            metric=f"sequential adds, 1 connection ({n} sleep processes)",
            goproc=f"{rate:,.0f} adds/s",
            baseline="-",
            result=f"{rate:,.0f}/s",
            bar=f">= {ADDS_PER_S_BAR:,.0f}/s",
            ok=rate >= ADDS_PER_S_BAR,
            raw=raw,
        ),
        Row(
            bench="add",
            metric=f"snapshot writes caused by those {n} adds",
            goproc=f"{writes} write{'' if writes == 1 else 's'}",
            baseline="-",
            result=str(writes),
            bar=f"<= {SNAPSHOT_WRITES_BAR}",
            ok=writes <= SNAPSHOT_WRITES_BAR,
            raw=raw,
        ),
    ]


def _settled_status(c: LineClient) -> tuple[dict[str, Any], float]:
    """`status` once `snapshot_writes` has not moved for three debounce periods (the
    writer has folded the whole burst); polls with a deadline."""
    quiet_for = 3 * Config().snapshot_delay  # the daemon runs on the defaults
    start = time.monotonic()
    deadline = start + SETTLE_TIMEOUT
    status = c.call("status")
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now_status = c.call("status")
        if now_status["snapshot_writes"] != status["snapshot_writes"]:
            status, since = now_status, time.monotonic()
        elif time.monotonic() - since >= quiet_for:
            return now_status, time.monotonic() - start
    raise TimeoutError(f"snapshot writes still moving after {SETTLE_TIMEOUT}s: {status}")


# ---- entry point ---------------------------------------------------------------------------

BENCHMARKS: dict[str, Callable[[Runner, argparse.Namespace], list[Row]]] = {
    "ping-wall": bench_ping_wall,
    "ping-rps": bench_ping_rps,
    "add": bench_add,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python bench/run.py",
        description="Run goproc's benchmarks side by side with their baselines.",
    )
    p.add_argument(
        "--bench",
        action="append",
        choices=list(BENCHMARKS),
        help="run only this benchmark (repeatable; default: all)",
    )
    p.add_argument("--runs", type=int, default=30, help="ping-wall: timed runs (default 30)")
    p.add_argument("--warmup", type=int, default=3, help="ping-wall: warmup runs (default 3)")
    p.add_argument(
        "--no-hyperfine", action="store_true", help="ping-wall: time with subprocess, not hyperfine"
    )
    p.add_argument(
        "--requests", type=int, default=20_000, help="ping-rps: requests (default 20000)"
    )
    p.add_argument(
        "--adds", type=int, default=2_000, help="add: adds and sleep processes (default 2000)"
    )
    p.add_argument(
        "--runner",
        choices=["script", "module"],
        default="script",
        help="run the installed `goproc` console script (default) or `python -m goproc`",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--check", action="store_true", help="exit 1 when a bar is missed")
    args = p.parse_args(argv)
    for name in ("runs", "requests", "adds"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.runs < 4 and not args.no_hyperfine and shutil.which("hyperfine"):
        p.error("--runs must be at least 4 with hyperfine (two rounds of two)")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    return args


def machine() -> dict[str, Any]:
    hyperfine = shutil.which("hyperfine")
    hf_version = (
        subprocess.run([hyperfine, "--version"], capture_output=True, text=True).stdout.strip()
        if hyperfine
        else None
    )
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "hyperfine": hf_version,
    }


def print_table(rows: list[Row], runner: Runner, info: dict[str, Any]) -> None:
    print(
        f"goproc benchmarks: Python {info['python']} on {info['platform']}, "
        f"{info['cpus']} CPUs, hyperfine: {info['hyperfine'] or 'not installed'}"
    )
    print(f"goproc runs as: {runner.describe()}")
    print()
    header = ("BENCHMARK", "METRIC", "GOPROC", "BASELINE", "RESULT", "BAR", "OK")
    cells = [header] + [
        (r.bench, r.metric, r.goproc, r.baseline, r.result, r.bar, "yes" if r.ok else "NO")
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    missed = sum(not r.ok for r in rows)
    print()
    print("all bars met" if not missed else f"{missed} of {len(rows)} bars missed")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runner = find_runner(args.runner)
    info = machine()
    rows: list[Row] = []
    for name in args.bench or list(BENCHMARKS):
        rows.extend(BENCHMARKS[name](runner, args))
    if args.json:
        out = {
            "machine": info,
            "runner": {"argv": list(runner.argv), "python": runner.python, "kind": runner.kind},
            "results": [asdict(r) for r in rows],
            "all_bars_met": all(r.ok for r in rows),
        }
        print(json.dumps(out, indent=2))
    else:
        print_table(rows, runner, info)
    return 1 if args.check and not all(r.ok for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
