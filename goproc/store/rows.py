"""`goproc.snapshot.rows`: the snapshot's entries once more, as rows that load several
times faster than its JSON (no parsing of text: `marshal` of plain tuples, floats for
the times), so a daemon with 100,000 entries starts in about a second.

A cache, never the record: written beside each snapshot of `ROWS_MIN` entries or more
(smaller ones load fast anyway, and the file is removed), and used only when it names
the snapshot file exactly as it is now (device, inode, size, mtime), was made by this
Python, and every row is a valid entry in id order.  Anything else (missing, stale,
torn, foreign) is ignored: the snapshot's JSON is read as always, and the next write
replaces the rows.  Written without fsync: a rows file lost or torn by a crash is
simply not used.  Blocking: run in a worker thread (or before serving).  No trio.
"""

from __future__ import annotations

import marshal
import math
import operator
import os
import sys
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import attrs

from goproc.model import LogFiles, Proc, log_path_problem
from goproc.rpc.decoding import BadEntry, plain_fields_ok, supervision
from goproc.rpc.entries import spawned_dict, watched_only
from goproc.store.files import create_temp, write_all
from goproc.store.format import Header, SnapshotError, header_of_line
from goproc.store.spans import OnDisk, file_identity

ROWS = "goproc.snapshot.rows"
ROWS_MIN = 5000  # entries: below this the rows file is not worth its disk space
_MAGIC = "goproc rows 4"  # 2: entries have `log`; 3: and `adopted_by`; 4: supervision
_END = "end of rows"
_CHUNK = 1000  # rows a marshal record
_fields_of = operator.attrgetter(*(a.name for a in attrs.fields(Proc)))


_BASE = 14  # the fields before `spawned`


def _row_of(p: Proc) -> tuple[Any, ...]:
    """An entry as plain values marshal takes: its `log` as (out, err) or None, its
    supervision fields as one dict (None for an entry only watched)."""
    row = _fields_of(p)[:_BASE]
    log = p.log
    if log is not None:
        row = (*row[:-2], (log.out, log.err), row[-1])
    if watched_only(p):
        return (*row, None)
    extra = {
        "spawned": spawned_dict(p.spawned),
        "exit_code": p.exit_code,
        "exit_signal": p.exit_signal,
        "restarts": p.restarts,
        "stopped": p.stopped,
    }
    return (*row, extra)


def write_rows(state_dir: Path, on_disk: OnDisk, minimum: int = ROWS_MIN) -> None:
    """The rows of the snapshot file `on_disk` holds open (just written), or no rows
    file when it has fewer than `minimum` entries.  A header record, then the rows a
    chunk at a time (each its own marshal record: never one long call holding the GIL,
    never every row in memory at once), then an end record."""
    path = state_dir / ROWS
    identity = on_disk.identity
    procs = on_disk.procs
    if len(procs) < minimum or identity is None:
        path.unlink(missing_ok=True)
        return
    fd, tmp = create_temp(path)
    try:
        head = (_MAGIC, _python(), identity, len(procs), on_disk.starts.tobytes())
        write_all(fd, _record(head))
        for start in range(0, len(procs), _CHUNK):
            write_all(fd, _record(list(map(_row_of, procs[start : start + _CHUNK]))))
        write_all(fd, _record(_END))
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)


def read_rows(state_dir: Path, snapshot: BinaryIO) -> tuple[list[Proc], Header, OnDisk] | None:
    """The snapshot's entries and header from the rows file, with the snapshot file as
    an `OnDisk` (a handle of its own); None when the rows cannot be used.  `snapshot`
    is left at its start."""
    try:
        data = (state_dir / ROWS).read_bytes()
    except OSError:
        return None
    try:
        header = header_of_line(snapshot.readline())
        loaded = _read(_records(data), file_identity(snapshot))
    except (SnapshotError, ValueError, EOFError, TypeError, OSError):
        return None
    finally:
        snapshot.seek(0)
    if loaded is None:
        return None
    procs, starts = loaded
    held = os.fdopen(os.dup(snapshot.fileno()), "rb", buffering=0)
    return procs, header, OnDisk(held, procs, starts)


