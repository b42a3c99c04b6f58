"""`goproc top`, measured against its four bars.

    python bench/tui.py                 # the table
    python bench/tui.py --json          # the raw numbers as JSON on stdout
    python bench/tui.py --check         # exit 1 when a bar is missed
    python bench/tui.py --entries 1000 --filter-entries 10000 --seconds 10

1. Start-up: a daemon (default config: metrics every 2 s) tracking `--entries` real
   `sleep` processes; `goproc top` spawned in a pseudo-terminal (120x40) and its output
   read until the full table is drawn (the header's `entries N: N alive` and a row of
   the table); bar <= 1.0 s from the spawn.
2. Idle CPU: the same `goproc top`, left alone for `--seconds` (metrics refresh every
   2 s, ages every second): its utime + stime over that span; bar <= 3% of one core.
3. Exit latency: `goproc top` in tmux (120x40); a process whose row is on screen is
   killed (SIGKILL) and `capture-pane` polled until its row reads `no`; `--kills`
   times; bar: the slowest <= 200 ms.
4. Frame time while filtering `--filter-entries` entries (fed through the app's data
   seam, in-process and headless): filter words typed in the `/` line one key at a
   time (Pilot); for each key the CPU time of the app's thread (the loop runs there:
   the key, the filter, the layout and the drawing of the frame) until it is idle
   again; also the filter plus a draw of every visible line timed alone, and the wall
   time Pilot takes per key (which includes Pilot's own waits); bar: the slowest key
   <= 50 ms.  Then the same for scrolling over all of them (PgDn, End, Home, Down).

Every process started here is killed and reaped at the end.  Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import importlib.util
import os
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import time
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

BARS = {"startup_s": 1.0, "idle_cpu_percent": 3.0, "exit_ms": 200.0, "frame_ms": 50.0}
COLS, ROWS = 120, 40


def progress(message: str) -> None:
    print(f"tui: {message}", file=sys.stderr, flush=True)


def spawn_in_pty(argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    """`argv` on a new pseudo-terminal of COLS x ROWS; the child and the master's fd."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    child = subprocess.Popen(
        argv,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**env, "TERM": "xterm-256color"},
        start_new_session=True,
    )
    os.close(slave)
    return child, master


def read_until(master: int, markers: list[bytes], timeout: float) -> float:
    """Read the terminal's output until every marker has appeared; when that was."""
    seen, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            seen += os.read(master, 1 << 16)
            if all(m in seen for m in markers):
                return time.monotonic()
    raise TimeoutError(f"not drawn within {timeout}s: {markers}")


