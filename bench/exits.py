"""Exit detection, measured: SIGKILL -> `exited` event latency, a mass kill counted event
by event, and idle CPU, for the pidfd watcher and the poll-only fallback side by side.

    python bench/exits.py                        # 1,000 processes, a table
    python bench/exits.py --procs 1000 --samples 200 --json
    python bench/exits.py --poll-interval 2s     # a shorter fallback interval (the table says so)
    python bench/exits.py --check                # exit 1 when a bar is missed

One run starts two daemons at once, each in its own temp dir: "pidfd" on the default
config, and "poll" with GOPROC_EXIT_WATCH=poll on the default 10 s liveness interval
(or --poll-interval).  Both track the same --procs real `sleep` processes (one `add` of
every pid each) and each has one subscriber connection, read by this process with
select(2); an event's arrival time is taken as soon as its bytes are received.
1. Idle CPU: utime + stime of each daemon (/proc/PID/stat) over --idle seconds
   (default 30) with every process alive, as % of one core; sweeps included.
2. pidfd latency: --samples times, after a random pause of 0-20 ms (so samples fall at
   every phase of the daemon's own timers), one tracked process is SIGKILLed; the time
   runs from just before os.kill to the pidfd daemon's `exited` event for it.  Median and
   p99 (nearest rank); bars: median <= 5 ms, p99 <= 50 ms.
3. Poll-only latency: --poll-samples processes (default 10) are SIGKILLed at random
   moments spread over one liveness interval (kills right after a sweep would all wait a
   whole interval), each timed to the poll daemon's `exited` event.  Reported, no bar.
4. Mass kill: every process still alive is SIGKILLed in one loop.  Each daemon's
   `exited` events are counted until every entry has one; then, after one more sweep of
   each daemon, a marker (a tag added to one entry, an `updated` event) closes the count.
   Bar: every entry got exactly one `exited` event over the whole run (none lost, none
   duplicated), on both daemons.

Every process started here (daemons, sleeps) is stopped and reaped at the end, also on
errors and Ctrl+C.  Progress goes to stderr; the table (or JSON) to stdout.  Nothing is
hard-coded: every number printed was measured in this run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import random
import select
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness import LineClient, Runner, Server, _server, clean_env, find_runner, sleep_processes

from goproc.config import Config
from goproc.durations import parse_duration

MEDIAN_BAR_MS = 5.0  # pidfd: SIGKILL -> exited event, median, at most
P99_BAR_MS = 50.0  # pidfd: the same, p99, at most
SAMPLE_GAP_S = 0.02  # pidfd samples: a random pause of up to this before each kill
EVENT_TIMEOUT_S = 15.0  # an event that must come (pidfd) comes within this
MARKER = "bench-marker"


@dataclass
class Row:
    """One metric for both daemons (`bar` "-" and `ok` None: reported, no bar)."""

    bench: str
    metric: str
    pidfd: str
    poll: str
    bar: str
    ok: bool | None
    raw: dict[str, Any] = field(default_factory=dict)


def progress(message: str) -> None:
    print(f"exits: {message}", file=sys.stderr, flush=True)


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    """Count, median, p99 (nearest rank), min and max of latencies, in milliseconds."""
    ordered = sorted(seconds)
    p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
    return {
        "count": len(ordered),
        "median": statistics.median(ordered) * 1e3,
        "p99": p99 * 1e3,
        "min": ordered[0] * 1e3,
        "max": ordered[-1] * 1e3,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds `pid` has used (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def fmt_ms(ms: float) -> str:
    return f"{ms / 1e3:.2f} s" if ms >= 1000 else f"{ms:.2f} ms"


# ---- the daemons and their event streams ---------------------------------------------------


@contextlib.contextmanager
def running_daemon_with(runner: Runner, label: str, **env: str) -> Iterator[Server]:
    """A `goproc daemon` in a temp dir, on the default config plus the GOPROC_* variables
    in `env`; stopped (SIGTERM) at the end."""
    with tempfile.TemporaryDirectory(prefix=f"goproc-bench-{label}-") as tmp:
        root = Path(tmp)
        daemon_env = clean_env(
            GOPROC_RUNTIME_DIR=str(root / "run"), GOPROC_STATE_DIR=str(root / "state"), **env
        )
        with _server([*runner.argv, "daemon"], root / "run" / "goproc.sock", daemon_env, root) as s:
            yield s


class EventStream:
    """A subscriber connection to one daemon: every `exited` event it gets, per entry id,
    with the time its bytes were received, and the ids of `updated` events."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.sock.sendall(b'{"jsonrpc":"2.0","id":1,"method":"subscribe"}\n')
        self.sock.setblocking(False)
        self._buf = b""
        self.exited: dict[int, list[float]] = defaultdict(list)
        self.updated: list[int] = []
        self.subscription: int | None = None
        must_pump([self], lambda: self.subscription is not None, 10.0, f"subscribe on {name}")

    def fileno(self) -> int:
        return self.sock.fileno()

    def read_ready(self) -> None:
        """Take what the socket holds (it is readable) and record each whole line."""
        try:
            chunk = self.sock.recv(1 << 20)
        except BlockingIOError:
            return
        received = time.perf_counter()
        if not chunk:
            raise ConnectionError(f"the {self.name} daemon closed the subscriber connection")
        self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            self._record(json.loads(line), received)

    def _record(self, msg: dict[str, Any], received: float) -> None:
        if msg.get("id") == 1:
            if "error" in msg:
                raise RuntimeError(f"subscribe failed on the {self.name} daemon: {msg}")
            self.subscription = msg["result"]["subscription"]
            return
        event = msg["params"]
        if event["kind"] == "exited":
            self.exited[event["id"]].append(received)
        elif event["kind"] == "updated":
            self.updated.append(event["id"])
        elif event["kind"] == "overflow":
            raise RuntimeError(f"the {self.name} subscriber overflowed: {event}")

    def close(self) -> None:
        self.sock.close()


