"""Properties of the durable state: snapshot round trip, journal replay, torn and corrupt files.

Registries are built the way the daemon builds them (`plan_add` + `apply` with probed
facts, times rounded as the daemon rounds them), written with `goproc.store`, and
loaded into a fresh Registry.  Two registries are "equal" when their wire forms are: the
unstructured proc objects, in order, and `next_id`.  Each example uses its own temp dir
(hypothesis does not reset function-scoped fixtures between examples).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, note, strategies as st

from goproc.errors import AlreadyTracked, NameInUse
from goproc.model import NAME_RE, Change, LogFiles, ProcessFacts, log_path_problem
from goproc.registry import Registry
from goproc.rpc.entries import entry_dict
from goproc.store import files, format as fmt, load, writer
from goproc.store.generations import UnusableState

PID_MAX = 2**31 - 1

# ---- strategies ------------------------------------------------------------------------

# Text as a process's command line can hold it, but without lone surrogates: those are
# the subject of their own test below (psutil reports non-UTF-8 argv bytes as surrogates).
plain_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)

# A few pids and start times recur, so that re-adds (refused) and PID reuse happen.
pids = st.sampled_from([11, 12, 13]) | st.integers(1, PID_MAX)
start_times = st.sampled_from([1_700_000_000.0, 1_700_000_050.25]) | st.floats(1e9, 2e9).map(
    lambda x: round(x, 2)
)  # psutil's create_time, as the daemon stores it
nows = st.floats(1e9, 2e9).map(lambda x: round(x, 6))  # goproc.daemon.service.now(): microseconds
labels = st.lists(st.sampled_from(["db", " web", "web", "", "prod"]) | plain_text, max_size=4)
names = st.none() | st.sampled_from(["a", "b"]) | st.from_regex(NAME_RE, fullmatch=True)
facts = st.builds(
    ProcessFacts,
    pid=pids,
    started_at=start_times,
    cmd=st.sampled_from(["sleep 300", "pid:11"]) | plain_text,
    pgid=st.none() | st.integers(0, PID_MAX),
)

# An entry's log files: none, the daemon's own (named from the new id), or given paths
# (any text after the "/", quotes, backslashes and line breaks included, as long as it is
# a path the wire takes: `add` refuses the rest before the registry sees it).
log_paths = (
    st.sampled_from(["/l/out", '/l/a "b"\\c\n']) | plain_text.map(lambda t: "/" + t)
).filter(lambda path: log_path_problem(path) is None)
log_choices = (
    st.none()
    | st.just("own")
    | st.builds(LogFiles, out=log_paths, err=log_paths)
    | log_paths.map(lambda path: LogFiles(path, path))
)
add_ops = st.tuples(st.just("add"), facts, labels, labels, names, nows, log_choices)
forget_ops = st.tuples(st.just("forget"), st.integers(0, 40))
die_ops = st.tuples(st.just("die"), st.integers(0, 40), nows)
touch_ops = st.tuples(st.just("touch"), st.integers(0, 40), nows)
# A fold: rotate the journal and write the snapshot; `True` also deletes the folded
# generations (the daemon does; a crash can leave them, and they must then be skipped).
snapshot_ops = st.tuples(st.just("snapshot"), st.booleans())
# A fold that crashed after rotating and before its snapshot was written.
rotate_ops = st.tuples(st.just("rotate"))


def wire(reg: Registry) -> tuple[list[Any], int]:
    """A registry as the protocol and the snapshot see it."""
    return [entry_dict(p) for p in reg], reg.next_id


@contextmanager
def state_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def journal_line(change: Change) -> bytes:
    """One journal record, exactly as `goproc.store.journal.Journal.append` writes it."""
    return fmt.change_line(change)


class Daemonish:
    """A live registry plus the journal and snapshot files, kept as the daemon keeps them."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.registry = Registry()
        self.gen = load.load_state(directory, Registry()).next_gen
        # A first start writes a snapshot at once (goproc.daemon.wiring.run), so the
        # journal is never the only record of the state.
        self.gen += 1
        writer.write_snapshot(directory, [], 1, self.gen)
        self.journaled: list[Change] = []

    def commit(self, change: Change) -> None:
        """Apply, then append the record to the current generation (as Service.commit)."""
        self.registry.apply(change)
        with files.journal_path(self.dir, self.gen).open("ab") as f:
            f.write(journal_line(change))
        self.journaled.append(change)

    def run(self, op: tuple[Any, ...], *, liveness: bool) -> None:
        kind = op[0]
        ids = [p.id for p in self.registry]
        if kind == "add":
            _, f, tags, groups, name, now, log = (*op, None)[:7]
            try:
                _, change = self.registry.plan_add(
                    [f], tags=tags, groups=groups, name=name, log=log_of(log), now=now
                )
            except (AlreadyTracked, NameInUse):
                return
            self.commit(change)
        elif kind == "forget" and ids:
            self.commit(Change(next_id=self.registry.next_id, deleted=(ids[op[1] % len(ids)],)))
        elif kind == "die" and ids and liveness:
            self.registry.set_alive(ids[op[1] % len(ids)], False, op[2])
        elif kind == "touch" and ids and liveness:
            self.registry.touch(ids[op[1] % len(ids)], op[2])
        elif kind == "snapshot":
            self.gen += 1
            writer.write_snapshot(self.dir, list(self.registry), self.registry.next_id, self.gen)
            if op[1]:
                for g in files.journal_generations(self.dir):
                    if g < self.gen:
                        files.journal_path(self.dir, g).unlink()
        elif kind == "rotate":
            self.gen += 1