def _record(value: Any) -> bytes:
    """A marshal record, after its length (8 bytes, little-endian)."""
    data = marshal.dumps(value)
    return len(data).to_bytes(8, "little") + data


def _records(data: bytes) -> Iterator[Any]:
    """The records of a rows file as they are taken; ValueError if one is cut short."""
    view = memoryview(data)
    at = 0
    while at < len(view):
        size = int.from_bytes(view[at : at + 8], "little")
        end = at + 8 + size
        if end > len(view):
            raise ValueError("a rows record is cut short")
        yield marshal.loads(view[at + 8 : end])
        at = end


def _python() -> str:
    return f"{sys.implementation.name} {sys.version_info[0]}.{sys.version_info[1]}"


def _read(
    records: Iterator[Any], identity: tuple[int, ...]
) -> tuple[list[Proc], array[int]] | None:
    head = next(records, None)
    if not (type(head) is tuple and len(head) == 5 and head[:3] == (_MAGIC, _python(), identity)):
        return None
    count, packed = head[3], head[4]
    if type(count) is not int or type(packed) is not bytes:
        return None
    starts = array("q")
    starts.frombytes(packed)
    if len(starts) != (count + 1 if count else 0):
        return None
    procs: list[Proc] = []
    last = 0
    labels: dict[tuple[str, ...], tuple[str, ...]] = {}  # one tuple for each label set
    while len(procs) < count:
        rows = next(records, None)
        if type(rows) is not list or not rows:
            return None
        for row in rows:
            proc = _entry(row, labels)
            if proc is None or proc.id <= last:
                return None
            last = proc.id
            procs.append(proc)
    if len(procs) != count or next(records, None) != _END:
        return None
    for _after_the_end in records:
        return None
    return procs, starts


def _entry(row: Any, labels: dict[tuple[str, ...], tuple[str, ...]]) -> Proc | None:
    """A row as an entry, if it is one: the types and ranges the JSON path checks."""
    if type(row) is not tuple or len(row) != _BASE + 1:
        return None
    i, pid, pgid, cmd, name, alive, tags, groups, st, ad, ls, ex, log, by, extra = row
    try:
        sup = supervision(extra if type(extra) is dict else {})
    except BadEntry:
        return None
    if not (
        plain_fields_ok(i, pid, pgid, cmd, name, alive)
        and i > 0
        and (by is None or (type(by) is int and by > 0))
        and type(tags) is tuple
        and type(groups) is tuple
        and type(st) is float
        and type(ad) is float
        and type(ls) is float
        and (ex is None or (type(ex) is float and math.isfinite(ex)))
        and math.isfinite(st)
        and math.isfinite(ad)
        and math.isfinite(ls)
    ):
        return None
    shared_tags, shared_groups = labels.get(tags), labels.get(groups)
    if shared_tags is None:
        if not all(type(x) is str for x in tags):
            return None
        shared_tags = labels[tags] = tags
    if shared_groups is None:
        if not all(type(x) is str for x in groups):
            return None
        shared_groups = labels[groups] = groups
    files = None if log is None else _log_files(log)
    if files is None and log is not None:
        return None
    return Proc(
        i, pid, pgid, cmd, name, alive, shared_tags, shared_groups, st, ad, ls, ex, files, by, *sup
    )


def _log_files(log: Any) -> LogFiles | None:
    """A row's (out, err) as an entry's log files, if they are ones."""
    if not (type(log) is tuple and len(log) == 2 and all(type(x) is str for x in log)):
        return None
    if log_path_problem(log[0]) is not None or log_path_problem(log[1]) is not None:
        return None
    return LogFiles(log[0], log[1])
