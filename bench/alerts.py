"""Alert latency, measured: how long after a process's memory crosses 100 MB the rule
`mem > 100MB for 0s` tells a subscriber.  Bar: within two metrics intervals.

    python bench/alerts.py                   # a table: metrics_interval 1s and 2s
    python bench/alerts.py --json            # the raw numbers as JSON on stdout
    python bench/alerts.py --check           # exit 1 when a bar is missed
    python bench/alerts.py --rounds 20 --interval 1s      # more crossings, one interval

For each interval (default: 1s, the cost bench's setting, and 2s, the default) a daemon
of its own tracks one process that sits small (a Python interpreter, ~10 MB).  Each
round: SIGUSR1 makes it map 200 MB and touch it page by page, reading its own resident
size (/proc/self/statm) as it goes and noting the wall time at which it first exceeds
100,000,000 bytes (what `100MB` means); a subscriber connection (read by a thread that
stamps every line as it arrives) waits for the rule's `alert` event.  The delay is from
that crossing to the event's arrival (the event's own `time`, when the daemon published
it, is reported beside it).  SIGUSR2 then frees the memory, and the next round starts
once `alert.list` shows the rule cleared, after a random pause of up to one interval
so that crossings fall at every phase of the sampler's tick, not just after one.

A sample taken mid-allocation already sees the crossing, so the expected delay is up
to one interval (the wait for the next sweep) plus the sweep and the event's delivery.
Every process started here is stopped and reaped at the end, also on errors and
Ctrl+C.  Progress goes to stderr; the table (or JSON) to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from harness import EventReader, LineClient, Runner, find_runner, report, running_daemon

from goproc.durations import parse_duration

BAR_INTERVALS = 2.0  # the alert must arrive within this many metrics intervals
THRESHOLD = 100 * 1000**2  # `100MB`
CONDITION = "mem > 100MB for 0s"
EVENT_TIMEOUT_INTERVALS = 10  # a round fails after this many intervals without the event

# SIGUSR1: map and touch 200 MB, then print "crossed <wall time> <rss>"; SIGUSR2: unmap
# it, then print "freed <rss>".  The signals are taken with sigwait, one at a time.
BALLOON = f"""
import mmap, os, signal, sys, time
SIZE, THRESHOLD, PAGE = 200 << 20, {THRESHOLD}, os.sysconf('SC_PAGE_SIZE')
statm = os.open('/proc/self/statm', os.O_RDONLY)
def rss():
    return int(os.pread(statm, 100, 0).split()[1]) * PAGE
signals = {{signal.SIGUSR1, signal.SIGUSR2}}
signal.pthread_sigmask(signal.SIG_BLOCK, signals)
print('ready', rss(), flush=True)
held = None
while True:
    if signal.sigwait(signals) == signal.SIGUSR2:
        if held is not None:
            held.close()
            held = None
        print('freed', rss(), flush=True)
        continue
    if held is not None:
        continue
    held, crossed = mmap.mmap(-1, SIZE), None
    for at in range(0, SIZE, PAGE):
        held[at] = 1
        if crossed is None and at % (64 * PAGE) == 0 and rss() > THRESHOLD:
            crossed = time.time()
    if crossed is None and rss() > THRESHOLD:
        crossed = time.time()
    print('crossed', crossed, rss(), flush=True)
