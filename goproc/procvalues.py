"""The checks of a process file's values (`goproc.procfile`): each takes what tomllib
read and returns the plain value, or raises InvalidValue saying what is wrong (the
caller names the file, line and key).  Pure."""

from __future__ import annotations

import shlex
from typing import Any

from attrs import frozen

from goproc.alerts import parse_action, parse_condition
from goproc.durations import parse_duration
from goproc.errors import InvalidValue
from goproc.model import NAME_RE, NAME_RULE, label_problem
from goproc.params import RESTARTS, Restart

LOG_MIN_BYTES = 4096
COUNT_MAX = 1_000_000


@frozen
class AlertDecl:
    condition: str
    action: str = "event"
    rule: str | None = None


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"must be a string, got {kind(value)}")
    if "\x00" in value:
        raise InvalidValue("must not contain a NUL character")
    return value


def argv(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            words = shlex.split(text(value))
        except ValueError as e:  # an unclosed quote
            raise InvalidValue(f"cannot be split into words: {e}") from None
    elif isinstance(value, list):
        words = [text(w) for w in value]
    else:
        raise InvalidValue(f"must be a string or an array of strings, got {kind(value)}")
    if not words or not words[0]:
        raise InvalidValue("must name a program to run")
    return tuple(words)


def env(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise InvalidValue(f"must be a table of strings, got {kind(value)}")
    out = []
    for key, v in value.items():
        if not key or "=" in key or "\x00" in key:
            raise InvalidValue(f"{key!r}: a variable's name must be non-empty, without '=' or NUL")
        if not isinstance(v, str) or "\x00" in v:
            raise InvalidValue(f"{key}: must be a string without NUL, got {kind(v)}")
        out.append((key, v))
    return tuple(out)


def labels(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InvalidValue(f"must be an array of strings, got {kind(value)}")
    out = []
    for n, label in enumerate(value):
        if not isinstance(label, str):
            raise InvalidValue(f"[{n}]: must be a string, got {kind(label)}")
        problem = label_problem(label, repr(label))
        if problem is not None:
            raise InvalidValue(f"[{n}]: {problem}")
        if label.strip():
            out.append(label.strip())
    return tuple(out)


def restart(value: Any) -> Restart:
    for policy in RESTARTS:
        if value == policy:
            return policy
    raise InvalidValue(f"must be one of {', '.join(RESTARTS)}, got {value!r}")


def count(value: Any) -> int:
    if type(value) is not int or not 1 <= value <= COUNT_MAX:
        raise InvalidValue(f"must be a whole number from 1 to {COUNT_MAX}, got {value!r}")
    return value


def log_bytes(value: Any) -> int:
    if type(value) is not int or value < LOG_MIN_BYTES:
        raise InvalidValue(
            f"must be a whole number of bytes, at least {LOG_MIN_BYTES}, got {value!r}"
        )
    return value


def positive_duration(value: Any) -> float:
    try:
        seconds = parse_duration(text(value))
    except ValueError as e:
        raise InvalidValue(f"must be a duration like 30s or 5m: {e}") from None
    if seconds <= 0:
        raise InvalidValue(f"must be more than 0, got {value!r}")
    return seconds


def backoff(value: Any) -> tuple[float, float]:
    low, sep, high = text(value).partition("..")
    if not sep:
        raise InvalidValue(f"must be MIN..MAX, like 1s..60s, got {value!r}")
    first, longest = positive_duration(low), positive_duration(high)
    if longest < first:
        raise InvalidValue(f"MAX must not be less than MIN, got {value!r}")
    return first, longest


def alerts(value: Any) -> tuple[AlertDecl, ...]:
    if not isinstance(value, list):
        raise InvalidValue(
            f"must be an array of tables like {{ if = 'cpu > 90%' }}, got {kind(value)}"
        )
    out = []
    for n, rule in enumerate(value):
        if not isinstance(rule, dict) or "if" not in rule or set(rule) - {"if", "then", "rule"}:
            raise InvalidValue(f"[{n}]: must be a table of if, and then and rule if wanted")
        condition, action = text(rule["if"]), text(rule.get("then", "event"))
        name = None if rule.get("rule") is None else text(rule["rule"])
        try:
            parse_condition(condition)
            parse_action(action)
        except InvalidValue as e:
            raise InvalidValue(f"[{n}]: {e}") from None
        if name is not None and not NAME_RE.fullmatch(name):
            raise InvalidValue(f"[{n}].rule: must be {NAME_RULE}, got {name!r}")
        out.append(AlertDecl(condition, action, name))
    return tuple(out)


def kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names |= {list: "an array", dict: "a table"}
    return names.get(type(value), type(value).__name__)
