"""goproc at scale: a large registry, many alive processes, many clients at once; each
measured number printed next to its bar.

    python bench/scale.py                    # all three scenarios, a table
    python bench/scale.py --only entries     # one of: entries, alive, clients
    python bench/scale.py --json             # the raw numbers as JSON on stdout
    python bench/scale.py --check            # exit 1 when a bar is missed

Scenarios (each starts its own `goproc daemon` with GOPROC_RUNTIME_DIR and
GOPROC_STATE_DIR in a temp dir, and stops it and every process it started afterwards):
- entries: a snapshot of `--entries` entries for dead PIDs is generated in the daemon's
  own format (`goproc.daemon.store.snapshot_bytes` of `goproc.model.Proc` values) before
  the start.  Measured: start-up (spawn to first `ping` answered, median of `--starts`
  fresh daemons, <= 3 s), the daemon's RSS after start and after the runs, and its
  peak (VmHWM) (<= 200 MB), `list` of a rare tag (10 matches) as round trips on an
  open connection (median and p99 <= 5 ms), a full `goproc list --json` as a user runs
  it (<= 2 s), and `ping` p99 on one connection while snapshot writes of every entry
  run (<= 20 ms).
- alive: `--alive` real `sleep` processes (fewer when the machine's limits say so;
  the notes say how many and why), added in batches, with a 1 s liveness interval:
  the sweeps' durations and `ping` p99 during sweeps (<= 20 ms).
- clients: `--clients` client processes with blocking sockets, each `--requests`
  sequential requests mixing `ping`, `list` of its own tag and `add` of a process of
  its own (each add a distinct process): every request answered without error;
  requests/s and p99 latency.

Progress goes to stderr; the table (or JSON) to stdout.  Nothing is hard-coded: every
number printed was measured in this run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness import (
    LineClient,
    Runner,
    Server,
    _server,  # spawn, wait for the socket, stop and reap: also on errors and Ctrl+C
    clean_env,
    find_runner,
    sleep_processes,
)

from goproc.errors import ALREADY_TRACKED
from goproc.model import Proc
from goproc.store.format import SNAPSHOT, snapshot_bytes

# The bars: issue 8 (start-up, RSS after start, the first full list, a rare tag's list)
# and issue 5 (memory after the runs and at the peak, later full lists, pings).
STARTUP_BAR_S = 1.5
START_RSS_BAR_MB = 120.0
RSS_BAR_MB = 200.0
RARE_LIST_P99_BAR_MS = 1.0
FIRST_FULL_LIST_BAR_S = 0.5
FULL_LIST_BAR_S = 2.0
PING_P99_BAR_MS = 20.0

RARE_TAG = "RARE"
RARE_MATCHES = 10
DEAD_PID_BASE = 4_194_304  # above any pid_max Linux allows: these PIDs are surely dead
LIST_REPEATS = 2000  # rare-tag `list` round trips
FULL_LIST_RUNS = 5  # timed `goproc list --json` runs
SNAPSHOT_ROUNDS = 3  # mutations, each followed by one snapshot write, while pinging
SWEEPS = 5  # liveness sweeps to measure
ADD_BATCH = 500  # pids per `add` request when filling the alive scenario
ADD_EVERY = 10  # clients: one request in this many is an `add`, the rest ping and list
SPARE_PROCESSES = 2000  # PIDs and tasks left for everything else on the machine
SLEEP_MEMORY = 512 << 10  # bytes budgeted per `sleep` process (it costs about 200 KB)
WAIT_TIMEOUT = 60.0  # any condition polled for must hold within this


@dataclass
class Row:
    """One measured number and its bar (`bar` "-" and `ok` None: reported, no bar)."""

    scenario: str
    metric: str
    measured: str
    bar: str
    ok: bool | None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """A scenario's rows, its notes (what it used and why) and its raw numbers."""

    name: str
    rows: list[Row]
    notes: list[str]
    raw: dict[str, Any]


def progress(message: str) -> None:
    print(f"scale: {message}", file=sys.stderr, flush=True)


# ---- measuring -----------------------------------------------------------------------------


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """Count, median, p99 (nearest rank) and max of latencies, in milliseconds."""
    if not seconds:
        return {"count": 0, "median": math.nan, "p99": math.nan, "max": math.nan}
    ordered = sorted(seconds)
    p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
    return {
        "count": len(ordered),
        "median": statistics.median(ordered) * 1e3,
        "p99": p99 * 1e3,
        "max": ordered[-1] * 1e3,
    }


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (resident now) and VmHWM (peak resident) of `pid`, in MB (10^6 bytes)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024 / 1e6
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds `pid` has used."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def exchange(client: LineClient, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """One request on `client`, its reply returned as is (errors included)."""
    request_id = client.next_id
    client.next_id += 1
    request: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        request["params"] = params
    client.sock.sendall(json.dumps(request, separators=(",", ":")).encode() + b"\n")
    line = client.file.readline()
    if not line:
        raise ConnectionError("the daemon closed the connection")
    reply: dict[str, Any] = json.loads(line)
    if reply.get("id") != request_id:
        raise RuntimeError(f"reply to {method} #{request_id} has another id: {reply}")
    return reply


class Pinger:
    """Pings on a connection of its own in a thread until the block ends, keeping each
    ping's send time and latency, so a window of time can be cut out afterwards."""

    def __init__(self, path: Path) -> None:
        self.client = LineClient(path)
        self.sent: list[float] = []
        self.latency: list[float] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pinger", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                t = time.perf_counter()
                self.client.roundtrip("ping")
                self.latency.append(time.perf_counter() - t)
                self.sent.append(t)
        except BaseException as e:  # reported by the caller, with the numbers
            self.error = e

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + WAIT_TIMEOUT
        while len(self.sent) < count:
            if self.error is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pinger stalled: {self.error!r}")
            time.sleep(0.001)

    def within(self, windows: list[tuple[float, float]]) -> list[float]:
        """Latencies of the pings that were in flight at any time inside a window."""
        return [
            lat
            for t, lat in zip(self.sent, self.latency, strict=True)
            if any(t <= end and t + lat >= start for start, end in windows)
        ]

    def __enter__(self) -> Pinger:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(WAIT_TIMEOUT)
        self.client.close()
        if self.error is not None and exc[0] is None:
            raise RuntimeError(f"a ping failed: {self.error!r}") from self.error


