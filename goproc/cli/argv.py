"""The command line before cyclopts reads it: a leading `--config FILE` taken off (it
applies to every command), later occurrences of a repeatable flag lifted out (cyclopts
would take quadratic time over them), and flags whose value may be left out given it.
Pure functions of argv."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from goproc.cli.flags import DIGITS_MAX, ascii_int


def leading_config(args: Sequence[str]) -> tuple[Path | None, list[str]]:
    """`--config FILE` (or `--config=FILE`) before the command applies to every command;
    the arguments without it."""
    config, rest = None, list(args)
    while rest:
        if rest[0] == "--config" and len(rest) > 1:
            config, rest = Path(rest[1]), rest[2:]
        elif rest[0].startswith("--config="):
            config, rest = Path(rest[0].partition("=")[2]), rest[1:]
        else:
            break
    return config, rest


# The repeatable flags whose later occurrences `lift_repeats` takes out of argv, and the
# field of their flag group (`Select`, `Labels`) each fills; the int ones are ASCII digits.
LIFTED = {
    "--tag": "tag",
    "--group": "group",
    "--tag-all": "tag_all",
    "--group-all": "group_all",
    "--id": "id",
    "--pid": "pid",
}
LIFTED_INTS = ("id", "pid")


def lift_repeats(args: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """The arguments with each repeatable flag's later `--flag VALUE` pairs taken out,
    and the values taken, by field.  cyclopts reads every token after each occurrence of
    a flag, and checks each value against those before it: n `--tag` flags cost n**2
    (2,000 took half a minute).  It still sees each flag's first occurrence, so help and
    errors are its own; a value it would not take as it is (one that starts with "-",
    an id that is not ASCII digits) stays for it to word the error.  Nothing after `--`
    is touched: that is `run`'s command."""
    kept: list[str] = []
    lifted: dict[str, list[str]] = {}
    seen: set[str] = set()
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            kept.extend(args[i:])
            break
        flag, equals, value = arg.partition("=")
        field = LIFTED.get(flag)
        if field is not None and flag in seen:
            if equals and _liftable(field, value, attached=True):
                lifted.setdefault(field, []).append(value)
                i += 1
                continue
            if not equals and i + 1 < len(args) and _liftable(field, args[i + 1]):
                lifted.setdefault(field, []).append(args[i + 1])
                i += 2
                continue
        seen.add(flag)
        kept.append(arg)
        i += 1
    return kept, lifted


def _liftable(field: str, value: str, attached: bool = False) -> bool:
    """Whether cyclopts would take `value` as it is (`attached`: given as `--flag=value`)."""
    if field in LIFTED_INTS:
        return value.isascii() and value.isdigit() and len(value) <= DIGITS_MAX
    return attached or not value.startswith("-")


def append_lifted(arguments: dict[str, Any], lifted: dict[str, list[str]]) -> None:
    """Append the lifted values to the flag group cyclopts bound them to."""
    for field, values in lifted.items():
        extra: list[Any] = list(map(ascii_int, values)) if field in LIFTED_INTS else values
        for name, group in arguments.items():
            if attrs.has(type(group)) and field in attrs.fields_dict(type(group)):
                given = getattr(group, field) or []
                arguments[name] = attrs.evolve(group, **{field: [*given, *extra]})
                break


# Flags whose value may be left out, and what it then is: `list --watch` is `--watch 2s`.
OPTIONAL_VALUES = {"--watch": "2s"}


def optional_values(args: Sequence[str]) -> list[str]:
    """`args` with the value of each OPTIONAL_VALUES flag given as `--flag=VALUE`: the
    next argument when it is no flag (no command with such a flag takes a positional
    argument), else the default.  Nothing after `--` is touched."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return out + list(args[i:])
        default = OPTIONAL_VALUES.get(arg)
        if default is None:
            out.append(arg)
        elif i + 1 < len(args) and not args[i + 1].startswith("-"):
            out.append(f"{arg}={args[i + 1]}")
            i += 1
        else:
            out.append(f"{arg}={default}")
        i += 1
    return out