def pump(streams: list[EventStream], until: Callable[[], bool], timeout: float) -> bool:
    """Read every stream as events arrive until `until()` holds (True) or `timeout`
    seconds have passed (False)."""
    deadline = time.perf_counter() + timeout
    while not until():
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return False
        ready, _, _ = select.select(streams, [], [], remaining)
        for stream in ready:
            stream.read_ready()
    return True


def must_pump(
    streams: list[EventStream], until: Callable[[], bool], timeout: float, what: str
) -> None:
    if not pump(streams, until, timeout):
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class Tracked:
    """One daemon in the run: its server, a request connection, its subscriber, and the
    id of each tracked pid."""

    name: str
    server: Server
    client: LineClient
    stream: EventStream
    pid: int
    ids: dict[int, int]  # pid -> entry id

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.client.call("status")
        return result


# ---- the phases ----------------------------------------------------------------------------


def idle_cpu(daemons: list[Tracked], seconds: float) -> dict[str, dict[str, float]]:
    """Each daemon's CPU over `seconds` of doing nothing but its timers."""
    streams = [d.stream for d in daemons]
    before = {d.name: (cpu_seconds(d.pid), d.status()["sweeps"]) for d in daemons}
    start = time.perf_counter()
    pump(streams, lambda: False, seconds)
    wall = time.perf_counter() - start
    out = {}
    for d in daemons:
        cpu0, sweeps0 = before[d.name]
        cpu = cpu_seconds(d.pid) - cpu0
        status = d.status()
        out[d.name] = {
            "seconds": wall,
            "cpu_seconds": cpu,
            "percent_of_core": 100.0 * cpu / wall,
            "sweeps": status["sweeps"] - sweeps0,
            "last_sweep_ms": status["last_sweep_seconds"] * 1e3,
        }
    return out


def pidfd_latency(
    pidfd: Tracked, everyone: list[Tracked], pids: list[int], rng: random.Random
) -> list[float]:
    """Seconds from just before each SIGKILL to the pidfd daemon's `exited` event."""
    streams = [d.stream for d in everyone]
    out = []
    for pid in pids:
        proc_id = pidfd.ids[pid]
        pump(streams, lambda: False, rng.uniform(0, SAMPLE_GAP_S))
        start = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        must_pump(
            streams,
            lambda proc_id=proc_id: bool(pidfd.stream.exited.get(proc_id)),
            EVENT_TIMEOUT_S,
            f"the exited event of pid {pid} on the pidfd daemon",
        )
        out.append(pidfd.stream.exited[proc_id][0] - start)
    return out


