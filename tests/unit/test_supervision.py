"""The pure rules of supervision (`goproc.supervision`), by property: when a spawned
entry's exit is restarted, after how long; and the supervision fields of an entry
through every codec (wire, journal, snapshot, rows), old entries loading as watched."""

from __future__ import annotations

import json
import os
from pathlib import Path

import attrs
from hypothesis import given, strategies as st

from goproc import supervision
from goproc.model import RESTART_MODES, Change, Proc, ProcessFacts, Spawned
from goproc.registry import Registry
from goproc.rpc.convert import CONVERTER
from goproc.rpc.decoding import entry_from_dict
from goproc.rpc.entries import entry_dict, entry_text
from goproc.store import load, rows, spans, writer
from goproc.store.format import change_from_json, change_line

seconds = st.floats(min_value=0, max_value=86400, allow_nan=False)


@st.composite
def policies(draw: st.DrawFn) -> Spawned:
    low = draw(seconds)
    high = draw(st.floats(min_value=low, max_value=86400, allow_nan=False))
    return Spawned(
        argv=tuple(draw(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=3))),
        cwd="/" + draw(st.text(max_size=8).filter(lambda s: "\0" not in s)),
        env=tuple(draw(st.lists(st.from_regex(r"[A-Z]{1,4}=[a-z]{0,4}", fullmatch=True)))),
        restart=draw(st.sampled_from(RESTART_MODES)),
        max_restarts=draw(st.none() | st.integers(min_value=1, max_value=50)),
        restart_window=draw(seconds),
        backoff_min=low,
        backoff_max=high,
    )


codes = st.none() | st.integers(min_value=0, max_value=255)
times = st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), max_size=60)


@given(policies(), codes, st.booleans(), times, st.floats(0, 1e6, allow_nan=False))
def test_a_restart_is_asked_exactly_as_the_policy_says(
    spawned: Spawned, code: int | None, stopped: bool, restarted_at: list[float], now: float
) -> None:
    delay = supervision.restart_delay(spawned, code, stopped, restarted_at, now)
    wanted = not stopped and (
        spawned.restart == "always" or (spawned.restart == "on-failure" and code != 0)
    )
    in_window = [t for t in restarted_at if now - t < spawned.restart_window]
    used_up = spawned.max_restarts is not None and len(in_window) >= spawned.max_restarts
    assert (delay is not None) == (wanted and not used_up)
    if delay is not None:
        assert spawned.backoff_min <= delay <= spawned.backoff_max or (
            delay == spawned.backoff_max < spawned.backoff_min * 2 ** len(in_window)
        )
        expected = min(spawned.backoff_max, spawned.backoff_min * 2.0 ** len(in_window))
        assert delay == expected


@given(policies(), st.integers(min_value=0, max_value=200))
def test_the_backoff_doubles_up_to_its_maximum_and_never_shrinks(spawned: Spawned, n: int) -> None:
    now, nxt = supervision.backoff(spawned, n), supervision.backoff(spawned, n + 1)
    assert spawned.backoff_min <= now <= nxt <= spawned.backoff_max or spawned.backoff_min == 0
    # Doubling stops after 64 restarts in the window (any minimum above 5e-15 s has
    # reached the maximum by then: 2**64 * 5e-15 s is more than a day).
    assert nxt in (spawned.backoff_max, now * 2) or n >= supervision.BACKOFF_DOUBLINGS_MAX
    assert supervision.backoff(spawned, 0) == min(spawned.backoff_min, spawned.backoff_max)


@given(times, seconds, st.floats(0, 1e6, allow_nan=False))
def test_recent_keeps_the_restarts_within_the_window_in_order(
    restarted_at: list[float], window: float, now: float
) -> None:
    kept = supervision.recent(restarted_at, window, now)
    assert kept == [t for t in restarted_at if now - t < window]


