"""The registry against a plain model: a hypothesis state machine plus edge-case examples.

The machine drives `goproc.registry.Registry` directly (it is pure and synchronous) and
keeps its own model: entries as plain dicts by id, the id counter, and the "OS" (which
process, by start time, holds each pid now).  Rules add processes (collisions of tags,
groups and names on purpose, re-adding a tracked process, PID reuse), let processes die,
touch them, forget and undo changes, and list with random filters.  They also make every
mutation of the command set (remove, tag and group add and remove, rename a label, set
and clear a name, reset), each modelled on its own, and check that planning changes
nothing and that applying a mutation's undo restores the registry exactly.  After every
step the indexes are rebuilt from the entries and compared, and the model must agree
exactly.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from hypothesis import event, given, note, settings, strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from goproc.errors import ALREADY_TRACKED, AlreadyTracked, InvalidValue, NameInUse
from goproc.model import Change, LogFiles, Proc, ProcessFacts, Selector
from goproc.registry import Kind, Registry

# Small alphabets, so that tags, groups, names and pids collide often.  Raw labels include
# blanks and padding: the registry must trim, de-duplicate, sort and drop empty ones.
RAW_LABELS = ["db", " db", "db ", "web", "web", "", "  ", "cache", "x y", "Db"]
QUERY_LABELS = ["db", "web", "cache", "x y", "Db", " db", "", "nope"]
NAMES = ["alpha", "beta", "gamma", "a.b-c_9"]
PIDS = [101, 102, 103, 104, 105]
CMDS = ["sleep 300", "python -m http.server", "pid:103", "postgres -D /db", "sleep 30"]
SEARCHES = ["sleep", "300", "python", "", "pid:", "/db", "zz", " "]

KINDS: list[Kind] = ["tags", "groups"]

# The model's own notion of "the same process": start times this close (seconds).
SAME_START_WITHIN = 1.0


def own_log(proc_id: int) -> LogFiles:
    """The files `add` with `log: true` names for an id (the daemon's `logs/` dir)."""
    return LogFiles(f"/state/logs/{proc_id}.out", f"/state/logs/{proc_id}.err")


def model_labels(raw: list[str]) -> tuple[str, ...]:
    """Labels as the issue says they are stored, written out plainly."""
    kept: list[str] = []
    for label in raw:
        label = label.strip()
        if label and label not in kept:
            kept.append(label)
    return tuple(sorted(kept))


def registry_state(reg: Registry) -> Any:
    """Everything a Registry holds, in order, as plain comparable data."""
    return (list(reg._procs.items()), reg.indexes(), reg.next_id)


def rebuilt_indexes(procs: list[Proc]) -> tuple[dict[int, set[int]], dict[str, int], Any, Any]:
    """The indexes as they must be, computed from the entries alone."""
    by_pid: dict[int, set[int]] = {}
    by_name: dict[str, int] = {}
    by_tag: dict[str, set[int]] = {}
    by_group: dict[str, set[int]] = {}
    for p in procs:
        by_pid.setdefault(p.pid, set()).add(p.id)
        if p.name is not None:
            by_name[p.name] = p.id
        for t in p.tags:
            by_tag.setdefault(t, set()).add(p.id)
        for g in p.groups:
            by_group.setdefault(g, set()).add(p.id)
    return by_pid, by_name, by_tag, by_group


def label_lists() -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(RAW_LABELS), max_size=4)


@st.composite
def selectors(draw: st.DrawFn, known_ids: list[int]) -> Selector:
    """A random Selector: each filter absent or a (possibly empty) tuple."""

    def given_often_enough() -> bool:
        # About one filter in four is given, so that many selections match something.
        return draw(st.integers(0, 3)) == 3

    def maybe(strategy: st.SearchStrategy[Any]) -> Any:
        return draw(st.lists(strategy, max_size=3).map(tuple)) if given_often_enough() else None

    id_pool = [*known_ids, 0, max(known_ids, default=0) + 1, 10**6]
    return Selector(
        ids=maybe(st.sampled_from(id_pool)),
        pids=maybe(st.sampled_from([*PIDS, 999])),
        names=maybe(st.sampled_from([*NAMES, "nobody"])),
        tags_any=maybe(st.sampled_from(QUERY_LABELS)),
        tags_all=maybe(st.sampled_from(QUERY_LABELS)),
        groups_any=maybe(st.sampled_from(QUERY_LABELS)),
        groups_all=maybe(st.sampled_from(QUERY_LABELS)),
        alive=draw(st.booleans()) if given_often_enough() else None,
        search=draw(st.sampled_from(SEARCHES)) if given_often_enough() else None,
    )


