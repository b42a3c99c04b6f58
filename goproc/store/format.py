"""The snapshot and journal codecs: bytes in, values out, and back.  Pure: no trio, no
files opened here (a snapshot is read from a file object the caller opened).

- snapshot: one JSON document, `{"version": 1, "next_id": N, "journal": G, "boot": {...},
  "next_rule": R?, "rules": [...]?, "next_adopt": A?, "adopts": [...]?, "procs": [...]}`,
  laid out one entry per line so it loads a chunk of entries at a time
  (`read_snapshot`); any other valid layout is read whole.  The alert and adoption
  rules (`goproc.rpc.rules`) are few: they sit in the first line.
- journal record: one line per `goproc.model.Change`, `{"next_id": N, "reset": true?,
  "deleted": [ids]?, "rules_deleted": [ids]?, "next_rule": R?, "rules_put": [rules]?,
  "adopts_deleted": [ids]?, "next_adopt": A?, "adopts_put": [rules]?,
  "put": [entries]?}`.
"""

from __future__ import annotations

import json
import math
import re
from array import array
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, TypeVar

import attrs

from goproc.model import AdoptRule, Change, Proc, Rule
from goproc.rpc.convert import CONVERTER, FAST_CONVERTER
from goproc.rpc.decoding import ID_MAX, entry_from_dict
from goproc.rpc.entries import dumps, entry_lines
from goproc.rpc.rules import adopt_dict, rule_dict

SNAPSHOT = "goproc.snapshot.json"
SNAPSHOT_VERSION = 1
JOURNAL_RE = re.compile(r"goproc\.journal\.([0-9]+)")  # ASCII: \d takes other digits
_CHUNK = 1000  # entries parsed per json.loads: fast, without one huge value in memory
_LINE_HEAD = b',"procs":[\n'
BOOT_TIME_MAX = 1e11  # seconds since the epoch: the year 5138


def journal_name(gen: int) -> str:
    return f"goproc.journal.{gen}"


class SnapshotError(ValueError):
    """A snapshot that cannot be read; the message says where and why."""


@attrs.frozen
class Header:
    """A snapshot's fields besides its entries."""

    next_id: int
    journal: int  # the first journal generation not folded in
    boot: dict[str, Any] | None  # {"id": boot id, "time": boot-time anchor}, if known
    rules: tuple[Rule, ...] = ()
    next_rule: int = 1
    adopts: tuple[AdoptRule, ...] = ()
    next_adopt: int = 1


@attrs.frozen
class RuleState:
    """The alert and adoption rules a snapshot keeps, and their counters."""

    rules: tuple[Rule, ...] = ()
    next_rule: int = 1
    adopts: tuple[AdoptRule, ...] = ()
    next_adopt: int = 1


NO_RULES = RuleState()


# ---- snapshot --------------------------------------------------------------------------


def snapshot_head(
    next_id: int,
    journal_gen: int,
    boot: dict[str, Any] | None = None,
    rules: RuleState = NO_RULES,
) -> bytes:
    """A snapshot file's first line: its header fields and the opening of its entries."""
    head: dict[str, Any] = {"version": SNAPSHOT_VERSION, "next_id": next_id}
    head["journal"] = journal_gen
    if boot is not None:
        head["boot"] = boot
    if rules.rules or rules.next_rule > 1:
        head["next_rule"] = rules.next_rule
        head["rules"] = [rule_dict(r) for r in rules.rules]
    if rules.adopts or rules.next_adopt > 1:
        head["next_adopt"] = rules.next_adopt
        head["adopts"] = [adopt_dict(r) for r in rules.adopts]
    return dumps(head)[:-1] + _LINE_HEAD


def snapshot_tail(empty: bool) -> bytes:
    return b"]}\n" if empty else b"\n]}\n"


def snapshot_chunks(
    procs: Sequence[Proc],
    next_id: int,
    journal_gen: int,
    boot: dict[str, Any] | None = None,
    rules: RuleState = NO_RULES,
) -> Iterator[bytes]:
    """The snapshot file in pieces, a chunk of entries at a time, so writing 100,000
    entries never holds their encoding whole."""
    yield snapshot_head(next_id, journal_gen, boot, rules)
    for n, chunk in enumerate(entry_lines(procs, sep=b",\n")):
        yield (b",\n" if n else b"") + chunk
    yield snapshot_tail(not procs)


