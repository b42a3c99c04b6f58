"""Everything the CLI prints, as pure functions of the daemon's decoded results.

Each formatter takes plain data (entries, outcomes, events as the daemon sends them)
and returns lines; nothing here reads the environment or talks to the daemon, so all of
it is tested without one.  `emit` is the one place a result is printed, as JSON or as
its formatter's lines; `entries_json` prints a big entry array without decoding it.

Nothing the daemon sends reaches the terminal raw: every formatter passes the text
it shows through `shown`, and JSON goes through `json_safe` (`goproc.cli.escape`).
The commands print only through this module (`emit`, `print_lines`, `say`, `error`).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO, TextIO, TypeVar

from goproc.cli.escape import json_safe, shown
from goproc.cli.tables import (
    key_values as key_values,
    show_lines as show_lines,
    status_lines as status_lines,
    table_lines as table_lines,
    when,
)

T = TypeVar("T")
Entry = Mapping[str, Any]  # one registry entry as the daemon encodes it
Lines = list[str]

KILL_OUTCOMES = {"killed": "still running after the timeout: escalated to KILL"}


class OutputError(Exception):
    """A result could not be written: standard output is full, closed or failing.  (A
    reader that went away, as `| head` does, stays a BrokenPipeError: not a failure.)"""


class ClosedOutput(io.TextIOBase):
    """Standard output when the descriptor was closed before goproc started (`>&-`):
    every write fails as a write to a closed descriptor does."""

    def write(self, s: str) -> int:
        raise OSError(errno.EBADF, "it is closed")

    @property
    def buffer(self) -> BinaryIO:
        raise OSError(errno.EBADF, "it is closed")


@contextlib.contextmanager
def writing() -> Iterator[None]:
    """Turn a failed write into OutputError (see there)."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as e:
        raise OutputError(e.strerror or str(e)) from None


def json_text(value: Any) -> str:
    """A result as `--json` prints it (README: Exit codes and output), by its shape: an
    array (what a command that may touch several entries answers, even one or none) one
    element per line between `[` and `]`, as `list --json` prints; anything else one
    line.  Compact and ASCII, as the daemon writes it (`list --json` passes its bytes on)."""
    if isinstance(value, list):
        return "[\n" + ",\n".join(map(json_line, value)) + "\n]" if value else "[]"
    return json_line(value)


def json_line(value: Any) -> str:
    """One value on one line: a `--json` object, an element of an array, and each
    event or exit a stream prints (one JSON object per line)."""
    return json_safe(json.dumps(value, separators=(",", ":")))  # DEL is ASCII, left raw


def emit(
    result: T, json_: bool, text: Callable[[T], Iterable[str]], out: TextIO | None = None
) -> None:
    """Print `result` as JSON (with --json) or as the lines `text` makes of it, on `out`
    (standard output by default)."""
    if json_:
        with writing():
            print(json_text(result), file=out)
        return
    print_lines(text(result), out)


def print_lines(lines: Iterable[str], out: TextIO | None = None, flush: bool = False) -> None:
    """Lines a formatter made (their daemon text already `shown`), as they are."""
    with writing():
        for line in lines:
            print(line, file=out, flush=flush)


def write_text(text: str) -> None:
    """Text (terminal control sequences of our own and lines already `shown`) on
    standard output, flushed: how `list --watch` draws its frames."""
    with writing():
        sys.stdout.write(text)
        sys.stdout.flush()


def say(lines: Iterable[str], out: TextIO | None = None) -> None:
    """Lines of plain text (not from a formatter), each `shown`."""
    print_lines(map(shown, lines), out)


def error(message: str, err: TextIO | None = None) -> None:
    """One `goproc: ...` line on standard error (or `err`), the message `shown`; when
    that cannot be written either, the exit code is all that is left to say it."""
    err = sys.stderr if err is None else err
    if err is not None:  # None: standard error was closed before goproc started
        with contextlib.suppress(OSError):
            print(f"goproc: {shown(message)}", file=err, flush=True)


def entries_json(raw: bytes) -> bytes:
    """A JSON array of entries as the daemon sent it, one entry per line.  The daemon's
    JSON is ASCII with every quote in a string escaped, so `},{"id":` can only stand
    between two entries: the split needs no decoding, even for 100,000 entries."""
    if raw == b"[]":
        return b"[]\n"
    return b"[\n" + raw[1:-1].replace(b'},{"id":', b'},\n{"id":') + b"\n]\n"


def write_entries_json(raw: bytes, out: TextIO) -> None:
    with writing():
        out.flush()  # the bytes go below the text layer
        buffer: BinaryIO = out.buffer
        buffer.write(entries_json(raw))


def write_raw(data: bytes) -> None:
    """Bytes on standard output as they are, flushed: a log file's, which `goproc logs`
    shows as the process wrote them (as `tail` does); never the daemon's text."""
    with writing():
        sys.stdout.flush()  # the bytes go below the text layer
        buffer: BinaryIO = sys.stdout.buffer
        buffer.write(data)
        buffer.flush()


# ---- one line per entry ------------------------------------------------------------------


def added_lines(procs: Sequence[Entry]) -> Lines:
    return [f"Process {shown(p['pid'])} registered with id {shown(p['id'])}" for p in procs]


def started_lines(proc: Entry) -> Lines:
    return [f"Started pid={shown(proc['pid'])} id={shown(proc['id'])}"]


def removed_lines(procs: Sequence[Entry]) -> Lines:
    return [f"Removed {_id_pid(p)}, {shown(p['cmd'])})" for p in procs]


