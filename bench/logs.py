"""Logs of what the daemon starts, measured: the CPU it costs to keep a fast writer's
output, against `cat` copying the same bytes, and the lines rotation keeps.

    python bench/logs.py                 # the table
    python bench/logs.py --json          # the raw numbers as JSON on stdout
    python bench/logs.py --check         # exit 1 when a bar is missed
    python bench/logs.py --mib 100 --runs 3

A file of --mib MiB of text lines is made first.  Each run:
1. goproc: a daemon (log_max_bytes 10 MiB, log_keep large enough to keep everything)
   starts `cat FILE` (`spawn`): the command writes the bytes into its stdout pipe as
   fast as it can, and the log pump moves them into the log files.  The cost is the
   CPU (utime + stime) the daemon and its log pump spent from the spawn until every
   byte is in the files.
2. cat: `cat FILE | cat > OUT`; the cost is the CPU of the second `cat` (rusage from
   `wait4`), which copies the same bytes from a pipe to a file.
Bar: goproc's cost <= 2x cat's (the medians over --runs).  Then the files, read oldest
first, must be the file's bytes exactly, and hold every one of its lines.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import LineClient, Runner, cpu_seconds, find_runner, report, running_daemon

MIB = 1 << 20
BAR_RATIO = 2.0


def progress(message: str) -> None:
    print(f"[logs] {message}", file=sys.stderr, flush=True)


def make_text(path: Path, mib: int) -> int:
    """`mib` MiB of numbered lines of varied lengths; how many lines."""
    lines = 0
    with open(path, "wb") as f:
        while f.tell() < mib * MIB:
            block = b"".join(
                b"%09d %s\n" % (lines + n, b"x" * (20 + (lines + n) * 7 % 140))
                for n in range(10000)
            )
            f.write(block)
            lines += 10000
    os.truncate(path, mib * MIB)
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def pump_pids(daemon_pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{daemon_pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                if b"goproc.logpump" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    out.append(int(pid))
            except OSError:
                continue
    return out


def files_of(logs: Path, base: str) -> list[Path]:
    n = 1
    while (logs / f"{base}.{n}").exists():
        n += 1
    return [logs / f"{base}.{k}" for k in range(n - 1, 0, -1)] + [logs / base]


def stream_size(logs: Path, base: str) -> int:
    """The bytes in a stream's files, from a look no rotation came in the middle of."""
    while True:
        names = files_of(logs, base)
        try:
            total = sum(f.stat().st_size for f in names)
        except FileNotFoundError:  # renamed while we looked
            continue
        if files_of(logs, base) == names:
            return total