class RegistryMachine(RuleBasedStateMachine):
    """Registry vs model.  The "OS" maps each pid to the process holding it now."""

    ids = Bundle("ids")
    pids = Bundle("pids")

    def __init__(self) -> None:
        super().__init__()
        self.registry = Registry()
        self.model: dict[int, dict[str, Any]] = {}
        self.next_id = 1
        self.running: dict[int, ProcessFacts] = {}
        self.clock = 1_700_000_000.0

    def tick(self) -> float:
        """Time moves on by more than the start-time tolerance at every event, so two
        processes started at different events are different processes."""
        self.clock += 1.5
        return round(self.clock, 6)

    # ---- the model ---------------------------------------------------------------------

    def model_live_entry(self, pid: int, started_at: float) -> int | None:
        for i, r in sorted(self.model.items()):
            if r["alive"] and r["pid"] == pid and abs(r["started_at"] - started_at) <= 1.0:
                return i
        return None

    def model_names(self) -> set[str]:
        return {r["name"] for r in self.model.values() if r["name"] is not None}

    def model_add(
        self,
        facts: list[ProcessFacts],
        tags: list[str],
        groups: list[str],
        name: str | None,
        log: bool = False,
    ) -> tuple[str, Any]:
        """The expected outcome of plan_add+apply: ("ok", [new ids]) or ("error", ...)."""
        if name is not None and len(facts) > 1:
            return ("invalid", None)
        if log and len(facts) != 1:
            return ("invalid", None)
        if len({f.pid for f in facts}) != len(facts):
            return ("invalid", None)
        for f in facts:
            tracked = self.model_live_entry(f.pid, f.started_at)
            if tracked is not None:
                return ("tracked", tracked)
        if name is not None and name in self.model_names():
            return ("name", None)
        return ("ok", None)

    def model_commit_add(
        self,
        facts: list[ProcessFacts],
        tags: list[str],
        groups: list[str],
        name: str | None,
        now: float,
        log: bool = False,
    ) -> list[int]:
        new_ids = []
        for f in facts:
            for r in self.model.values():
                if (
                    r["pid"] == f.pid
                    and r["alive"]
                    and abs(r["started_at"] - f.started_at) > SAME_START_WITHIN
                ):
                    r["alive"] = False  # the pid belongs to a newer process now
                    r["exited_at"] = now
                    event("add: pid reuse marks an older entry dead")
            self.model[self.next_id] = {
                "id": self.next_id,
                "pid": f.pid,
                "pgid": f.pgid,
                "cmd": f.cmd,
                "name": name,
                "alive": True,
                "tags": model_labels(tags),
                "groups": model_labels(groups),
                "started_at": f.started_at,
                "added_at": now,
                "last_seen": now,
                "exited_at": None,
                "log": own_log(self.next_id) if log else None,
            }
            new_ids.append(self.next_id)
            self.next_id += 1
        return new_ids

    def model_select(self, sel: Selector) -> list[int]:
        """The model's own filter (not Selector.matches): AND of filters, OR within *_any."""
        out = []
        for i in sorted(self.model):
            r = self.model[i]
            if sel.ids is not None and i not in set(sel.ids):
                continue
            if sel.pids is not None and r["pid"] not in set(sel.pids):
                continue
            if sel.names is not None and (r["name"] is None or r["name"] not in set(sel.names)):
                continue
            if sel.tags_any is not None and not set(sel.tags_any) & set(r["tags"]):
                continue
            if sel.tags_all is not None and not set(sel.tags_all) <= set(r["tags"]):
                continue
            if sel.groups_any is not None and not set(sel.groups_any) & set(r["groups"]):
                continue
            if sel.groups_all is not None and not set(sel.groups_all) <= set(r["groups"]):
                continue
            if sel.alive is not None and r["alive"] is not sel.alive:
                continue
            if sel.search is not None and r["cmd"].find(sel.search) < 0:
                continue
            out.append(i)
        return out

    def model_proc(self, proc_id: int) -> Proc:
        return Proc(**self.model[proc_id])

    # ---- rules -------------------------------------------------------------------------

    @initialize(target=pids, pid=st.sampled_from(PIDS), cmd=st.sampled_from(CMDS))
    def first_process(self, pid: int, cmd: str) -> int:
        # `start_process` is a rule too: its decorator types what a call returns as what
        # a rule may give its bundle (`MultipleResults | Any`); it returns the pid.
        return cast(int, self.start_process(pid, cmd, None))

    @initialize(
        target=ids,
        tags=st.lists(label_lists(), min_size=3, max_size=3),
        groups=st.lists(label_lists(), min_size=3, max_size=3),
        name=st.none() | st.sampled_from(NAMES),
    )
    def first_entries(
        self, tags: list[list[str]], groups: list[list[str]], name: str | None
    ) -> Any:
        """A few labelled entries to start from, so the mutations below have something
        to act on from the first step."""
        new_ids = []
        for n, pid in enumerate(PIDS[-3:]):
            self.start_process(pid, CMDS[n], None)
            new_ids += self._add([pid], tags[n], groups[n], name if n == 0 else None)
        return multiple(*new_ids)

    @rule(
        target=pids,
        pid=st.sampled_from(PIDS),
        cmd=st.sampled_from(CMDS),
        pgid=st.none() | st.integers(1, 3),
    )
    def start_process(self, pid: int, cmd: str, pgid: int | None) -> int:
        """A process starts on `pid`; when one ran there, it exited and the pid is reused."""
        self.running[pid] = ProcessFacts(
            pid=pid, started_at=round(self.tick(), 2), cmd=cmd, pgid=pgid
        )
        return pid

    def _add(
        self,
        pids: list[int],
        tags: list[str],
        groups: list[str],
        name: str | None,
        log: bool = False,
    ) -> list[int]:
        facts = [self.running[p] for p in pids]
        expected, detail = self.model_add(facts, tags, groups, name, log)
        event(f"add: {expected}")
        before = registry_state(self.registry)
        now = self.tick()
        try:
            added, change = self.registry.plan_add(
                facts, tags=tags, groups=groups, name=name, log=own_log if log else None, now=now
            )
        except AlreadyTracked as e:
            assert expected == "tracked", (expected, e)
            assert e.code == ALREADY_TRACKED
            assert e.data == {"id": detail}
            assert registry_state(self.registry) == before
            return []
        except NameInUse as e:
            assert expected == "name", (expected, e)
            assert registry_state(self.registry) == before
            return []
        except InvalidValue as e:
            assert expected == "invalid", (expected, e)
            assert registry_state(self.registry) == before
            return []
        assert expected == "ok", f"expected {expected} ({detail}), the registry added"
        assert registry_state(self.registry) == before, "plan_add must not change anything"
        self.registry.apply(change)
        new_ids = self.model_commit_add(facts, tags, groups, name, now, log)
        assert added == [self.model_proc(i) for i in new_ids]
        return new_ids

    @rule(
        target=ids,
        pid=pids,
        tags=label_lists(),
        groups=label_lists(),
        name=st.none() | st.sampled_from(NAMES),
        log=st.booleans(),
    )
    def add(self, pid: int, tags: list[str], groups: list[str], name: str | None, log: bool) -> Any:
        if pid not in self.running:
            return multiple()  # the probe would say "no such process"
        return multiple(*self._add([pid], tags, groups, name, log))

    @rule(
        target=ids,
        pids=st.lists(pids, min_size=2, max_size=3),
        tags=label_lists(),
        groups=label_lists(),
        name=st.none() | st.sampled_from(NAMES),
        log=st.booleans(),
    )
    def add_several(
        self, pids: list[int], tags: list[str], groups: list[str], name: str | None, log: bool
    ) -> Any:
        """All or nothing; a pid given twice, or a name or a log for several, is refused."""
        if not all(p in self.running for p in pids):
            return multiple()
        return multiple(*self._add(pids, tags, groups, name, log))

    @rule(proc_id=ids)
    def die(self, proc_id: int) -> None:
        """The tracked process exits: the ticker records it dead, and its pid is free."""
        now = self.tick()
        r = self.model.get(proc_id)
        changed = self.registry.set_alive(proc_id, False, now)
        if r is None or not r["alive"]:
            assert changed is None
            return
        r["alive"] = False
        r["exited_at"] = now
        assert changed == self.model_proc(proc_id)
        current = self.running.get(r["pid"])
        if current is not None and current.started_at == r["started_at"]:
            del self.running[r["pid"]]

    @rule(proc_id=ids)
    def touch(self, proc_id: int) -> None:
        now = self.tick()
        self.registry.touch(proc_id, now)
        r = self.model.get(proc_id)
        if r is not None and r["alive"]:
            r["last_seen"] = now

    @rule(data=st.data())
    def forget(self, data: st.DataObject) -> None:
        """A Change that deletes entries (ids are never given back)."""
        chosen = data.draw(st.lists(st.sampled_from([*sorted(self.model), 999]), max_size=3))
        self.registry.apply(Change(next_id=self.registry.next_id, deleted=tuple(chosen)))
        for i in chosen:
            self.model.pop(i, None)

    @rule(
        pid=pids,
        tags=label_lists(),
        groups=label_lists(),
        name=st.none() | st.sampled_from(NAMES),
    )
    def add_then_undo(self, pid: int, tags: list[str], groups: list[str], name: str | None) -> None:
        """Applying the undo of an add restores the registry exactly; only the id counter
        stays advanced, since ids are never reused."""
        if pid not in self.running:
            return
        facts = self.running[pid]
        if self.model_add([facts], tags, groups, name)[0] != "ok":
            return
        before = registry_state(self.registry)
        added, change = self.registry.plan_add(
            [facts], tags=tags, groups=groups, name=name, now=self.tick()
        )
        undo = self.registry.apply(change)
        assert self.registry.get(added[0].id) == added[0]
        self.registry.apply(undo)
        self.next_id += len(added)
        assert registry_state(self.registry)[:-1] == before[:-1]
        assert self.registry.next_id == self.next_id

    @rule(data=st.data())
    def forget_then_undo(self, data: st.DataObject) -> None:
        """Undoing a deletion brings the entries back at their ids, in id order."""
        chosen = data.draw(st.lists(st.sampled_from([*sorted(self.model), 999]), max_size=3))
        before = registry_state(self.registry)
        undo = self.registry.apply(Change(next_id=self.registry.next_id, deleted=tuple(chosen)))
        self.registry.apply(undo)
        assert registry_state(self.registry) == before

    @rule(data=st.data())
    def list_with_filter(self, data: st.DataObject) -> None:
        sel = data.draw(selectors(sorted(self.model)))
        got = self.registry.select(sel)
        want = [self.model_proc(i) for i in self.model_select(sel)]
        event("list: some match" if want else "list: none match")
        assert got == want, sel
        assert got == [p for p in self.registry if sel.matches(p)], sel

    # ---- the command set's mutations ---------------------------------------------------

    def holder_of(self, name: str) -> int | None:
        """The id of the entry (alive or dead) carrying `name`, if any."""
        return next((i for i, r in self.model.items() if r["name"] == name), None)

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        """plan_remove forgets the given entries that exist; unknown ids are ignored."""
        chosen = data.draw(st.lists(st.sampled_from([*sorted(self.model), 999]), max_size=3))
        before = registry_state(self.registry)
        change = self.registry.plan_remove(chosen)
        assert registry_state(self.registry) == before, "plan_remove must not change anything"
        assert set(change.deleted) == {i for i in chosen if i in self.model}
        assert change.put == () and not change.reset and change.next_id == self.next_id
        self.registry.apply(change)
        for i in chosen:
            self.model.pop(i, None)
        event(f"remove: {len(set(chosen) - {999})} chosen")

    @precondition(lambda self: bool(self.model))
    @rule(
        data=st.data(),
        kind=st.sampled_from(KINDS),
        adding=st.booleans(),
        raw=label_lists(),
    )
    def relabel(self, data: st.DataObject, kind: Kind, adding: bool, raw: list[str]) -> None:
        """tag/group add or rm on some entries: labels normalized as stored; entries whose
        labels end up the same are returned but not written."""
        chosen = data.draw(
            st.lists(st.sampled_from(sorted(self.model)), min_size=1, max_size=3, unique=True)
        )
        before = registry_state(self.registry)
        if adding:
            out, change = self.registry.plan_labels(chosen, kind, add=raw)
        else:
            out, change = self.registry.plan_labels(chosen, kind, remove=raw)
        assert registry_state(self.registry) == before, "plan_labels must not change anything"
        self.registry.apply(change)
        given_labels = set(model_labels(raw))
        written = set()
        for i in chosen:
            r = self.model[i]
            if adding:
                labels = model_labels([*r[kind], *given_labels])
            else:
                labels = tuple(x for x in r[kind] if x not in given_labels)
            if labels != r[kind]:
                written.add(i)
            r[kind] = labels
        event(f"relabel: {len(written)} of {len(chosen)} changed")
        assert out == [self.model_proc(i) for i in chosen]
        assert {p.id for p in change.put} == written
        assert change.next_id == self.next_id

    @rule(
        kind=st.sampled_from(KINDS),
        old=st.sampled_from([*RAW_LABELS, "nope"]),
        new=st.sampled_from(RAW_LABELS),
    )
    def rename_label(self, kind: Kind, old: str, new: str) -> None:
        """Every entry carrying `old` (trimmed) carries `new` instead, in one change
        (none when they are the same); an empty name is refused and changes nothing."""
        before = registry_state(self.registry)
        old_label, new_label = old.strip(), new.strip()
        if not old_label or not new_label:
            with pytest.raises(InvalidValue):
                self.registry.plan_rename_label(kind, old, new)
            assert registry_state(self.registry) == before
            event("rename: refused")
            return
        change = self.registry.plan_rename_label(kind, old, new)
        assert registry_state(self.registry) == before, "planning must not change anything"
        holders = [i for i in sorted(self.model) if old_label in self.model[i][kind]]
        # Renaming x to x changes no entry: the count it reports is 0.
        changed = holders if old_label != new_label else []
        assert [p.id for p in change.put] == changed, "the count a rename reports"
        assert change.deleted == () and change.next_id == self.next_id
        self.registry.apply(change)
        for i in holders:
            r = self.model[i]
            r[kind] = model_labels([*(x for x in r[kind] if x != old_label), new_label])
        event(f"rename: {'some' if holders else 'no'} entries carry it")

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), clear=st.booleans())
    def set_name(self, data: st.DataObject, clear: bool) -> None:
        """Names are unique over all entries, alive or dead; None clears; an entry may be
        given the name it already has.  Names in use are drawn often, to clash."""
        proc_id = data.draw(st.sampled_from(sorted(self.model)))
        in_use = sorted(self.model_names())
        pool = in_use if bool(in_use) and data.draw(st.booleans()) else NAMES
        name = None if clear else data.draw(st.sampled_from(pool))
        before = registry_state(self.registry)
        holder = None if name is None else self.holder_of(name)
        if holder is not None and holder != proc_id:
            with pytest.raises(NameInUse):
                self.registry.plan_set_name(proc_id, name)
            assert registry_state(self.registry) == before
            event("name: in use")
            return
        proc, change = self.registry.plan_set_name(proc_id, name)
        assert registry_state(self.registry) == before, "planning must not change anything"
        unchanged = self.model[proc_id]["name"] == name
        self.model[proc_id]["name"] = name
        assert proc == self.model_proc(proc_id)
        assert change.put == (() if unchanged else (proc,))
        self.registry.apply(change)
        event("name: cleared" if name is None else "name: set")

    @precondition(lambda self: len(self.model) >= 3)
    @rule()
    def reset(self) -> None:
        """Everything is forgotten and ids start at 1 again.  (Only once a few entries
        exist: a rule without arguments is drawn often, and would keep the registry
        nearly empty.)"""
        before = registry_state(self.registry)
        change = self.registry.plan_reset()
        assert registry_state(self.registry) == before, "planning must not change anything"
        self.registry.apply(change)
        event(f"reset: {'some' if self.model else 'no'} entries forgotten")
        self.model.clear()
        self.next_id = 1
        assert self.registry.select(Selector()) == []

    @precondition(lambda self: bool(self.model))
    @rule(
        data=st.data(),
        which=st.sampled_from(["remove", "labels", "rename", "name", "reset"]),
        kind=st.sampled_from(KINDS),
        raw=label_lists(),
        name=st.none() | st.sampled_from(NAMES),
    )
    def mutation_then_undo(
        self, data: st.DataObject, which: str, kind: Kind, raw: list[str], name: str | None
    ) -> None:
        """The undo of any mutation restores the registry exactly, id counter included
        (the daemon applies it when a change cannot be journaled)."""
        ids = sorted(self.model)
        chosen = data.draw(st.lists(st.sampled_from(ids), min_size=1, max_size=3, unique=True))
        if which == "remove":
            change = self.registry.plan_remove(chosen)
        elif which == "labels":
            _, change = self.registry.plan_labels(chosen, kind, add=raw, remove=raw[:1])
        elif which == "rename":
            old = data.draw(st.sampled_from(["db", "web", "cache", "x y", "Db"]))
            change = self.registry.plan_rename_label(kind, old, data.draw(st.sampled_from(NAMES)))
        elif which == "name":
            if name is not None and self.holder_of(name) not in (None, chosen[0]):
                return  # a clash: nothing to undo (set_name checks the refusal)
            _, change = self.registry.plan_set_name(chosen[0], name)
        else:
            change = self.registry.plan_reset()
        before = registry_state(self.registry)
        undo = self.registry.apply(change)
        self.registry.apply(undo)
        assert registry_state(self.registry) == before, which
        event(f"undo: {which}")

    # ---- invariants --------------------------------------------------------------------

    @invariant()
    def entries_agree_with_model(self) -> None:
        assert [p.id for p in self.registry] == sorted(self.model)
        for p in self.registry:
            assert p == self.model_proc(p.id)
        assert self.registry.next_id == self.next_id
        assert len(self.registry) == len(self.model)

    @invariant()
    def indexes_agree_with_entries(self) -> None:
        reg = self.registry
        by_pid, by_name, by_tag, by_group = rebuilt_indexes(list(reg))
        indexes = reg.indexes()
        assert indexes["pid"] == by_pid
        assert indexes["name"] == {name: {i} for name, i in by_name.items()}
        assert indexes["tag"] == by_tag
        assert indexes["group"] == by_group

    @invariant()
    def ids_ordered_unique_below_next_id(self) -> None:
        keys = list(self.registry._procs)
        assert keys == sorted(set(keys))
        assert all(self.registry._procs[k].id == k for k in keys)
        assert all(k < self.registry.next_id for k in keys)

    @invariant()
    def names_unique(self) -> None:
        names = [p.name for p in self.registry if p.name is not None]
        assert len(names) == len(set(names))