def log_of(choice: str | LogFiles | None) -> Callable[[int], LogFiles] | None:
    """`plan_add`'s `log` for a drawn choice: the daemon's own files are named by id."""
    if choice is None:
        return None
    if choice == "own":
        return lambda i: LogFiles(f"/state/logs/{i}.out", f"/state/logs/{i}.err")
    assert isinstance(choice, LogFiles)
    return lambda _: choice


def loaded(directory: Path, fresh: bool = False) -> tuple[Registry, load.Loaded]:
    reg = Registry()
    result = load.load_state(directory, reg, fresh=fresh)
    return reg, result


# ---- (a) snapshot round trip -----------------------------------------------------------


@given(
    ops=st.lists(add_ops | die_ops | touch_ops | forget_ops, max_size=25),
    gen=st.integers(0, 5),
)
def test_snapshot_round_trip_gives_the_same_registry(ops: list[Any], gen: int) -> None:
    with state_dir() as d:
        live = Daemonish(d)
        for op in ops:
            live.run(op, liveness=True)
        for p in files.journal_generations(d):
            files.journal_path(d, p).unlink()  # the snapshot alone must carry everything
        writer.write_snapshot(d, list(live.registry), live.registry.next_id, gen)
        reg, _ = loaded(d)
        assert wire(reg) == wire(live.registry)


def test_snapshot_file_is_private_versioned_json() -> None:
    with state_dir() as d:
        reg = Registry()
        f = ProcessFacts(pid=42, started_at=1_700_000_000.5, cmd="sleep 300", pgid=None)
        reg.apply(reg.plan_add([f], tags=["db"], now=1_700_000_001.0)[1])
        writer.write_snapshot(d, list(reg), reg.next_id, 3)
        path = d / fmt.SNAPSHOT
        assert path.stat().st_mode & 0o777 == 0o600
        on_disk = json.loads(path.read_bytes())
        assert on_disk["version"] == 1 and on_disk["next_id"] == 2
        assert on_disk["procs"] == wire(reg)[0]
        assert sorted(d.iterdir()) == [path]  # no temp file left behind