def _id_pid(p: Entry) -> str:
    return f"id {shown(p['id'])} (pid {shown(p['pid'])}"


def counted(n: object, one: str, many: str) -> str:
    """`1 entry`, `2 entries`: the number (as the daemon sent it) and the right word."""
    return f"{shown(n)} {one if n == 1 else many}"


def named_lines(proc: Entry) -> Lines:
    if proc["name"] is None:
        return [f"id {shown(proc['id'])}: name cleared"]
    return [f"id {shown(proc['id'])}: named {shown(proc['name'])}"]


def reset_lines(result: Mapping[str, Any]) -> Lines:
    return [f"Forgot {counted(result['removed'], 'entry', 'entries')}; ids start at 1 again"]


# ---- kill and wait -----------------------------------------------------------------------


def kill_outcome(r: Mapping[str, Any]) -> str:
    """What happened to one entry: exited, signalled SIG..., escalated, not alive, failed."""
    if r["outcome"] == "signalled":
        return f"signalled {shown(r['signal'])}"
    if r["outcome"] == "failed":
        return f"failed: {shown(r.get('error', '?'))}"
    outcome = str(r["outcome"])
    return KILL_OUTCOMES.get(outcome, shown(outcome))


ENDED = ("exited", "killed", "not alive")


def kill_lines(results: Sequence[Mapping[str, Any]]) -> Lines:
    """One line per entry; with `--rm`, whether it was forgotten or stays."""
    return [
        f"id {shown(r['id'])} pid {shown(r['pid'])}: {kill_outcome(r)}{_removal(r)}"
        for r in results
    ]


def _removal(r: Mapping[str, Any]) -> str:
    if "removed" not in r:
        return ""
    if r["removed"]:
        return " (removed)"
    if r["outcome"] in ENDED:
        return " (not removed: the removal could not be saved)"
    return " (kept: still running)" if r["outcome"] != "failed" else " (kept)"


def any_failed(results: Sequence[Mapping[str, Any]]) -> bool:
    """A signal failed, or an ended entry could not be removed (`--rm`)."""
    return any(
        r["outcome"] == "failed" or (r.get("removed") is False and r["outcome"] in ENDED)
        for r in results
    )


def exited_line(proc: Entry, json_: bool) -> str:
    """`wait`: one entry that has exited."""
    if json_:
        return json_line(proc)
    return f"id {shown(proc['id'])} pid {shown(proc['pid'])} exited ({shown(proc['cmd'])})"


LISTED_MAX = 5  # entries a one-line refusal names, as the daemon's own refusals do


def _some(procs: Sequence[Entry]) -> str:
    """Up to `LISTED_MAX` entries as `id N (pid P)`, and how many in all past that."""
    named = ", ".join(f"{_id_pid(p)})" for p in procs[:LISTED_MAX])
    return named if len(procs) <= LISTED_MAX else f"{named}, ... ({len(procs)} in all)"


def timed_out_line(timeout: str, alive: Sequence[Entry]) -> str:
    """`wait`'s error line: the timeout as given and the entries still alive."""
    return f"goproc: timed out after {shown(timeout)}; still alive: {_some(alive)}"


def removed_line(removed: Sequence[Entry]) -> str:
    """`wait`'s error line for entries forgotten while waited for: not an exit."""
    return f"goproc: removed while waited for, not seen to exit: {_some(removed)}"


# ---- events ------------------------------------------------------------------------------


def event_line(event: Mapping[str, Any], json_: bool, local: bool = False) -> str:
    """One event: time (`local`: in local time, as on a terminal), kind, id, pid and
    name (JSON with --json)."""
    if json_:
        return json_line(event)
    time = when(event["time"], local)
    if event["kind"] == "overflow":
        return f"{time}  overflow: events were dropped; reconnect"
    name = f" name={shown(event['name'])}" if event.get("name") else ""
    ids = f"id={shown(event['id'])} pid={shown(event['pid'])}"
    line = f"{time}  {shown(event['kind']):<8} {ids}{name}"
    if event["kind"] == "alert":  # which rule, and the value that crossed
        rule = f"rule={shown(event.get('rule'))}"
        if event.get("rule_name"):
            rule += f" ({shown(event['rule_name'])})"
        line += (
            f" {rule}: {shown(event.get('condition'))}, value {shown(event.get('value'))};"
            f" then {shown(event.get('action'))}"
        )
    return line


# ---- tags and groups ---------------------------------------------------------------------


def label_count_lines(kind: str, rows: Sequence[Mapping[str, Any]]) -> Lines:
    """`goproc tag`: every label in use and its number of entries."""
    names = [shown(r["name"]) for r in rows]
    width = max([len(kind.upper()), *map(len, names)])
    return [
        f"{kind.upper().ljust(width)}  COUNT",
        *(f"{name.ljust(width)}  {shown(r['count'])}" for name, r in zip(names, rows, strict=True)),
    ]


def labels_lines(plural: str, procs: Sequence[Entry]) -> Lines:
    """After `tag add|rm`: each changed entry's labels now."""
    return [f"id {shown(p['id'])}: {plural} {shown(','.join(p[plural]) or '-')}" for p in procs]


def renamed_lines(kind: str, old: str, new: str, result: Mapping[str, Any]) -> Lines:
    return [
        f"Renamed {kind} {shown(repr(old))} to {shown(repr(new))} "
        f"on {counted(result['changed'], 'entry', 'entries')}"
    ]