def snapshot_bytes(
    procs: Sequence[Proc],
    next_id: int,
    journal_gen: int,
    boot: dict[str, Any] | None = None,
    rules: RuleState = NO_RULES,
) -> bytes:
    return b"".join(snapshot_chunks(procs, next_id, journal_gen, boot, rules))


@attrs.frozen
class Layout:
    """Where each entry's encoding lies in a snapshot file: entry `i` is the bytes from
    `starts[i]` to `starts[i + 1] - 2`; the entries at the indexes in `skip` are laid out
    otherwise than goproc encodes them (their keys in another order)."""

    starts: array[int]
    skip: frozenset[int]


def read_snapshot(f: BinaryIO) -> tuple[list[Proc], Header]:
    """A snapshot file -> (entries, header); raises SnapshotError."""
    procs, header, _ = read_snapshot_laid_out(f)
    return procs, header


def header_of_line(first: bytes) -> Header:
    """The header of a snapshot laid out one entry per line, from its first line;
    raises SnapshotError."""
    if not first.endswith(_LINE_HEAD):
        raise SnapshotError("not laid out one entry per line")
    try:
        header = json.loads(first[: -len(_LINE_HEAD)] + b"}")
    except (ValueError, RecursionError) as e:
        raise SnapshotError(f"not valid JSON: {e}") from None
    return _check_header(header)


def read_snapshot_laid_out(f: BinaryIO) -> tuple[list[Proc], Header, Layout | None]:
    """`read_snapshot`, and the file's `Layout` when it is laid out one entry per line
    (as goproc writes it); raises SnapshotError."""
    first = f.readline()
    if not first.endswith(_LINE_HEAD):
        return (*_parse_whole(first + f.read()), None)
    head = header_of_line(first)
    procs: list[Proc] = []
    chunk: list[bytes] = []
    starts = array("q")
    skip: set[int] = set()
    pos = len(first)
    for line in f:
        if line == b"]}\n":
            if f.read().strip():
                raise SnapshotError("data after the end")
            procs.extend(_structure_lines(chunk, len(procs), skip))
            if procs:
                starts.append(pos + 1)  # as if the last entry ended in ",\n" too
            return procs, head, Layout(starts, frozenset(skip))
        starts.append(pos)
        pos += len(line)
        chunk.append(line[:-2] if line.endswith(b",\n") else line.rstrip(b"\n"))
        if len(chunk) == _CHUNK:
            procs.extend(_structure_lines(chunk, len(procs), skip))
            chunk = []
    raise SnapshotError("truncated: no end of the entry list")


def parse_snapshot(data: bytes) -> tuple[list[Proc], Header]:
    """Snapshot bytes -> (entries, header); raises SnapshotError."""
    import io

    return read_snapshot(io.BytesIO(data))


