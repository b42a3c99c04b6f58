"""`goproc list --sort KEY [-r]` on plain entries: a permutation, the entries that have
the value first in its order (ties by id), those without it last either way round."""

from __future__ import annotations

from typing import Any

from helpers import entry
from hypothesis import given, strategies as st

from goproc.cli.commands.listing import SORT_KEYS, sorted_entries

METRICS = st.none() | st.fixed_dictionaries(
    {"cpu_percent": st.none() | st.floats(0, 400), "rss_bytes": st.none() | st.integers(0, 2**40)}
)
ENTRIES = st.lists(
    st.builds(
        lambda i, pid, name, alive, second, metrics: entry(
            id=i,
            pid=pid,
            name=name,
            alive=alive,
            started_at=f"2026-11-26T14:20:{second:02d}.000000Z",
            metrics=metrics,
        ),
        st.integers(1, 10**6),
        st.integers(1, 4 * 10**6),
        st.none() | st.sampled_from(["api", "db", "web", "a1"]),
        st.booleans(),
        st.integers(0, 59),
        METRICS,
    ),
    max_size=20,
    unique_by=lambda p: p["id"],
)


@given(procs=ENTRIES, key=st.sampled_from(sorted(SORT_KEYS)), reverse=st.booleans())
def test_sorted_entries_order(procs: list[dict[str, Any]], key: str, reverse: bool) -> None:
    out = sorted_entries(procs, key, reverse)
    assert sorted(p["id"] for p in out) == sorted(p["id"] for p in procs)
    value = SORT_KEYS[key]
    having = [p for p in out if value(p) is not None]
    assert out[len(having) :] == [p for p in procs if value(p) is None], "the rest, as given"
    pairs = [(value(p), p["id"]) for p in having]
    assert pairs == sorted(pairs, reverse=reverse)


def test_what_each_key_puts_first() -> None:
    young = entry(id=1, pid=30, name="web", started_at="2026-11-26T14:20:59.000000Z")
    old = entry(id=2, pid=20, name="api", started_at="2026-11-26T14:20:00.000000Z")
    dead = entry(id=3, pid=10, name=None, alive=False)
    busy = {"cpu_percent": 99.0, "rss_bytes": 10}
    big = {"cpu_percent": 1.0, "rss_bytes": 10**9}
    young["metrics"], old["metrics"], dead["metrics"] = busy, big, None

    def ids(key: str, reverse: bool = False) -> list[int]:
        return [p["id"] for p in sorted_entries([young, old, dead], key, reverse)]

    assert ids("id") == [1, 2, 3] and ids("id", True) == [3, 2, 1]
    assert ids("pid") == [3, 2, 1]
    assert ids("name") == [2, 1, 3], "no name: last"
    assert ids("age") == [1, 2, 3], "the youngest first, as ps --sort etime; dead: no age"
    assert ids("age", True) == [2, 1, 3]
    assert ids("cpu") == [1, 2, 3], "the most first, as top"
    assert ids("mem") == [2, 1, 3]
    assert ids("mem", True) == [1, 2, 3], "without a value: last either way round"
