"""Durable state on disk: the snapshot, the journal, and loading both at start.

Layout of the state dir:
- `goproc.snapshot.json`: `{"version": 1, "next_id": N, "journal": G, "procs": [...]}`,
  written atomically (temp file, fsync, rename, fsync dir; mode 0600).  It holds every
  change of journal generations below G.
- `goproc.journal.<G>`: one JSON line per acknowledged change (`goproc.model.Change`),
  written before the change is answered and fdatasync'ed soon after (see `Journal`).
  A torn last line was never answered and is ignored on replay.
The writer folds the journal into a snapshot: rotate to generation G+1, write the
snapshot with `journal: G+1`, then delete older generations.  The file work runs in
worker threads; the trio side only hands over immutable data.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import attrs
import trio

from goproc.model import Change, Proc
from goproc.protocol import (
    CONVERTER,
    FAST_CONVERTER,
    change_from_json,
    change_line,
    proc_json,
    remember_json,
)
from goproc.registry import Registry

log = logging.getLogger("goproc.store")

SNAPSHOT = "goproc.snapshot.json"
SNAPSHOT_VERSION = 1
_JOURNAL_RE = re.compile(r"goproc\.journal\.(\d+)")


def journal_path(state_dir: Path, gen: int) -> Path:
    return state_dir / f"goproc.journal.{gen}"


def journal_generations(state_dir: Path) -> list[int]:
    gens = []
    for p in state_dir.iterdir():
        m = _JOURNAL_RE.fullmatch(p.name)
        if m:
            gens.append(int(m.group(1)))
    return sorted(gens)


# ---- snapshot --------------------------------------------------------------------------


def snapshot_json(procs: Iterable[Proc], next_id: int, journal_gen: int) -> dict[str, Any]:
    """The snapshot as a JSON value (what `snapshot_bytes` writes)."""
    return {
        "version": SNAPSHOT_VERSION,
        "next_id": next_id,
        "journal": journal_gen,
        "procs": [CONVERTER.unstructure(p, Proc) for p in procs],
    }


def snapshot_chunks(
    procs: list[Proc], next_id: int, journal_gen: int, boot: dict[str, Any] | None = None
) -> Iterator[bytes]:
    """The snapshot file in pieces: one JSON document, laid out one entry per line so
    that it loads entry by entry (see `read_snapshot`), made of the entries' cached
    encodings a chunk at a time, so writing 100,000 entries never holds them all twice."""
    head: dict[str, Any] = {"version": SNAPSHOT_VERSION, "next_id": next_id}
    head["journal"] = journal_gen
    if boot is not None:
        head["boot"] = boot
    header = json.dumps(head, separators=(",", ":"))
    yield header[:-1].encode() + b',"procs":[\n'
    for start in range(0, len(procs), _CHUNK):
        chunk = b",\n".join(map(proc_json, procs[start : start + _CHUNK]))
        yield (b",\n" if start else b"") + chunk
    yield b"\n]}\n" if procs else b"]}\n"


def snapshot_bytes(
    procs: list[Proc], next_id: int, journal_gen: int, boot: dict[str, Any] | None = None
) -> bytes:
    return b"".join(snapshot_chunks(procs, next_id, journal_gen, boot))


def write_snapshot(
    state_dir: Path,
    procs: list[Proc],
    next_id: int,
    journal_gen: int,
    boot: dict[str, Any] | None = None,
) -> None:
    """Atomically replace the snapshot (blocking: run it in a worker thread)."""
    atomic_write(state_dir / SNAPSHOT, snapshot_chunks(procs, next_id, journal_gen, boot))


def atomic_write(path: Path, chunks: Iterable[bytes]) -> None:
    """Replace `path` with the chunks' bytes, or leave it as it was (mode 0600)."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in chunks:
            _write_all(fd, chunk)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SnapshotError(ValueError):
    pass


_LINE_HEAD = b',"procs":[\n'


def read_snapshot(f: BinaryIO) -> tuple[list[Proc], Header]:
    """A snapshot file -> (entries, header); raises SnapshotError.

    Our own layout (`snapshot_bytes`) is read line by line, a chunk of entries at a
    time, so 100,000 entries never exist as one big JSON value; any other valid
    layout is read whole."""
    first = f.readline()
    if not first.endswith(_LINE_HEAD):
        return _parse_whole(first + f.read())
    try:
        header = json.loads(first[: -len(_LINE_HEAD)] + b"}")
    except (ValueError, RecursionError) as e:
        raise SnapshotError(f"not valid JSON: {e}") from None
    head = _check_header(header)
    procs: list[Proc] = []
    chunk: list[bytes] = []
    for line in f:
        if line == b"]}\n":
            if f.read().strip():
                raise SnapshotError("data after the end")
            procs.extend(_structure_lines(chunk, len(procs)))
            return procs, head
        chunk.append(line[:-2] if line.endswith(b",\n") else line.rstrip(b"\n"))
        if len(chunk) == _CHUNK:
            procs.extend(_structure_lines(chunk, len(procs)))
            chunk = []
    raise SnapshotError("truncated: no end of the entry list")


