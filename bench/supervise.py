"""Supervision, measured: how fast a crashed child is replaced, a daemon under 100
crash-looping children, and exit statuses against a plain `waitpid`.

    python bench/supervise.py                # the table
    python bench/supervise.py --json         # the raw numbers as JSON on stdout
    python bench/supervise.py --check        # exit 1 when a bar is missed
    python bench/supervise.py --rounds 50 --loopers 100 --children 1000

1. Crash-restart latency: one child spawned with `restart: always` and a fixed
   backoff (--backoff, min = max), a shell that writes its pid to a FIFO the bench holds
   and then execs `sleep`; --rounds times it is SIGKILLed, and the delay is from the
   kill to the replacement's pid arriving on the FIFO (the replacement answering),
   minus the backoff.  Bar: median <= 50 ms.
2. Crash loop: --loopers children `sh -c 'exit 1'` with `restart: always`, backoff
   100 ms..1 s doubling within a 2 s window, for --seconds; meanwhile `ping` every 10 ms
   on one connection.  Bars: ping p99 <= 10 ms; the daemon's CPU (utime + stime) is
   reported with the restarts it made per second.
3. Exit statuses: --children commands, each `exit N` or `kill -SIG $$` at random, run
   once by this process (`subprocess.Popen` + `os.waitpid`) and once by the daemon
   (`spawn`, --batch at a time); every entry's `exit_code` / `exit_signal` must be what
   `waitpid` said of the same command.  Bar: all right, none lost.

Every child is stopped by the daemon (or reaped here) at the end.  Progress goes to
stderr; the table (or JSON) to stdout.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import LineClient, Runner, cpu_seconds, find_runner, report, running_daemon

BARS = {"restart_median_ms": 50.0, "ping_p99_ms": 10.0}
ENV = ["PATH=/usr/bin:/bin"]
SIGNALS = (
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGKILL,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGTERM,
    signal.SIGALRM,
    signal.SIGSEGV,
    signal.SIGABRT,
)


def progress(message: str) -> None:
    print(f"supervise: {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def spawn(client: LineClient, argv: list[str], **params: Any) -> dict[str, Any]:
    entry: dict[str, Any] = client.call("spawn", {"argv": argv, "cwd": "/", "env": ENV, **params})
    return entry


def stop_all(client: LineClient) -> None:
    client.call("stop", {"all": True, "timeout": 1})  # dead ones too: no pending restart


# ---- 1. crash-restart latency ----------------------------------------------------------


def restart_latency(runner: Runner, rounds: int, backoff: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="goproc-bench-fifo-") as tmp:
        fifo = Path(tmp) / "up"
        os.mkfifo(fifo, 0o600)
        reader = os.open(fifo, os.O_RDWR)  # held open: writers never block, never EOF
        delays: list[float] = []
        try:
            with running_daemon(runner) as d, LineClient(d.socket) as client:
                script = f"echo $$ > {fifo}; exec sleep 3600"
                entry = spawn(
                    client,
                    ["sh", "-c", script],
                    restart="always",
                    backoff_min=backoff,
                    backoff_max=backoff,
                )
                pid = int(_line(reader))
                assert pid == entry["pid"], (pid, entry)
                for _ in range(rounds):
                    killed = time.perf_counter()
                    os.kill(pid, signal.SIGKILL)
                    new = int(_line(reader))
                    delays.append(time.perf_counter() - killed - backoff)
                    assert new != pid
                    pid = new
                    time.sleep(random.uniform(0.01, 0.05))
                final = client.call("show", {"ids": [entry["id"]]})
                stop_all(client)
        finally:
            os.close(reader)
    return {
        "rounds": rounds,
        "backoff_ms": 1000 * backoff,
        "median_ms": 1000 * statistics.median(delays),
        "p99_ms": 1000 * percentile(delays, 0.99),
        "max_ms": 1000 * max(delays),
        "restarts": final["restarts"],
    }


def _line(fd: int) -> bytes:
    """One line from the FIFO (a pid and its newline: written whole, PIPE_BUF)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 64)
        if not chunk:
            raise EOFError("the FIFO closed")
        data += chunk
    return data.strip()


# ---- 2. a crash loop of many children --------------------------------------------------


def crash_loop(runner: Runner, loopers: int, seconds: float) -> dict[str, Any]:
    with running_daemon(runner) as d, LineClient(d.socket) as client:
        pid = d.proc.pid
        for _ in range(loopers):
            spawn(
                client,
                ["sh", "-c", "exit 1"],
                restart="always",
                backoff_min=0.1,
                backoff_max=1,
                restart_window=2,
            )
        time.sleep(1)  # into the steady state
        before_cpu, before = cpu_seconds(pid), _restarts(client)
        pings: list[float] = []
        with LineClient(d.socket) as pinger:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                start = time.perf_counter()
                pinger.call("ping")
                pings.append(time.perf_counter() - start)
                time.sleep(0.01)
        cpu = cpu_seconds(pid) - before_cpu
        restarts = _restarts(client) - before
        stop_all(client)
        zombies = _zombies(pid)
    return {
        "loopers": loopers,
        "seconds": seconds,
        "pings": len(pings),
        "ping_median_ms": 1000 * statistics.median(pings),
        "ping_p99_ms": 1000 * percentile(pings, 0.99),
        "ping_max_ms": 1000 * max(pings),
        "cpu_percent": 100 * cpu / seconds,
        "restarts_per_second": restarts / seconds,
        "zombies": zombies,
    }


def _restarts(client: LineClient) -> int:
    return sum(p["restarts"] for p in client.call("list"))


