"""The snapshot's two generations in the state dir, and what start-up may do when
neither loads.  Blocking file work (run before serving, or in a worker thread); no trio.

`goproc.snapshot.json` is the newest snapshot and `goproc.snapshot.json.prev` the one
before it: just before a new snapshot replaces the newest, the newest is hard-linked to
the previous name (`keep_previous`), so the newest never leaves its path, and the
journal generations from the previous snapshot's on are kept (the writer deletes only
older ones).  Either snapshot with the journals after it is the whole state, so a newest
one that cannot be read costs nothing.

When no snapshot loads but the state dir shows it was used (`used_files`: snapshots
unreadable or set aside, journals, the rows file), start-up is refused (`UnusableState`)
unless asked to start fresh; then the files are set aside (`set_aside`, never deleted)
and ids go on above every id they still show (`highest_id_in`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from goproc.rpc.decoding import ID_MAX
from goproc.store.format import JOURNAL_RE, SNAPSHOT

PREV = f"{SNAPSHOT}.prev"
_WHY_MAX = 160  # characters of a reason in the one-line refusal


class UnusableState(Exception):
    """No snapshot in the state dir loads, yet it holds earlier state: starting empty
    would lose it and could give used ids again.  The message names the files."""

    def __init__(
        self, state_dir: Path, failed: Sequence[tuple[Path, str]], others: Sequence[Path]
    ) -> None:
        named = [f"{path} ({_one_line(why)})" for path, why in failed] + list(map(str, others))
        super().__init__(
            f"no snapshot in {state_dir} can be loaded, but it holds earlier state: "
            f"{', '.join(named)}; 'goproc daemon --fresh' starts empty (these files are "
            "set aside, never deleted, and ids go on above every one they show)"
        )


def _one_line(why: str) -> str:
    flat = " ".join(why.split())
    return flat if len(flat) <= _WHY_MAX else flat[: _WHY_MAX - 3] + "..."


def keep_previous(state_dir: Path) -> bool:
    """Make the newest snapshot the previous one too (a hard link, renamed over the
    previous one); False when there is no newest.  The rename is made durable by the
    fsync of the directory that writing the next snapshot ends with."""
    while True:  # link(2) never follows or replaces what is at its new name
        tmp = state_dir / f"{PREV}.tmp-{secrets.token_hex(8)}"
        try:
            os.link(state_dir / SNAPSHOT, tmp, follow_symlinks=False)
            break
        except FileExistsError:
            continue
        except FileNotFoundError:
            return False
    try:
        os.replace(tmp, state_dir / PREV)
    finally:
        # rename(2) of one link onto another of the same file (the previous one is the
        # newest already: a write that failed after this) does nothing: drop the name.
        tmp.unlink(missing_ok=True)
    return True


def temp_patterns() -> tuple[str, ...]:
    """The temp files of torn snapshot writes and links, removed at start."""
    return (f"{SNAPSHOT}.tmp-*", f"{PREV}.tmp-*")


def used_files(state_dir: Path, skip: Iterable[Path]) -> list[Path]:
    """The files (but `skip` and temp files) that show the state dir was used: every
    snapshot file, set aside or not, every journal file, the rows file."""
    skipped = set(skip)
    found = []
    for path in sorted(state_dir.iterdir()):
        name = path.name
        if path in skipped or ".tmp-" in name:
            continue
        if name.startswith(("goproc.snapshot.", "goproc.journal.")):
            found.append(path)
    return found


def aside_name(path: Path, why: str = "corrupt") -> Path:
    """`<name>.<why>-<UTC timestamp>`, with `.N` added when that name is taken."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.{why}-{stamp}")
    n = 1
    while aside.exists():
        aside = path.with_name(f"{path.name}.{why}-{stamp}.{n}")
        n += 1
    return aside


def set_aside(path: Path, why: str = "corrupt") -> Path:
    aside = aside_name(path, why)
    os.replace(path, aside)
    return aside


def is_journal(path: Path) -> bool:
    return JOURNAL_RE.fullmatch(path.name) is not None


def highest_id_in(paths: Iterable[Path]) -> int:
    """The highest id the files show as used, 0 if none: `next_id - 1` of every
    snapshot header and journal record that parses, and every entry id, read as a whole
    JSON document or line by line (whatever of a damaged file still parses counts)."""
    highest = 0
    for path in paths:
        with contextlib.suppress(OSError):
            highest = max(highest, _highest_in(path.read_bytes()))
    return highest


def _highest_in(data: bytes) -> int:
    try:
        return _ids_of(json.loads(data))
    except (ValueError, RecursionError):
        pass
    highest = 0
    for line in data.split(b"\n"):
        line = line.rstrip(b",")
        if line.endswith(b',"procs":['):  # a snapshot's header line
            line = line[: -len(b',"procs":[')] + b"}"
        try:
            highest = max(highest, _ids_of(json.loads(line)))
        except (ValueError, RecursionError):
            continue
    return highest


def _ids_of(obj: Any) -> int:
    """The highest id a snapshot, its header, a journal record or an entry shows."""
    if not isinstance(obj, dict):
        return 0
    highest = max(_id(obj.get("next_id")) - 1, _id(obj.get("id")), 0)
    for key in ("procs", "put"):
        items = obj.get(key)
        if isinstance(items, list):
            highest = max([highest, *(_id(p.get("id")) for p in items if isinstance(p, dict))])
    deleted = obj.get("deleted")
    if isinstance(deleted, list):
        highest = max([highest, *map(_id, deleted)])
    return highest


def _id(value: Any) -> int:
    return value if type(value) is int and 1 <= value <= ID_MAX else 0