def parse_snapshot(data: bytes) -> tuple[list[Proc], int, int]:
    """Snapshot bytes -> (entries, next_id, journal generation); raises SnapshotError."""
    procs, head = read_snapshot(io.BytesIO(data))
    return procs, head.next_id, head.journal


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


@attrs.frozen
class Header:
    """A snapshot's fields besides its entries."""

    next_id: int
    journal: int  # the first journal generation not folded in
    boot: dict[str, Any] | None  # {"id": boot id, "time": boot-time anchor}, if known


def _check_header(obj: Any) -> Header:
    if not isinstance(obj, dict) or obj.get("version") != SNAPSHOT_VERSION:
        raise SnapshotError(f"not a version {SNAPSHOT_VERSION} goproc snapshot")
    next_id, gen, boot = obj.get("next_id"), obj.get("journal", 0), obj.get("boot")
    if type(next_id) is not int or type(gen) is not int:
        raise SnapshotError("next_id or journal is missing or not an integer")
    valid_boot = (
        isinstance(boot, dict)
        and isinstance(boot.get("id"), str)
        and type(boot.get("time")) in (int, float)
    )
    return Header(next_id=next_id, journal=gen, boot=boot if valid_boot else None)


_CHUNK = 1000  # entries parsed per json.loads: fast, without one huge value in memory


def _structure_lines(lines: list[bytes], first: int) -> list[Proc]:
    try:
        objs = json.loads(b"[" + b",".join(lines) + b"]")
    except (ValueError, RecursionError) as e:
        raise SnapshotError(f"bad entry after #{first}: {e}") from None
    if not isinstance(objs, list) or len(objs) != len(lines):
        raise SnapshotError(f"bad entry after #{first}: not one entry per line")
    procs = []
    for n, (obj, line) in enumerate(zip(objs, lines, strict=True)):
        try:
            p = FAST_CONVERTER.structure(obj, Proc)
        except Exception as e:  # cattrs raises several kinds; all mean "not ours"
            raise SnapshotError(f"bad entry #{first + n + 1}: {e}") from None
        remember_json(p, obj, line)
        procs.append(p)
    return procs


# ---- loading ---------------------------------------------------------------------------


@attrs.frozen
class Loaded:
    next_gen: int  # the journal generation to append to from now on
    replayed: int  # journal records applied
    warnings: tuple[str, ...]
    fresh: bool = False  # no snapshot was there
    boot: dict[str, Any] | None = None  # the snapshot's boot-time anchor


def load_state(state_dir: Path, registry: Registry) -> Loaded:
    """Fill `registry` from the snapshot and the journal (blocking; call before serving).

    A snapshot that cannot be parsed is moved aside, never deleted; the daemon then
    starts from the journal alone.  Stale temp files of torn snapshot writes are removed.
    """
    warnings: list[str] = []
    for tmp in state_dir.glob(f"{SNAPSHOT}.tmp-*"):
        tmp.unlink(missing_ok=True)
    path = state_dir / SNAPSHOT
    first_gen = 0
    boot = None
    fresh = not path.exists()
    if not fresh:
        try:
            with path.open("rb") as f:
                procs, header = read_snapshot(f)
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


# ---- the journal -----------------------------------------------------------------------