@given(cmd=st.text(max_size=20).map(lambda s: s + "\udcff"))
def test_snapshot_round_trips_a_non_utf8_command_line(cmd: str) -> None:
    """psutil reports argv bytes that are not UTF-8 as lone surrogates ('\\udcff')."""
    with state_dir() as d:
        reg = Registry()
        f = ProcessFacts(pid=42, started_at=1_700_000_000.5, cmd=cmd, pgid=None)
        reg.apply(reg.plan_add([f], now=1_700_000_001.0)[1])
        writer.write_snapshot(d, list(reg), reg.next_id, 1)
        again, _ = loaded(d)
        assert wire(again) == wire(reg)


# ---- (b) journal replay ----------------------------------------------------------------


@given(
    ops=st.lists(
        add_ops | forget_ops | die_ops | touch_ops | snapshot_ops | rotate_ops, max_size=30
    )
)
def test_journal_replay_gives_the_live_registry(ops: list[Any]) -> None:
    """Liveness verdicts are not journaled (they are probed again at start), so deaths
    and touches only happen before a fold, which writes them into the snapshot."""
    last_fold = max((i for i, op in enumerate(ops) if op[0] == "snapshot"), default=-1)
    with state_dir() as d:
        live = Daemonish(d)
        for i, op in enumerate(ops):
            live.run(op, liveness=i < last_fold)
        reg, _ = loaded(d)
        note(f"journal files: {files.journal_generations(d)}, gen {live.gen}")
        assert wire(reg) == wire(live.registry)


@given(ops=st.lists(add_ops | forget_ops, min_size=1, max_size=20))
def test_replaying_the_journal_twice_changes_nothing(ops: list[Any]) -> None:
    """Applying a Change is idempotent: a journal replayed over a snapshot that already
    holds it (a crash between the snapshot write and the journal deletion) is harmless."""
    with state_dir() as d:
        live = Daemonish(d)
        for op in ops:
            live.run(op, liveness=False)
        assume(live.journaled)
        reg = Registry()
        for change in [*live.journaled, *live.journaled]:
            reg.apply(change)
        assert wire(reg) == wire(live.registry)


def test_journal_records_a_non_utf8_command_line() -> None:
    """A process whose argv is not UTF-8 (psutil gives '\\udcff') is journaled and
    replayed like any other."""
    with state_dir() as d:
        live = Daemonish(d)
        f = ProcessFacts(pid=42, started_at=1_700_000_000.5, cmd="python x.py \udcff", pgid=7)
        live.run(("add", f, ["db"], [], None, 1_700_000_001.0), liveness=False)
        reg, _ = loaded(d)
        assert wire(reg) == wire(live.registry)


# ---- (c) a torn last journal line ------------------------------------------------------


@given(
    ops=st.lists(add_ops | forget_ops, max_size=15),
    last=add_ops,
    data=st.data(),
)
def test_torn_last_journal_line_is_ignored(ops: list[Any], last: Any, data: st.DataObject) -> None:
    with state_dir() as d:
        live = Daemonish(d)
        for op in ops:
            live.run(op, liveness=False)
        before = wire(live.registry)
        _, f, tags, groups, name, now, log = last
        try:
            _, change = live.registry.plan_add(
                [f], tags=tags, groups=groups, name=name, log=log_of(log), now=now
            )
        except (AlreadyTracked, NameInUse):
            change = Change(next_id=live.registry.next_id + 1)
        line = journal_line(change)
        cut = data.draw(st.integers(1, len(line) - 1), label="bytes of the torn line")
        with files.journal_path(d, live.gen).open("ab") as fh:
            fh.write(line[:cut])  # never the newline: the write was torn, never answered
        reg, _ = loaded(d)
        assert wire(reg) == before