def _zombies(pid: int) -> int:
    n = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        for child in children:
            stat = Path(f"/proc/{child}/stat").read_bytes()
            n += stat.rsplit(b")", 1)[1].split()[0] == b"Z"
    return n


# ---- 3. exit statuses against waitpid --------------------------------------------------


def commands(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        if rng.random() < 0.6:
            out.append(f"exit {rng.randrange(256)}")
        else:
            out.append(f"kill -{int(rng.choice(SIGNALS))} $$; sleep 5")
    return out


def waitpid_statuses(scripts: list[str], batch: int) -> list[tuple[int | None, int | None]]:
    """What `waitpid` says of each command, run here `batch` at a time."""
    out: list[tuple[int | None, int | None]] = []
    for start in range(0, len(scripts), batch):
        procs = [
            subprocess.Popen(["sh", "-c", s], env={"PATH": "/usr/bin:/bin"}, cwd="/")
            for s in scripts[start : start + batch]
        ]
        for p in procs:
            _, status = os.waitpid(p.pid, 0)
            p.returncode = 0  # reaped here: Popen must not wait again
            if os.WIFSIGNALED(status):
                out.append((None, os.WTERMSIG(status)))
            else:
                out.append((os.WEXITSTATUS(status), None))
    return out


def exit_statuses(runner: Runner, children: int, batch: int, seed: int) -> dict[str, Any]:
    scripts = commands(children, seed)
    expected = waitpid_statuses(scripts, batch)
    progress(f"exit statuses: {children} run here; now by the daemon, {batch} at a time")
    ids: list[int] = []
    with running_daemon(runner) as d, LineClient(d.socket) as client:
        start = time.monotonic()
        for n in range(0, len(scripts), batch):
            ids += [spawn(client, ["sh", "-c", s])["id"] for s in scripts[n : n + batch]]
            _wait_dead(client, ids[-batch:])
        took = time.monotonic() - start
        entries = {p["id"]: p for p in client.call("list")}
    got = [(entries[i]["exit_code"], entries[i]["exit_signal"]) for i in ids if i in entries]
    wrong = [(scripts[n], expected[n], got[n]) for n in range(len(got)) if got[n] != expected[n]]
    return {
        "children": children,
        "recorded": len(got),
        "wrong": len(wrong),
        "examples": wrong[:5],
        "signalled": sum(1 for e in expected if e[1] is not None),
        "seconds": took,
    }


def _wait_dead(client: LineClient, ids: list[int], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not client.call("list", {"ids": ids, "alive": True}):
            return
        time.sleep(0.02)
    raise TimeoutError(f"children still alive after {timeout}s")


def rows_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    lat, loop, ex = result["latency"], result["crash_loop"], result["exit_statuses"]
    return [
        {
            "metric": f"SIGKILL -> replacement answering, backoff subtracted ({lat['rounds']})",
            "measured": f"median {lat['median_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms"
            f" (max {lat['max_ms']:.1f}; backoff {lat['backoff_ms']:g} ms)",
            "bar": f"median <= {BARS['restart_median_ms']:g} ms",
            "ok": lat["median_ms"] <= BARS["restart_median_ms"],
        },
        {
            "metric": f"ping while {loop['loopers']} children crash-loop ({loop['pings']} pings)",
            "measured": f"p99 {loop['ping_p99_ms']:.2f} ms, median {loop['ping_median_ms']:.2f}"
            f" (max {loop['ping_max_ms']:.1f})",
            "bar": f"p99 <= {BARS['ping_p99_ms']:g} ms",
            "ok": loop["ping_p99_ms"] <= BARS["ping_p99_ms"],
        },
        {
            "metric": "daemon CPU during the crash loop",
            "measured": f"{loop['cpu_percent']:.1f}% of one core,"
            f" {loop['restarts_per_second']:.0f} restarts/s, {loop['zombies']} zombies after",
            "bar": "bounded (reported); no zombie",
            "ok": loop["zombies"] == 0,
        },
        {
            "metric": f"exit_code/exit_signal vs waitpid ({ex['children']} children)",
            "measured": f"{ex['recorded']} recorded, {ex['wrong']} wrong"
            f" ({ex['signalled']} signalled; {ex['seconds']:.1f}s)",
            "bar": "all recorded, none wrong",
            "ok": ex["recorded"] == ex["children"] and ex["wrong"] == 0,
        },
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python bench/supervise.py", description=__doc__.split("\n")[0]
    )
    p.add_argument("--rounds", type=int, default=50, help="crash-restart rounds (50)")
    p.add_argument("--backoff", type=float, default=0.05, help="fixed backoff, seconds (0.05)")
    p.add_argument("--loopers", type=int, default=100, help="crash-looping children (100)")
    p.add_argument("--seconds", type=float, default=10.0, help="crash loop length (10)")
    p.add_argument("--children", type=int, default=1000, help="exit-status children (1000)")
    p.add_argument("--batch", type=int, default=50, help="children at once (50)")
    p.add_argument("--seed", type=int, default=15)
    p.add_argument("--runner", choices=["script", "module"], default="script")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--check", action="store_true", help="exit 1 when a bar is missed")
    args = p.parse_args(argv)
    runner = find_runner(args.runner)
    progress(f"crash-restart latency: {args.rounds} rounds")
    result: dict[str, Any] = {"latency": restart_latency(runner, args.rounds, args.backoff)}
    progress(f"crash loop: {args.loopers} children for {args.seconds:g}s")
    result["crash_loop"] = crash_loop(runner, args.loopers, args.seconds)
    result["exit_statuses"] = exit_statuses(runner, args.children, args.batch, args.seed)
    table = rows_of(result)
    return report("supervise", runner, result, table, as_json=args.json, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