def drain(master: int, seconds: float) -> None:
    """Keep reading the terminal (so the app never blocks on a full pty) for `seconds`."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([master], [], [], min(left, 0.2))
        if ready:
            os.read(master, 1 << 16)


def quit_top(child: subprocess.Popen[bytes], master: int) -> None:
    os.write(master, b"q")
    try:
        child.wait(10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    os.close(master)


def startup_and_idle(
    runner: Runner, env: dict[str, str], entries: int, seconds: float
) -> dict[str, Any]:
    starts: list[float] = []
    idle = None
    for attempt in range(3):
        t0 = time.monotonic()
        child, master = spawn_in_pty([*runner.argv, "top"], env)
        try:
            done = read_until(
                master, [f"entries {entries}: {entries} alive".encode(), b"sleep 3600"], 30
            )
            starts.append(done - t0)
            if attempt == 0:
                drain(master, 3.0)  # past the first metrics poll
                before = cpu_seconds(child.pid)
                drain(master, seconds)
                idle = 100 * (cpu_seconds(child.pid) - before) / seconds
        finally:
            quit_top(child, master)
    return {"startup_s": starts, "idle_cpu_percent": idle}


def exit_latency(runner: Runner, env: dict[str, str], pids: list[int], kills: int) -> list[float]:
    if shutil.which("tmux") is None:
        progress("tmux is not installed: no exit latency")
        return []
    with tempfile.TemporaryDirectory(prefix="goproc-bench-tmux-") as tmp:
        tmux = ["tmux", "-S", str(Path(tmp) / "sock")]
        top = " ".join(["env", "-u", "COLUMNS", "-u", "LINES", *runner.argv, "top"])
        pairs = [
            a for k in ("GOPROC_RUNTIME_DIR", "GOPROC_STATE_DIR") for a in ("-e", f"{k}={env[k]}")
        ]
        subprocess.run(
            [
                *tmux,
                "new-session",
                "-d",
                "-s",
                "top",
                "-x",
                str(COLS),
                "-y",
                str(ROWS),
                *pairs,
                top,
            ],
            check=True,
        )

        def screen() -> list[str]:
            out = subprocess.run(
                [*tmux, "capture-pane", "-p", "-t", "top"], capture_output=True, text=True
            )
            return out.stdout.splitlines()

        def row(entry_id: int) -> str | None:
            return next(
                (line for line in screen() if line[2:].split()[:1] == [str(entry_id)]), None
            )

        try:
            deadline = time.monotonic() + 30
            while row(1) is None:
                if time.monotonic() > deadline:
                    raise TimeoutError("goproc top drew no table in tmux")
                time.sleep(0.05)
            times = []
            for n in range(kills):
                os.kill(pids[n], 9)
                t0 = time.monotonic()
                while " no " not in (row(n + 1) or ""):
                    if time.monotonic() - t0 > 10:
                        raise TimeoutError(f"entry {n + 1} not shown dead")
                times.append(time.monotonic() - t0)
                time.sleep(0.3)
            return times
        finally:
            subprocess.run([*tmux, "kill-server"], capture_output=True)


def frame_times(entries: int) -> dict[str, Any]:
    """Filtering `entries` entries in the headless app (see the module doc)."""
    from goproc.tui.app import TopApp

    fixed = _fixed_data()
    NOW, FixedSource, entry = fixed.NOW, fixed.FixedSource, fixed.entry

    procs = [
        entry(
            i,
            f"worker --queue q{i % 97} --shard {i}",
            tags=[f"t{i % 10}"],
            groups=["g" if i % 3 else "h"],
        )
        for i in range(1, entries + 1)
    ]
    app = TopApp(FixedSource(procs), now=lambda: NOW)
    keys, walls, alone, scrolls = [], [], [], []

    async def scenario() -> None:
        async with app.run_test(size=(COLS, ROWS)) as pilot:
            while len(app.board.shown) < entries:
                await pilot.pause(0.05)
            await pilot.press("slash")
            for text in ("tag:t3", " group:g", " search:shard 1", " alive"):
                for ch in text:
                    t0, c0 = time.perf_counter(), time.thread_time()
                    await pilot.press("space" if ch == " " else ch)
                    await pilot.pause(0)
                    keys.append(time.thread_time() - c0)
                    walls.append(time.perf_counter() - t0)
            await pilot.press("escape")
            app.apply_filter("")
            await pilot.pause(0)
            for key in ["pagedown"] * 10 + ["end", "home"] + ["down"] * 10:  # over all of them
                c0 = time.thread_time()
                await pilot.press(key)
                await pilot.pause(0)
                scrolls.append(time.thread_time() - c0)
            table = app.table
            for text in ("", "tag:t1", "alive", "search:q5", "group:h tag:t2", ""):
                t0 = time.perf_counter()
                app.apply_filter(text)
                for y in range(table.size.height):
                    table.render_line(y)
                alone.append(time.perf_counter() - t0)

    asyncio.run(scenario())
    return {
        "entries": entries,
        "key_ms": percentiles_ms(keys),
        "key_wall_ms": percentiles_ms(walls),
        "scroll_ms": percentiles_ms(scrolls),
        "filter_draw_ms": percentiles_ms(alone),
    }


def _fixed_data() -> Any:
    """tests/tui/fixed.py, the tests' fixed-data seam (this file is `tui` on sys.path)."""
    path = Path(__file__).resolve().parents[1] / "tests" / "tui" / "fixed.py"
    spec = importlib.util.spec_from_file_location("tui_fixed", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(
    runner: Runner, entries: int, filter_entries: int, seconds: float, kills: int
) -> dict[str, Any]:
    with sleep_processes(entries) as pids, running_daemon(runner) as d:
        with LineClient(d.socket) as client:
            for start in range(0, len(pids), 500):
                client.call("add", {"pids": pids[start : start + 500]})
        progress(f"start-up and idle CPU: {entries} entries, {seconds:g}s idle")
        pty = startup_and_idle(runner, d.env, entries, seconds)
        progress(f"exit latency: {kills} kills seen in tmux")
        exits = exit_latency(runner, d.env, pids, kills)
    progress(f"frame time: filtering {filter_entries} entries")
    frames = frame_times(filter_entries)
    return {"entries": entries, **pty, "exit_s": exits, "frames": frames}


def rows_of(r: dict[str, Any]) -> list[dict[str, Any]]:
    starts, exits, f = r["startup_s"], r["exit_s"], r["frames"]
    exit_row = {
        "metric": f"a kill outside shown dead on screen ({len(exits)} kills, tmux)",
        "measured": (
            f"median {1000 * sorted(exits)[len(exits) // 2]:.0f} ms, max {1000 * max(exits):.0f} ms"
            if exits
            else "not measured (no tmux)"
        ),
        "bar": f"<= {BARS['exit_ms']:g} ms",
        "ok": bool(exits) and 1000 * max(exits) <= BARS["exit_ms"],
    }
    return [
        {
            "metric": f"start-up to the full table, {r['entries']} entries (pty)",
            "measured": ", ".join(f"{s:.2f} s" for s in starts),
            "bar": f"<= {BARS['startup_s']:g} s",
            "ok": max(starts) <= BARS["startup_s"],
        },
        {
            "metric": f"idle CPU of goproc top, {r['entries']} entries",
            "measured": f"{r['idle_cpu_percent']:.2f}% of one core",
            "bar": f"<= {BARS['idle_cpu_percent']:g}%",
            "ok": r["idle_cpu_percent"] <= BARS["idle_cpu_percent"],
        },
        exit_row,
        {
            "metric": f"frame time filtering {f['entries']} entries (app CPU a key)",
            "measured": f"median {f['key_ms']['median']:.1f} ms, max {f['key_ms']['max']:.1f} ms"
            f" ({f['key_ms']['count']} keys); filter + drawing the visible lines alone: median"
            f" {f['filter_draw_ms']['median']:.1f} ms, max {f['filter_draw_ms']['max']:.1f} ms;"
            f" key to idle through Pilot (its own waits included): median"
            f" {f['key_wall_ms']['median']:.0f} ms",
            "bar": f"<= {BARS['frame_ms']:g} ms",
            "ok": f["key_ms"]["max"] <= BARS["frame_ms"],
        },
        {
            "metric": f"scrolling {f['entries']} entries (app CPU a key)",
            "measured": f"median {f['scroll_ms']['median']:.1f} ms,"
            f" max {f['scroll_ms']['max']:.1f} ms"
            f" ({f['scroll_ms']['count']} keys: PgDn, End, Home, Down)",
            "bar": f"<= {BARS['frame_ms']:g} ms",
            "ok": f["scroll_ms"]["max"] <= BARS["frame_ms"],
        },
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/tui.py", description=__doc__.split("\n")[0])
    p.add_argument("--entries", type=int, default=1000, help="tracked processes (1000)")
    p.add_argument("--filter-entries", type=int, default=10000, help="entries filtered (10000)")
    p.add_argument("--seconds", type=float, default=10.0, help="the idle span (10)")
    p.add_argument("--kills", type=int, default=5, help="processes killed, one by one (5)")
    p.add_argument("--runner", choices=["script", "module"], default="script")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--check", action="store_true", help="exit 1 when a bar is missed")
    args = p.parse_args(argv)
    runner = find_runner(args.runner)
    result = run(runner, args.entries, args.filter_entries, args.seconds, args.kills)
    return report("tui", runner, result, rows_of(result), as_json=args.json, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
