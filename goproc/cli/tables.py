"""The entry table of `list`, the key/value layout of `show` and `status`, and how they
show times: pure functions of the daemon's decoded results, like `goproc.cli.output`
(which prints them).  Times come as RFC 3339 UTC; on a terminal they are shown in local
time, and every entry's age as `ps etime` and pm2's uptime show it (`3h12m`)."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from goproc.cli.escape import shown

Entry = Mapping[str, Any]
Lines = list[str]

TABLE_HEADER = ("ID", "PID", "NAME", "ALIVE", "CPU%", "MEM", "AGE", "TAGS", "GROUPS", "CMD")
ALIVE_COLUMN = TABLE_HEADER.index("ALIVE")
GREEN, RED, PLAIN = "\x1b[32m", "\x1b[31m", "\x1b[0m"
TIMES = ("started_at", "added_at", "last_seen", "exited_at")


def stamp_seconds(stamp: str) -> float | None:
    """An RFC 3339 time as seconds since the epoch; None when it is not one."""
    from datetime import datetime  # here: `goproc ping` shows no time, nor pays for it

    try:
        return datetime.fromisoformat(stamp).timestamp()
    except (TypeError, ValueError):
        return None


def when(stamp: Any, local: bool) -> str:
    """A time as the daemon sent it, or (`local`) in local time with its UTC offset:
    `2026-12-01 19:21:06 +0100`."""
    seconds = stamp_seconds(stamp) if local and isinstance(stamp, str) else None
    if seconds is None:
        return shown(stamp)
    from datetime import datetime

    return datetime.fromtimestamp(seconds).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


def age(seconds: float) -> str:
    """A duration the way `ps etime` and pm2 show an uptime, two units at most:
    `45s`, `12m5s`, `3h12m`, `2d3h`."""
    s = max(int(seconds), 0)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{s}s" if minutes else f"{s}s"


def size(n: float) -> str:
    """Bytes in binary units as top and htop show them: `800B`, `512K`, `12.3M`, `1.5G`."""
    for unit in ("B", "K", "M", "G", "T"):
        if abs(n) < 1024 or unit == "T":
            break
        n /= 1024
    return f"{n:.0f}{unit}" if unit == "B" or abs(n) >= 100 else f"{n:.1f}{unit}"


def metric(p: Entry, name: str) -> Any:
    """One of an entry's metrics; None while it has none (never sampled, or dead)."""
    metrics = p.get("metrics")
    return metrics.get(name) if isinstance(metrics, Mapping) else None


def entry_age(p: Entry, now: float | None) -> str:
    """How long an alive entry's process has run; a dash for a dead one (or no clock)."""
    started = stamp_seconds(p["started_at"]) if now is not None and p["alive"] else None
    return "-" if started is None or now is None else age(now - started)


# ---- key/value layouts -------------------------------------------------------------------


def _cell(value: Any) -> str:
    """A `show` value: lists joined with commas, a dash for nothing."""
    text = ",".join(value) if isinstance(value, list) else value
    return "-" if text in (None, "") else shown(text)


def key_values(pairs: Mapping[str, Any], cell: Callable[[Any], str] = shown) -> Lines:
    """One `key  value` line per pair, the values in one column."""
    keys = [shown(key) for key in pairs]
    width = max(map(len, keys), default=0)
    values = pairs.values()
    return [f"{key.ljust(width)}  {cell(value)}" for key, value in zip(keys, values, strict=True)]


def status_lines(info: Mapping[str, Any]) -> Lines:
    return key_values(info)


def show_lines(
    proc: Entry,
    now: float | None = None,
    local: bool = False,
    history: Sequence[Mapping[str, Any]] = (),
    ascii: bool = False,
) -> Lines:
    """One entry in full, one field per line: `alive` as yes/no (as `list` has it), its
    age after it, `stopped` as yes/no too, times in local time when `local`, its log
    files as `log.out` and `log.err` (`log  -` when it has none), how the daemon started
    it as `spawned.NAME`
    lines (`spawned  -` when it did not; the environment as its size), its metrics as
    `metrics.NAME` lines (`metrics  -` when it has none), and `history` (its samples,
    oldest first) as sparklines of CPU and RSS (`ascii`: in ASCII)."""
    fields: dict[str, Any] = {}
    for key, value in proc.items():
        if key == "log" and isinstance(value, Mapping):
            fields["log.out"], fields["log.err"] = value.get("out"), value.get("err")
        elif key == "spawned" and isinstance(value, Mapping):
            fields.update(spawned_fields(value))
        elif key == "metrics" and isinstance(value, Mapping):
            for name, number in value.items():  # one line each, as `log`
                shown_value = when(number, local) if name == "sampled_at" else number
                fields[f"metrics.{name}"] = shown_value
        elif key == "alive":
            fields[key] = "yes" if value else "no"
            fields["age"] = entry_age(proc, now)
        elif key == "stopped" and isinstance(value, bool):
            fields[key] = "yes" if value else "no"
        elif key in TIMES and value is not None:
            fields[key] = when(value, local)
        else:
            fields[key] = value
    if history:
        fields.update(history_fields(history[-HISTORY_SHOWN:], ascii))
    return key_values(fields, _cell)