RegistryMachine.TestCase.settings = settings(stateful_step_count=40)
TestRegistryAgainstModel = RegistryMachine.TestCase


# ---- examples of the edge cases --------------------------------------------------------


def _registry_with(*labelled: tuple[list[str], list[str]]) -> Registry:
    reg = Registry()
    for n, (tags, groups) in enumerate(labelled):
        facts = ProcessFacts(pid=200 + n, started_at=1000.0 + n * 10, cmd=f"sleep {n}", pgid=None)
        _, change = reg.plan_add([facts], tags=tags, groups=groups, now=2000.0)
        reg.apply(change)
    return reg


def test_empty_tags_any_matches_nothing() -> None:
    reg = _registry_with((["db"], ["prod"]), ([], []))
    assert reg.select(Selector(tags_any=())) == []
    assert reg.select(Selector(groups_any=())) == []


def test_empty_tags_all_constrains_nothing() -> None:
    reg = _registry_with((["db"], ["prod"]), ([], []))
    assert [p.id for p in reg.select(Selector(tags_all=()))] == [1, 2]
    assert [p.id for p in reg.select(Selector(groups_all=()))] == [1, 2]
    assert [p.id for p in reg.select(Selector(tags_all=(), tags_any=("db",)))] == [1]


def test_empty_id_pid_name_filters_match_nothing() -> None:
    reg = _registry_with((["db"], []))
    assert reg.select(Selector(ids=())) == []
    assert reg.select(Selector(pids=())) == []
    assert reg.select(Selector(names=())) == []


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ([" db ", "db", "web", "", "   ", "web\t"], ("db", "web")),
        (["b", "a", "c", "a"], ("a", "b", "c")),
        (["", " "], ()),
        (["x y", " x y"], ("x y",)),
    ],
)
def test_labels_are_trimmed_deduplicated_sorted_and_empty_dropped(
    raw: list[str], stored: tuple[str, ...]
) -> None:
    reg = _registry_with((raw, raw))
    (p,) = reg
    assert p.tags == stored and p.groups == stored
    assert sorted(reg.indexes()["tag"]) == sorted(stored)


