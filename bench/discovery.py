"""Discovery, measured: `add --match` against the real `pgrep`, how fast an adoption
rule adopts a new process, a burst of them, and what a rule costs.

    python bench/discovery.py                # the table
    python bench/discovery.py --json         # the raw numbers as JSON on stdout
    python bench/discovery.py --check        # exit 1 when a bar is missed
    python bench/discovery.py --rounds 200 --burst 200 --machine 1000

1. Parity: processes with distinctive names (`exec -a`; one longer than the 15 bytes
   `comm` keeps, one with regex metacharacters, a shell with two children) and, for
   each of 24 pattern/flag combinations, `add {match, dry_run}` against `pgrep -u UID
   [flags] PATTERN` (pgrep's list without the kernel threads, zombies and the daemon,
   which goproc never selects), compared on the processes that lived through both.
   Bar: at least 20 combinations, all agreeing.
2. Latency: a daemon at the default `discovery_interval` (100 ms) with one rule
   `--full ^NAME`; --rounds times, one process is started (`bash -c 'exec -a NAME
   sleep'`) after a random pause of up to 150 ms, and the delay is from the wall time
   just before its fork to the arrival of its `added` event on a subscription.  Bar:
   median <= 150 ms, p99 <= 300 ms.
3. Burst: --burst processes started at once; bar: every one adopted, none twice.
4. Cost: `sleep`s are started until the machine has --machine processes; the daemon's
   CPU (utime + stime of /proc/PID/stat) over --seconds with one rule (matching none of
   them), as % of one core; bar: <= 2%.  Then with no rule: the scans must not move and
   the CPU stays near zero.

Every process started here is killed and reaped at the end, also on errors and Ctrl+C.
Progress goes to stderr; the table (or JSON) to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import (
    EventReader,
    LineClient,
    Runner,
    cpu_seconds,
    find_runner,
    report,
    running_daemon,
)

TAG = f"gpbd{os.getpid()}"
UID = str(os.geteuid())
BARS = {"median_ms": 150.0, "p99_ms": 300.0, "cpu_percent": 2.0, "combinations": 20}


def progress(message: str) -> None:
    print(f"discovery: {message}", file=sys.stderr, flush=True)


class Procs:
    """Processes started here, killed and reaped at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def named(self, name: str, seconds: int = 600) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(
            ["bash", "-c", f"exec -a {name} sleep {seconds}"], stdin=subprocess.DEVNULL
        )
        self.procs.append(p)
        return p

    def plain(self, argv: list[str]) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            p.wait()


@contextlib.contextmanager
def procs() -> Iterator[Procs]:
    held = Procs()
    try:
        yield held
    finally:
        held.close()


