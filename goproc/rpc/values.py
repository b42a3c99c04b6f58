"""The structure hooks of single wire values: each takes a JSON value and returns the
plain value, or raises `Invalid` saying what is wrong (`goproc.rpc.convert` registers
them and words the failures).  Pure: no trio, no I/O.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any, NewType

from goproc.model import NAME_RE, NAME_RULE, LogFiles, label_problem
from goproc.params import LIFETIME_MAX, PICKS, RESTARTS
from goproc.rpc.decoding import BadEntry, log_files, spawned_from, supervision
from goproc.rpc.entries import parse_time


class Invalid(ValueError):
    """A value was rejected by a structure hook; the message says what is wrong."""


def show_value(value: object) -> str:
    """A value for an error message, cut to 40 characters."""
    # JSON's spelling for what only JSON has (true, null, arrays); Python's repr for
    # numbers and strings, which quotes a string the way every other message does.
    plain = isinstance(value, float | int | str) and not isinstance(value, bool)
    text = repr(value) if plain else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def int_in(lo: int, hi: int, what: str) -> Callable[[Any, Any], int]:
    def hook(value: Any, _: Any) -> int:
        if type(value) is not int:
            raise Invalid(f"must be {what}, got {show_value(value)}")
        if not lo <= value <= hi:
            raise Invalid(f"must be {what} (from {lo} to {hi}), got {value}")
        return value

    return hook


def str_value(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(f"must be a string, got {show_value(value)}")
    return value


Needle = NewType("Needle", str)  # a name, tag or group a selector looks for


def needle(value: Any, _: Any) -> str:
    text = str_value(value, _)
    if not text.strip():
        raise Invalid(f"must not be blank, got {show_value(text)}")
    return text


def label_value(value: Any, _: Any) -> str:
    """A tag or a group as given (`goproc.model.label_problem`).  Trimmed when stored; a
    blank one is dropped (`goproc.model.normalize_labels`)."""
    text = str_value(value, _)
    problem = label_problem(text, show_value(value))
    if problem is not None:
        raise Invalid(problem)
    return text


def name_value(value: Any, _: Any) -> str:
    """Trimmed like a tag; never all digits, which `show 123` would read as an id."""
    text = str_value(value, _).strip(" \t\n\r\f\v")
    if not NAME_RE.fullmatch(text):
        raise Invalid(f"must be {NAME_RULE}, got {show_value(value)}")
    if text.isdigit():
        raise Invalid(f"must contain a non-digit (an id is all digits), got {show_value(value)}")
    return text


def signal_value(value: Any, _: Any) -> int:
    if type(value) is int:
        if value in signal.valid_signals() and value != 0:
            return value
        raise Invalid(f"must be a signal number or name, got {value}")
    if isinstance(value, str):
        # ASCII only: `upper` makes "KILL" of "k\u0131ll" (a dotless i) and "SIGKILL" of
        # "\u017figkill" (a long s), and `strip` takes U+3000 away.
        name = value.strip(" \t\n\r\f\v").upper() if value.isascii() else ""
        name = name if name.startswith("SIG") else "SIG" + name
        sig = getattr(signal.Signals, name, None) if name.isidentifier() else None
        if isinstance(sig, signal.Signals):
            return int(sig)
        raise Invalid(f"must be a signal name like TERM or KILL, got {show_value(value)}")
    raise Invalid(f"must be a signal name or number, got {show_value(value)}")


def seconds_value(value: Any, _: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise Invalid(f"must be a number of seconds, got {show_value(value)}")
    if not 0 <= value <= 86400:
        raise Invalid(f"must be from 0 to 86400 seconds, got {value}")
    return float(value)


def lifetime_value(value: Any, _: Any) -> float:
    """A number of seconds from 0 to ten years (`goproc.params.LIFETIME_MAX`)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise Invalid(f"must be a number of seconds, got {show_value(value)}")
    if not 0 <= value <= LIFETIME_MAX:
        raise Invalid(f"must be from 0 to {LIFETIME_MAX} seconds (ten years), got {value}")
    return float(value)


def bool_value(value: Any, _: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"must be true or false, got {show_value(value)}")
    return value


def time_value(value: Any, _: Any) -> float:
    try:
        return parse_time(value)
    except ValueError as e:
        raise Invalid(str(e)) from None


def optional_time(value: Any, _: Any) -> float | None:
    return None if value is None else time_value(value, _)


# ---- an entry's fields, and the choices of params --------------------------------


def entry_spawned(value: Any, _: Any) -> Any:
    try:
        return spawned_from(value)
    except ValueError as e:
        raise Invalid(str(e)) from None


def exit_code(value: Any, _: Any) -> int | None:
    return _supervision({"exit_code": value})[1]


def exit_signal(value: Any, _: Any) -> int | None:
    return _supervision({"exit_signal": value})[2]


def _supervision(obj: dict[str, Any]) -> tuple[Any, int | None, int | None, int, bool]:
    try:
        return supervision(obj)
    except BadEntry as e:
        raise Invalid(str(e).partition(": ")[2]) from None


def pick_value(value: Any, _: Any) -> str:
    if value not in PICKS or not isinstance(value, str):
        raise Invalid(f"must be one of {', '.join(map(repr, PICKS))}, got {show_value(value)}")
    return value


def restart_value(value: Any, _: Any) -> str:
    if value not in RESTARTS or not isinstance(value, str):
        names = ", ".join(map(repr, RESTARTS))
        raise Invalid(f"must be one of {names}, got {show_value(value)}")
    return value


def entry_log(value: Any, _: Any) -> LogFiles | None:
    try:
        return log_files(value)
    except ValueError as e:
        raise Invalid(str(e)) from None


def add_log(value: Any, _: Any) -> bool | LogFiles:
    """`add`'s `log`: true (the daemon's files), false (none) or the files' paths."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, dict):
        raise Invalid(
            f'must be true, false or {{"out": PATH, "err": PATH}}, got {show_value(value)}'
        )
    files = entry_log(value, None)
    assert files is not None  # a dict is never null
    return files