class Journal:
    """The append-only record of acknowledged changes.

    `append` writes the record with one `write(2)` before the change is answered: from
    then on it survives a crash (`kill -9`) of the daemon, since the kernel holds it.
    `run` makes it survive a crash of the machine too: it fdatasyncs in a worker thread,
    at once for every batch when `fsync` is "always" (then `append` also waits for it),
    else at most once per `sync_interval` ("interval", the default).  Records keep the
    generation current when they were appended, so a rotation never splits a change
    from its file.
    """

    def __init__(
        self, state_dir: Path, gen: int, *, fsync: str = "interval", sync_interval: float = 1.0
    ) -> None:
        self.state_dir = state_dir
        self.gen = gen
        self.fsync = fsync
        self.sync_interval = sync_interval
        self.appended = 0  # records written
        self.synced = 0  # records known to be on disk
        self._fds: dict[int, int] = {}
        self._unsynced: set[int] = set()  # generations written since their last sync
        self._wake = trio.Event()
        self._synced_event = trio.Event()
        self._urgent = trio.Event()  # someone waits for a sync: do not batch
        self.sync_error: OSError | None = None

    async def append(self, change: Change) -> None:
        """Write the record; raises OSError (nothing written, or a torn tail removed)."""
        self._write(self.gen, change_line(change))
        self.appended += 1
        self._wake.set()
        if self.fsync == "always":
            await self._wait_synced(self.appended)

    def _write(self, gen: int, line: bytes) -> None:
        fd = self._fds.get(gen)
        if fd is None:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            fd = self._fds[gen] = os.open(journal_path(self.state_dir, gen), flags, 0o600)
        try:
            _write_all(fd, line)
        except OSError:
            # A partial write would leave a torn tail; cut it so later records start clean.
            os.close(self._fds.pop(gen))
            self._repair_tail(gen)
            raise
        self._unsynced.add(gen)

    async def _wait_synced(self, count: int) -> None:
        while self.synced < count:
            await self._synced_event.wait()
        if self.sync_error is not None:
            raise self.sync_error

    def rotate(self) -> int:
        """Start a new generation; returns it.  Synchronous, so it is atomic with
        whatever the caller reads from the registry in the same step."""
        self.gen += 1
        return self.gen

    async def sync(self) -> None:
        """Wait until every record appended so far is on disk."""
        self._wake.set()
        self._urgent.set()
        await self._wait_synced(self.appended)

    def remove_before(self, gen: int) -> None:
        """Close and delete generations older than `gen` (their records are in a
        snapshot that is on disk)."""
        for old in [g for g in self._fds if g < gen]:
            os.close(self._fds.pop(old))
            self._unsynced.discard(old)
        for old in journal_generations(self.state_dir):
            if old < gen:
                journal_path(self.state_dir, old).unlink(missing_ok=True)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                target = self.appended
                fds = [self._fds[g] for g in self._unsynced if g in self._fds]
                self._unsynced.clear()
                try:
                    await trio.to_thread.run_sync(_fdatasync_all, fds)
                    self.sync_error = None
                except OSError as e:
                    log.error("journal sync failed: %s", e)
                    self.sync_error = e
                self.synced = target
                self._synced_event.set()
                self._synced_event = trio.Event()
                if self.fsync != "always":  # batch the next syncs, unless one is awaited
                    with trio.move_on_after(self.sync_interval):
                        await self._urgent.wait()
                    self._urgent = trio.Event()
        finally:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

    def _repair_tail(self, gen: int) -> None:
        path = journal_path(self.state_dir, gen)
        try:
            data = path.read_bytes()
            cut = data.rfind(b"\n") + 1
            if cut != len(data):
                os.truncate(path, cut)
        except OSError:
            pass


def _fdatasync_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.fdatasync(fd)
        except OSError as e:
            if e.errno != errno.EBADF:  # closed meanwhile by remove_before: folded already
                raise


class SnapshotWriter:
    """Waits for a change, lets a burst settle for `delay`, then folds the journal into a
    fresh snapshot.  A failed write is logged and retried; the journal keeps the data."""

    def __init__(
        self,
        state_dir: Path,
        registry: Registry,
        journal: Journal,
        delay: float,
        boot: dict[str, Any] | None = None,
    ):
        self.boot = boot
        self.state_dir = state_dir
        self.registry = registry
        self.journal = journal
        self.delay = delay
        self.writes = 0
        self._dirty = trio.Event()
        self._lock = trio.Lock()

    def mark_dirty(self) -> None:
        self._dirty.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self._dirty.wait()
            await trio.sleep(self.delay)
            try:
                await self.flush()
            except OSError as e:
                log.error("snapshot write failed (the journal keeps every change): %s", e)
                self.mark_dirty()
                await trio.sleep(max(self.delay, 1.0))

    async def flush(self) -> None:
        """Write a snapshot of the registry as it is now, then drop the folded journal."""
        async with self._lock:
            self._dirty = trio.Event()
            procs, next_id = list(self.registry), self.registry.next_id
            gen = self.journal.rotate()
            await trio.to_thread.run_sync(
                write_snapshot, self.state_dir, procs, next_id, gen, self.boot
            )
            self.writes += 1
            await self.journal.sync()
            await trio.to_thread.run_sync(self.journal.remove_before, gen)
