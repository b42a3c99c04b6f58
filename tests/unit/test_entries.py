"""The entries' fast encoding (`goproc.rpc.entries`) is exactly the plain one: the text
`entry_text` makes equals the JSON encoder's text of `entry_dict`, and `format_time`
equals `datetime`'s RFC 3339 form, for any entry and any time."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import example, given, strategies as st

from goproc.model import LogFiles, Proc
from goproc.rpc.convert import CONVERTER
from goproc.rpc.decoding import ENTRY_KEYS, BadEntry, entry_from_dict
from goproc.rpc.entries import (
    entry_dict,
    entry_json,
    entry_lines,
    format_time,
)

ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
SURROGATES = st.sampled_from(["\ud800", "\udcff"])
texts = st.text(st.characters() | SURROGATES, max_size=20)
times = st.floats(-2e10, 2e10, allow_nan=False) | st.floats(1e9, 2e9).map(lambda x: round(x, 6))
labels = st.lists(texts, max_size=3, unique=True).map(lambda xs: tuple(sorted(xs)))

procs = st.builds(
    Proc,
    id=st.integers(1, 2**63 - 1),
    pid=st.integers(1, 2**31 - 1),
    pgid=st.none() | st.integers(0, 2**31 - 1),
    cmd=texts,
    name=st.none() | texts,
    alive=st.booleans(),
    tags=labels,
    groups=labels,
    started_at=times,
    added_at=times,
    last_seen=times,
    exited_at=st.none() | times,
    log=st.none()
    | st.builds(LogFiles, out=texts.map(lambda t: "/" + t), err=texts.map(lambda t: "/" + t)),
)


def reference_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@given(times)
@example(1.9999995)
@example(-0.0000005)
@example(0.0000005)
@example(1_700_000_000.9999999)
@example(-1.5)
def test_format_time_is_datetimes_rfc3339(ts: float) -> None:
    assert format_time(ts) == reference_time(ts)


@given(procs)
def test_entry_text_is_the_encoders_text_of_entry_dict(p: Proc) -> None:
    assert entry_json(p) == ENCODER.encode(entry_dict(p)).encode()


@given(st.lists(procs, max_size=5))
def test_entry_lines_join_entries(ps: list[Proc]) -> None:
    joined = b",".join(entry_lines(ps))
    assert json.loads(b"[" + joined + b"]") == [entry_dict(p) for p in ps]
    for chunk in entry_lines(ps, sep=b",\n"):
        assert all(json.loads(line.rstrip(b",")) for line in chunk.split(b"\n"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


def mutated_entries() -> st.SearchStrategy[Any]:
    """Entries' wire objects with one key dropped, added or given another value."""

    def mutate(obj: dict[str, Any], how: int, key: str, value: Any) -> dict[str, Any]:
        out = dict(obj)
        if how == 0:
            out.pop(key, None)
        elif how == 1:
            out[key] = value
        else:
            out[f"x{key}"] = value
        return out

    return st.builds(
        mutate,
        procs.map(lambda p: json.loads(entry_json(p))),
        st.integers(0, 2),
        st.sampled_from(sorted(ENTRY_KEYS)),
        json_values,
    )


@given(mutated_entries())
def test_the_fast_structure_accepts_and_refuses_what_the_detailed_one_does(obj: Any) -> None:
    """`entry_from_dict` (how snapshots load) and the detailed converter agree on every
    object: the same entry, or both refuse it."""
    try:
        expected: Proc | None = CONVERTER.structure(obj, Proc)
    except Exception:
        expected = None
    try:
        got: Proc | None = entry_from_dict(obj)
    except BadEntry:
        got = None
    assert (got is None) == (expected is None), (obj, got, expected)
    if got is not None and expected is not None:
        assert entry_dict(got) == entry_dict(expected)
