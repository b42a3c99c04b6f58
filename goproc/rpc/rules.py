"""Alert rules on the wire and on disk (one form for both): pure, no trio, no I/O.

A rule is `{"id", "name", "select", "all", "condition", "action", "created_at"}`:
`select` holds the selector's given fields only, `condition` and `action` are their
canonical text (`goproc.alerts`), which reads back as the same rule.  The hooks are
registered by `goproc.rpc.convert.make_converter`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import cattrs

from goproc.alerts import parse_action, parse_condition
from goproc.api import ID_MAX, AlertRule, Name, ProcId
from goproc.errors import InvalidValue
from goproc.model import Rule, Selector
from goproc.rpc import values
from goproc.rpc.entries import format_time
from goproc.rpc.values import Invalid, show_value

RULE_KEYS = ("id", "name", "select", "all", "condition", "action", "created_at")


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