def poll(condition: Callable[[], Any], what: str, interval: float = 0.005) -> Any:
    """`condition()` once it is truthy; raises TimeoutError after WAIT_TIMEOUT."""
    deadline = time.monotonic() + WAIT_TIMEOUT
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


# ---- a daemon on a prepared state dir ------------------------------------------------------


@dataclass
class Daemon:
    server: Server
    root: Path
    state_dir: Path
    pid: int
    startup_seconds: float


@contextlib.contextmanager
def scale_daemon(
    runner: Runner,
    *,
    config: dict[str, Any] | None = None,
    prepare: Callable[[Path], None] | None = None,
    root: Path | None = None,
) -> Iterator[Daemon]:
    """`goproc daemon` in a temp dir (or in `root`, kept: the state a daemon before left
    there), after `prepare(state_dir)` (e.g. a snapshot) and with `config` as its config
    file; `startup_seconds` runs from the spawn to the first `ping` answered.  Stopped
    (SIGTERM) at the end, its temp dir removed."""
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="goproc-scale-")))
        state_dir = root / "state"
        state_dir.mkdir(mode=0o700, exist_ok=True)
        if prepare is not None:
            prepare(state_dir)
        argv = [*runner.argv, "daemon"]
        if config is not None:
            path = root / "config.json"
            path.write_text(json.dumps(config))
            argv += ["--config", str(path)]
        env = clean_env(GOPROC_RUNTIME_DIR=str(root / "run"), GOPROC_STATE_DIR=str(state_dir))
        start = time.perf_counter()
        with _server(argv, root / "run" / "goproc.sock", env, root) as server:
            # The socket is bound before the state loads: this ping waits for the load.
            with LineClient(server.socket, timeout=WAIT_TIMEOUT) as c:
                c.call("ping")
                startup = time.perf_counter() - start
                pid = c.call("status")["pid"]
            if pid != server.proc.pid:
                raise RuntimeError(f"the daemon is pid {pid}, not the spawned {server.proc.pid}")
            yield Daemon(server, root, state_dir, pid, startup)


# ---- scenario 1: a large registry ----------------------------------------------------------

_TAGS = ("web", "worker", "batch", "cron", "db", "cache", "build", "test", "etl", "ml")
_GROUPS = ("team-a", "team-b", "team-c", "team-d", "prod", "staging", "nightly", "ci")
_COMMANDS = (
    "/usr/bin/python3 -m service.worker --queue jobs-{a} --threads {b}",
    "/usr/local/bin/node /srv/app-{a}/server.js --port {port} --env prod",
    "/usr/bin/rsync -a --delete /data/shard-{a}/ /mnt/backup/shard-{a}/",
    "/opt/build/bin/ninja -C /home/ci/build-{a} -j{b} all install",
    "bash ./scripts/run-batch.sh --date 2026-0{m}-1{b} --part {a}",
    "/usr/bin/ffmpeg -i /media/in/{a}.mkv -c:v libx264 /media/out/{a}.mp4",
)


