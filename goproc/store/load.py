"""Loading the state dir at start: the snapshot, then the journal generations it has not
folded in.  Blocking: run before serving (in a worker thread).

The entries come from the snapshot's rows file when it is current (`goproc.store.rows`:
several times faster), else from the snapshot's JSON.  A snapshot that cannot be read
is moved aside, never deleted; the daemon then starts from the journal alone.  Stale
temp files of torn snapshot (and rows) writes are removed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import attrs

from goproc.registry import Registry
from goproc.store.files import journal_generations, journal_path
from goproc.store.format import (
    SNAPSHOT,
    SnapshotError,
    change_from_json,
    check_entries,
    read_snapshot_laid_out,
)
from goproc.store.rows import ROWS, read_rows
from goproc.store.spans import OnDisk


@attrs.frozen
class Loaded:
    next_gen: int  # the journal generation to append to from now on
    replayed: int  # journal records applied
    warnings: tuple[str, ...]
    fresh: bool = False  # no snapshot was there
    boot: dict[str, Any] | None = None  # the snapshot's boot-time anchor
    on_disk: OnDisk = attrs.field(factory=OnDisk.nothing)  # the snapshot file, held open
    from_rows: bool = False  # the entries came from the rows file (`goproc.store.rows`)


def load_state(state_dir: Path, registry: Registry) -> Loaded:
    """Fill `registry` from the snapshot and the journal."""
    warnings: list[str] = []
    for pattern in (f"{SNAPSHOT}.tmp-*", f"{ROWS}.tmp-*"):
        for tmp in state_dir.glob(pattern):
            tmp.unlink(missing_ok=True)
    path = state_dir / SNAPSHOT
    first_gen = 0
    boot = None
    on_disk = OnDisk.nothing()
    fast = None
    fresh = not path.exists()
    if not fresh:
        try:
            with path.open("rb") as f:
                fast = read_rows(state_dir, f)
                if fast is not None:
                    procs, header, on_disk = fast
                else:
                    procs, header, layout = read_snapshot_laid_out(f)
                    if layout is not None:
                        held = os.fdopen(os.dup(f.fileno()), "rb", buffering=0)
                        on_disk = OnDisk(held, procs, layout.starts, layout.skip)
            check_entries(procs, header)
            registry.load(procs, header.next_id)
            first_gen, boot = header.journal, header.boot
        except SnapshotError as e:
            aside = _aside_name(path)
            os.replace(path, aside)
            warnings.append(f"snapshot {path} is unreadable ({e}); moved it to {aside}")
            first_gen = 0
    gens = [g for g in journal_generations(state_dir) if g >= first_gen]
    replayed = 0
    for gen in gens:
        replayed += _replay(journal_path(state_dir, gen), registry, warnings)
    last = max(journal_generations(state_dir), default=first_gen)
    return Loaded(
        next_gen=max(last + 1, first_gen),
        replayed=replayed,
        warnings=tuple(warnings),
        fresh=fresh,
        boot=boot,
        on_disk=on_disk,
        from_rows=fast is not None,
    )


def _aside_name(path: Path) -> Path:
    """`<name>.corrupt-<UTC timestamp>`, with `.N` added when that name is taken."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        aside = path.with_name(f"{path.name}.corrupt-{stamp}.{n}")
        n += 1
    return aside


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
