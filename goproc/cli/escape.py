"""Text made safe for a terminal, for everything the CLI prints.

Nothing the daemon sends reaches the terminal raw.  A command line, a tag or an error
message may hold escape sequences or line breaks (a process picks its own argv), so
every formatter passes the text it shows through `shown`, which escapes each character
`str.isprintable` refuses: C0 and C1 controls, DEL, bidi overrides and isolates
(U+202A-U+202E, U+2066-U+2069), zero-width and other format characters, line and
paragraph separators, unassigned code points.  The escapes are Python's: `\\t`, `\\n`,
`\\r`, then `\\xHH`, `\\uHHHH`, `\\UHHHHHHHH` (systemd's `cescape` style); a backslash is
left as it is, so ordinary commands print as typed.  JSON keeps the exact value: what
`json.dumps` leaves raw of those characters is written as a `\\u` escape (`json_safe`).
"""

from __future__ import annotations

_NAMED_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(char: str) -> str:
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def shown(value: object) -> str:
    """`value` as text that is safe on a terminal: every non-printable character
    escaped (see the module doc), everything else as it is."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():  # nearly always: one pass in C
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # beyond the BMP: JSON spells it as a surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_safe(text: str) -> str:
    """JSON text with each non-printable character `json.dumps` left raw (DEL, C1,
    bidi controls...) as a `\\u` escape: the same value, nothing a terminal obeys.
    Such characters can only stand inside strings, where an escape means the same."""
    if all(line.isprintable() for line in text.split("\n")):
        return text
    return "".join(c if c.isprintable() or c == "\n" else _json_escape(c) for c in text)
