"""Alert conditions, as monit states them: `cpu > 90% for 30s`.  Pure: no I/O, no trio.

A condition is METRIC OP VALUE [for DURATION]:

- METRIC: `cpu` (percent of one core), `mem` (resident bytes), `read_rate` and
  `write_rate` (bytes per second), `threads`, `fds`, `age` (seconds the process has run);
- OP: `>`, `>=`, `<`, `<=`;
- VALUE: a number in the metric's unit: `cpu` takes `90` or `90%`; `mem` and the rates
  take bytes with an optional unit, decimal (`kB`, `MB`, `GB`, `TB`: powers of 1000) or
  binary (`KiB`, `MiB`, `GiB`, `TiB`, and `K`, `M`, `G`, `T` as top shows them: powers of
  1024), the rates an optional `/s`; `age` a Go duration (`90s`, `2h`);
- `for DURATION` (a Go duration, default 0s): every sample over that window held.

`Crossing` says when a condition fires for one entry: once per crossing, at the first
sample at which it has held for its whole window, and again only after a sample at which
it did not hold.  `parse_action` reads what a rule does then: `event` (the `alert`
event and a log line only), `signal:NAME` (a name like HUP or SIGUSR1, or a number), or
`kill` (what `goproc kill` does: TERM, then KILL after its timeout).
"""

from __future__ import annotations

import math
import operator
import re
import signal
from collections.abc import Callable

from attrs import frozen

from goproc.durations import parse_duration
from goproc.errors import InvalidValue

METRICS = ("cpu", "mem", "read_rate", "write_rate", "threads", "fds", "age")
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
SIZE_UNITS = {
    "": 1,
    "B": 1,
    "kB": 1000,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "K": 1024,
    "KiB": 1024,
    "M": 1024**2,
    "MiB": 1024**2,
    "G": 1024**3,
    "GiB": 1024**3,
    "T": 1024**4,
    "TiB": 1024**4,
}
_CONDITION = re.compile(
    r"\s*(?P<metric>[a-z_]+)\s*(?P<op>>=|<=|>|<)\s*(?P<value>\S+?)"
    r"(?:\s+for\s+(?P<window>\S+))?\s*",
    re.ASCII,
)
_NUMBER = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(.*)", re.ASCII)
FIELD = "condition"  # the parameter a condition comes in, which every message names
ACTION_FIELD = "action"
ACTIONS = ("event", "signal:NAME", "kill")


@frozen
class Condition:
    metric: str
    op: str
    value: float
    window: float = 0.0  # seconds every sample must hold for

    def holds(self, value: float) -> bool:
        return OPS[self.op](value, self.value)

    def text(self) -> str:
        """The condition in a canonical spelling (bytes in the largest unit that states
        them exactly, durations in h, m or s), which `parse_condition` reads back as the
        same condition."""
        window = f" for {_seconds_text(self.window)}" if self.window else ""
        return f"{self.metric} {self.op} {self._value_text()}{window}"

    def _value_text(self) -> str:
        if self.metric == "cpu":
            return f"{_number(self.value)}%"
        if self.metric == "age":
            return _seconds_text(self.value)
        if self.metric in ("threads", "fds"):
            return _number(self.value)
        rate = "/s" if self.metric != "mem" else ""
        return _bytes_text(self.value) + rate


_SHOWN_UNITS = ("TiB", "TB", "GiB", "GB", "MiB", "MB", "KiB", "kB")


def _bytes_text(value: float) -> str:
    """Bytes in the largest unit that states them to three decimals exactly."""
    for unit in _SHOWN_UNITS:
        q = value / SIZE_UNITS[unit]
        if q >= 1 and round(q, 3) == q and round(q, 3) * SIZE_UNITS[unit] == value:
            return _number(q) + unit
    return _number(value)