"""


def progress(message: str) -> None:
    print(f"alerts: {message}", file=sys.stderr, flush=True)


def timestamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@contextlib.contextmanager
def balloon() -> Iterator[subprocess.Popen[str]]:
    p = subprocess.Popen(
        [sys.executable, "-c", BALLOON],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        line = p.stdout.readline().split()
        if not line or line[0] != "ready":
            raise RuntimeError(f"the memory process did not start: {line}")
        yield p
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()


def told(p: subprocess.Popen[str], sig: int, word: str) -> list[str]:
    assert p.stdout is not None
    p.send_signal(sig)
    line = p.stdout.readline().split()
    if not line or line[0] != word:
        raise RuntimeError(f"the memory process answered {line}, not {word!r}")
    return line


def measure(runner: Runner, interval_text: str, rounds: int) -> dict[str, Any]:
    interval = parse_duration(interval_text)
    config = {"metrics_interval": interval_text}
    rows: list[dict[str, Any]] = []
    with (
        running_daemon(runner, config=config) as d,
        LineClient(d.socket) as c,
        balloon() as p,
    ):
        entry = c.call("add", {"pid": p.pid})["id"]
        rule = c.call("alert.add", {"ids": [entry], "condition": CONDITION, "rule": "bench"})
        sub = EventReader(d.socket, "alert")
        try:
            for n in range(rounds):
                time.sleep(random.uniform(0, interval))  # any phase of the sampler's tick
                _, crossed, rss = told(p, signal.SIGUSR1, "crossed")
                try:
                    arrived, event = sub.events.get(timeout=EVENT_TIMEOUT_INTERVALS * interval)
                except queue.Empty:
                    raise RuntimeError(f"round {n + 1}: no alert event") from None
                if event["rule"] != rule["id"] or event["id"] != entry:
                    raise RuntimeError(f"round {n + 1}: an alert of another rule: {event}")
                delay = arrived - float(crossed)
                rows.append(
                    {
                        "delay": delay,
                        "published": timestamp(event["time"]) - float(crossed),
                        "value": event["value"],
                        "rss_after": int(rss),
                    }
                )
                progress(f"{interval_text}: round {n + 1}/{rounds}: {delay:.3f} s")
                told(p, signal.SIGUSR2, "freed")
                wait_cleared(c, rule["id"], interval)
            status = c.call("status")
        finally:
            sub.close()
    delays = [r["delay"] for r in rows]
    return {
        "interval": interval,
        "rounds": rows,
        "delays": delays,
        "min": min(delays),
        "median": statistics.median(delays),
        "max": max(delays),
        "alerts_fired": status["alerts_fired"],
        "metrics_last_sweep_seconds": status["metrics_last_sweep_seconds"],
    }


def wait_cleared(c: LineClient, rule_id: int, interval: float) -> None:
    deadline = time.monotonic() + EVENT_TIMEOUT_INTERVALS * interval
    while any(r["firing"] for r in c.call("alert.list") if r["id"] == rule_id):
        if time.monotonic() > deadline:
            raise RuntimeError("the rule did not clear after the memory was freed")
        time.sleep(0.02)


def rows_of(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for text, r in runs.items():
        i = r["interval"]
        shown = "  ".join(
            f"{k} {r[k]:.3f} s ({r[k] / i:.2f} intervals)" for k in ("min", "median", "max")
        )
        delivery = max(x["delay"] - x["published"] for x in r["rounds"])
        out.append(
            {
                "metric": f"crossing -> alert event, metrics_interval {text}"
                f" ({len(r['delays'])} crossings)",
                "measured": f"{shown}; publish -> arrival at most {delivery * 1e3:.1f} ms",
                "bar": f"max <= {BAR_INTERVALS:g} intervals ({BAR_INTERVALS * i:g} s)",
                "ok": r["max"] <= BAR_INTERVALS * i and r["alerts_fired"] == len(r["delays"]),
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/alerts.py", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=10, help="crossings per interval (default 10)")
    p.add_argument(
        "--interval",
        action="append",
        help="a metrics_interval to measure (repeatable; default: 1s and 2s)",
    )
    p.add_argument("--runner", choices=["script", "module"], default="script")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--check", action="store_true", help="exit 1 when a bar is missed")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    runner = find_runner(args.runner)
    runs = {}
    for text in args.interval or ["1s", "2s"]:
        progress(f"metrics_interval {text}: {args.rounds} crossings of 100 MB")
        runs[text] = measure(runner, text, args.rounds)
    table = rows_of(runs)
    return report("alerts", runner, {"runs": runs}, table, as_json=args.json, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