def spawned_fields(spawned: Mapping[str, Any]) -> dict[str, Any]:
    """An entry's `spawned` as `spawned.NAME` fields: the command shell-quoted, the
    environment as how many variables it has (its values may be secrets)."""
    out: dict[str, Any] = {}
    for name, value in spawned.items():
        if name == "argv" and isinstance(value, list):
            value = shlex.join(str(a) for a in value)
        elif name == "env" and isinstance(value, list):
            value = f"{len(value)} variables"
        out[f"spawned.{name}"] = value
    return out


# ---- the entry table -------------------------------------------------------------------


def table_lines(
    procs: Sequence[Entry],
    *,
    colour: bool = False,
    columns: int | None = None,
    now: float | None = None,
) -> Lines:
    """The `list` table: aligned columns, a dash for an empty cell.  `columns` is the
    terminal's width (the command is cut to fit; None: not a terminal, never cut);
    `colour` paints ALIVE green or red; AGE counts from `now` (a dash without it)."""
    rows = [TABLE_HEADER, *(_row(p, now) for p in procs)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEADER) - 1)]
    room = max(columns - sum(widths) - 2 * len(widths), 10) if columns is not None else 0
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        if colour and n:
            paint = GREEN if row[ALIVE_COLUMN] == "yes" else RED
            cells[ALIVE_COLUMN] = f"{paint}{cells[ALIVE_COLUMN]}{PLAIN}"
        cmd = row[-1]
        if columns is not None and len(cmd) > room:
            cmd = cmd[: room - 1] + "…"
        lines.append("  ".join(cells) + "  " + cmd)
    return lines


def _row(p: Entry, now: float | None) -> tuple[str, ...]:
    return (
        shown(p["id"]),
        shown(p["pid"]),
        shown(p["name"] or "-"),
        "yes" if p["alive"] else "no",
        _or_dash(metric(p, "cpu_percent"), lambda v: f"{v:.1f}"),
        _or_dash(metric(p, "rss_bytes"), size),
        entry_age(p, now),
        shown(",".join(p["tags"]) or "-"),
        shown(",".join(p["groups"]) or "-"),
        shown(p["cmd"]),
    )


def _or_dash(value: Any, text: Callable[[Any], str]) -> str:
    return "-" if not isinstance(value, int | float) or isinstance(value, bool) else text(value)


BLOCKS = "▁▂▃▄▅▆▇█"
ASCII_LEVELS = "_.-=+*#@"  # the same eight levels where the terminal cannot show blocks


def sparkline(values: Sequence[float | None], top: float | None = None, ascii: bool = False) -> str:
    """One character per value, its height from 0 to `top` (the largest value when not
    given); a space for a missing one.  `ascii` for a terminal whose encoding is not
    UTF-8."""
    levels = ASCII_LEVELS if ascii else BLOCKS
    known = [v for v in values if v is not None]
    ceiling = max([top or 0.0, *known]) if known or top else 0.0
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        else:
            share = v / ceiling if ceiling > 0 else 0.0
            out.append(levels[min(int(share * len(levels)), len(levels) - 1)])
    return "".join(out)


HISTORY_SHOWN = 60  # samples a sparkline of `show` covers, the newest


def history_fields(samples: Sequence[Mapping[str, Any]], ascii: bool) -> dict[str, str]:
    """CPU (0 to 100% of one core, or more) and RSS (0 to its largest) as sparklines."""
    cpu = [s.get("cpu_percent") for s in samples]
    rss = [s.get("rss_bytes") for s in samples]
    cpu_top = max([100.0, *(v for v in cpu if v is not None)])
    rss_top = max([0, *(v for v in rss if v is not None)])
    n = f"the last {len(samples)} samples"
    return {
        "history.cpu": f"{sparkline(cpu, cpu_top, ascii)}  ({n}, 0-{cpu_top:.0f}%)",
        "history.rss": f"{sparkline(rss, rss_top, ascii)}  ({n}, 0-{size(rss_top)})",
    }
