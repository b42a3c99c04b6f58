"""The process file (`goproc up`, `goproc down`): a TOML file that declares programs,
each a `[proc.NAME]` table, read and checked whole.  Pure: text in, `Program`s out, or
one `ProcFileError` naming the file, the line and the key; nothing is started here.

A program's keys (only `cmd` is required; any other key is refused):

    cmd            a string (split as a shell would split words, never run by a
                   shell) or an array of strings: the command line
    cwd            where it runs (relative: to the file's directory)
    env            a table of strings: set over the environment `up` runs in
    tags, groups   arrays of labels (at most 64 characters, no comma, no control)
    restart        "never" (the default), "on-failure" or "always"
    max_restarts   how many restarts within `restart_window` (a duration) are allowed
    backoff        "MIN..MAX" (durations): the first and the longest wait before a
                   restart, doubled each time between them
    log_max_bytes  the size its log files are rotated at (bytes, at least 4096)
    alert          an array of tables `{ if = "cpu > 90% for 30s", then = "event",
                   rule = "hot" }`: rules for this program's entry (as `alert add`)

NAME follows the rule of an entry's name, which the program's entry is given.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from os import path as os_path
from typing import Any

from attrs import frozen

from goproc import procvalues as check
from goproc.errors import InvalidValue
from goproc.model import NAME_RE, NAME_RULE
from goproc.params import Restart
from goproc.procvalues import AlertDecl

_KEYS = [
    "cmd",
    "cwd",
    "env",
    "tags",
    "groups",
    "restart",
    "max_restarts",
    "restart_window",
    "backoff",
    "log_max_bytes",
    "alert",
]


class ProcFileError(Exception):
    """What is wrong with a process file: `file:line: key: reason` (no line when the
    key's line cannot be told)."""

    def __init__(self, file: str, line: int | None, key: str, reason: str) -> None:
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {key}: {reason}" if key else f"{where}: {reason}")
        self.file, self.line, self.key, self.reason = file, line, key, reason


@frozen
class Program:
    """One `[proc.NAME]`, checked; durations in seconds; `cwd` absolute."""

    name: str
    argv: tuple[str, ...]
    cwd: str
    env: tuple[tuple[str, str], ...] = ()
    tags: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    restart: Restart = "never"
    max_restarts: int | None = None
    restart_window: float | None = None
    backoff: tuple[float, float] | None = None
    log_max_bytes: int | None = None
    alerts: tuple[AlertDecl, ...] = ()


def read_procfile(file: str) -> list[Program]:
    """The programs `file` declares; ProcFileError (never OSError) when it cannot be
    read or is wrong anywhere."""
    try:
        with open(file, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ProcFileError(file, None, "", e.strerror or str(e)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ProcFileError(file, line, "", "not UTF-8 text") from None
    return parse_procfile(text, file, os_path.dirname(os_path.abspath(file)))


def parse_procfile(text: str, file: str, base: str) -> list[Program]:
    """The programs `text` (the content of `file`) declares, `cwd` resolved against
    the directory `base`."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        found = re.search(r"\(at line (\d+), column \d+\)$", message)
        line = int(found.group(1)) if found else None
        reason = message[: found.start()].strip() if found else message
        raise ProcFileError(file, line, "", f"not valid TOML: {reason}") from None
    lines = _Lines(text)
    for key in doc:
        if key != "proc":
            raise ProcFileError(
                file, lines.top(key), key, "unknown table: programs go in [proc.NAME]"
            )
    procs = doc.get("proc", {})
    if not isinstance(procs, dict) or not procs:
        raise ProcFileError(file, lines.top("proc"), "proc", "declares no program: add [proc.NAME]")
    out = []
    for name, table in procs.items():
        where = _Where(file, lines, name)
        if not NAME_RE.fullmatch(name) or name.isdigit():
            why = "a name is never all digits" if name.isdigit() else f"must be {NAME_RULE}"
            raise where.error("", f"proc.{name}: {why}")
        if not isinstance(table, dict):
            raise where.error("", f"proc.{name}: must be a table of the program's keys")
        out.append(_program(name, table, where, base))
    return out


class _Lines:
    """Where keys stand in the text, found by reading it line by line (tomllib tells
    no positions): the `[proc.NAME]` header and the `key =` lines under it."""

    _HEADER = re.compile(r"\s*\[\[?\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")  # [t] or [[t]]
    _KEY = re.compile(r"\s*([A-Za-z0-9_\-]+|\"[^\"]*\"|'[^']*')\s*[.=]")

    def __init__(self, text: str) -> None:
        self.rows: list[tuple[str | None, str | None]] = []  # (table, key) per line
        table: str | None = None
        for row in text.split("\n"):  # TOML ends lines with LF (CRLF) only
            header = self._HEADER.match(row)
            if header:
                table = ".".join(_unquoted(p.strip()) for p in header.group(1).split("."))
                self.rows.append((table, None))
                continue
            key = self._KEY.match(row)
            self.rows.append((table, _unquoted(key.group(1)) if key else None))

    def top(self, key: str) -> int | None:
        for n, (table, k) in enumerate(self.rows, 1):
            if (table is None and k == key) or (table or "").split(".")[0] == key:
                return n
        return None

    def of(self, name: str, key: str | None) -> int | None:
        """The line of `key` of program `name` (its header's when `key` is None)."""
        table = f"proc.{name}"
        for n, (t, k) in enumerate(self.rows, 1):
            if key is None and ((t == table and k is None) or (t == "proc" and k == name)):
                return n
            if key is not None and ((t == table and k == key) or t == f"{table}.{key}"):
                return n
        return None if key is None else self.of(name, None)


def _unquoted(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'" else text


@frozen
class _Where:
    file: str
    lines: _Lines
    name: str

    def error(self, key: str, reason: str) -> ProcFileError:
        shown = f"proc.{self.name}.{key}" if key else ""
        return ProcFileError(self.file, self.lines.of(self.name, key or None), shown, reason)


def _program(name: str, table: Mapping[str, Any], where: _Where, base: str) -> Program:
    for key in table:
        if key not in _KEYS:
            raise where.error(key, f"unknown key: one of {', '.join(_KEYS)}")
    if "cmd" not in table:
        raise where.error("cmd", "missing: the command line to run")

    def get(key: str, check: Callable[[Any], Any]) -> Any:
        if key not in table:
            return None
        try:
            return check(table[key])
        except InvalidValue as e:
            raise where.error(key, str(e)) from None

    cwd = get("cwd", check.text)
    restart = get("restart", check.restart)
    return Program(
        name=name,
        argv=get("cmd", check.argv),
        cwd=base if cwd is None else os_path.normpath(os_path.join(base, cwd)),
        env=get("env", check.env) or (),
        tags=get("tags", check.labels) or (),
        groups=get("groups", check.labels) or (),
        restart="never" if restart is None else restart,
        max_restarts=get("max_restarts", check.count),
        restart_window=get("restart_window", check.positive_duration),
        backoff=get("backoff", check.backoff),
        log_max_bytes=get("log_max_bytes", check.log_bytes),
        alerts=get("alert", check.alerts) or (),
    )