def poll_latency(
    poll: Tracked, everyone: list[Tracked], pids: list[int], interval: float, rng: random.Random
) -> list[float]:
    """Seconds from each SIGKILL, at random moments over one interval, to the poll
    daemon's `exited` event."""
    streams = [d.stream for d in everyone]
    offsets = sorted(rng.uniform(0, interval) for _ in pids)
    begin = time.perf_counter()
    killed_at: dict[int, float] = {}
    for pid, offset in zip(pids, offsets, strict=True):
        pump(streams, lambda: False, begin + offset - time.perf_counter())
        killed_at[pid] = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
    must_pump(
        streams,
        lambda: all(poll.stream.exited.get(poll.ids[pid]) for pid in pids),
        2 * interval + EVENT_TIMEOUT_S,
        "the exited events of the poll samples on the poll daemon",
    )
    return [poll.stream.exited[poll.ids[pid]][0] - killed_at[pid] for pid in pids]


def mass_kill(
    everyone: list[Tracked], pids: list[int], interval: float
) -> dict[str, dict[str, Any]]:
    """SIGKILL every pid in one loop; count each daemon's exited events until every entry
    has one, then close the count with a marker after one more sweep of each daemon."""
    streams = [d.stream for d in everyone]
    start = time.perf_counter()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    killed = time.perf_counter()
    all_done: dict[str, float] = {}

    def every_entry_reported() -> bool:
        for d in everyone:
            if d.name not in all_done and all(d.stream.exited.get(i) for i in d.ids.values()):
                all_done[d.name] = max(d.stream.exited[i][0] for i in d.ids.values())
        return len(all_done) == len(everyone)

    timeout = 2 * max(Config().liveness_interval, interval) + EVENT_TIMEOUT_S
    pump(streams, every_entry_reported, timeout)  # on a timeout the count shows what is lost

    # A duplicate would come from a later sweep (the ticker runs in both modes): let one
    # pass on each daemon, then a marker event closes the count.
    sweeps = {d.name: d.status()["sweeps"] for d in everyone}
    for d in everyone:
        deadline = time.perf_counter() + timeout
        while d.status()["sweeps"] <= sweeps[d.name]:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"the {d.name} daemon does not sweep")
            pump(streams, lambda: False, 0.05)
    for d in everyone:
        marker_id = next(iter(d.ids.values()))
        d.client.call("tag.add", {"ids": [marker_id], "labels": [MARKER]})
        must_pump(
            streams,
            lambda d=d, marker_id=marker_id: marker_id in d.stream.updated,
            EVENT_TIMEOUT_S,
            f"the marker event on the {d.name} daemon",
        )

    out = {}
    for d in everyone:
        counts = [len(d.stream.exited.get(i, [])) for i in d.ids.values()]
        out[d.name] = {
            "entries": len(counts),
            "killed_now": len(pids),
            "received": sum(counts),
            "lost": sum(1 for c in counts if c == 0),
            "duplicated": sum(c - 1 for c in counts if c > 1),
            "unknown_ids": sorted(set(d.stream.exited) - set(d.ids.values())),
            "last_event_after_s": all_done[d.name] - start if d.name in all_done else None,
            "kill_loop_s": killed - start,
            "alive_after": d.status()["alive"],
        }
    return out


# ---- the run -------------------------------------------------------------------------------


def track(name: str, server: Server, pids: list[int]) -> Tracked:
    client = LineClient(server.socket, timeout=120)
    try:
        entries = client.call("add", {"pids": pids, "tags": ["bench"]})
        ids = {e["pid"]: e["id"] for e in entries}
        if sorted(ids) != sorted(pids):
            raise RuntimeError(f"the {name} daemon tracks other pids than those added")
        pid = client.call("status")["pid"]
        stream = EventStream(name, server.socket)
    except BaseException:
        client.close()
        raise
    return Tracked(name, server, client, stream, pid, ids)


