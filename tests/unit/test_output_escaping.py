"""What the CLI prints for people never carries a terminal control: every formatter of
`goproc.cli.output` shows daemon-supplied text (commands, names, tags, groups, error
messages) through `escape.shown`, which escapes C0 and C1 controls, DEL, and every
other character `str.isprintable` refuses (bidi overrides, zero-width characters,
line separators) as `\\n`, `\\t`, `\\r`, `\\xHH`, `\\uHHHH` or `\\UHHHHHHHH`.  `--json`
stays the very same JSON value, with those characters written as `\\u` escapes.

Every CLI module prints through `goproc.cli.output` only, so nothing bypasses it.
"""

from __future__ import annotations

import ast
import io
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import entry

from goproc.cli import escape, output

# An argv, a tag and a label as hostile as they come: a window title, a screen clear,
# a forged table row, a right-to-left override, an 8-bit CSI, DEL, zero-width chars.
EVIL = (
    "\x1b]0;pwned\x07\x1b[2J\n1   1  root  yes  -  -  /bin/ok\r\t\u202egnp.exe"
    "\u009b31m\x7f\u200b\u2066\ufeff\u2028"
)
EVIL_SHOWN = (
    "\\x1b]0;pwned\\x07\\x1b[2J\\n1   1  root  yes  -  -  /bin/ok\\r\\t\\u202egnp.exe"
    "\\x9b31m\\x7f\\u200b\\u2066\\ufeff\\u2028"
)
CLI = Path(__file__).resolve().parents[2] / "goproc" / "cli"


HOSTILE = entry(cmd=f"sh -c {EVIL}", tags=[EVIL, "ok"], groups=[EVIL])


def clean(lines: list[str]) -> bool:
    """Each line printable as a whole: no control, no line break inside."""
    return all(line.isprintable() for line in lines)


# ---- the one function --------------------------------------------------------------------


def test_shown_escapes_every_non_printable_character_and_keeps_the_rest() -> None:
    assert escape.shown(EVIL) == EVIL_SHOWN
    assert escape.shown("café ünïcode 名前 \\x1b as typed") == "café ünïcode 名前 \\x1b as typed"
    assert escape.shown("\x00\x01\x1f\x7f\x80\x9f\xa0\xad") == (
        "\\x00\\x01\\x1f\\x7f\\x80\\x9f\\xa0\\xad"
    )
    assert escape.shown("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069") == (
        "\\u202a\\u202b\\u202c\\u202d\\u202e\\u2066\\u2067\\u2068\\u2069"
    )
    assert escape.shown("\U000e0001\udcff") == "\\U000e0001\\udcff"
    assert escape.shown("") == ""


@pytest.mark.parametrize("code", [*range(0x20), 0x7F, *range(0x80, 0xA0)])
def test_shown_leaves_no_c0_or_c1_control(code: int) -> None:
    text = escape.shown(f"a{chr(code)}b")
    assert text.isprintable() and text.isascii()


# ---- every formatter ---------------------------------------------------------------------


def test_the_table_is_one_line_per_entry_and_never_forged() -> None:
    lines = output.table_lines([HOSTILE, entry(id=2)])
    assert len(lines) == 3 and clean(lines)
    assert lines[1].endswith(f"sh -c {EVIL_SHOWN}")
    assert f"{EVIL_SHOWN},ok" in lines[1]
    cut = output.table_lines([HOSTILE], columns=100)
    assert len(cut) == 2 and clean(cut) and cut[1].endswith("…")


def test_the_coloured_table_paints_only_alive() -> None:
    lines = output.table_lines([HOSTILE], colour=True)
    assert lines[1].count("\x1b") == 2, "only the ALIVE colour and its reset"


def test_show_and_status_escape_keys_and_values() -> None:
    lines = output.show_lines(HOSTILE)
    assert len(lines) == len(HOSTILE) + 1 and clean(lines)  # and its age
    assert f"cmd         sh -c {EVIL_SHOWN}" in lines
    status = output.status_lines({"socket": f"/run/{EVIL}", EVIL: 1})
    assert len(status) == 2 and clean(status)


