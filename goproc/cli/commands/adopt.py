"""`goproc adopt ...`: add, list and remove adoption rules, which track every process
that starts later and matches (as pgrep matches): `goproc adopt add --match '^worker'
--tag jobs --name 'w-{n}' --forget-after 1h`.  The daemon finds them
(`goproc.daemon.adopting`)."""

from __future__ import annotations

from typing import Annotated, Any

from cyclopts import App, Parameter

from goproc import api
from goproc.cli import completers, output
from goproc.cli.codes import ExitCode
from goproc.cli.escape import shown
from goproc.cli.flags import (
    Common,
    Flag,
    Groups,
    Json,
    OptionalTarget,
    Repeat,
    RepeatInt,
    Tags,
    ascii_int,
    call,
    label_tuple,
    seconds_of,
    split_commas,
)
from goproc.cli.tables import age
from goproc.errors import UsageError

adopt_app = App(name="adopt", help="Add, list (bare, or 'list') and remove adoption rules.")

RuleRef = Annotated[str, Parameter(completer=completers.adopt_rules)]


def rules(*, json_: Json = False, common: Common | None = None) -> ExitCode:
    """Every adoption rule, how many it has adopted and how many of those are alive."""
    found = call(common, api.ADOPT_LIST, api.NoParams())
    output.emit(found, json_, rule_table)
    return ExitCode.OK


adopt_app.default(rules)
adopt_app.command(rules, name="list")


@adopt_app.command(name="add")
def add(
    *,
    match: str | None = None,
    full: Flag = False,
    exact: Flag = False,
    user: Repeat = None,
    parent: RepeatInt = None,
    cgroup: str | None = None,
    children_of: OptionalTarget = None,
    tag: Tags = None,
    group: Groups = None,
    name: str | None = None,
    rule: str | None = None,
    forget_after: str | None = None,
    limit: str | None = None,
    json_: Json = False,
    common: Common | None = None,
) -> ExitCode:
    """Add a rule: every process that starts from now on and matches (as pgrep matches)
    is tracked, with the rule's tags, groups and name.  Processes running already are
    not (add them with 'goproc add --match').

    Parameters
    ----------
    match
        An extended regular expression searched in the process name (pgrep PATTERN).
    full
        Search the whole command line instead of the name (pgrep -f).
    exact
        The pattern must match all of it (pgrep -x).
    user
        Effective user, a name or uid (pgrep -u; repeatable, comma-separated; root: any user).
    parent
        Parent PID (pgrep -P; repeatable or comma-separated).
    cgroup
        Only processes in this cgroup v2 directory (e.g. /sys/fs/cgroup/.../app.service).
    children_of
        Every descendant of this tracked entry's process (its ID or NAME), as it is forked.
    tag
        A tag for each adopted entry (repeatable; or a comma-separated list).
    group
        A group for each adopted entry (repeatable; or a comma-separated list).
    name
        A name template: {comm}, {pid} and {n} (the n-th adopted); a name taken is left off.
    rule
        A unique name for the rule itself.
    forget_after
        Remove an adopted entry this long after its process exited (like 10m, 1h).
    limit
        Adopt no more while this many of the rule's entries are alive.
    """
    finders = (match, user, parent, cgroup, children_of)
    if all(v is None for v in finders):
        raise UsageError(
            "give what to adopt: --match PATTERN, --user, --parent, --cgroup or --children-of"
        )
    params = api.AdoptAddParams(
        match=api.MatchSpec(
            pattern=match,
            full=full,
            exact=exact,
            user=None if user is None else tuple(split_commas(user)),
            parent=None if parent is None else tuple(api.Pid(p) for p in parent),
            cgroup=cgroup,
            children_of=None if children_of is None else _ref("--children-of", children_of),
        ),
        tags=label_tuple(tag or ()),
        groups=label_tuple(group or ()),
        name=name,
        rule=None if rule is None else api.Name(rule),
        forget_after=None if forget_after is None else _lifetime(forget_after),
        limit=None if limit is None else _limit(limit),
    )
    added = call(common, api.ADOPT_ADD, params)
    output.emit(added, json_, lambda r: [f"adoption rule {shown(r['id'])} added: {_about(r)}"])
    return ExitCode.OK