def _seconds_text(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{_number(seconds / size)}{unit}"
    return f"{_number(seconds)}s"


def _number(value: float) -> str:
    """A value as the grammar reads it: digits and a point, never an exponent (which
    `repr` writes for values below 1e-4: `1e-05`), the same float when read back."""
    value = float(value)
    if value.is_integer():
        return str(int(value))
    digits, _, exponent = repr(value).partition("e")
    if not exponent:
        return digits
    # `repr` writes an exponent below 1e-4 and from 1e16 up, and every float from 2**52
    # up is whole: this is a fraction under 1e-4, its shortest digits after the zeros.
    return "0." + "0" * (-int(exponent) - 1) + digits.replace(".", "")


def parse_condition(text: str) -> Condition:
    """The condition `text` states; InvalidValue naming the part that is wrong."""
    m = _CONDITION.fullmatch(text)
    if m is None:
        raise InvalidValue(
            f"{FIELD}: must be METRIC OP VALUE [for DURATION], like 'cpu > 90% for 30s',"
            f" got {text!r}"
        )
    metric, op, value = m.group("metric"), m.group("op"), m.group("value")
    if metric not in METRICS:
        raise InvalidValue(f"{FIELD}: unknown metric {metric!r}: one of {', '.join(METRICS)}")
    window = 0.0
    if m.group("window") is not None:
        window = _duration(m.group("window"), "the window")
    return Condition(metric=metric, op=op, value=_value(metric, value), window=window)


def _value(metric: str, text: str) -> float:
    if metric == "age":
        return _duration(text, "the age")
    number = _NUMBER.fullmatch(text)
    unit = number.group(2) if number else ""
    if metric == "cpu" and unit in ("", "%"):
        return _finite(metric, text, float(number.group(1))) if number else _bad(metric, text)
    if metric in ("mem", "read_rate", "write_rate") and number:
        base = unit.removesuffix("/s") if metric != "mem" else unit
        if base in SIZE_UNITS:
            return _finite(metric, text, float(number.group(1)) * SIZE_UNITS[base])
    if metric in ("threads", "fds") and number and not unit and number.group(1).isdigit():
        return _finite(metric, text, float(number.group(1)))
    return _bad(metric, text)


def _finite(what: str, text: str, value: float) -> float:
    """`value`, unless it is beyond any float (infinity: no text states it back)."""
    if not math.isfinite(value):
        raise InvalidValue(f"{FIELD}: {what} is too large, got {text!r}")
    return value


def _bad(metric: str, text: str) -> float:
    units = {
        "cpu": "a percent of one core, like 90 or 90%",
        "mem": "bytes, like 500MB or 1.5GiB",
        "read_rate": "bytes per second, like 10MB or 10MB/s",
        "write_rate": "bytes per second, like 10MB or 10MB/s",
        "threads": "a whole number",
        "fds": "a whole number",
    }
    raise InvalidValue(f"{FIELD}: {metric} must be compared with {units[metric]}, got {text!r}")


def _duration(text: str, what: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as e:
        raise InvalidValue(f"{FIELD}: {what}: {e}") from None
    if seconds < 0:
        raise InvalidValue(f"{FIELD}: {what} must not be negative, got {text!r}")
    return _finite(what, text, seconds)


@frozen
class Crossing:
    """One entry's state under one condition: since when it has held (None: it did not
    at the last sample), and whether it fired in this crossing."""

    since: float | None = None
    fired: bool = False

    def step(self, condition: Condition, t: float, value: float | None) -> tuple[Crossing, bool]:
        """The state after a sample of `value` at `t` (None: the OS did not tell, which
        neither holds nor clears), and whether the condition fires at it."""
        if value is None:
            return self, False
        if not condition.holds(value):
            return Crossing(), False
        since = t if self.since is None else self.since
        fire = not self.fired and t - since >= condition.window
        return Crossing(since=since, fired=self.fired or fire), fire


def parse_action(text: str) -> str:
    """The action `text` states, spelt canonically (`event`, `kill`, `signal:HUP`, or
    `signal:40` for a signal without a name); InvalidValue naming what is wrong."""
    word = text.strip(" \t") if text.isascii() else ""
    if word in ("event", "kill"):
        return word
    kind, colon, sig = word.partition(":")
    if kind == "signal" and colon:
        number = _signal_number(sig.strip(" \t"))
        if number is not None:
            return "signal:" + _signal_text(number)
        raise InvalidValue(
            f"{ACTION_FIELD}: not a signal name or number, like signal:HUP, got {text!r}"
        )
    raise InvalidValue(
        f"{ACTION_FIELD}: must be event, signal:NAME (like signal:HUP) or kill, got {text!r}"
    )


def action_signal(action: str) -> int | None:
    """The signal a canonical `signal:` action sends; None for `event` and `kill`."""
    kind, _, sig = action.partition(":")
    return _signal_number(sig) if kind == "signal" else None


def _signal_number(text: str) -> int | None:
    if text.isdigit() and len(text) <= 3:
        number = int(text)
        return number if number and number in signal.valid_signals() else None
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    sig = getattr(signal.Signals, name, None) if name.isidentifier() else None
    return int(sig) if isinstance(sig, signal.Signals) else None


def _signal_text(number: int) -> str:
    try:
        return signal.Signals(number).name.removeprefix("SIG")
    except ValueError:  # a real-time signal: a number only
        return str(number)
