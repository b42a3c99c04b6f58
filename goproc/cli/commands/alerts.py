"""`goproc alert ...`: add, list and remove alert rules (what monit's `if ... then ...`
does, scriptable): `goproc alert add --tag web --if 'cpu > 90% for 30s' --then kill`."""

from __future__ import annotations

from typing import Annotated, Any

from cyclopts import App, Parameter

from goproc import api
from goproc.cli import completers, output
from goproc.cli.codes import ExitCode
from goproc.cli.escape import shown
from goproc.cli.flags import AllFlag, Common, Json, Select, ascii_int, call, selector_of
from goproc.errors import UsageError
from goproc.model import Selector

alert_app = App(name="alert", help="Add, list (bare, or 'list') and remove alert rules.")

If = Annotated[
    str,
    Parameter(
        name="--if",
        help="The condition: METRIC OP VALUE [for DURATION], like 'cpu > 90% for 30s'."
        " Metrics: cpu (percent of one core), mem (bytes: 500MB, 1.5GiB), read_rate and"
        " write_rate (bytes/s), threads, fds, age (a duration).",
    ),
]
Then = Annotated[
    str,
    Parameter(
        name="--then",
        help="What to do when it fires: event (the alert event and a log line),"
        " signal:NAME (like signal:HUP), or kill (TERM, then KILL after 5s).",
    ),
]
RuleName = Annotated[
    str | None,
    Parameter(name="--rule", help="A unique name for the rule (--name selects entries)."),
]
RuleRef = Annotated[str, Parameter(completer=completers.rules)]


def rules(*, json_: Json = False, common: Common | None = None) -> ExitCode:
    """Every alert rule, and the entries each has fired for (and not cleared since)."""
    found = call(common, api.ALERT_LIST, api.NoParams())
    output.emit(found, json_, rule_table)
    return ExitCode.OK


alert_app.default(rules)
alert_app.command(rules, name="list")


@alert_app.command(name="add")
def add(
    *,
    if_: If,
    then: Then = "event",
    rule: RuleName = None,
    select: Select | None = None,
    all_: AllFlag = False,
    json_: Json = False,
    common: Common | None = None,
) -> ExitCode:
    """Add a rule for the entries the selectors match, now and added later (--all and no
    selector: every entry).  It fires once per crossing: again only after the
    condition has cleared."""
    selector = selector_of(select)
    if selector == Selector() and not all_:
        raise UsageError("give a selector (--tag, --name, ...) or --all for every entry")
    params = api.AlertAddParams(
        condition=if_,
        action=then,
        rule=None if rule is None else api.Name(rule),
        target=api.Targeted(select=selector, all=all_),
    )
    added = call(common, api.ALERT_ADD, params)
    output.emit(added, json_, lambda r: [f"rule {shown(r['id'])} added: {_about(r)}"])
    return ExitCode.OK


@alert_app.command(name="rm")
def remove(rule: RuleRef, /, *, json_: Json = False, common: Common | None = None) -> ExitCode:
    """Remove a rule, by its number or its name."""
    ref: api.ProcId | api.Name
    if rule.strip().isdigit():
        try:
            ref = api.ProcId(ascii_int(rule))
        except ValueError as e:
            raise UsageError(f"RULE: {e}") from None
    else:
        ref = api.Name(rule)
    removed = call(common, api.ALERT_REMOVE, api.AlertRemoveParams(rule=ref))
    output.emit(removed, json_, lambda r: [f"rule {shown(r['id'])} removed: {_about(r)}"])
    return ExitCode.OK


def _about(r: dict[str, Any]) -> str:
    name = f" ({shown(r['name'])})" if r.get("name") else ""
    return f"if {shown(r['condition'])} then {shown(r['action'])}, for {selected(r)}{name}"


FLAGS = {  # a selector's fields as the flags that give them
    "ids": "--id",
    "pids": "--pid",
    "names": "--name",
    "tags_any": "--tag",
    "tags_all": "--tag-all",
    "groups_any": "--group",
    "groups_all": "--group-all",
    "search": "--search",
}


def selected(r: dict[str, Any]) -> str:
    """The entries a rule is for, as the flags that select them (`--tag web --alive`)."""
    words = []
    for key, value in (r.get("select") or {}).items():
        if key == "alive":
            words.append("--alive" if value else "--dead")
        elif isinstance(value, list):
            words.append(f"{FLAGS.get(key, key)} {','.join(map(str, value))}")
        else:
            words.append(f"{FLAGS.get(key, key)} {value}")
    return shown(" ".join(words)) if words else "every entry"


def rule_table(found: list[dict[str, Any]]) -> list[str]:
    """`alert list`: a rule a row; FIRING: the entries in alert now (a dash: none)."""
    head = ("RULE", "NAME", "IF", "THEN", "FOR", "FIRING")
    rows = [
        (
            shown(r["id"]),
            shown(r["name"]) if r.get("name") else "-",
            shown(r["condition"]),
            shown(r["action"]),
            selected(r),
            ",".join(map(str, r.get("firing") or ())) or "-",
        )
        for r in found
    ]
    widths = [max(len(row[n]) for row in (head, *rows)) for n in range(len(head))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (head, *rows)
    ]