def test_an_exit_status_is_a_code_or_a_signal() -> None:
    signalled = (os.CLD_KILLED, os.CLD_DUMPED)
    assert supervision.exit_status(os.CLD_EXITED, 3, os.CLD_EXITED, signalled=signalled) == (
        3,
        None,
    )
    assert supervision.exit_status(os.CLD_KILLED, 9, os.CLD_EXITED, signalled=signalled) == (
        None,
        9,
    )
    assert supervision.exit_status(os.CLD_DUMPED, 11, os.CLD_EXITED, signalled=signalled) == (
        None,
        11,
    )


def _entry(**changes: object) -> Proc:
    base = Proc(
        id=3,
        pid=100,
        pgid=100,
        cmd="sleep 9",
        name="w",
        alive=True,
        tags=("t",),
        groups=(),
        started_at=1_700_000_000.01,
        added_at=1_700_000_000.5,
        last_seen=1_700_000_000.5,
    )
    return attrs.evolve(base, **changes)  # type: ignore[arg-type]


def test_an_ended_entry_then_started_again_keeps_its_identity_but_the_process() -> None:
    spawned = Spawned(argv=("sleep", "9"), cwd="/", env=())
    p = _entry(spawned=spawned)
    dead = supervision.ended(p, None, 9, now=1_700_000_010.0)
    assert (dead.alive, dead.exit_code, dead.exit_signal, dead.exited_at) == (
        False,
        None,
        9,
        1_700_000_010.0,
    )
    again = supervision.started_again(
        dead, ProcessFacts(pid=200, started_at=1_700_000_011.0, cmd="sleep 9", pgid=200), 1e9
    )
    assert (again.id, again.name, again.tags, again.log, again.spawned) == (
        p.id,
        p.name,
        p.tags,
        p.log,
        p.spawned,
    )
    assert (again.pid, again.alive, again.restarts, again.exit_signal, again.exited_at) == (
        200,
        True,
        1,
        None,
        None,
    )


@given(policies(), codes, st.none() | st.integers(1, 64), st.integers(0, 10**6), st.booleans())
def test_supervision_fields_survive_every_codec(
    spawned: Spawned, code: int | None, sig: int | None, restarts: int, stopped: bool
) -> None:
    p = _entry(spawned=spawned, exit_code=code, exit_signal=sig, restarts=restarts, stopped=stopped)
    assert json.loads(entry_text(p)) == entry_dict(p)
    back = entry_from_dict(json.loads(entry_text(p)))
    assert back == p
    assert CONVERTER.structure(entry_dict(p), Proc) == p
    change = Change(next_id=4, put=(p,))
    assert change_from_json(json.loads(change_line(change))) == change


def test_an_entry_written_before_supervision_loads_as_only_watched() -> None:
    old = {k: v for k, v in entry_dict(_entry()).items()}
    for key in ("spawned", "exit_code", "exit_signal", "restarts", "stopped"):
        del old[key]
    for decode in (entry_from_dict, lambda o: CONVERTER.structure(o, Proc)):
        p = decode(old)
        assert (p.spawned, p.exit_code, p.exit_signal, p.restarts, p.stopped) == (
            None,
            None,
            None,
            0,
            False,
        )


def test_supervision_fields_survive_the_snapshot_and_its_rows(tmp_path: Path) -> None:
    spawned = Spawned(argv=("sh", "-c", "exit 3"), cwd="/srv", env=("A=1",), restart="always")
    procs = [
        _entry(id=1, name="a", spawned=spawned, exit_code=3, restarts=2, alive=False),
        _entry(id=2, name="b", pid=101, exit_signal=9, stopped=True, alive=False),
        _entry(id=3, name=None, pid=102),
    ]
    writer.write_snapshot_over(tmp_path, procs, 4, 2, None, spans.OnDisk.nothing(), 1)
    assert (tmp_path / rows.ROWS).exists()
    fast = Registry()
    assert load.load_state(tmp_path, fast).from_rows
    (tmp_path / rows.ROWS).unlink()
    slow = Registry()
    load.load_state(tmp_path, slow)
    assert list(fast) == list(slow) == procs