def test_entry_result_lines_escape_the_command() -> None:
    hostile = entry(cmd=EVIL, name=EVIL)
    for lines in (
        output.removed_lines([hostile]),
        output.added_lines([hostile]),
        output.started_lines(hostile),
        output.named_lines(hostile),
        [output.exited_line(hostile, False)],
        [output.timed_out_line(EVIL, [hostile])],
        output.reset_lines({"removed": EVIL}),
    ):
        assert len(lines) == 1 and clean(lines), lines
    assert output.removed_lines([hostile]) == [f"Removed id 1 (pid 7091, {EVIL_SHOWN})"]


def test_kill_lines_escape_what_the_daemon_says() -> None:
    results = [
        {"id": 1, "pid": 2, "signal": EVIL, "outcome": "signalled"},
        {"id": 1, "pid": 2, "signal": "SIGTERM", "outcome": "failed", "error": EVIL},
        {"id": 1, "pid": 2, "signal": "SIGTERM", "outcome": EVIL},
    ]
    lines = output.kill_lines(results)
    assert len(lines) == 3 and clean(lines)
    assert lines[1] == f"id 1 pid 2: failed: {EVIL_SHOWN}"


def test_event_lines_escape_kind_and_name() -> None:
    event = {"time": EVIL, "kind": EVIL, "id": 1, "pid": 2, "name": EVIL}
    assert clean([output.event_line(event, False)])
    assert clean([output.event_line({**event, "kind": "overflow"}, False)])


def test_label_lines_escape_labels() -> None:
    lines = [
        *output.label_count_lines("tag", [{"name": EVIL, "count": 1}, {"name": "ok", "count": 2}]),
        *output.labels_lines("tags", [HOSTILE]),
        *output.renamed_lines("tag", EVIL, EVIL, {"changed": 1}),
    ]
    assert len(lines) == 5 and clean(lines)


def test_error_lines_are_one_escaped_line() -> None:
    err = io.StringIO()
    output.error(f"invalid params: name: {EVIL}", err)
    text = err.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1 and text[:-1].isprintable()
    assert text.startswith("goproc: invalid params: name: \\x1b]0;pwned")


def test_say_escapes_every_line_it_prints() -> None:
    out = io.StringIO()
    output.say([EVIL, "pong"], out)
    assert out.getvalue() == f"{EVIL_SHOWN}\npong\n"


# ---- JSON: the same value, no raw control on the terminal -------------------------------


@pytest.mark.parametrize("value", [HOSTILE, [HOSTILE, entry()], {"x": EVIL, "ü": "名前"}])
def test_json_is_the_exact_value_with_controls_as_escapes(value: Any) -> None:
    for text in (output.json_text(value), output.json_line(value)):
        assert json.loads(text) == value
        assert all(line.isprintable() for line in text.split("\n"))
        assert text.isascii(), "JSON output is ASCII, as the daemon writes it"
    assert output.json_text({"x": "名前\x7f"}) == '{"x":"\\u540d\\u524d\\u007f"}'


def test_emit_as_json_or_text_never_prints_a_control() -> None:
    for json_ in (True, False):
        out = io.StringIO()
        output.emit(HOSTILE, json_, output.show_lines, out)
        assert all(line.isprintable() for line in out.getvalue().split("\n"))


# ---- nothing prints around output.py -----------------------------------------------------


def _printing_calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "print":
            found.append(f"{path.name}:{node.lineno}: print")
        if isinstance(func, ast.Attribute) and func.attr == "write":
            found.append(f"{path.name}:{node.lineno}: .write")
    return found


def test_only_output_py_prints() -> None:
    calls = [
        call
        for path in sorted(CLI.rglob("*.py"))
        if path.name != "output.py"
        for call in _printing_calls(path)
    ]
    assert calls == []
