"""Go duration syntax (`250ms`, `15s`, `2m`, `1h30m`) to float seconds.  Pure."""

from __future__ import annotations

import re

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_ASCII_SPACE = " \t\n\r\f\v"
_PART = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")  # ASCII digits only


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string; raises ValueError with the reason.

    As in Go: a sequence of decimal numbers each with a unit (ns, us, ms, s, m, h),
    an optional sign, and "0" alone.  Whether 0 or negative is allowed is the caller's.
    """
    s = text.strip(_ASCII_SPACE)  # `strip()` would also take U+3000 and the like
    sign = -1.0 if s.startswith("-") else 1.0
    body = s[1:] if s[:1] in "+-" and s else s
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f"invalid duration {text!r}: empty")
    total, pos = 0.0, 0
    while pos < len(body):
        m = _PART.match(body, pos)
        if m is None:
            raise ValueError(
                f"invalid duration {text!r}: expected a number and a unit (ns, us, ms, s, m, h)"
            )
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total