def run(runner: Runner, args: argparse.Namespace) -> tuple[list[Row], dict[str, Any]]:
    rng = random.Random(args.seed)
    poll_env = {"GOPROC_EXIT_WATCH": "poll"}
    if args.poll_interval is not None:
        poll_env["GOPROC_LIVENESS_INTERVAL"] = args.poll_interval
    interval = (
        parse_duration(args.poll_interval) if args.poll_interval else Config().liveness_interval
    )

    progress(f"starting {args.procs} sleep processes")
    with (
        sleep_processes(args.procs) as pids,
        running_daemon_with(runner, "pidfd") as pidfd_server,
        running_daemon_with(runner, "poll", **poll_env) as poll_server,
        contextlib.ExitStack() as stack,
    ):
        progress("both daemons track every process")
        pidfd = track("pidfd", pidfd_server, pids)
        stack.callback(pidfd.client.close)
        stack.callback(pidfd.stream.close)
        poll = track("poll", poll_server, pids)
        stack.callback(poll.client.close)
        stack.callback(poll.stream.close)
        everyone = [pidfd, poll]
        for d, expected in ((pidfd, "pidfd"), (poll, "poll")):
            status = d.status()
            if status["exit_watch"] != expected or status["alive"] != args.procs:
                raise RuntimeError(f"the {d.name} daemon is not as expected: {status}")
        deadline = time.monotonic() + 30
        while pidfd.status()["watched"] != args.procs:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the pidfd daemon does not watch all: {pidfd.status()}")
            time.sleep(0.05)
        raw: dict[str, Any] = {
            "procs": args.procs,
            "poll_interval_s": interval,
            "pidfd_daemon": pidfd.status(),
            "poll_daemon": poll.status(),
        }

        progress(f"idle CPU of both daemons over {args.idle:g} s")
        raw["idle"] = idle_cpu(everyone, args.idle)

        order = list(pids)
        rng.shuffle(order)
        pidfd_pids = order[: args.samples]
        poll_pids = order[args.samples : args.samples + args.poll_samples]
        rest = order[args.samples + args.poll_samples :]

        progress(f"pidfd latency: {args.samples} samples")
        pidfd_lat = pidfd_latency(pidfd, everyone, pidfd_pids, rng)
        progress(f"poll-only latency: {args.poll_samples} samples over {interval:g} s")
        poll_lat = poll_latency(poll, everyone, poll_pids, interval, rng)
        # The poll daemon sees the pidfd samples too: one exited event each, in time.
        must_pump(
            [d.stream for d in everyone],
            lambda: all(poll.stream.exited.get(poll.ids[p]) for p in pidfd_pids),
            2 * interval + EVENT_TIMEOUT_S,
            "the poll daemon's exited events of the pidfd samples",
        )
        raw["latency_ms"] = {"pidfd": percentiles_ms(pidfd_lat), "poll": percentiles_ms(poll_lat)}
        raw["latency_samples_ms"] = {
            "pidfd": [x * 1e3 for x in pidfd_lat],
            "poll": [x * 1e3 for x in poll_lat],
        }

        progress(f"mass kill of the other {len(rest)} at once")
        raw["mass_kill"] = mass_kill(everyone, rest, interval)
    return rows(raw, args), raw