@adopt_app.command(name="rm")
def remove(rule: RuleRef, /, *, json_: Json = False, common: Common | None = None) -> ExitCode:
    """Remove a rule, by its number or its name (the entries it adopted stay)."""
    removed = call(common, api.ADOPT_REMOVE, api.AdoptRemoveParams(rule=_ref("RULE", rule)))
    output.emit(removed, json_, lambda r: [f"adoption rule {shown(r['id'])} removed: {_about(r)}"])
    return ExitCode.OK


def _ref(flag: str, text: str) -> api.ProcId | api.Name:
    """A rule's or an entry's number, or its name."""
    if text.strip().isdigit():
        try:
            return api.ProcId(ascii_int(text))
        except ValueError as e:
            raise UsageError(f"{flag}: {e}") from None
    return api.Name(text)


def _lifetime(text: str) -> api.Lifetime:
    seconds = seconds_of("--forget-after", text)
    if seconds > api.LIFETIME_MAX:
        raise UsageError(f"--forget-after: must be at most ten years, got {text!r}")
    return api.Lifetime(seconds)


def _limit(text: str) -> api.Count:
    try:
        n = ascii_int(text)
    except ValueError as e:
        raise UsageError(f"--limit: {e}") from None
    if not 1 <= n <= api.PID_MAX:
        raise UsageError(f"--limit: must be a positive integer, got {text!r}")
    return api.Count(n)


_MATCH_FLAGS = (
    ("pattern", "--match"),
    ("full", "--full"),
    ("exact", "--exact"),
    ("user", "--user"),
    ("parent", "--parent"),
    ("cgroup", "--cgroup"),
    ("children_of", "--children-of"),
)


def matched_by(r: dict[str, Any]) -> str:
    """What a rule adopts, as the flags that say it (`--match ^w --full`)."""
    match = r.get("match") or {}
    words = []
    for key, flag in _MATCH_FLAGS:
        value = match.get(key)
        if value is True:
            words.append(flag)
        elif isinstance(value, list):
            words.append(f"{flag} {','.join(map(str, value))}")
        elif value is not None and value is not False:
            words.append(f"{flag} {value}")
    return shown(" ".join(words))


def _labels(r: dict[str, Any]) -> str:
    words = [f"--tag {','.join(r['tags'])}"] if r.get("tags") else []
    words += [f"--group {','.join(r['groups'])}"] if r.get("groups") else []
    return shown(" ".join(words)) or "-"


def _about(r: dict[str, Any]) -> str:
    name = f" ({shown(r['name'])})" if r.get("name") else ""
    labels = _labels(r)
    return f"{matched_by(r)}{'' if labels == '-' else ' ' + labels}{name}"


def rule_table(found: list[dict[str, Any]]) -> list[str]:
    """`adopt list`: a rule a row; a dash where a rule has no such setting."""
    head = ("RULE", "NAME", "MATCH", "LABELS", "ENTRY NAME", "FORGET", "LIMIT", "ADOPTED", "ALIVE")
    rows = [
        (
            shown(r["id"]),
            shown(r["name"]) if r.get("name") else "-",
            matched_by(r),
            _labels(r),
            shown(r["name_template"]) if r.get("name_template") else "-",
            "-" if r.get("forget_after") is None else age(r["forget_after"]),
            "-" if r.get("limit") is None else shown(r["limit"]),
            shown(r.get("adopted")),
            shown(r.get("alive")),
        )
        for r in found
    ]
    widths = [max(len(row[n]) for row in (head, *rows)) for n in range(len(head))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (head, *rows)
    ]