def test_readding_a_live_process_names_its_id() -> None:
    reg = _registry_with(([], []))
    facts = ProcessFacts(pid=200, started_at=1000.0, cmd="sleep 0", pgid=None)
    with pytest.raises(AlreadyTracked) as e:
        reg.plan_add([facts], now=3000.0)
    assert e.value.data == {"id": 1}


def test_pid_reuse_makes_a_new_entry_and_the_old_one_dead() -> None:
    reg = _registry_with((["db"], []))
    newer = ProcessFacts(pid=200, started_at=5000.0, cmd="other", pgid=None)
    added, change = reg.plan_add([newer], now=5001.0)
    reg.apply(change)
    assert [(p.id, p.alive) for p in reg] == [(1, False), (2, True)]
    assert added[0].id == 2 and reg.indexes()["pid"] == {200: {1, 2}}


@given(raw=st.lists(st.text(alphabet=" \tab", max_size=4), max_size=6))
def test_label_normalization_matches_the_plain_definition(raw: list[str]) -> None:
    reg = _registry_with((raw, raw))
    (p,) = reg
    note(repr(p))
    assert p.tags == model_labels(raw)
    assert p.groups == model_labels(raw)


def test_rename_onto_a_label_already_there_merges_them() -> None:
    reg = _registry_with((["old", "new"], []), (["old"], []), (["other"], []))
    change = reg.plan_rename_label("tags", " old", "new ")
    assert [p.id for p in change.put] == [1, 2]
    reg.apply(change)
    assert [p.tags for p in reg] == [("new",), ("new",), ("other",)]
    assert reg.tag_counts() == {"new": 2, "other": 1}


