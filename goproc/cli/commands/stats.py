"""`goproc stats`: the matching entries' metrics summed, what `pm2 monit`'s header shows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from goproc import api
from goproc.cli import escape, output
from goproc.cli.codes import ExitCode
from goproc.cli.flags import Common, Json, Select, call, selector_of
from goproc.cli.tables import key_values, metric, size

SUMMED = ("cpu_percent", "rss_bytes", "vms_bytes", "read_rate", "write_rate", "threads", "fds")


def stats(
    *, select: Select | None = None, json_: Json = False, common: Common | None = None
) -> ExitCode:
    """The matching entries' CPU, memory, IO rates, threads and descriptors, summed over
    those sampled; filters combine with AND (none: every entry)."""
    procs = call(common, api.LIST, selector_of(select))
    output.emit(summed(procs), json_, stats_lines)
    return ExitCode.OK


def summed(procs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How many entries match, are alive and were sampled, and each metric's sum over
    the sampled ones that have it (None when none has it: the OS did not tell)."""
    sampled = [p for p in procs if isinstance(p.get("metrics"), dict)]
    out: dict[str, Any] = {
        "entries": len(procs),
        "alive": sum(1 for p in procs if p["alive"]),
        "sampled": len(sampled),
    }
    for name in SUMMED:
        values = [v for v in (metric(p, name) for p in sampled) if v is not None]
        total = sum(values) if values else None
        out[name] = round(total, 1) if isinstance(total, float) else total
    return out


def stats_lines(totals: dict[str, Any]) -> list[str]:
    """The sums as `key  value` lines, sizes and rates in binary units (`12.3M`, `1.2M/s`)."""
    units = {"rss_bytes": "", "vms_bytes": "", "read_rate": "/s", "write_rate": "/s"}
    shown = {
        key: (size(value) + units[key] if key in units and value is not None else value)
        for key, value in totals.items()
    }
    return key_values(shown, lambda v: "-" if v is None else escape.shown(v))