def _parse_whole(data: bytes) -> tuple[list[Proc], Header]:
    """Snapshot bytes of any layout, read as one JSON document."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise SnapshotError(f"not valid JSON: {e}") from None
    head = _check_header(obj)
    procs_obj = obj.get("procs")
    if not isinstance(procs_obj, list):
        raise SnapshotError("procs is missing or not an array")
    try:
        return [CONVERTER.structure(p, Proc) for p in procs_obj], head
    except Exception as e:  # cattrs raises several kinds; all mean "not ours"
        raise SnapshotError(f"bad entry: {e}") from None


def _check_header(obj: Any) -> Header:
    if not isinstance(obj, dict) or obj.get("version") != SNAPSHOT_VERSION:
        raise SnapshotError(f"not a version {SNAPSHOT_VERSION} goproc snapshot")
    next_id, gen, boot = obj.get("next_id"), obj.get("journal", 0), obj.get("boot")
    if type(next_id) is not int or type(gen) is not int:
        raise SnapshotError("next_id or journal is missing or not an integer")
    if not 1 <= next_id <= ID_MAX:
        raise SnapshotError(f"next_id: {next_id} is not in 1..{ID_MAX}")
    if not 0 <= gen <= ID_MAX:
        raise SnapshotError(f"journal: {gen} is not in 0..{ID_MAX}")
    if boot is not None:
        anchor: Any = boot.get("time") if isinstance(boot, dict) else None
        if not (
            isinstance(boot, dict)
            and isinstance(boot.get("id"), str)
            and isinstance(anchor, int | float)
            and not isinstance(anchor, bool)
            and math.isfinite(anchor)
            and 0 <= anchor <= BOOT_TIME_MAX
        ):
            raise SnapshotError(f"boot: not a boot id and a finite boot time, got {boot!r:.80}")
    rules, next_rule = _check_rules(
        obj.get("rules", []), obj.get("next_rule", 1), Rule, "rules", "next_rule"
    )
    adopts, next_adopt = _check_rules(
        obj.get("adopts", []), obj.get("next_adopt", 1), AdoptRule, "adopts", "next_adopt"
    )
    return Header(
        next_id=next_id,
        journal=gen,
        boot=boot,
        rules=rules,
        next_rule=next_rule,
        adopts=adopts,
        next_adopt=next_adopt,
    )


R = TypeVar("R", Rule, AdoptRule)


def _check_rules(
    obj: Any, next_rule: Any, kind: type[R], key: str, counter: str
) -> tuple[tuple[R, ...], int]:
    """A snapshot's rules of one kind (under `key`, numbered below `counter`): each one
    a rule, numbers unique and below the counter, names unique (a book rests on both)."""
    if type(next_rule) is not int or not 1 <= next_rule <= ID_MAX:
        raise SnapshotError(f"{counter}: not an integer in 1..{ID_MAX}")
    if not isinstance(obj, list):
        raise SnapshotError(f"{key}: not an array")
    try:
        rules = tuple(CONVERTER.structure(r, kind) for r in obj)
    except Exception as e:  # cattrs raises several kinds; all mean "not ours"
        raise SnapshotError(f"{key}: bad rule: {e}") from None
    ids = [r.id for r in rules]
    names = [r.name for r in rules if r.name is not None]
    if len(set(ids)) != len(ids) or len(set(names)) != len(names):
        raise SnapshotError(f"{key}: a rule number or name appears twice")
    if any(i >= next_rule for i in ids):
        raise SnapshotError(f"{key}: a rule number is not below {counter}")
    return rules, next_rule


def check_entries(procs: Sequence[Proc], header: Header) -> None:
    """The rules a loaded snapshot must keep, or SnapshotError: ids unique and below
    next_id, names unique (the registry's indexes rest on both)."""
    ids: set[int] = set()
    names: set[str] = set()
    for p in procs:
        if not 1 <= p.id < header.next_id:
            raise SnapshotError(f"entry id {p.id} is not in 1..next_id-1 ({header.next_id - 1})")
        if p.id in ids:
            raise SnapshotError(f"entry id {p.id} appears twice")
        ids.add(p.id)
        if p.name is not None:
            if p.name in names:
                raise SnapshotError(f"name {p.name!r} is given to two entries")
            names.add(p.name)


_KEY_ORDER = tuple(a.name for a in attrs.fields(Proc))


def _structure_lines(lines: list[bytes], first: int, skip: set[int]) -> list[Proc]:
    try:
        objs = json.loads(b"[" + b",".join(lines) + b"]")
    except (ValueError, RecursionError) as e:
        raise SnapshotError(f"bad entry after #{first}: {e}") from None
    if not isinstance(objs, list) or len(objs) != len(lines):
        raise SnapshotError(f"bad entry after #{first}: not one entry per line")
    procs = []
    for n, obj in enumerate(objs):
        try:
            procs.append(entry_from_dict(obj))
        except Exception as e:  # BadEntry, or whatever else: all mean "not ours"
            raise SnapshotError(f"bad entry #{first + n + 1}: {e}") from None
        if tuple(obj) != _KEY_ORDER:
            skip.add(first + n)
    return procs


# ---- journal records -------------------------------------------------------------------


def change_line(change: Change) -> bytes:
    """A journal record: one line."""
    head: dict[str, Any] = {"next_id": change.next_id}
    if change.reset:
        head["reset"] = True
    if change.deleted:
        head["deleted"] = list(change.deleted)
    if change.rules_deleted:
        head["rules_deleted"] = list(change.rules_deleted)
    if change.next_rule:
        head["next_rule"] = change.next_rule
    if change.rules_put:
        head["rules_put"] = [rule_dict(r) for r in change.rules_put]
    if change.adopts_deleted:
        head["adopts_deleted"] = list(change.adopts_deleted)
    if change.next_adopt:
        head["next_adopt"] = change.next_adopt
    if change.adopts_put:
        head["adopts_put"] = [adopt_dict(r) for r in change.adopts_put]
    parts = [dumps(head)[:-1]]
    if change.put:
        parts += [b',"put":[', b",".join(entry_lines(change.put)), b"]"]
    parts.append(b"}\n")
    return b"".join(parts)


def change_from_json(obj: Any) -> Change:
    """A decoded journal record -> Change; raises what cattrs raises for a bad one."""
    return FAST_CONVERTER.structure(obj, Change)
