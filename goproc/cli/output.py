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

import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, BinaryIO, TextIO, TypeVar

from goproc.cli.escape import json_safe, shown

T = TypeVar("T")
Entry = Mapping[str, Any]  # one registry entry as the daemon encodes it
Lines = list[str]

TABLE_HEADER = ("ID", "PID", "NAME", "ALIVE", "TAGS", "GROUPS", "CMD")
KILL_OUTCOMES = {"killed": "still running after the timeout: escalated to KILL"}
GREEN, RED, PLAIN = "\x1b[32m", "\x1b[31m", "\x1b[0m"


def json_text(value: Any) -> str:
    """A result as `--json` prints it: indented, printable non-ASCII kept."""
    return json_safe(json.dumps(value, indent=2, ensure_ascii=False))


def json_line(value: Any) -> str:
    """A streamed value (an event, an exited entry): one JSON object per line (ASCII:
    `json.dumps` escapes every control and non-ASCII character)."""
    return json.dumps(value)


def emit(
    result: T, json_: bool, text: Callable[[T], Iterable[str]], out: TextIO | None = None
) -> None:
    """Print `result` as JSON (with --json) or as the lines `text` makes of it, on `out`
    (standard output by default)."""
    if json_:
        print(json_text(result), file=out)
        return
    print_lines(text(result), out)


def print_lines(lines: Iterable[str], out: TextIO | None = None, flush: bool = False) -> None:
    """Lines a formatter made (their daemon text already `shown`), as they are."""
    for line in lines:
        print(line, file=out, flush=flush)


def say(lines: Iterable[str], out: TextIO | None = None) -> None:
    """Lines of plain text (not from a formatter), each `shown`."""
    print_lines(map(shown, lines), out)


def error(message: str, err: TextIO | None = None) -> None:
    """One `goproc: ...` line on standard error (or `err`), the message `shown`."""
    print(f"goproc: {shown(message)}", file=sys.stderr if err is None else err)


def entries_json(raw: bytes) -> bytes:
    """A JSON array of entries as the daemon sent it, one entry per line.  The daemon's
    JSON is ASCII with every quote in a string escaped, so `},{"id":` can only stand
    between two entries: the split needs no decoding, even for 100,000 entries."""
    if raw == b"[]":
        return b"[]\n"
    return b"[\n" + raw[1:-1].replace(b'},{"id":', b'},\n{"id":') + b"\n]\n"


def write_entries_json(raw: bytes, out: TextIO) -> None:
    out.flush()  # the bytes go below the text layer
    buffer: BinaryIO = out.buffer
    buffer.write(entries_json(raw))


def write_raw(data: bytes) -> None:
    """Bytes on standard output as they are, flushed: a log file's, which `goproc logs`
    shows as the process wrote them (as `tail` does); never the daemon's text."""
    sys.stdout.flush()  # the bytes go below the text layer
    buffer: BinaryIO = sys.stdout.buffer
    buffer.write(data)
    buffer.flush()


# ---- key/value layouts -------------------------------------------------------------------


def _cell(value: Any) -> str:
    """A `show` value: lists joined with commas, a dash for nothing."""
    text = ",".join(value) if isinstance(value, list) else value
    return "-" if text in (None, "") else shown(text)


def key_values(pairs: Mapping[str, Any], cell: Callable[[Any], str] = shown) -> Lines:
    """One `key  value` line per pair, the values in one column."""
    keys = [shown(key) for key in pairs]
    width = max(map(len, keys), default=0)
    values = pairs.values()
    return [f"{key.ljust(width)}  {cell(value)}" for key, value in zip(keys, values, strict=True)]


def status_lines(info: Mapping[str, Any]) -> Lines:
    return key_values(info)


def show_lines(proc: Entry) -> Lines:
    """One entry in full, one field per line; its log files as `log.out` and `log.err`
    (`log  -` when it has none)."""
    pairs = dict(proc)
    log = pairs.pop("log", None)
    if isinstance(log, Mapping):
        pairs["log.out"], pairs["log.err"] = log.get("out"), log.get("err")
    elif "log" in proc:
        pairs["log"] = None
    return key_values(pairs, _cell)


# ---- the entry table -------------------------------------------------------------------


def table_lines(
    procs: Sequence[Entry], *, colour: bool = False, columns: int | None = None
) -> Lines:
    """The `list` table: aligned columns, a dash for an empty cell.  `columns` is the
    terminal's width (the command is cut to fit; None: not a terminal, never cut);
    `colour` paints ALIVE green or red."""
    rows = [TABLE_HEADER, *(_row(p) for p in procs)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEADER) - 1)]
    room = max(columns - sum(widths) - 2 * len(widths), 10) if columns is not None else 0
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        if colour and n:
            cells[3] = f"{GREEN if row[3] == 'yes' else RED}{cells[3]}{PLAIN}"
        cmd = row[-1]
        if columns is not None and len(cmd) > room:
            cmd = cmd[: room - 1] + "…"
        lines.append("  ".join(cells) + "  " + cmd)
    return lines


def _row(p: Entry) -> tuple[str, ...]:
    return (
        shown(p["id"]),
        shown(p["pid"]),
        shown(p["name"] or "-"),
        "yes" if p["alive"] else "no",
        shown(",".join(p["tags"]) or "-"),
        shown(",".join(p["groups"]) or "-"),
        shown(p["cmd"]),
    )


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


def event_line(event: Mapping[str, Any], json_: bool) -> str:
    """One event: time, kind, id, pid and name (JSON with --json)."""
    if json_:
        return json_line(event)
    time = shown(event["time"])
    if event["kind"] == "overflow":
        return f"{time}  overflow: events were dropped; reconnect"
    name = f" name={shown(event['name'])}" if event.get("name") else ""
    ids = f"id={shown(event['id'])} pid={shown(event['pid'])}"
    return f"{time}  {shown(event['kind']):<8} {ids}{name}"


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
