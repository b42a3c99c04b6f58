"""`goproc stats` on plain entries: counts, and each metric summed over the sampled
entries that have it; a dash (null) where none has it."""

from __future__ import annotations

from helpers import entry

from goproc.cli.commands.stats import stats_lines, summed


def sample(**values: float | None) -> dict[str, float | None]:
    base: dict[str, float | None] = dict.fromkeys(
        ("cpu_percent", "rss_bytes", "vms_bytes", "read_rate", "write_rate", "threads", "fds"), 0
    )
    return {**base, **values}


def test_sums_over_the_sampled_entries() -> None:
    procs = [
        entry(id=1, metrics=sample(cpu_percent=99.96, rss_bytes=2**20, fds=None, read_rate=None)),
        entry(id=2, metrics=sample(cpu_percent=0.5, rss_bytes=3 * 2**20, fds=4, read_rate=None)),
        entry(id=3, alive=False, metrics=None),
        entry(id=4, metrics=None),  # alive, not sampled yet
    ]
    totals = summed(procs)
    assert totals == {
        "entries": 4,
        "alive": 3,
        "sampled": 2,
        "cpu_percent": 100.5,
        "rss_bytes": 4 * 2**20,
        "vms_bytes": 0,
        "read_rate": None,
        "write_rate": 0,
        "threads": 0,
        "fds": 4,
    }
    lines = dict(line.split(None, 1) for line in stats_lines(totals))
    assert lines["rss_bytes"] == "4.0M" and lines["read_rate"] == "-"
    assert lines["write_rate"] == "0B/s" and lines["cpu_percent"] == "100.5"


def test_nothing_matched_is_zeros_and_dashes() -> None:
    totals = summed([])
    assert (totals["entries"], totals["sampled"], totals["cpu_percent"]) == (0, 0, None)
