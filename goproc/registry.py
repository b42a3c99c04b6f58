"""The indexed registry of tracked processes: pure and synchronous.

No trio, no sockets, no files.  Every mutation is one method call without an `await`,
so it is atomic under trio, and it updates every index (pid, name, tag, group) inside
that call.  Mutations return the `Change` to journal; `apply` replays one.
Lookups that miss raise a domain error from `goproc.errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal

import attrs

from goproc.adoption import AdoptBook
from goproc.errors import AlreadyTracked, InvalidValue, NameInUse, NoMatch
from goproc.index import Indexes, count_ids, ids_of
from goproc.model import (
    AdoptRule,
    Change,
    LogFiles,
    Proc,
    ProcessFacts,
    Rule,
    Selector,
    normalize_labels,
    same_start,
)
from goproc.rulebook import RuleBook

Kind = Literal["tags", "groups"]


class Registry:
    """Entries by id, plus indexes by pid, name, tag and group.

    Invariant: `_procs` iterates in id order (ids only grow), and every index holds
    exactly the ids whose entry carries that key.
    """

    __slots__ = (
        "_ix",
        "_procs",
        "adopts",
        "next_id",
        "revision",
        "rules",
    )

    def __init__(self) -> None:
        # The alert and adoption rules: changed by `apply` only, as entries are.
        self.rules = RuleBook()
        self.adopts = AdoptBook()
        # Grows with every change of an entry but `touch` (last_seen): what is shown of
        # the entries (a scrape) is the same while it stands.
        self.revision = 0
        self._clear()

    def _clear(self) -> None:
        self._procs: dict[int, Proc] = {}
        self._ix = Indexes()
        self.next_id = 1
        self.rules.clear()
        self.adopts.clear()

    # ---- reading -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._procs)

    def __iter__(self) -> Iterator[Proc]:
        return iter(self._procs.values())

    def get(self, proc_id: int) -> Proc | None:
        return self._procs.get(proc_id)

    def _entry(self, proc_id: int) -> Proc:
        try:
            return self._procs[proc_id]
        except KeyError:
            raise NoMatch(f"no entry with id {proc_id}") from None

    def by_name(self, name: str) -> Proc | None:
        proc_id = self._ix.by_name.get(name)
        return None if proc_id is None else self._procs[proc_id]

    def with_pid(self, pid: int) -> list[Proc]:
        return [self._procs[i] for i in sorted(ids_of(self._ix.by_pid, pid))]

    def adopted(self, rule_id: int) -> list[Proc]:
        """The entries adoption rule `rule_id` added (and that are still there)."""
        return [self._procs[i] for i in sorted(ids_of(self._ix.by_rule, rule_id))]

    def select(self, sel: Selector) -> list[Proc]:
        """Entries matching `sel`, sorted by id.  Narrows through the indexes first, so
        a rare tag or a few ids cost their matches, not the registry's size."""
        candidates = self._ix.candidates(sel, self._procs.keys())
        if candidates is None:
            procs: Iterable[Proc] = self._procs.values()
        else:
            procs = (self._procs[i] for i in sorted(candidates))
        alive, search = sel.alive, sel.search
        if alive is None and search is None:
            return list(procs)
        return [
            p
            for p in procs
            if (alive is None or p.alive == alive) and (search is None or search in p.cmd)
        ]

    def live_entry(self, pid: int, started_at: float) -> Proc | None:
        """The alive entry that is this very process (same pid and start time), if any."""
        for i in ids_of(self._ix.by_pid, pid):
            p = self._procs[i]
            if p.alive and same_start(p.started_at, started_at):
                return p
        return None

    def tag_counts(self) -> dict[str, int]:
        return {t: count_ids(ids) for t, ids in sorted(self._ix.by_tag.items())}

    def group_counts(self) -> dict[str, int]:
        return {g: count_ids(ids) for g, ids in sorted(self._ix.by_group.items())}

    def indexes(self) -> dict[str, dict[Any, set[int]]]:
        """Every index as plain sets of ids (for checks and debugging; it copies)."""
        return self._ix.as_sets()

    # ---- mutations -----------------------------------------------------------------

    def plan_add(
        self,
        facts: Sequence[ProcessFacts],
        *,
        tags: Iterable[str] = (),
        groups: Iterable[str] = (),
        name: str | None = None,
        log: Callable[[int], LogFiles] | None = None,
        names: Sequence[str | None] | None = None,
        adopted_by: int | None = None,
        now: float,
    ) -> tuple[list[Proc], Change]:
        """Plan tracking live processes, all or nothing: the new entries and the Change
        that makes them (not applied: pass it to `apply`).  `log` gives the entry's log
        files from its new id (one process only); `names` a name for each process
        (instead of `name`), `adopted_by` the adoption rule that adds them.

        Raises AlreadyTracked when one is tracked alive already (the same pid and start
        time), NameInUse when `name` is taken, InvalidValue when a name is given for
        several processes or a pid is given twice.  Entries whose pid now belongs to one
        of these newer processes are marked dead in the same change.
        """
        if name is not None and len(facts) > 1:
            raise InvalidValue("name: a name can be given to one process only")
        if log is not None and len(facts) != 1:
            raise InvalidValue("log: a log can be given to exactly one process")
        pids = [f.pid for f in facts]
        if len(set(pids)) != len(pids):
            raise InvalidValue("pids: the same pid is given more than once")
        for f in facts:
            existing = self.live_entry(f.pid, f.started_at)
            if existing is not None:
                raise AlreadyTracked(
                    f"pid {f.pid} is already tracked as id {existing.id}", {"id": existing.id}
                )
        given = [name] * len(facts) if names is None else list(names)
        for one in given:
            if one is not None and one in self._ix.by_name:
                raise NameInUse(f"name {one!r} is already used by id {self._ix.by_name[one]}")
        tag_t, group_t = normalize_labels(tags), normalize_labels(groups)
        put: list[Proc] = []
        for f in facts:
            # The pid now belongs to this newer process: older entries are dead.
            for old in self.with_pid(f.pid):
                if old.alive and not same_start(old.started_at, f.started_at):
                    put.append(attrs.evolve(old, alive=False, exited_at=now))
        added = [
            Proc(
                id=self.next_id + n,
                pid=f.pid,
                pgid=f.pgid,
                cmd=f.cmd,
                name=given[n],
                alive=True,
                tags=tag_t,
                groups=group_t,
                started_at=f.started_at,
                added_at=now,
                last_seen=now,
                log=None if log is None else log(self.next_id + n),
                adopted_by=adopted_by,
            )
            for n, f in enumerate(facts)
        ]
        return added, Change(next_id=self.next_id + len(added), put=(*put, *added))

    def plan_remove(self, ids: Iterable[int]) -> Change:
        """Forget these entries (the processes are not touched)."""
        return Change(next_id=self.next_id, deleted=tuple(i for i in ids if i in self._procs))

    def plan_labels(
        self, ids: Iterable[int], kind: Kind, *, add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> tuple[list[Proc], Change]:
        """Add and remove tags or groups (`kind`) on these entries.  Entries whose
        labels do not change are returned but not written."""
        plus, minus = set(normalize_labels(add)), set(normalize_labels(remove))
        out, put = [], []
        for i in ids:
            p = self._entry(i)
            labels = normalize_labels((set(getattr(p, kind)) | plus) - minus)
            new = p if labels == getattr(p, kind) else _with_labels(p, kind, labels)
            out.append(new)
            if new is not p:
                put.append(new)
        return out, Change(next_id=self.next_id, put=tuple(put))

    def plan_rename_label(self, kind: Kind, old: str, new: str) -> Change:
        """Rename a tag or group on every entry that has it, in one change."""
        old_l, new_l = old.strip(), new.strip()
        if not old_l or not new_l:
            raise InvalidValue(f"{'old' if not old_l else 'new'}: must not be blank")
        index = self._ix.by_tag if kind == "tags" else self._ix.by_group
        put = []
        for i in sorted(ids_of(index, old_l)):
            p = self._procs[i]
            labels = normalize_labels([*(x for x in getattr(p, kind) if x != old_l), new_l])
            if labels != getattr(p, kind):  # renaming x to x changes nothing
                put.append(_with_labels(p, kind, labels))
        return Change(next_id=self.next_id, put=tuple(put))

    def plan_set_name(self, proc_id: int, name: str | None) -> tuple[Proc, Change]:
        """Give an entry a unique name, or clear it (`None`)."""
        p = self._entry(proc_id)
        holder = None if name is None else self._ix.by_name.get(name)
        if holder is not None and holder != proc_id:
            raise NameInUse(f"name {name!r} is already used by id {holder}")
        new = attrs.evolve(p, name=name)
        return new, Change(next_id=self.next_id, put=(new,) if new != p else ())

    def plan_reset(self) -> Change:
        """Forget everything, alert and adoption rules too, and start ids at 1 again."""
        return Change(next_id=1, reset=True)

    def set_alive(self, proc_id: int, alive: bool, now: float) -> Proc | None:
        """Record a probe's verdict; returns the new entry when it changed, else None.
        Liveness is not journaled: it is probed again at every start."""
        p = self._procs.get(proc_id)
        if p is None or p.alive == alive:
            return None
        if alive:
            new = attrs.evolve(p, alive=True, last_seen=now, exited_at=None)
        else:
            new = attrs.evolve(p, alive=False, exited_at=now)
        self._procs[proc_id] = new
        self.revision += 1
        return new

    def touch(self, proc_id: int, now: float) -> bool:
        """Move `last_seen` of an alive entry to `now`; whether it was there to move."""
        p = self._procs.get(proc_id)
        if p is None or not p.alive:
            return False
        self._procs[proc_id] = attrs.evolve(p, last_seen=now)
        return True

    def apply(self, change: Change) -> Change:
        """Apply a Change (planned by a mutation, or replayed from a journal), keeping
        every index.  Returns the Change that undoes it (ids are never given back)."""
        undo = self._undo_for(change)
        self.revision += 1
        if change.reset:
            self._clear()
            self.next_id = change.next_id
        self.rules.apply(change)
        self.adopts.apply(change)
        for proc_id in change.deleted:
            self._unindex(proc_id)
            self._procs.pop(proc_id, None)
        last = next(reversed(self._procs), 0)
        out_of_order = False
        for p in change.put:
            out_of_order = out_of_order or (p.id < last and p.id not in self._procs)
            self._unindex(p.id)
            self._procs[p.id] = p
            self._index(p)
        if out_of_order:  # an undo brought back an old id: restore id order
            self._procs = dict(sorted(self._procs.items()))
        self.next_id = max(self.next_id, change.next_id)
        return undo

    def _undo_for(self, change: Change) -> Change:
        if change.reset:
            return Change(
                next_id=self.next_id,
                put=tuple(self._procs.values()),
                reset=True,
                rules_put=tuple(self.rules),
                next_rule=self.rules.next_id,
                adopts_put=tuple(self.adopts),
                next_adopt=self.adopts.next_id,
            )
        touched = {p.id for p in change.put} | set(change.deleted)
        before = tuple(self._procs[i] for i in sorted(touched) if i in self._procs)
        created = tuple(i for i in sorted(touched) if i not in self._procs)
        rules_before, rules_created = self.rules.undo_for(change)
        adopts_before, adopts_created = self.adopts.undo_for(change)
        return Change(
            next_id=self.next_id,
            put=before,
            deleted=created,
            rules_put=rules_before,
            rules_deleted=rules_created,
            adopts_put=adopts_before,
            adopts_deleted=adopts_created,
        )

    def load(
        self,
        procs: Iterable[Proc],
        next_id: int,
        rules: tuple[Rule, ...] = (),
        next_rule: int = 1,
        adopts: tuple[AdoptRule, ...] = (),
        next_adopt: int = 1,
    ) -> None:
        """Replace the content with `procs` and the rules (from a snapshot)."""
        self.revision += 1
        self._clear()
        self.rules.load(rules, next_rule)
        self.adopts.load(adopts, next_adopt)
        for p in sorted(procs, key=lambda p: p.id):
            self._procs[p.id] = p
            self._index(p)
        self.next_id = max(next_id, max(self._procs, default=0) + 1)

    def _index(self, p: Proc) -> None:
        self._ix.add(p)

    def _unindex(self, proc_id: int) -> None:
        p = self._procs.get(proc_id)
        if p is not None:
            self._ix.discard(p)


def _with_labels(p: Proc, kind: Kind, labels: tuple[str, ...]) -> Proc:
    return attrs.evolve(p, tags=labels) if kind == "tags" else attrs.evolve(p, groups=labels)