def started(p: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            if Path(f"/proc/{p.pid}/cmdline").read_bytes().startswith(name.encode() + b"\0"):
                return
        time.sleep(0.005)
    raise RuntimeError(f"{name} did not start")


# ---- 1. parity ---------------------------------------------------------------------------


def combinations(shell: int) -> list[tuple[list[str], dict[str, Any]]]:
    """(pgrep flags and pattern, the same as a `match`)."""
    t = TAG
    return [
        ([f"{t}-worker"], {"pattern": f"{t}-worker"}),
        ([f"^{t}-worker-[12]$"], {"pattern": f"^{t}-worker-[12]$"}),
        (["-x", f"{t}-worker-1"], {"pattern": f"{t}-worker-1", "exact": True}),
        (["-x", f"{t}-worker"], {"pattern": f"{t}-worker", "exact": True}),
        (["-f", f"{t}-worker-3 600"], {"pattern": f"{t}-worker-3 600", "full": True}),
        (
            ["-f", "-x", f"{t}-worker-3 600"],
            {"pattern": f"{t}-worker-3 600", "full": True, "exact": True},
        ),
        (["-n", f"{t}-worker"], {"pattern": f"{t}-worker", "pick": "newest"}),
        (["-o", f"{t}-worker"], {"pattern": f"{t}-worker", "pick": "oldest"}),
        (["-f", "-n", t], {"pattern": t, "full": True, "pick": "newest"}),
        (["-P", str(shell)], {"parent": [shell]}),
        (["-P", str(shell), "kid-1"], {"pattern": "kid-1", "parent": [shell]}),
        (["-f", "-P", str(shell), "kid"], {"pattern": "kid", "full": True, "parent": [shell]}),
        ([f"{t}.a\\+b"], {"pattern": f"{t}.a\\+b"}),
        ([f"{t}.a+b"], {"pattern": f"{t}.a+b"}),
        ([f"{t}-(worker|kid)-2"], {"pattern": f"{t}-(worker|kid)-2"}),
        ([f"{t}-averyverylongname"], {"pattern": f"{t}-averyverylongname"}),
        ([f"{t}-averyv"], {"pattern": f"{t}-averyv"}),
        (["-f", f"{t}-averyverylongname"], {"pattern": f"{t}-averyverylongname", "full": True}),
        (["-x", f"{t}-avery"[:15]], {"pattern": f"{t}-avery"[:15], "exact": True}),
        (["-f", f"^{t}-w.*[0-9] 6"], {"pattern": f"^{t}-w.*[0-9] 6", "full": True}),
        (["-u", UID, f"{t}-kid"], {"pattern": f"{t}-kid", "user": [UID]}),
        (["[[:digit:]]-worker-[[:digit:]]$"], {"pattern": "[[:digit:]]-worker-[[:digit:]]$"}),
        (["-f", "sleep 600$"], {"pattern": "sleep 600$", "full": True}),
        (["^no-such-process-at-all$"], {"pattern": "^no-such-process-at-all$"}),
    ]


def pgrep(args: list[str]) -> set[int]:
    """pgrep's pids, without kernel threads and zombies (goproc never selects those)."""
    out = subprocess.run(["pgrep", "-u", UID, *args], capture_output=True, text=True).stdout
    keep = set()
    for pid in map(int, out.split()):
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except FileNotFoundError:
            continue
        fields = stat.rsplit(b")", 1)[1].split()
        if fields[0] not in (b"Z", b"X") and not int(fields[6]) & 0x00200000:
            keep.add(pid)
    return keep


def dry_run(client: LineClient, match: dict[str, Any]) -> set[int]:
    """The pids `add {match, dry_run}` selects; none when it answers "no process
    matches" (-32006), as `add` does when it finds nothing."""
    try:
        reply = client.roundtrip("add", {"match": match, "dry_run": True})
    except RuntimeError as e:
        if "-32006" in str(e):
            return set()
        raise
    return {m["pid"] for m in reply["result"]["matched"]}


def parity(runner: Runner) -> dict[str, Any]:
    with procs() as held, running_daemon(runner) as d, LineClient(d.socket) as client:
        for name in ("worker-1", "worker-2", "worker-3", "averyverylongname", "a+b"):
            full = f"{TAG}-{name}" if name != "a+b" else f"{TAG}.a+b"
            started(held.named(full), full)
        shell = held.plain(
            [
                "bash",
                "-c",
                f"(exec -a {TAG}-kid-1 sleep 600) & (exec -a {TAG}-kid-2 sleep 600) & wait",
            ]
        )
        time.sleep(0.3)
        cases = []
        for args, match in combinations(shell.pid):
            alive_before = set(map(int, filter(str.isdigit, os.listdir("/proc"))))
            ours = dry_run(client, match)
            theirs = pgrep(args) - {d.proc.pid}
            alive_after = set(map(int, filter(str.isdigit, os.listdir("/proc"))))
            stable = alive_before & alive_after
            agree = ours & stable == theirs & stable
            cases.append({"pgrep": args, "match": match, "agree": agree, "found": len(ours)})
            if not agree:
                progress(f"DISAGREE: pgrep {args}: {sorted(theirs)} vs {sorted(ours)}")
    return {"cases": cases, "agree": sum(c["agree"] for c in cases), "total": len(cases)}


# ---- 2. latency and 3. burst ----------------------------------------------------------------


def latency(runner: Runner, rounds: int, burst: int) -> dict[str, Any]:
    delays: list[float] = []
    with procs() as held, running_daemon(runner) as d, LineClient(d.socket) as client:
        client.call("adopt.add", {"match": {"pattern": f"^{TAG}-lat-", "full": True}})
        sub = EventReader(d.socket, "added")
        try:
            for n in range(rounds):
                time.sleep(random.uniform(0, 0.15))
                forked = time.time()
                p = held.named(f"{TAG}-lat-{n}")
                arrived, event = sub.events.get(timeout=10)
                if event["proc"]["pid"] != p.pid:
                    raise RuntimeError(f"an added event for another process: {event}")
                delays.append(arrived - forked)
                p.kill()
            progress(f"latency: {rounds} rounds done; burst of {burst}")
            client.call("adopt.add", {"match": {"pattern": f"^{TAG}-burst-", "full": True}})
            start = time.time()
            pids = [held.named(f"{TAG}-burst-{n}").pid for n in range(burst)]
            got: list[int] = []
            with contextlib.suppress(queue.Empty):
                while len(got) < burst:
                    _, event = sub.events.get(timeout=10)
                    got.append(event["proc"]["pid"])
            took = time.time() - start
            time.sleep(0.5)  # five more scans: a second adoption would show
            entries = [e for e in client.call("list") if e["adopted_by"] == 2]
        finally:
            sub.close()
    delays.sort()
    return {
        "rounds": rounds,
        "median_ms": 1000 * statistics.median(delays),
        "p99_ms": 1000 * delays[min(len(delays) - 1, round(0.99 * (len(delays) - 1)))],
        "max_ms": 1000 * delays[-1],
        "burst": burst,
        "burst_adopted": len(set(got) & set(pids)),
        "burst_entries": len(entries),
        "burst_twice": len(entries) - len({e["pid"] for e in entries}),
        "burst_seconds": took,
    }


# ---- 4. cost -------------------------------------------------------------------------------


def cost(runner: Runner, machine: int, seconds: float) -> dict[str, Any]:
    with procs() as held:
        now = len([n for n in os.listdir("/proc") if n.isdigit()])
        for _ in range(max(machine - now, 0)):
            held.plain(["sleep", "3600"])
        count = len([n for n in os.listdir("/proc") if n.isdigit()])
        progress(f"cost: {count} processes on the machine, {seconds:g}s per measure")
        with running_daemon(runner) as d, LineClient(d.socket) as client:
            pid = d.proc.pid
            time.sleep(1)
            before, scans0 = cpu_seconds(pid), client.call("status")["discovery_scans"]
            time.sleep(seconds)
            idle_cpu = cpu_seconds(pid) - before
            idle_scans = client.call("status")["discovery_scans"] - scans0
            client.call("adopt.add", {"match": {"pattern": "^no-such-process-here$"}})
            time.sleep(1)
            before, status = cpu_seconds(pid), client.call("status")
            time.sleep(seconds)
            rule_cpu = cpu_seconds(pid) - before
            after = client.call("status")
    return {
        "processes": count,
        "seconds": seconds,
        "no_rule_cpu_percent": 100 * idle_cpu / seconds,
        "no_rule_scans": idle_scans,
        "one_rule_cpu_percent": 100 * rule_cpu / seconds,
        "one_rule_scans": after["discovery_scans"] - status["discovery_scans"],
        "last_scan_ms": 1000 * after["discovery_last_scan_seconds"],
    }


def rows_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    par, lat, cst = result["parity"], result["latency"], result["cost"]
    return [
        {
            "metric": "parity: add --match --dry-run vs pgrep",
            "measured": f"{par['agree']}/{par['total']} combinations agree",
            "bar": f">= {BARS['combinations']} combinations, all agreeing",
            "ok": par["agree"] == par["total"] >= BARS["combinations"],
        },
        {
            "metric": f"adoption latency, fork -> added event ({lat['rounds']} rounds)",
            "measured": f"median {lat['median_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms"
            f" (max {lat['max_ms']:.1f})",
            "bar": f"median <= {BARS['median_ms']:g} ms, p99 <= {BARS['p99_ms']:g} ms",
            "ok": lat["median_ms"] <= BARS["median_ms"] and lat["p99_ms"] <= BARS["p99_ms"],
        },
        {
            "metric": f"{lat['burst']} matching processes at once",
            "measured": f"{lat['burst_adopted']} adopted ({lat['burst_entries']} entries,"
            f" {lat['burst_twice']} twice) in {lat['burst_seconds']:.2f}s",
            "bar": "all adopted, none twice",
            "ok": lat["burst_adopted"] == lat["burst_entries"] == lat["burst"]
            and lat["burst_twice"] == 0,
        },
        {
            "metric": f"daemon CPU, one rule, {cst['processes']} processes",
            "measured": f"{cst['one_rule_cpu_percent']:.2f}% of one core"
            f" ({cst['one_rule_scans']} scans, last {cst['last_scan_ms']:.2f} ms)",
            "bar": f"<= {BARS['cpu_percent']:g}%",
            "ok": cst["one_rule_cpu_percent"] <= BARS["cpu_percent"],
        },
        {
            "metric": "daemon CPU and scans, no rule",
            "measured": f"{cst['no_rule_cpu_percent']:.2f}% of one core,"
            f" {cst['no_rule_scans']} scans",
            "bar": "no scan",
            "ok": cst["no_rule_scans"] == 0,
        },
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python bench/discovery.py", description=__doc__.split("\n")[0]
    )
    p.add_argument("--rounds", type=int, default=200, help="latency rounds (default 200)")
    p.add_argument("--burst", type=int, default=200, help="processes at once (default 200)")
    p.add_argument("--machine", type=int, default=1000, help="processes for the cost (1000)")
    p.add_argument("--seconds", type=float, default=20.0, help="each CPU measure (20)")
    p.add_argument("--runner", choices=["script", "module"], default="script")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--check", action="store_true", help="exit 1 when a bar is missed")
    args = p.parse_args(argv)
    runner = find_runner(args.runner)
    progress("parity with pgrep")
    result = {"parity": parity(runner)}
    progress(f"latency: {args.rounds} rounds")
    result["latency"] = latency(runner, args.rounds, args.burst)
    result["cost"] = cost(runner, args.machine, args.seconds)
    table = rows_of(result)
    return report("discovery", runner, result, table, as_json=args.json, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