def generated_procs(count: int, seed: int = 5) -> list[Proc]:
    """`count` entries of dead processes: RARE_MATCHES of them tagged RARE_TAG (spread
    evenly), the rest a mix of 0-3 tags, 0-2 groups, a name on one in seven, and
    command lines of about 60 characters."""
    rng = random.Random(seed)
    rare = {1 + k * count // RARE_MATCHES for k in range(min(RARE_MATCHES, count))}
    base = time.time() - 30 * 86400
    procs = []
    for i in range(1, count + 1):
        tags = rng.sample(_TAGS, rng.randint(0, 3)) + ([RARE_TAG] if i in rare else [])
        started = round(base + i * 20 + rng.random(), 6)
        seen = round(started + rng.uniform(10, 3600), 6)
        cmd = rng.choice(_COMMANDS).format(
            a=rng.randint(0, 9999), b=rng.randint(1, 9), m=rng.randint(1, 9), port=8000 + i % 1000
        )
        pid = DEAD_PID_BASE + i
        procs.append(
            Proc(
                id=i,
                pid=pid,
                pgid=pid if rng.random() < 0.7 else None,
                cmd=cmd,
                name=f"job-{i}" if i % 7 == 0 else None,
                alive=False,
                tags=tuple(sorted(tags)),
                groups=tuple(sorted(rng.sample(_GROUPS, rng.randint(0, 2)))),
                started_at=started,
                added_at=round(started + rng.uniform(0, 2), 6),
                last_seen=seen,
                exited_at=round(seen + rng.uniform(0, 10), 6),
            )
        )
    return procs


def bench_entries(runner: Runner, args: argparse.Namespace) -> Outcome:
    n = args.entries
    progress(f"entries: generating a snapshot of {n:,} entries")
    t = time.perf_counter()
    procs = generated_procs(n)
    data = snapshot_bytes(procs, n + 1, 0)
    gen_s = time.perf_counter() - t
    rare_expected = sum(RARE_TAG in p.tags for p in procs)
    cmd_len = statistics.fmean(len(p.cmd) for p in procs)
    del procs

    def prepare(state_dir: Path) -> None:
        path = state_dir / SNAPSHOT
        path.write_bytes(data)
        path.chmod(0o600)

    notes = [
        f"snapshot: {n:,} entries for dead PIDs, {len(data) / 1e6:.1f} MB, generated in "
        f"{gen_s:.1f} s; {rare_expected} tagged {RARE_TAG}; mean command line {cmd_len:.0f} chars"
    ]
    raw: dict[str, Any] = {"entries": n, "snapshot_bytes": len(data), "rare": rare_expected}
    progress("entries: an empty daemon first, for the start-up floor")
    with scale_daemon(runner) as empty:
        empty_startup = empty.startup_seconds
    # A snapshot alone (no rows file beside it: as after an upgrade, or a snapshot made
    # elsewhere) is read as JSON: reported.  A daemon stopped cleanly leaves its rows
    # file (`goproc.store.rows`), as every snapshot write does: the bar's start-ups are
    # on the state dir the first daemon left, as a user's restarts are.
    bare: list[dict[str, Any]] = []
    for k in range(args.starts):
        progress(f"entries: start-up {k + 1} of {args.starts} on the bare snapshot")
        with scale_daemon(runner, prepare=prepare) as d:
            bare.append(start_facts(d))
    kept = Path(tempfile.mkdtemp(prefix="goproc-scale-"))
    starts: list[dict[str, Any]] = []
    phases: dict[str, dict[str, float]] = {}
    try:
        with scale_daemon(runner, prepare=prepare, root=kept):
            pass  # stopped: the snapshot and its rows are written
        for k in range(args.starts - 1):
            progress(f"entries: start-up {k + 1} of {args.starts} on a state dir goproc wrote")
            with scale_daemon(runner, root=kept) as d:
                starts.append(start_facts(d))
        progress(f"entries: start-up {args.starts} of {args.starts}, then the runs")
        runs = bench_entry_runs(runner, kept, n, rare_expected, starts, phases)
    finally:
        shutil.rmtree(kept, ignore_errors=True)
    raw["bare_starts"] = bare
    bare_median = statistics.median(s["seconds"] for s in bare)
    return entries_outcome(
        n, raw, notes, empty_startup, bare, bare_median, starts, phases, runs=runs
    )


def bench_entry_runs(
    runner: Runner,
    kept: Path,
    n: int,
    rare_expected: int,
    starts: list[dict[str, Any]],
    phases: dict[str, dict[str, float]],
) -> tuple[Any, ...]:
    with scale_daemon(runner, root=kept) as d, LineClient(d.server.socket) as c:
        starts.append(start_facts(d))
        status = c.call("status")
        if status["entries"] != n:
            raise RuntimeError(f"the daemon loaded {status['entries']} entries, not {n}")
        phases["start-up"] = memory_mb(d.pid)
        peaks_resettable = reset_peak(d.pid)

        progress(f"entries: the first full list of {n:,} entries after start, then 3 more")
        first_full = first_full_list(d.server.socket, n)
        later_socket = socket_full_lists(c, n, 3)
        phases["first full list"] = memory_mb(d.pid)
        reset_peak(d.pid)

        progress(f"entries: {LIST_REPEATS} lists of tag {RARE_TAG} on one connection")
        params = {"tags_any": [RARE_TAG]}
        for _ in range(50):
            c.call("list", params)
        list_times = []
        for _ in range(LIST_REPEATS):
            t = time.perf_counter()
            result = c.call("list", params)
            list_times.append(time.perf_counter() - t)
            if len(result) != rare_expected:
                raise RuntimeError(f"list {RARE_TAG} gave {len(result)}, not {rare_expected}")
        rare_ms = summary_ms(list_times)
        phases["rare lists"] = memory_mb(d.pid)
        reset_peak(d.pid)

        progress(f"entries: `goproc list --json` of {n:,} entries, {FULL_LIST_RUNS} runs")
        full = full_list(runner, d.server.env, n)
        phases["full lists"] = memory_mb(d.pid)
        reset_peak(d.pid)

        progress(f"entries: {SNAPSHOT_ROUNDS} snapshot writes of {n:,} entries while pinging")
        with sleep_processes(SNAPSHOT_ROUNDS) as pids:
            snap = pings_during_snapshots(d, c, pids)
        phases["snapshot writes"] = memory_mb(d.pid)
    return first_full, later_socket, rare_ms, full, snap, peaks_resettable


def entries_outcome(
    n: int,
    raw: dict[str, Any],
    notes: list[str],
    empty_startup: float,
    bare: list[dict[str, Any]],
    bare_median: float,
    starts: list[dict[str, Any]],
    phases: dict[str, dict[str, float]],
    runs: tuple[Any, ...],
) -> Outcome:
    first_full, later_socket, rare_ms, full, snap, peaks_resettable = runs
    startup = statistics.median(s["seconds"] for s in starts)
    rss_start = phases["start-up"]["VmRSS"]
    rss_end = phases["snapshot writes"]["VmRSS"]
    peak_phase = max(phases, key=lambda k: phases[k]["VmHWM"])
    peak = phases[peak_phase]["VmHWM"]
    raw |= {
        "starts": starts,
        "startup_median_seconds": startup,
        "empty_startup_seconds": empty_startup,
        "memory_mb_by_phase": phases,
        "peak_reset_between_phases": peaks_resettable,
        "rare_list_ms": rare_ms,
        "first_full_list": first_full,
        "later_socket_lists_seconds": later_socket,
        "full_list": full,
        "snapshot": snap,
    }
    loads = [s["load_seconds"] for s in starts]
    bare_loads = [s["load_seconds"] for s in bare]
    peak_scope = "each phase's own peak" if peaks_resettable else "peak since start"
    w = snap["write_seconds"]
    during = snap["ping_ms"]
    notes += [
        f"start-ups on a state dir goproc wrote (snapshot and rows file): "
        f"{', '.join(f'{s:.2f}' for s in (s['seconds'] for s in starts))} s; the "
        f"daemon's log says loading took "
        f"{', '.join('?' if x is None else f'{x:.2f}' for x in loads)} s; with an empty "
        f"state dir (interpreter, imports, bind) {empty_startup:.2f} s",
        f"start-ups on the bare snapshot (JSON read, no rows file): "
        f"{', '.join(f'{s:.2f}' for s in (s['seconds'] for s in bare))} s; loading "
        f"{', '.join('?' if x is None else f'{x:.2f}' for x in bare_loads)} s",
        f"daemon memory by phase (VmRSS after it / VmHWM, {peak_scope}): "
        + "; ".join(f"{k} {v['VmRSS']:.0f}/{v['VmHWM']:.0f} MB" for k, v in phases.items()),
        f"full list runs: {', '.join(f'{s:.2f}' for s in full['seconds'])} s; output "
        f"{full['output_bytes'] / 1e6:.1f} MB, parsed once: {full['parsed']:,} entries",
        f"snapshot windows (add sent .. status.snapshot_writes +1): "
        f"{', '.join(f'{s:.2f} s' for s in snap['window_seconds'])}; the writes themselves "
        f"(temp file seen .. renamed; sampled every ms): "
        f"{', '.join(f'{s * 1e3:.0f} ms' for s in w) if w else 'never caught'}, with "
        f"{snap['during_write_ms']['count']} pings in flight, p99 "
        f"{snap['during_write_ms']['p99']:.2f} ms, max {snap['during_write_ms']['max']:.2f} ms",
        "slowest pings in the windows: "
        + "; ".join(
            f"{x['ms']:.1f} ms at +{x['at']:.3f} s ({x['phase']})" for x in snap["slowest"]
        ),
    ]
    rows = [
        Row(
            "entries",
            f"start-up, spawn to first ping ({n:,} entries; median of {len(starts)})",
            f"{startup:.2f} s",
            f"<= {STARTUP_BAR_S} s",
            startup <= STARTUP_BAR_S,
        ),
        Row(
            "entries",
            f"start-up from the bare snapshot, its JSON read (median of {len(bare)})",
            f"{bare_median:.2f} s",
            "-",
            None,
        ),
        Row(
            "entries",
            "daemon RSS after start (VmRSS)",
            f"{rss_start:.1f} MB",
            f"<= {START_RSS_BAR_MB:.0f} MB",
            rss_start <= START_RSS_BAR_MB,
        ),
        Row(
            "entries",
            "daemon RSS after the runs below (VmRSS)",
            f"{rss_end:.1f} MB",
            f"<= {RSS_BAR_MB:.0f} MB",
            rss_end <= RSS_BAR_MB,
        ),
        Row(
            "entries",
            f"daemon peak RSS (VmHWM; highest in: {peak_phase})",
            f"{peak:.1f} MB",
            f"<= {RSS_BAR_MB:.0f} MB",
            peak <= RSS_BAR_MB,
        ),
        Row(
            "entries",
            f"list tags_any [{RARE_TAG}] ({raw['rare']} matches), {LIST_REPEATS} round trips",
            f"median {rare_ms['median']:.2f} ms, p99 {rare_ms['p99']:.2f} ms",
            f"p99 <= {RARE_LIST_P99_BAR_MS:.0f} ms",
            rare_ms["p99"] <= RARE_LIST_P99_BAR_MS,
        ),
        Row(
            "entries",
            f"the first full `list` of {n:,} entries after start, over the socket",
            f"{first_full['seconds']:.2f} s (later: "
            f"{', '.join(f'{x:.2f}' for x in later_socket)} s)",
            f"<= {FIRST_FULL_LIST_BAR_S} s",
            first_full["seconds"] <= FIRST_FULL_LIST_BAR_S,
        ),
        Row(
            "entries",
            f"later `goproc list --json` of {n:,} entries, end to end",
            f"median {full['median']:.2f} s, max {full['max']:.2f} s",
            f"<= {FULL_LIST_BAR_S:.0f} s",
            full["median"] <= FULL_LIST_BAR_S,
        ),
        Row(
            "entries",
            f"ping while {SNAPSHOT_ROUNDS} snapshot writes of {n:,} entries ran",
            f"{during['count']} pings, p99 {during['p99']:.2f} ms, max {during['max']:.2f} ms",
            f"p99 <= {PING_P99_BAR_MS:.0f} ms",
            during["p99"] <= PING_P99_BAR_MS,
        ),
    ]
    return Outcome("entries", rows, notes, raw)


_LOADED_RE = re.compile(r"loaded (\d+) entries .*? in ([0-9.]+)s")


def start_facts(d: Daemon) -> dict[str, Any]:
    """A start-up's time, the load time the daemon logs (None if it logs none) and its
    memory right after."""
    m = _LOADED_RE.search(d.server.log.read_text(errors="replace"))
    return {
        "seconds": d.startup_seconds,
        "load_seconds": float(m.group(2)) if m else None,
        "memory_mb": memory_mb(d.pid),
    }


def reset_peak(pid: int) -> bool:
    """Reset `pid`'s VmHWM to its current RSS (clear_refs 5), so each phase shows its
    own peak; False when the kernel does not let us."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def first_full_list(socket_path: Path, expected: int) -> dict[str, Any]:
    """The first full `list` after start, over the socket: from the request sent to the
    reply's last byte read (a fresh connection, the reply kept whole), then checked."""
    with LineClient(socket_path, timeout=WAIT_TIMEOUT) as c:
        request = b'{"jsonrpc":"2.0","id":1,"method":"list"}\n'
        t = time.perf_counter()
        c.sock.sendall(request)
        line = c.file.readline()
        seconds = time.perf_counter() - t
    entries = json.loads(line)["result"]
    if len(entries) != expected:
        raise RuntimeError(f"the first list gave {len(entries)} entries, not {expected}")
    return {"seconds": seconds, "reply_bytes": len(line)}


def socket_full_lists(c: LineClient, expected: int, runs: int) -> list[float]:
    """Later full lists over one open connection, each timed the same way."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        c.sock.sendall(b'{"jsonrpc":"2.0","id":2,"method":"list"}\n')
        line = c.file.readline()
        times.append(time.perf_counter() - t)
        if line.count(b'{"id":') != expected:
            raise RuntimeError("a later full list gave a different number of entries")
    return times


def full_list(runner: Runner, env: dict[str, str], expected: int) -> dict[str, Any]:
    """`goproc list --json` as a user runs it: once captured and parsed, then timed with
    its output thrown away."""
    argv = [*runner.argv, "list", "--json"]
    out = subprocess.run(argv, env=env, capture_output=True, check=True)
    parsed = json.loads(out.stdout)
    if len(parsed) != expected:
        raise RuntimeError(f"`goproc list --json` printed {len(parsed)} entries, not {expected}")
    times = []
    for _ in range(FULL_LIST_RUNS):
        t = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t)
    return {
        "seconds": times,
        "median": statistics.median(times),
        "max": max(times),
        "output_bytes": len(out.stdout),
        "parsed": len(parsed),
    }


def pings_during_snapshots(d: Daemon, c: LineClient, pids: list[int]) -> dict[str, Any]:
    """For each pid: `add` it (one mutation: one snapshot write after the default
    snapshot_delay, in a worker thread) while another connection pings without pause,
    from just before the `add` until `status.snapshot_writes` has gone up.  The snapshot
    file's replacement is watched on disk, so that `status` (a scan of every entry) is
    only asked once the write has happened and does not disturb the pings before."""
    snapshot = d.state_dir / SNAPSHOT
    windows: list[tuple[float, float]] = []
    writes: list[tuple[float, float]] = []
    with Pinger(d.server.socket) as pinger:
        for pid in pids:
            before = c.call("status")["snapshot_writes"]
            inode = snapshot.stat().st_ino
            pinger.wait_for(len(pinger.sent) + 20)
            start = time.perf_counter()
            c.call("add", {"pid": pid, "tags": ["scale"]})
            tmp_seen: float | None = None
            deadline = time.monotonic() + WAIT_TIMEOUT
            while True:
                if tmp_seen is None and any(d.state_dir.glob(f"{SNAPSHOT}.tmp-*")):
                    tmp_seen = time.perf_counter()
                with contextlib.suppress(FileNotFoundError):
                    if snapshot.stat().st_ino != inode:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError("no snapshot write after the add")
                time.sleep(0.001)
            replaced = time.perf_counter()
            poll(lambda b=before: c.call("status")["snapshot_writes"] > b, "snapshot_writes")
            windows.append((start, time.perf_counter()))
            writes.append((tmp_seen if tmp_seen is not None else replaced, replaced))
    slowest = []
    for t, lat in sorted(
        zip(pinger.sent, pinger.latency, strict=True), key=lambda x: x[1], reverse=True
    ):
        where = [k for k, (a, b) in enumerate(windows) if a <= t <= b]
        if not where:
            continue
        k = where[0]
        w_start, w_end = writes[k]
        phase = (
            "before the temp file appeared: the debounce, or the bytes being built"
            if t + lat < w_start
            else "after the write, until status showed it"
            if t > w_end
            else "during the write"
        )
        slowest.append({"ms": lat * 1e3, "at": t - windows[k][0], "phase": phase, "window": k})
        if len(slowest) == 3:
            break
    return {
        "ping_ms": summary_ms(pinger.within(windows)),
        "window_seconds": [b - a for a, b in windows],
        "write_seconds": [b - a for a, b in writes],
        "during_write_ms": summary_ms(pinger.within(writes)),
        "slowest": slowest,
    }


# ---- scenario 2: many alive processes ------------------------------------------------------


def process_budget() -> tuple[int, list[str]]:
    """How many more processes this machine lets us start, and what bounds it: PIDs and
    tasks (keeping SPARE_PROCESSES for everything else) and half the available memory."""
    running = sum(1 for p in Path("/proc").iterdir() if p.name.isdigit())
    caps: list[tuple[str, int]] = []
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    caps.append((f"pid_max {pid_max:,}", pid_max - running))
    threads_max = int(Path("/proc/sys/kernel/threads-max").read_text())
    caps.append((f"threads-max {threads_max:,}", threads_max - running))
    nproc, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    if nproc != resource.RLIM_INFINITY:
        caps.append((f"ulimit -u {nproc:,}", nproc - running))
    cgroup = Path("/sys/fs/cgroup/pids.max")
    if cgroup.exists() and cgroup.read_text().strip() != "max":
        current = int((cgroup.parent / "pids.current").read_text())
        cap = int(cgroup.read_text())
        caps.append((f"cgroup pids.max {cap:,}", cap - current))
    limits = [
        (f"{name} less {running} running and {SPARE_PROCESSES:,} spare", value - SPARE_PROCESSES)
        for name, value in caps
    ]
    available = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            available = int(line.split()[1]) * 1024
    limits.append(
        (
            f"half of MemAvailable {available / 2**30:.1f} GiB at "
            f"{SLEEP_MEMORY / 2**10:.0f} KiB per process",
            available // 2 // SLEEP_MEMORY,
        )
    )
    budget = min(value for _, value in limits)
    return max(budget, 0), [f"{name}: {value:,}" for name, value in limits]


def bench_alive(runner: Runner, args: argparse.Namespace) -> Outcome:
    budget, limits = process_budget()
    n = min(args.alive, budget)
    notes = [
        f"alive processes used: {n:,} of {args.alive:,} asked (room for {budget:,}: "
        f"{'; '.join(limits)})"
    ]
    if n < 1:
        raise RuntimeError(f"no room for alive processes: {'; '.join(limits)}")
    progress(f"alive: starting {n:,} sleep processes (not timed)")
    t = time.perf_counter()
    with sleep_processes(n) as pids:
        spawn_s = time.perf_counter() - t
        with (
            scale_daemon(runner, config={"liveness_interval": "1s"}) as d,
            LineClient(d.server.socket, timeout=WAIT_TIMEOUT) as c,
        ):
            progress(f"alive: adding them in batches of {ADD_BATCH}")
            t = time.perf_counter()
            for k in range(0, n, ADD_BATCH):
                added = c.call("add", {"pids": pids[k : k + ADD_BATCH], "tags": ["alive"]})
                if len(added) != len(pids[k : k + ADD_BATCH]):
                    raise RuntimeError(f"add of a batch answered {len(added)} entries")
            add_s = time.perf_counter() - t
            status = c.call("status")
            if status["entries"] != n or status["alive"] != n:
                raise RuntimeError(f"expected {n} alive entries: {status}")
            progress(f"alive: pinging through {SWEEPS} sweeps")
            sweeps, pings, all_pings = pings_during_sweeps(d, c)
            status = c.call("status")
            mem = memory_mb(d.pid)
    durations = [s for s, _ in sweeps]
    sweep_ms = summary_ms(durations)
    raw = {
        "alive": n,
        "asked": args.alive,
        "budget": budget,
        "limits": limits,
        "spawn_seconds": spawn_s,
        "add_seconds": add_s,
        "sweep_seconds": durations,
        "ping_during_sweeps_ms": pings,
        "ping_whole_run_ms": all_pings,
        "status_after": status,
        "memory_mb": mem,
    }
    notes += [
        f"spawned in {spawn_s:.1f} s; added in {add_s:.2f} s ({n / add_s:,.0f} pids/s); "
        f"exit_watch {status['exit_watch']}, {status['watched']:,} pidfds watched, "
        f"fd limit {status['fd_limit']:,}",
        f"sweep durations: {', '.join(f'{s * 1e3:.0f} ms' for s in durations)}; daemon CPU "
        f"(sweeps and the pings together): {statistics.fmean(cpu for _, cpu in sweeps):.0%} of "
        f"one core; pings over the whole run: {all_pings['count']}, p99 "
        f"{all_pings['p99']:.2f} ms; daemon RSS {mem['VmRSS']:.1f} MB (peak {mem['VmHWM']:.1f})",
    ]
    rows = [
        Row(
            "alive",
            f"liveness sweep of {n:,} alive processes ({len(durations)} sweeps)",
            f"median {sweep_ms['median']:.0f} ms, max {sweep_ms['max']:.0f} ms",
            "-",
            None,
        ),
        Row(
            "alive",
            "ping during sweeps",
            f"{pings['count']} pings, p99 {pings['p99']:.2f} ms, max {pings['max']:.2f} ms",
            f"p99 <= {PING_P99_BAR_MS:.0f} ms",
            pings["p99"] <= PING_P99_BAR_MS,
        ),
    ]
    return Outcome("alive", rows, notes, raw)


def pings_during_sweeps(
    d: Daemon, c: LineClient
) -> tuple[list[tuple[float, float]], dict[str, float], dict[str, float]]:
    """Ping without pause through SWEEPS sweeps, watching `status` every 50 ms; returns
    (duration, daemon CPU seconds per wall second) per sweep and the ping latencies
    during sweeps and overall.  A sweep that ended between two `status` polls and
    lasted `s` seconds ran within [previous poll - s, this poll]: pings in flight in
    that window count as during the sweep (a superset of the sweep's own time)."""
    windows: list[tuple[float, float]] = []
    sweeps: list[tuple[float, float]] = []
    with Pinger(d.server.socket) as pinger:
        pinger.wait_for(20)
        status = c.call("status")
        first, last_poll = status["sweeps"], time.perf_counter()
        count = first
        cpu, cpu_at = cpu_seconds(d.pid), time.perf_counter()
        deadline = time.monotonic() + WAIT_TIMEOUT
        while count < first + SWEEPS:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {count - first} sweeps in {WAIT_TIMEOUT} s")
            time.sleep(0.05)
            status = c.call("status")
            now = time.perf_counter()
            if status["sweeps"] != count:
                if status["sweeps"] != count + 1:
                    raise RuntimeError("two sweeps between polls 50 ms apart")
                count = status["sweeps"]
                seconds = status["last_sweep_seconds"]
                windows.append((last_poll - seconds, now))
                cpu_now = cpu_seconds(d.pid)
                sweeps.append((seconds, (cpu_now - cpu) / (now - cpu_at)))
                cpu, cpu_at = cpu_now, now
            last_poll = now
    return sweeps, summary_ms(pinger.within(windows)), summary_ms(pinger.latency)


# ---- scenario 3: many clients at once -------------------------------------------------------


@dataclass
class ClientResult:
    index: int
    started: float  # time.monotonic(), comparable across processes
    finished: float
    latency: bytes  # array("d") of seconds, one per answered request
    methods: bytes  # one byte per answered request: p(ing), l(ist), a(dd)
    expected_errors: int  # -32003 for re-adds, when processes were too few for distinct adds
    errors: list[str]


def client_plan(requests: int, pids: list[int], tag: str) -> list[tuple[str, dict[str, Any]]]:
    """`requests` requests: in every ADD_EVERY, one `add` and the rest alternating `ping`
    and `list` of this client's own tag.  Adds go through `pids` in order, then start
    again from the first (re-adds: -32003)."""
    plan: list[tuple[str, dict[str, Any]]] = []
    adds = 0
    for i in range(requests):
        if i % ADD_EVERY == ADD_EVERY - 1:
            plan.append(("add", {"pid": pids[adds % len(pids)], "tags": [tag]}))
            adds += 1
        elif i % 2 == 0:
            plan.append(("ping", {}))
        else:
            plan.append(("list", {"tags_any": [tag]}))
    return plan


def run_client(
    index: int,
    socket_path: Path,
    plan: list[tuple[str, dict[str, Any]]],
    distinct: int,
    barrier: Any,
    results: Any,
) -> None:
    """One client process: connect, wait for all the others, send the plan one request at
    a time, check every answer (`list` must show exactly the adds made so far)."""
    latency, methods, errors = array("d"), bytearray(), []
    expected = 0
    client = None
    try:
        client = LineClient(socket_path, timeout=WAIT_TIMEOUT)
    except OSError as e:
        errors.append(f"connect: {e!r}")
    barrier.wait()
    started = time.monotonic()
    added = 0
    if client is not None:
        for method, params in plan:
            t = time.perf_counter()
            try:
                reply = exchange(client, method, params or None)
            except (OSError, ValueError, RuntimeError) as e:
                errors.append(f"{method}: {e!r}")
                break
            latency.append(time.perf_counter() - t)
            methods.append(ord(method[0]))
            error = reply.get("error")
            re_add = method == "add" and added >= distinct
            if re_add and error is not None and error.get("code") == ALREADY_TRACKED:
                expected += 1
            elif error is not None:
                errors.append(f"{method} {params}: {error}")
            elif method == "ping" and reply["result"] != "pong":
                errors.append(f"ping answered {reply['result']!r}")
            elif re_add:
                errors.append(f"a re-add of tracked pid {params['pid']} succeeded")
            elif method == "add":
                if reply["result"]["pid"] != params["pid"]:
                    errors.append(f"add of {params['pid']} answered {reply['result']}")
                added += 1
            elif method == "list" and len(reply["result"]) != min(added, distinct):
                errors.append(f"list showed {len(reply['result'])}, {added} added so far")
        client.close()
    finished = time.monotonic()
    results.put(
        ClientResult(index, started, finished, latency.tobytes(), bytes(methods), expected, errors)
    )


def bench_clients(runner: Runner, args: argparse.Namespace) -> Outcome:
    clients, requests = args.clients, args.requests
    adds_each = requests // ADD_EVERY
    budget, limits = process_budget()
    distinct = min(adds_each, budget // clients) if adds_each else 0
    if adds_each and distinct < 1:
        raise RuntimeError(f"no room for {clients} sleep processes: {'; '.join(limits)}")
    total_procs = distinct * clients
    how = (
        "each add a distinct process, so every answer must be a success"
        if distinct == adds_each
        else f"{distinct} distinct processes per client (machine limits: {'; '.join(limits)}); "
        "re-adds of them answered -32003 count as expected"
    )
    mix = [m for m, _ in client_plan(requests, [0], "x")]
    notes = [
        f"{clients} client processes, {requests} sequential requests each, blocking sockets: "
        f"{mix.count('ping')} ping, {mix.count('list')} list (tags_any its own tag), "
        f"{mix.count('add')} add per client; {how}"
    ]
    progress(f"clients: starting {total_procs:,} sleep processes (not timed)")
    ctx = multiprocessing.get_context("fork")
    with sleep_processes(total_procs) as pids, scale_daemon(runner) as d:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        barrier = ctx.Barrier(clients + 1, timeout=WAIT_TIMEOUT)
        results = ctx.Queue()
        procs = []
        for k in range(clients):
            own = pids[k * distinct : (k + 1) * distinct]
            plan = client_plan(requests, own, f"client-{k}")
            p = ctx.Process(
                target=run_client,
                args=(k, d.server.socket, plan, distinct, barrier, results),
                daemon=True,
            )
            p.start()
            procs.append(p)
        progress(f"clients: {clients} clients x {requests} requests")
        try:
            barrier.wait()
            cpu_before = cpu_seconds(d.pid)
            collected: list[ClientResult] = [results.get(timeout=600) for _ in procs]
            cpu_used = cpu_seconds(d.pid) - cpu_before
        finally:
            for p in procs:
                p.join(WAIT_TIMEOUT)
                if p.is_alive():
                    p.kill()
                    p.join()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        clients_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        with LineClient(d.server.socket) as c:
            status = c.call("status")
        mem = memory_mb(d.pid)
    wall = max(r.finished for r in collected) - min(r.started for r in collected)
    latency: list[float] = []
    by_method: dict[str, list[float]] = {"ping": [], "list": [], "add": []}
    names = {ord("p"): "ping", ord("l"): "list", ord("a"): "add"}
    for r in collected:
        lat = array("d")
        lat.frombytes(r.latency)
        latency.extend(lat)
        for m, s in zip(r.methods, lat, strict=True):
            by_method[names[m]].append(s)
    errors = [e for r in collected for e in r.errors]
    expected = sum(r.expected_errors for r in collected)
    answered = len(latency)
    asked = clients * requests
    overall = summary_ms(latency)
    per = {m: summary_ms(v) for m, v in by_method.items()}
    rps = answered / wall
    entries_ok = status["entries"] == total_procs
    raw = {
        "clients": clients,
        "requests_each": requests,
        "asked": asked,
        "answered": answered,
        "errors": errors[:20],
        "error_count": len(errors),
        "expected_already_tracked": expected,
        "distinct_processes": total_procs,
        "wall_seconds": wall,
        "requests_per_second": rps,
        "latency_ms": overall,
        "latency_by_method_ms": per,
        "daemon_cpu_seconds": cpu_used,
        "clients_cpu_seconds": clients_cpu,
        "status_after": status,
        "memory_mb": mem,
    }
    notes += [
        "latency by method: "
        + "; ".join(
            f"{m} {v['count']:,}: median {v['median']:.2f} ms, p99 {v['p99']:.2f} ms"
            for m, v in per.items()
        ),
        f"wall {wall:.2f} s; CPU: daemon {cpu_used:.2f} s ({cpu_used / wall:.0%} of one core), "
        f"the {clients} clients {clients_cpu:.2f} s, of {(os.cpu_count() or 1) * wall:.1f} s "
        f"the machine had; entries afterwards {status['entries']:,} (expected {total_procs:,}); "
        f"daemon RSS {mem['VmRSS']:.1f} MB",
    ]
    if errors:
        notes.append(f"first errors: {errors[:5]}")
    rows = [
        Row(
            "clients",
            f"{clients} clients x {requests} requests: answered without error",
            f"{answered - expected:,} of {asked:,} ok, {len(errors)} errors"
            + (f", {expected:,} expected -32003" if expected else ""),
            "all, 0 errors",
            answered == asked and not errors and entries_ok,
        ),
        Row("clients", "throughput", f"{rps:,.0f} requests/s", "-", None),
        Row(
            "clients",
            "latency of every request",
            f"median {overall['median']:.2f} ms, p99 {overall['p99']:.2f} ms, "
            f"max {overall['max']:.2f} ms",
            "-",
            None,
        ),
    ]
    return Outcome("clients", rows, notes, raw)


# ---- entry point ---------------------------------------------------------------------------

SCENARIOS: dict[str, Callable[[Runner, argparse.Namespace], Outcome]] = {
    "entries": bench_entries,
    "alive": bench_alive,
    "clients": bench_clients,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python bench/scale.py", description="Measure goproc at scale against its bars."
    )
    p.add_argument("--entries", type=int, default=100_000, help="entries: registry size")
    p.add_argument("--alive", type=int, default=10_000, help="alive: processes to track")
    p.add_argument("--clients", type=int, default=200, help="clients: concurrent clients")
    p.add_argument("--requests", type=int, default=500, help="clients: requests per client")
    p.add_argument("--starts", type=int, default=3, help="entries: start-ups timed (median)")
    p.add_argument(
        "--only", action="append", choices=list(SCENARIOS), help="run only this (repeatable)"
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
    for name in ("entries", "alive", "clients", "requests", "starts"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    return args


def code_version() -> str:
    """Which goproc was measured: its version and the repository's commit, marked when
    goproc/ has local changes (the numbers are of the working tree)."""
    import goproc

    repo = Path(goproc.__file__).resolve().parent.parent
    described = f"goproc {goproc.__version__}"
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "goproc"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return described
    return f"{described} at commit {head}" + (" with local changes in goproc/" if dirty else "")


def machine() -> dict[str, Any]:
    return {
        "code": code_version(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
    }


def print_table(outcomes: list[Outcome], runner: Runner, info: dict[str, Any]) -> None:
    print(
        f"goproc at scale: Python {info['python']} on {info['platform']}, {info['cpus']} CPUs, "
        f"{info['memory_gib']:.0f} GiB"
    )
    print(f"goproc runs as: {runner.describe()}")
    print(f"measured: {info['code']}")
    print(f"load average at the start: {info['load_start']}, at the end: {info['load_end']}")
    print()
    header = ("SCENARIO", "METRIC", "MEASURED", "BAR", "OK")
    ok_text = {True: "yes", False: "NO", None: "-"}
    rows = [r for o in outcomes for r in o.rows]
    cells = [header] + [(r.scenario, r.metric, r.measured, r.bar, ok_text[r.ok]) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    barred = [r for r in rows if r.ok is not None]
    missed = sum(not r.ok for r in barred)
    print()
    print("all bars met" if not missed else f"{missed} of {len(barred)} bars missed")
    for o in outcomes:
        print()
        print(
            f"{o.name} (load average before: {o.raw['load_before']}, after: {o.raw['load_after']}):"
        )
        for note in o.notes:
            print(f"  - {note}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runner = find_runner(args.runner)
    info = machine() | {"load_start": load_average()}
    outcomes = []
    for name in args.only or list(SCENARIOS):
        load_before = load_average()
        progress(f"{name}: load average {load_before}")
        outcome = SCENARIOS[name](runner, args)
        outcome.raw["load_before"] = load_before
        outcome.raw["load_after"] = load_average()
        outcomes.append(outcome)
    info["load_end"] = load_average()
    rows = [r for o in outcomes for r in o.rows]
    all_met = all(r.ok is not False for r in rows)
    if args.json:
        out = {
            "machine": info,
            "runner": {"argv": list(runner.argv), "python": runner.python, "kind": runner.kind},
            "scenarios": [
                {"name": o.name, "rows": [asdict(r) for r in o.rows], "notes": o.notes, **o.raw}
                for o in outcomes
            ],
            "all_bars_met": all_met,
        }
        print(json.dumps(out, indent=2))
    else:
        print_table(outcomes, runner, info)
    return 1 if args.check and not all_met else 0


if __name__ == "__main__":
    sys.exit(main())
