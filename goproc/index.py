"""The registry's index values: a key maps to one id (an int: most pids and rare labels
have one entry, and a set costs 200 bytes) or to a set of two or more.  Pure."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import TypeVar

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
