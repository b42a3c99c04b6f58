"""The registry's indexes (`Indexes`: by pid, name, tag, group and adoption rule) and
their values: a key maps to one id (an int: most pids and rare labels have one entry,
and a set costs 200 bytes) or to a set of two or more.  Pure."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, TypeVar

from goproc.model import Proc, Selector

K = TypeVar("K")
Ids = int | set[int]  # one id, or a set of two or more


def ids_of(index: Mapping[K, Ids], key: K) -> Collection[int]:
    found = index.get(key)
    if found is None:
        return ()
    return (found,) if isinstance(found, int) else found


def count_ids(ids: Ids) -> int:
    return 1 if isinstance(ids, int) else len(ids)


def union_ids(index: Mapping[K, Ids], keys: Iterable[K]) -> set[int]:
    out: set[int] = set()
    for k in keys:
        out.update(ids_of(index, k))
    return out


def add_id(index: dict[K, Ids], key: K, proc_id: int) -> None:
    found = index.get(key)
    if found is None:
        index[key] = proc_id
    elif isinstance(found, int):
        if found != proc_id:
            index[key] = {found, proc_id}
    else:
        found.add(proc_id)


def discard_id(index: dict[K, Ids], key: K, proc_id: int) -> None:
    found = index.get(key)
    if found is None:
        return
    if isinstance(found, int):
        if found == proc_id:
            del index[key]
        return
    found.discard(proc_id)
    if len(found) == 1:
        index[key] = next(iter(found))


class Indexes:
    """Every index of the registry's entries; the registry adds an entry as it puts it
    and discards it before it changes or goes (`goproc.registry.Registry.apply`)."""

    __slots__ = ("by_group", "by_name", "by_pid", "by_rule", "by_tag")

    def __init__(self) -> None:
        self.by_pid: dict[int, Ids] = {}
        self.by_name: dict[str, int] = {}
        self.by_tag: dict[str, Ids] = {}
        self.by_group: dict[str, Ids] = {}
        self.by_rule: dict[int, Ids] = {}  # adoption rule -> the entries it added

    def add(self, p: Proc) -> None:
        add_id(self.by_pid, p.pid, p.id)
        if p.name is not None:
            self.by_name[p.name] = p.id
        for t in p.tags:
            add_id(self.by_tag, t, p.id)
        for g in p.groups:
            add_id(self.by_group, g, p.id)
        if p.adopted_by is not None:
            add_id(self.by_rule, p.adopted_by, p.id)

    def discard(self, p: Proc) -> None:
        discard_id(self.by_pid, p.pid, p.id)
        if p.name is not None and self.by_name.get(p.name) == p.id:
            del self.by_name[p.name]
        for t in p.tags:
            discard_id(self.by_tag, t, p.id)
        for g in p.groups:
            discard_id(self.by_group, g, p.id)
        if p.adopted_by is not None:
            discard_id(self.by_rule, p.adopted_by, p.id)

    def candidates(self, sel: Selector, known: Collection[int]) -> set[int] | None:
        """The ids the indexed filters of `sel` allow (of `known`, the ids there are), or
        None when it gives no indexed filter."""
        sets: list[Collection[int]] = []
        if sel.ids is not None:
            sets.append({i for i in sel.ids if i in known})
        if sel.pids is not None:
            sets.append(union_ids(self.by_pid, sel.pids))
        if sel.names is not None:
            sets.append({self.by_name[n] for n in sel.names if n in self.by_name})
        if sel.tags_any is not None:
            sets.append(union_ids(self.by_tag, sel.tags_any))
        if sel.groups_any is not None:
            sets.append(union_ids(self.by_group, sel.groups_any))
        for index, keys in ((self.by_tag, sel.tags_all), (self.by_group, sel.groups_all)):
            if keys:  # an empty "all of" constrains nothing
                sets.extend(ids_of(index, k) for k in keys)
        if not sets:
            return None
        sets.sort(key=len)
        out = set(sets[0])  # a copy of the smallest: the indexes stay as they are
        for other in sets[1:]:
            out.intersection_update(other)
        return out

    def as_sets(self) -> dict[str, dict[Any, set[int]]]:
        """Every index as plain sets of ids (for checks and debugging; it copies)."""
        return {
            "pid": {k: set(ids_of(self.by_pid, k)) for k in self.by_pid},
            "name": {k: {i} for k, i in self.by_name.items()},
            "tag": {k: set(ids_of(self.by_tag, k)) for k in self.by_tag},
            "group": {k: set(ids_of(self.by_group, k)) for k in self.by_group},
            "adopted_by": {k: set(ids_of(self.by_rule, k)) for k in self.by_rule},
        }