def goproc_run(runner: Runner, text: Path, size: int) -> dict[str, Any]:
    config = {"log_max_bytes": 10 * MIB, "log_keep": size // (10 * MIB) + 5}
    with running_daemon(runner, config=config) as d, LineClient(d.socket) as client:
        warm = client.call("spawn", {"argv": ["true"], "cwd": "/"})  # the pump starts
        while client.call("show", {"ids": [warm["id"]]})["alive"]:
            time.sleep(0.01)
        (pump,) = pump_pids(d.proc.pid)
        before = cpu_seconds(d.proc.pid) + cpu_seconds(pump)
        started = time.perf_counter()
        entry = client.call("spawn", {"argv": ["cat", str(text)], "cwd": "/"})
        logs = Path(entry["log"]["out"]).parent
        base = Path(entry["log"]["out"]).name
        while stream_size(logs, base) < size:
            time.sleep(0.002)
        seconds = time.perf_counter() - started
        cost = cpu_seconds(d.proc.pid) + cpu_seconds(pump) - before
        files = files_of(logs, base)
        digest = hashlib.sha256()
        lines = 0
        for f in files:
            data = f.read_bytes()
            digest.update(data)
            lines += data.count(b"\n")
        return {
            "cpu_s": cost,
            "seconds": seconds,
            "files": len(files),
            "sha256": digest.hexdigest(),
            "lines": lines,
            "cut_lines": sum(1 for f in files[:-1] if not f.read_bytes().endswith(b"\n")),
        }


def cat_run(text: Path, out: Path) -> dict[str, Any]:
    started = time.perf_counter()
    with open(out, "wb") as sink:
        writer = subprocess.Popen(["cat", str(text)], stdout=subprocess.PIPE)
        copier = subprocess.Popen(["cat"], stdin=writer.stdout, stdout=sink)
        assert writer.stdout is not None
        writer.stdout.close()
        _, status, usage = os.wait4(copier.pid, 0)
        copier.returncode = os.waitstatus_to_exitcode(status)
        writer.wait()
    return {
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "seconds": time.perf_counter() - started,
    }


def measure(runner: Runner, mib: int, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="goproc-bench-logs-") as tmp:
        text = Path(tmp) / "text"
        lines = make_text(text, mib)
        want = hashlib.sha256(text.read_bytes()).hexdigest()
        ours, cats = [], []
        for n in range(runs):
            progress(f"run {n + 1}/{runs}: goproc")
            ours.append(goproc_run(runner, text, mib * MIB))
            progress(f"run {n + 1}/{runs}: cat")
            cats.append(cat_run(text, Path(tmp) / f"out{n}"))  # a new file, as the log files are
            (Path(tmp) / f"out{n}").unlink()
    goproc_cpu = statistics.median(r["cpu_s"] for r in ours)
    cat_cpu = statistics.median(r["cpu_s"] for r in cats)
    return {
        "mib": mib,
        "runs": runs,
        "lines": lines,
        "goproc_cpu_ms": [1000 * r["cpu_s"] for r in ours],
        "cat_cpu_ms": [1000 * r["cpu_s"] for r in cats],
        "goproc_seconds": [r["seconds"] for r in ours],
        "cat_seconds": [r["seconds"] for r in cats],
        "ratio": goproc_cpu / cat_cpu,
        "files": ours[0]["files"],
        "exact": all(r["sha256"] == want for r in ours),
        "lines_kept": [r["lines"] for r in ours],
        "cut_lines": sum(r["cut_lines"] for r in ours),
    }


def rows_of(r: dict[str, Any]) -> list[dict[str, Any]]:
    ours, cats = r["goproc_cpu_ms"], r["cat_cpu_ms"]
    each = ", ".join(f"{v:.0f}" for v in ours)
    each_cat = ", ".join(f"{v:.0f}" for v in cats)
    return [
        {
            "metric": f"CPU to keep {r['mib']} MiB a command writes (daemon + log pump)",
            "measured": f"median {statistics.median(ours):.0f} ms ({each});"
            f" cat: median {statistics.median(cats):.0f} ms ({each_cat}); ratio {r['ratio']:.2f}",
            "bar": f"<= {BAR_RATIO:g}x cat",
            "ok": r["ratio"] <= BAR_RATIO,
        },
        {
            "metric": f"rotation at 10 MiB ({r['files']} files)",
            "measured": f"{r['lines_kept']} of {r['lines']} lines; bytes exact: {r['exact']};"
            f" {r['cut_lines']} lines cut at a rotation",
            "bar": "no line lost",
            "ok": r["exact"] and all(n == r["lines"] for n in r["lines_kept"]),
        },
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/logs.py", description=__doc__.split("\n")[0])
    p.add_argument("--mib", type=int, default=100, help="MiB the command writes (100)")
    p.add_argument("--runs", type=int, default=3, help="runs of each (3)")
    p.add_argument("--runner", choices=["script", "module"], default="script")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--check", action="store_true", help="exit 1 when a bar is missed")
    args = p.parse_args(argv)
    runner = find_runner(args.runner)
    result = measure(runner, args.mib, args.runs)
    return report("logs", runner, result, rows_of(result), as_json=args.json, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