@given(
    ops=st.lists(add_ops, min_size=1, max_size=5),
    torn=st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"\n", b"x")),
)
def test_after_a_torn_line_new_records_go_to_a_new_generation(ops: list[Any], torn: bytes) -> None:
    """Appending after a torn tail would glue the next record onto it: the daemon must
    write to a journal generation newer than every one on disk."""
    with state_dir() as d:
        live = Daemonish(d)
        for op in ops:
            live.run(op, liveness=False)
        with files.journal_path(d, live.gen).open("ab") as fh:
            fh.write(torn)
        _, result = loaded(d)
        assert result.next_gen > max(files.journal_generations(d))


# ---- (d) a corrupt snapshot ------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | plain_text,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(plain_text, kids, max_size=3),
    max_leaves=10,
)
not_an_object = json_values.filter(lambda v: not isinstance(v, dict))
not_a_proc = json_values.filter(lambda v: not isinstance(v, dict) or "id" not in v)
wrong_shapes = st.one_of(
    not_an_object,
    st.dictionaries(plain_text, json_values, max_size=3).filter(lambda o: o.get("version") != 1),
    st.fixed_dictionaries(
        {"version": st.just(1), "next_id": json_values.filter(lambda v: type(v) is not int)},
        optional={"procs": json_values, "journal": st.integers(0, 3)},
    ),
    st.fixed_dictionaries(
        {
            "version": st.just(1),
            "next_id": st.integers(1, 100),
            "procs": json_values.filter(lambda v: not isinstance(v, list)),
        }
    ),
    st.fixed_dictionaries(
        {
            "version": st.just(1),
            "next_id": st.integers(1, 100),
            "procs": st.lists(not_a_proc, min_size=1, max_size=3),
        }
    ),
)
corrupt_snapshots = st.one_of(
    st.binary(min_size=1, max_size=200).filter(lambda b: not _is_json(b)),
    wrong_shapes.map(lambda v: json.dumps(v).encode()),
)


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except (ValueError, RecursionError):
        return False
    return True


@given(bad=corrupt_snapshots, ops=st.lists(add_ops | forget_ops, max_size=10))
def test_corrupt_snapshot_is_moved_aside_and_the_journal_still_loads(
    bad: bytes, ops: list[Any]
) -> None:
    """A corrupt snapshot with no previous generation: the journal after it is only a
    part of the state, so the load is refused, touching nothing; a fresh load sets the
    snapshot and the journal aside and starts empty, with ids above the used ones."""
    with state_dir() as d:
        live = Daemonish(d)
        for op in ops:
            live.run(op, liveness=False)
        (d / fmt.SNAPSHOT).write_bytes(bad)
        before = sorted((p.name, p.read_bytes()) for p in d.iterdir())
        with pytest.raises(UnusableState, match="--fresh") as refused:
            loaded(d)
        assert str(d / fmt.SNAPSHOT) in str(refused.value)
        assert sorted((p.name, p.read_bytes()) for p in d.iterdir()) == before
        reg, result = loaded(d, fresh=True)
        aside = sorted(d.glob(f"{fmt.SNAPSHOT}.corrupt-*"))
        assert len(aside) == 1, aside
        assert aside[0].read_bytes() == bad
        assert not (d / fmt.SNAPSHOT).exists()
        warning = [w for w in result.warnings if str(aside[0]) in w]
        assert warning and str(d / fmt.SNAPSHOT) in warning[0], result.warnings
        assert list(reg) == [] and files.journal_generations(d) == []
        assert reg.next_id >= live.registry.next_id


@given(bad=st.lists(corrupt_snapshots, min_size=2, max_size=3, unique=True))
def test_every_corrupt_snapshot_moved_aside_is_kept(bad: list[bytes]) -> None:
    """Nothing is deleted: starts that each find a corrupt snapshot (a daemon restarted
    in a loop, within one second) keep every one of them."""
    with state_dir() as d:
        for data in bad:
            (d / fmt.SNAPSHOT).write_bytes(data)
            loaded(d, fresh=True)
        kept = sorted(p.read_bytes() for p in d.glob(f"{fmt.SNAPSHOT}.corrupt-*"))
        assert kept == sorted(bad)
