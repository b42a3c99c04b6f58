"""`goproc add --match ...`: the flags that find processes as `pgrep` does, and how what
they found is printed.  The daemon does the finding (`goproc.daemon.handlers.discovery`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from attrs import define
from cyclopts import Parameter

from goproc import api
from goproc.cli.escape import shown
from goproc.cli.flags import Flag, Repeat, RepeatInt, ascii_int, split_commas
from goproc.errors import UsageError


@Parameter(name="*")
@define
class MatchFlags:
    """Find the processes to add instead of naming their PIDs (as pgrep finds them)."""

    match: str | None = None
    "An extended regular expression searched in the process name (pgrep PATTERN)."
    full: Flag = False
    "Search the whole command line instead of the name (pgrep -f)."
    exact: Flag = False
    "The pattern must match all of it (pgrep -x)."
    user: Repeat = None
    "Effective user, a name or uid (pgrep -u; repeatable or comma-separated; root only for others)."
    parent: RepeatInt = None
    "Parent PID (pgrep -P; repeatable or comma-separated)."
    cgroup: str | None = None
    "The processes of this cgroup v2 directory (e.g. /sys/fs/cgroup/.../app.service)."
    children: str | None = None
    "The descendants, as of now, of this tracked entry's process (its ID or NAME)."
    newest: Flag = False
    "Only the newest of those found (pgrep -n)."
    oldest: Flag = False
    "Only the oldest of those found (pgrep -o)."
    dry_run: Flag = False
    "Only list what would be added."

    def given(self) -> bool:
        """Whether any of these flags is given (then no PID may be)."""
        finders = (self.match, self.user, self.parent, self.cgroup, self.children)
        return any(v is not None for v in finders) or any(
            (self.full, self.exact, self.newest, self.oldest, self.dry_run)
        )

    def spec(self) -> api.MatchSpec:
        if self.newest and self.oldest:
            raise UsageError("--newest and --oldest exclude each other: give one")
        if all(v is None for v in (self.match, self.user, self.parent, self.cgroup, self.children)):
            raise UsageError(
                "give what to find: --match PATTERN, --user, --parent, --cgroup or --children"
            )
        children: api.ProcId | api.Name | None = None
        if self.children is not None:
            text = self.children.strip()
            if text.isdigit():
                try:
                    children = api.ProcId(ascii_int(text))
                except ValueError as e:
                    raise UsageError(f"--children: {e}") from None
            else:
                children = api.Name(self.children)
        return api.MatchSpec(
            pattern=self.match,
            full=self.full,
            exact=self.exact,
            user=None if self.user is None else tuple(split_commas(self.user)),
            parent=None if self.parent is None else tuple(api.Pid(p) for p in self.parent),
            cgroup=self.cgroup,
            children_of=children,
            pick="newest" if self.newest else "oldest" if self.oldest else "all",
        )


def matched_lines(found: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per process found: added, already tracked (skipped), or would be added."""
    out = []
    for m in found:
        pid, ident = shown(m["pid"]), shown(m.get("id"))
        if m["outcome"] == "added":
            out.append(f"Process {pid} registered with id {ident}")
        elif m["outcome"] == "tracked":
            out.append(f"Process {pid} is already tracked as id {ident}: skipped")
        else:
            out.append(f"Process {pid} would be added: {shown(m['cmd'])}")
    return out
