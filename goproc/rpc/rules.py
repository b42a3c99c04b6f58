"""Alert and adoption rules on the wire and on disk (one form for both): pure, no
trio, no I/O.

An alert rule is `{"id", "name", "select", "all", "condition", "action", "created_at"}`:
`select` holds the selector's given fields only, `condition` and `action` are their
canonical text (`goproc.alerts`), which reads back as the same rule.  An adoption rule
is `{"id", "name", "match", "tags", "groups", "name_template", "forget_after", "limit",
"created_at", "adopted"}`: `match` holds its given fields only (the users as uids,
`children_of` an entry id), as `adopt.add` takes them.  The hooks are registered by
`goproc.rpc.convert.make_converter`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import cattrs

from goproc.adoption import check_template
from goproc.alerts import parse_action, parse_condition
from goproc.api import (
    ID_MAX,
    PID_MAX,
    AdoptInfo,
    AlertRule,
    Count,
    Label,
    Lifetime,
    MatchSpec,
    Name,
    ProcId,
)
from goproc.errors import InvalidValue
from goproc.model import AdoptRule, Rule, Selector
from goproc.rpc import values
from goproc.rpc.entries import format_time
from goproc.rpc.values import Invalid, show_value

RULE_KEYS = ("id", "name", "select", "all", "condition", "action", "created_at")
ADOPT_KEYS = (
    "id",
    "name",
    "match",
    "tags",
    "groups",
    "name_template",
    "forget_after",
    "limit",
    "created_at",
    "adopted",
)


def selector_dict(sel: Selector) -> dict[str, Any]:
    """A selector's given fields as the params object names them."""
    out: dict[str, Any] = {}
    for a in attrs.fields(Selector):
        value = getattr(sel, a.name)
        if value is not None:
            out[a.name] = list(value) if isinstance(value, tuple) else value
    return out


def rule_dict(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "select": selector_dict(rule.select),
        "all": rule.all,
        "condition": rule.condition.text(),
        "action": rule.action,
        "created_at": format_time(rule.created_at),
    }


def alert_rule_dict(value: AlertRule) -> dict[str, Any]:
    out = rule_dict(value.rule)
    out["firing"] = list(value.firing)
    return out


def rule_hook(c: cattrs.Converter) -> Callable[[Any, Any], Rule]:
    """Structure a stored rule, every field checked as the params that made it were."""

    def structure(obj: Any, _: Any) -> Rule:
        if not isinstance(obj, dict) or tuple(sorted(obj)) != tuple(sorted(RULE_KEYS)):
            raise Invalid(f"must be a rule object with {', '.join(RULE_KEYS)}")
        name = obj["name"]
        try:
            condition = parse_condition(values.str_value(obj["condition"], str))
            action = parse_action(values.str_value(obj["action"], str))
        except InvalidValue as e:
            raise Invalid(e.message) from None
        return Rule(
            id=values.int_in(1, ID_MAX, "a positive integer id")(obj["id"], ProcId),
            name=None if name is None else values.name_value(name, Name),
            select=c.structure(obj["select"], Selector),
            all=values.bool_value(obj["all"], bool),
            condition=condition,
            action=action,
            created_at=values.time_value(obj["created_at"], float),
        )

    return structure


def rule_ref(value: Any, _: Any) -> int | str:
    """`alert.remove`'s `rule`: a rule's number or its name."""
    if type(value) is int:
        return values.int_in(1, ID_MAX, "a positive integer id")(value, ProcId)
    if isinstance(value, str):
        return values.name_value(value, Name)
    raise Invalid(f"must be a rule's number or name, got {show_value(value)}")


def match_dict(rule: AdoptRule) -> dict[str, Any]:
    """An adoption rule's match: its given fields, as `adopt.add` takes them."""
    out: dict[str, Any] = {}
    if rule.pattern is not None:
        out["pattern"] = rule.pattern
    if rule.full:
        out["full"] = True
    if rule.exact:
        out["exact"] = True
    if rule.users is not None:
        out["user"] = [str(u) for u in rule.users]
    if rule.parents is not None:
        out["parent"] = list(rule.parents)
    if rule.cgroup is not None:
        out["cgroup"] = rule.cgroup
    if rule.children_of is not None:
        out["children_of"] = rule.children_of
    return out


def adopt_dict(rule: AdoptRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "match": match_dict(rule),
        "tags": list(rule.tags),
        "groups": list(rule.groups),
        "name_template": rule.name_template,
        "forget_after": rule.forget_after,
        "limit": rule.limit,
        "created_at": format_time(rule.created_at),
        "adopted": rule.adopted,
    }


def adopt_info_dict(value: AdoptInfo) -> dict[str, Any]:
    out = adopt_dict(value.rule)
    out["alive"] = value.alive
    return out


def adopt_hook(c: cattrs.Converter) -> Callable[[Any, Any], AdoptRule]:
    """Structure a stored adoption rule, every field checked as the params that made
    it were (but its pattern, which only the daemon's regex library can check)."""
    count = values.int_in(0, ID_MAX, "a count")
    rule_id = values.int_in(1, ID_MAX, "a positive integer id")
    positive = values.int_in(1, PID_MAX, "a positive integer")

    def structure(obj: Any, _: Any) -> AdoptRule:
        if not isinstance(obj, dict) or tuple(sorted(obj)) != tuple(sorted(ADOPT_KEYS)):
            raise Invalid(f"must be an adoption rule object with {', '.join(ADOPT_KEYS)}")
        match = c.structure(obj["match"], MatchSpec)
        users = None if match.user is None else tuple(_uid(u) for u in match.user)
        if isinstance(match.children_of, str) or match.pick != "all":
            raise Invalid("match: children_of must be an entry id, pick must be all")
        name, template = obj["name"], obj["name_template"]
        forget, limit = obj["forget_after"], obj["limit"]
        try:
            template = None if template is None else check_template(values.str_value(template, str))
        except InvalidValue as e:
            raise Invalid(e.message) from None
        return AdoptRule(
            id=rule_id(obj["id"], ProcId),
            name=None if name is None else values.name_value(name, Name),
            pattern=match.pattern,
            full=match.full,
            exact=match.exact,
            users=users,
            parents=match.parent,
            cgroup=match.cgroup,
            children_of=match.children_of,
            tags=c.structure(obj["tags"], tuple[Label, ...]),
            groups=c.structure(obj["groups"], tuple[Label, ...]),
            name_template=template,
            forget_after=None if forget is None else values.lifetime_value(forget, Lifetime),
            limit=None if limit is None else positive(limit, Count),
            created_at=values.time_value(obj["created_at"], float),
            adopted=count(obj["adopted"], int),
        )

    return structure


def _uid(text: str) -> int:
    if not (text.isdigit() and text.isascii()):
        raise Invalid(f"match.user: a stored rule names users by uid, got {show_value(text)}")
    return int(text)
