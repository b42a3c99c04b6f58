"""What the CLI shows of the metrics, against a real daemon sampling real processes:
`list`'s CPU% and MEM columns and `--sort cpu|mem`, `stats`' sums, `show`'s metric
lines and CPU/RSS sparklines (ASCII where the output's encoding is not UTF-8)."""

from __future__ import annotations

import json
import sys
from typing import Any

from helpers import wait_until

FAST = {"metrics_interval": "200ms"}
BUSY = (sys.executable, "-c", "while True: pass")


def test_list_stats_and_show_give_the_metrics(spawn_daemon: Any, sleeper: Any) -> None:
    d = spawn_daemon(FAST)
    busy = d.call("add", {"pid": sleeper(*BUSY).pid, "name": "busy"})
    idle = d.call("add", {"pid": sleeper().pid, "name": "idle"})

    def hot() -> bool:
        metrics = d.call("show", {"ids": [busy["id"]]})["metrics"]
        return metrics is not None and metrics["cpu_percent"] > 50

    wait_until(hot, timeout=20, what="the busy loop sampled busy")
    wait_until(lambda: d.call("show", {"ids": [idle["id"]]})["metrics"], timeout=10)

    # Later samples of the busy loop are only said to be busy (over 20%), not over 50%:
    # on a loaded machine a sample can catch it waiting for a core.
    rows = {line.split()[2]: line.split() for line in d.cli("list").stdout.splitlines()[1:]}
    assert float(rows["busy"][4]) > 20 and float(rows["idle"][4]) < 5, rows
    assert rows["busy"][5][-1] in "KMG" and rows["idle"][5][-1] in "KMG", "MEM in units"
    by_cpu = [line.split()[2] for line in d.cli("list", "--sort", "cpu").stdout.splitlines()[1:]]
    assert by_cpu == ["busy", "idle"]

    stats = json.loads(d.cli("stats", "--json").stdout)
    assert (stats["entries"], stats["alive"], stats["sampled"]) == (2, 2, 2)
    assert stats["cpu_percent"] > 20 and stats["rss_bytes"] > 1_000_000
    text = dict(line.split(None, 1) for line in d.cli("stats").stdout.splitlines())
    assert text["rss_bytes"][-1] in "KMG"

    wait_until(lambda: len(history(d, busy["id"])) >= 3, timeout=10, what="three samples")
    shown = dict(line.split(None, 1) for line in d.cli("show", "busy").stdout.splitlines())
    assert float(shown["metrics.cpu_percent"]) > 20
    cpu_line = shown["history.cpu"]
    assert set(cpu_line.split("  ")[0]) <= set("▁▂▃▄▅▆▇█") and "█" in cpu_line
    latin = d.cli("show", "busy", env={"PYTHONIOENCODING": "latin-1"}).stdout
    ascii_line = next(line for line in latin.splitlines() if line.startswith("history.cpu"))
    assert "@" in ascii_line and ascii_line.isascii()
    assert "history" not in d.cli("show", "busy", "--json").stdout


def history(d: Any, proc_id: int) -> list[Any]:
    found = d.call("metrics.history", {"ids": [proc_id]})
    return found[0]["samples"] if found else []


def test_a_dead_entry_shows_dashes_and_no_history(spawn_daemon: Any, sleeper: Any) -> None:
    d = spawn_daemon(FAST)
    p = sleeper()
    d.call("add", {"pid": p.pid, "name": "gone"})
    p.kill()
    p.wait()
    wait_until(lambda: not d.call("show", {"ids": [1]})["alive"], timeout=10)
    [row] = d.cli("list").stdout.splitlines()[1:]
    assert row.split()[3:7] == ["no", "-", "-", "-"]
    shown = d.cli("show", "gone").stdout
    assert "history." not in shown and "metrics " in shown