def test_remove_keeps_the_id_counter() -> None:
    reg = _registry_with(([], []), ([], []))
    reg.apply(reg.plan_remove([2, 1, 99]))
    assert len(reg) == 0 and reg.next_id == 3
    facts = ProcessFacts(pid=300, started_at=3000.0, cmd="x", pgid=None)
    added, _ = reg.plan_add([facts], now=3001.0)
    assert added[0].id == 3


def test_reset_restarts_ids_and_frees_names() -> None:
    reg = _registry_with((["db"], ["g"]), ([], []))
    _, change = reg.plan_set_name(1, "alpha")
    reg.apply(change)
    reg.apply(reg.plan_reset())
    assert (len(reg), reg.next_id, reg.tag_counts(), reg.group_counts()) == (0, 1, {}, {})
    facts = ProcessFacts(pid=200, started_at=1000.0, cmd="sleep 0", pgid=None)
    added, change = reg.plan_add([facts], name="alpha", now=5000.0)
    reg.apply(change)
    assert (added[0].id, added[0].name) == (1, "alpha")


def test_name_clash_names_the_holder_and_same_name_is_no_change() -> None:
    reg = _registry_with(([], []), ([], []))
    _, change = reg.plan_set_name(1, "alpha")
    reg.apply(change)
    with pytest.raises(NameInUse) as e:
        reg.plan_set_name(2, "alpha")
    assert e.value.message == "name 'alpha' is already used by id 1"
    proc, change = reg.plan_set_name(1, "alpha")
    assert proc.name == "alpha" and change.put == ()
