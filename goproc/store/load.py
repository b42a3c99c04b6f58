"""Loading the state dir at start: the newest snapshot that reads, then the journal
generations it has not folded in.  Blocking: run before serving (in a worker thread).

The newest snapshot is tried first, then the previous one (`goproc.store.generations`):
one that cannot be read is moved aside, never deleted, with a warning, and ids go on
above whatever its header still says.  When neither loads but the state dir shows it
was used, `UnusableState` is raised and nothing is touched, unless `fresh` allows an
empty start: then the files are set aside and ids go on above every one they show.  A
first start (none of those files) needs no flag.

The entries come from the snapshot's rows file when it is current (`goproc.store.rows`:
several times faster), else from the snapshot's JSON.  Stale temp files of torn
snapshot (and rows) writes are removed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs

from goproc.model import Change, Proc
from goproc.registry import Registry
from goproc.store.files import journal_generations, journal_path
from goproc.store.format import (
    SNAPSHOT,
    Header,
    SnapshotError,
    change_from_json,
    check_entries,
    header_of_line,
    read_snapshot_laid_out,
)
from goproc.store.generations import (
    PREV,
    UnusableState,
    highest_id_in,
    is_journal,
    set_aside,
    temp_patterns,
    used_files,
)
from goproc.store.rows import ROWS, read_rows
from goproc.store.spans import OnDisk


@attrs.frozen
class Loaded:
    next_gen: int  # the journal generation to append to from now on
    replayed: int  # journal records applied
    warnings: tuple[str, ...]
    fresh: bool = False  # no snapshot was loaded: write one at once
    boot: dict[str, Any] | None = None  # the snapshot's boot-time anchor
    on_disk: OnDisk = attrs.field(factory=OnDisk.nothing)  # the snapshot file, held open
    from_rows: bool = False  # the entries came from the rows file (`goproc.store.rows`)
    newest_gen: int | None = None  # journal generation of the snapshot at its path
    previous_gen: int | None = None  # that of the previous snapshot, if known


@attrs.frozen
class _Read:
    procs: list[Proc]
    header: Header
    on_disk: OnDisk
    from_rows: bool


def load_state(state_dir: Path, registry: Registry, *, fresh: bool = False) -> Loaded:
    """Fill `registry` from the newest snapshot that loads and the journal after it;
    raises UnusableState when none loads, the state dir was used and `fresh` is not set."""
    warnings: list[str] = []
    got, source, failed = _first_loadable(state_dir)
    others = [p for p in used_files(state_dir, [p for p, _ in failed]) if p != source]
    floor = highest_id_in(p for p, _ in failed)
    if got is None and (failed or others):
        if not fresh:
            raise UnusableState(state_dir, failed, others)
        floor = max(floor, highest_id_in(others))
        for path in filter(is_journal, others):  # partial history: never replayed
            aside = set_aside(path, "before-fresh")
            warnings.append(f"started fresh: journal {path} moved to {aside}")
    for path, why in failed:
        aside = set_aside(path)
        warnings.append(f"snapshot {path} is unreadable ({why}); moved it to {aside}")
    if got is not None and source != state_dir / SNAPSHOT and not failed:
        warnings.append(f"snapshot {state_dir / SNAPSHOT} is missing; loaded {source}")
    for pattern in (*temp_patterns(), f"{ROWS}.tmp-*"):
        for tmp in state_dir.glob(pattern):
            tmp.unlink(missing_ok=True)
    first_gen = 0
    if got is not None:
        h = got.header
        registry.load(got.procs, h.next_id, h.rules, h.next_rule, h.adopts, h.next_adopt)
        first_gen = got.header.journal
    replayed = 0
    for gen in [g for g in journal_generations(state_dir) if g >= first_gen]:
        replayed += _replay(journal_path(state_dir, gen), registry, warnings)
    if floor:  # never an id at or below one a file still shows as used
        registry.apply(Change(next_id=floor + 1))
    last = max(journal_generations(state_dir), default=first_gen)
    newest = source == state_dir / SNAPSHOT
    return Loaded(
        next_gen=max(last + 1, first_gen),
        replayed=replayed,
        warnings=tuple(warnings),
        fresh=got is None,
        boot=None if got is None else got.header.boot,
        on_disk=OnDisk.nothing() if got is None else got.on_disk,
        from_rows=got is not None and got.from_rows,
        newest_gen=first_gen if newest else None,
        previous_gen=_gen_of(state_dir / PREV) if newest else (None if got is None else first_gen),
    )


def _first_loadable(state_dir: Path) -> tuple[_Read | None, Path | None, list[tuple[Path, str]]]:
    """The newest snapshot that loads and its path, after the ones that do not (with
    why); the previous one is read only when the newest does not load."""
    failed: list[tuple[Path, str]] = []
    for path in (state_dir / SNAPSHOT, state_dir / PREV):
        try:
            got = _read(state_dir, path)
        except SnapshotError as e:
            failed.append((path, str(e)))
            continue
        if got is not None:
            return got, path, failed
    return None, None, failed


def _read(state_dir: Path, path: Path) -> _Read | None:
    """The snapshot at `path` whole and checked, None if there is none; raises
    SnapshotError."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return None
    with f:
        fast = read_rows(state_dir, f)
        if fast is not None:
            procs, header, on_disk = fast
        else:
            on_disk = OnDisk.nothing()
            procs, header, layout = read_snapshot_laid_out(f)
            if layout is not None:
                held = os.fdopen(os.dup(f.fileno()), "rb", buffering=0)
                on_disk = OnDisk(held, procs, layout.starts, layout.skip)
    check_entries(procs, header)
    return _Read(procs, header, on_disk, fast is not None)


def _gen_of(path: Path) -> int | None:
    """The journal generation a snapshot's header names (its first line), if it reads."""
    try:
        with path.open("rb") as f:
            return header_of_line(f.readline(1 << 24)).journal
    except (OSError, SnapshotError):
        return None


def _replay(path: Path, registry: Registry, warnings: list[str]) -> int:
    data = path.read_bytes()
    lines = data.split(b"\n")
    # The last element is b"" after a final newline; anything else there is a torn
    # write that was never acknowledged.
    complete, tail = lines[:-1], lines[-1]
    if tail:
        warnings.append(f"journal {path}: ignored a torn last line ({len(tail)} bytes)")
    count = 0
    for n, line in enumerate(complete, 1):
        if not line.strip():
            continue
        try:
            change = change_from_json(json.loads(line))
        except Exception as e:  # a damaged record: keep the rest, say which
            warnings.append(f"journal {path}:{n}: skipped an unreadable record ({e})")
            continue
        registry.apply(change)
        count += 1
    return count