def rows(raw: dict[str, Any], args: argparse.Namespace) -> list[Row]:
    n = raw["procs"]
    lat_f, lat_p = raw["latency_ms"]["pidfd"], raw["latency_ms"]["poll"]
    interval = raw["poll_interval_s"]
    default = " (default)" if args.poll_interval is None else " (--poll-interval)"
    poll_note = f", {interval:g} s interval{default}"
    out = [
        Row(
            "exit-latency",
            f"SIGKILL -> exited event, median ({n} tracked)",
            f"{fmt_ms(lat_f['median'])} ({lat_f['count']} samples)",
            f"{fmt_ms(lat_p['median'])} ({lat_p['count']} samples{poll_note})",
            f"pidfd <= {MEDIAN_BAR_MS:g} ms",
            lat_f["median"] <= MEDIAN_BAR_MS,
            {"pidfd": lat_f, "poll": lat_p},
        ),
        Row(
            "exit-latency",
            f"SIGKILL -> exited event, p99 ({n} tracked)",
            f"{fmt_ms(lat_f['p99'])} (max {fmt_ms(lat_f['max'])})",
            f"{fmt_ms(lat_p['p99'])} (max {fmt_ms(lat_p['max'])})",
            f"pidfd <= {P99_BAR_MS:g} ms",
            lat_f["p99"] <= P99_BAR_MS,
            {"pidfd": lat_f, "poll": lat_p},
        ),
    ]
    kill = raw["mass_kill"]

    def kill_cell(k: dict[str, Any]) -> str:
        took = k["last_event_after_s"]
        when = f", last after {fmt_ms(took * 1e3)}" if took is not None else ""
        return (
            f"{k['received']}/{k['entries']} exited events, {k['lost']} lost, "
            f"{k['duplicated']} dup{when}"
        )

    some = next(iter(kill.values()))
    out.append(
        Row(
            "mass-kill",
            f"{some['killed_now']} killed at once ({n} entries in all)",
            kill_cell(kill["pidfd"]),
            kill_cell(kill["poll"]),
            "each entry exactly 1 exited",
            all(
                k["received"] == k["entries"] and not k["lost"] and not k["duplicated"]
                for k in kill.values()
            )
            and not any(k["unknown_ids"] for k in kill.values()),
            kill,
        )
    )
    idle = raw["idle"]

    def idle_cell(i: dict[str, Any]) -> str:
        sweeps = (
            f"{i['sweeps']} sweeps, the last {i['last_sweep_ms']:.0f} ms"
            if i["sweeps"]
            else "no sweep"
        )
        return (
            f"{i['percent_of_core']:.3f}% of a core ({i['cpu_seconds']:.2f} s CPU in "
            f"{i['seconds']:.0f} s; {sweeps})"
        )

    out.append(
        Row(
            "idle-cpu",
            f"daemon CPU, {n} alive tracked, nothing happening",
            idle_cell(idle["pidfd"]),
            idle_cell(idle["poll"]),
            "- (report)",
            None,
            idle,
        )
    )
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python bench/exits.py",
        description="Measure exit detection: pidfd watcher and poll-only fallback side by side.",
    )
    p.add_argument("--procs", type=int, default=1000, help="sleep processes tracked (1000)")
    p.add_argument("--samples", type=int, default=200, help="pidfd latency samples (200)")
    p.add_argument("--poll-samples", type=int, default=10, help="poll-only latency samples (10)")
    p.add_argument(
        "--poll-interval",
        help="the poll daemon's liveness interval, a Go duration (default: the daemon's, 10s)",
    )
    p.add_argument("--idle", type=float, default=30.0, help="idle CPU window, seconds (30)")
    p.add_argument("--seed", type=int, default=4, help="random seed (pauses, kill order)")
    p.add_argument(
        "--runner",
        choices=["script", "module"],
        default="script",
        help="run the installed `goproc` console script (default) or `python -m goproc`",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--check", action="store_true", help="exit 1 when a bar is missed")
    args = p.parse_args(argv)
    for name in ("procs", "samples", "poll_samples"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.procs < args.samples + args.poll_samples + 1:
        p.error("--procs must be more than --samples + --poll-samples (some die all at once)")
    if args.idle <= 0:
        p.error("--idle must be > 0")
    if args.poll_interval is not None:
        try:
            if parse_duration(args.poll_interval) <= 0:
                raise ValueError("must be > 0")
        except ValueError as e:
            p.error(f"--poll-interval {args.poll_interval!r}: {e}")
    return args


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def print_table(rows: list[Row], runner: Runner, info: dict[str, Any]) -> None:
    print(
        f"goproc exit detection: Python {info['python']} on {info['platform']}, {info['cpus']} CPUs"
    )
    print(f"goproc runs as: {runner.describe()}")
    print(f"load average at the start: {info['load_start']}, at the end: {info['load_end']}")
    print()
    header = ("BENCHMARK", "METRIC", "PIDFD (default)", "POLL-ONLY FALLBACK", "BAR", "OK")
    ok_text = {True: "yes", False: "NO", None: "-"}
    cells = [header] + [(r.bench, r.metric, r.pidfd, r.poll, r.bar, ok_text[r.ok]) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    barred = [r for r in rows if r.ok is not None]
    missed = sum(not r.ok for r in barred)
    print()
    print("all bars met" if not missed else f"{missed} of {len(barred)} bars missed")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runner = find_runner(args.runner)
    info = machine() | {"load_start": load_average()}
    table, raw = run(runner, args)
    info["load_end"] = load_average()
    all_met = all(r.ok is not False for r in table)
    if args.json:
        out = {
            "machine": info,
            "runner": {"argv": list(runner.argv), "python": runner.python, "kind": runner.kind},
            "results": [asdict(r) for r in table],
            "raw": raw,
            "all_bars_met": all_met,
        }
        print(json.dumps(out, indent=2))
    else:
        print_table(table, runner, info)
    return 1 if args.check and not all_met else 0


if __name__ == "__main__":
    sys.exit(main())
