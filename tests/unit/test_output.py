"""The CLI's formatters (`goproc.cli.output`) on plain data, without a daemon: the
`list` table (alignment, dashes, colour, cutting to the terminal), the `show` and
`status` layouts, kill outcomes, wait and event lines, label counts, and entry arrays
printed one entry per line."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from helpers import entry

from goproc.cli import output, tables

PG = entry(id=1, pid=7091, name="pg", tags=["db"], groups=["prod"])
NAP = entry(id=12, pid=123456, cmd="sleep 600 --long", alive=False, tags=["a", "job"])


# ---- emit and JSON -----------------------------------------------------------------------


def test_emit_prints_the_text_lines_or_json_by_shape() -> None:
    """An object on one line; an array one element per line, as `list --json` is."""
    out = io.StringIO()
    output.emit({"removed": 3}, False, output.reset_lines, out)
    assert out.getvalue() == "Forgot 3 entries; ids start at 1 again\n"
    cases: list[tuple[Any, str]] = [
        ({"name": "é"}, '{"name":"\\u00e9"}\n'),
        ([], "[]\n"),
        ([{"id": 1}], '[\n{"id":1}\n]\n'),
        ([{"id": 1}, {"id": 2, "t": [1, 2]}], '[\n{"id":1},\n{"id":2,"t":[1,2]}\n]\n'),
    ]
    for value, printed in cases:
        out = io.StringIO()
        output.emit(value, True, lambda _: ["not shown"], out)
        assert out.getvalue() == printed
    assert output.json_text(PG_LIST := [PG, NAP]).encode() + b"\n" == output.entries_json(
        json.dumps(PG_LIST, separators=(",", ":")).encode()
    ), "the same layout as list --json"


def test_emit_of_no_lines_prints_nothing() -> None:
    out = io.StringIO()
    output.emit([], False, output.removed_lines, out)
    assert out.getvalue() == ""


def test_entries_json_puts_one_entry_per_line() -> None:
    tricky = entry(id=2, cmd='echo "},{\\"id\\":"')  # the separator inside a string
    procs = [PG, tricky, NAP]
    raw = json.dumps(procs, separators=(",", ":")).encode()
    printed = output.entries_json(raw)
    lines = printed.decode().splitlines()
    assert lines[0] == "[" and lines[-1] == "]"
    assert len(lines) == 2 + len(procs)
    assert json.loads(printed) == procs
    assert [json.loads(line.rstrip(","))["id"] for line in lines[1:-1]] == [1, 2, 12]


def test_entries_json_of_nothing_is_an_empty_array() -> None:
    assert output.entries_json(b"[]") == b"[]\n"
    assert json.loads(output.entries_json(b'[{"id":1}]')) == [{"id": 1}]


def test_write_entries_json_goes_below_text_already_written() -> None:
    buffer = io.BytesIO()
    out = io.TextIOWrapper(buffer, encoding="utf-8")
    out.write("before\n")
    output.write_entries_json(b"[]", out)
    assert buffer.getvalue() == b"before\n[]\n"


# ---- the list table ----------------------------------------------------------------------


STARTED = datetime(2026, 11, 26, 14, 20, 17, 350000, tzinfo=UTC).timestamp()
LATER = STARTED + 3 * 3600 + 12 * 60 + 9  # 3h12m9s after PG started


def test_table_aligns_columns_and_dashes_empty_cells() -> None:
    sampled = {**PG, "metrics": {"cpu_percent": 12.345, "rss_bytes": 12_900_000}}
    lines = output.table_lines([sampled, NAP], now=LATER)
    assert lines == [
        "ID  PID     NAME  ALIVE  CPU%  MEM    AGE    TAGS   GROUPS  CMD",
        "1   7091    pg    yes    12.3  12.3M  3h12m  db     prod    sleep 300",
        "12  123456  -     no     -     -      -      a,job  -       sleep 600 --long",
    ]
    assert output.table_lines([PG])[1].split()[4:7] == ["-"] * 3, "no metrics, no clock"


def test_table_of_nothing_is_the_header() -> None:
    assert output.table_lines([]) == ["ID  PID  NAME  ALIVE  CPU%  MEM  AGE  TAGS  GROUPS  CMD"]


@pytest.mark.parametrize(
    ("n", "shown"),
    [
        (0, "0B"),
        (800, "800B"),
        (1024, "1.0K"),
        (524288, "512K"),
        (12.3 * 2**20, "12.3M"),
        (150 * 2**20, "150M"),
        (1.5 * 2**30, "1.5G"),
        (5 * 2**40, "5.0T"),
    ],
)
def test_sizes_are_binary_units_as_top_shows_them(n: float, shown: str) -> None:
    assert tables.size(n) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (45.9, "45s"),
        (60, "1m0s"),
        (12 * 60 + 5, "12m5s"),
        (3600, "1h0m"),
        (3 * 3600 + 12 * 60 + 59, "3h12m"),
        (86400 * 2 + 3 * 3600 + 7, "2d3h"),
        (86400 * 400, "400d0h"),
        (-5, "0s"),  # a clock set back: never a negative age
    ],
)
def test_age_is_two_units_like_ps_etime_and_pm2(seconds: float, shown: str) -> None:
    assert tables.age(seconds) == shown


def test_table_is_plain_unless_coloured() -> None:
    plain = output.table_lines([PG, NAP])
    assert not any("\x1b" in line for line in plain)
    coloured = output.table_lines([PG, NAP], colour=True)
    assert "\x1b" not in coloured[0], "the header is never coloured"
    assert "\x1b[32myes  \x1b[0m" in coloured[1]
    assert "\x1b[31mno   \x1b[0m" in coloured[2]
    strip = [line.replace(tables.GREEN, "").replace(tables.RED, "") for line in coloured]
    assert [line.replace(tables.PLAIN, "") for line in strip] == plain


def test_table_cuts_the_command_to_the_terminal_width() -> None:
    long = entry(cmd="x" * 200)
    [_, row] = output.table_lines([long], columns=80)
    assert len(row) == 80 and row.endswith("x…"), "the line fills the width exactly"
    [_, row] = output.table_lines([long])
    assert row.endswith("x" * 200), "not a terminal: never cut"
    [_, row] = output.table_lines([long], columns=5)
    assert row.endswith("x" * 9 + "…"), "at least 10 columns of command are kept"
    [_, row] = output.table_lines([PG], columns=200)
    assert row.endswith("sleep 300")


# ---- key/value layouts -------------------------------------------------------------------


def test_show_lists_every_field_in_one_value_column() -> None:
    lines = output.show_lines({**PG, "tags": ["db", "web"]}, LATER)
    keys = list(PG)
    keys.insert(keys.index("alive") + 1, "age")
    assert [line.split()[0] for line in lines] == keys
    width = max(map(len, PG)) + 2
    values = {line.split()[0]: line[width:] for line in lines}
    assert values["tags"] == "db,web" and values["groups"] == "prod"
    assert values["exited_at"] == "-" and values["alive"] == "yes" and values["age"] == "3h12m"
    assert values["cmd"] == "sleep 300"
    assert values["started_at"] == "2026-11-26T14:20:17.350000Z", "not a terminal: as sent"
    assert output.show_lines(entry(tags=[], name="", alive=False))[4:8] == [
        "name        -",
        "alive       no",
        "age         -",
        "tags        -",
    ]


def test_show_on_a_terminal_has_local_times(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # +05:30 all year
    time.tzset()
    try:
        lines = output.show_lines(NAP, LATER, local=True)
        values = {line.split()[0]: line.split(None, 1)[1] for line in lines}
        assert values["started_at"] == "2026-11-26 19:50:17 +0530"
        assert values["exited_at"] == "-"
        event = {"time": "2026-11-26T14:20:18.116194Z", "kind": "added", "id": 1, "pid": 2}
        assert output.event_line(event, False, local=True).startswith("2026-11-26 19:50:18 +0530")
        assert output.event_line(event, False).startswith("2026-11-26T14:20:18.116194Z")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_show_gives_log_files_a_line_each_and_a_dash_for_none() -> None:
    assert output.show_lines(entry())[-1].split() == ["log", "-"]
    files = {"out": "/s/logs/1.out", "err": "/s/logs/1\x1b[2J.err"}
    lines = output.show_lines(entry(log=files))
    assert [line.split() for line in lines[-2:]] == [
        ["log.out", "/s/logs/1.out"],
        ["log.err", "/s/logs/1\\x1b[2J.err"],
    ]
    assert len({line.index("/", 10) for line in lines[-2:]}) == 1, "one value column"


def test_show_gives_each_metric_a_line_and_a_dash_for_none() -> None:
    assert ["metrics", "-"] in [line.split() for line in output.show_lines(entry(metrics=None))]
    m = {"sampled_at": "2026-11-26T14:20:18.116194Z", "cpu_percent": 99.5, "fds": None}
    lines = [line.split() for line in output.show_lines(entry(metrics=m))]
    assert ["metrics.sampled_at", "2026-11-26T14:20:18.116194Z"] in lines
    assert ["metrics.cpu_percent", "99.5"] in lines and ["metrics.fds", "-"] in lines


def test_status_aligns_keys() -> None:
    info = {"version": "0.1.0", "pid": 42, "last_sweep_seconds": 0.5}
    assert output.status_lines(info) == [
        "version             0.1.0",
        "pid                 42",
        "last_sweep_seconds  0.5",
    ]


# ---- lines per entry ---------------------------------------------------------------------


def test_entry_lines() -> None:
    assert output.added_lines([PG, NAP]) == [
        "Process 7091 registered with id 1",
        "Process 123456 registered with id 12",
    ]
    assert output.started_lines(PG) == ["Started pid=7091 id=1"]
    assert output.removed_lines([NAP]) == ["Removed id 12 (pid 123456, sleep 600 --long)"]
    assert output.named_lines(PG) == ["id 1: named pg"]
    assert output.named_lines(NAP) == ["id 12: name cleared"]


def test_kill_outcome_lines() -> None:
    results = [
        {"id": 1, "pid": 10, "signal": "SIGTERM", "outcome": "exited"},
        {"id": 2, "pid": 20, "signal": "SIGUSR1", "outcome": "signalled"},
        {"id": 3, "pid": 30, "signal": "SIGTERM", "outcome": "killed"},
        {"id": 4, "pid": 40, "signal": "SIGTERM", "outcome": "not alive"},
        {"id": 5, "pid": 50, "signal": "SIGHUP", "outcome": "failed", "error": "gone"},
        {"id": 6, "pid": 60, "signal": "SIGHUP", "outcome": "failed"},
    ]
    assert output.kill_lines(results) == [
        "id 1 pid 10: exited",
        "id 2 pid 20: signalled SIGUSR1",
        "id 3 pid 30: still running after the timeout: escalated to KILL",
        "id 4 pid 40: not alive",
        "id 5 pid 50: failed: gone",
        "id 6 pid 60: failed: ?",
    ]
    assert output.any_failed(results)
    assert not output.any_failed(results[:4])


def test_wait_lines() -> None:
    assert output.exited_line(PG, False) == "id 1 pid 7091 exited (sleep 300)"
    assert json.loads(output.exited_line(PG, True)) == PG
    assert "\n" not in output.exited_line(PG, True)
    assert output.timed_out_line("2s", [PG, NAP]) == (
        "goproc: timed out after 2s; still alive: id 1 (pid 7091), id 12 (pid 123456)"
    )


def test_event_lines() -> None:
    time = "2026-11-26T14:25:17.374239Z"
    exited = {"kind": "exited", "time": time, "id": 1, "pid": 7091, "name": "pg", "proc": PG}
    assert output.event_line(exited, False) == f"{time}  exited   id=1 pid=7091 name=pg"
    added = {**exited, "kind": "added", "name": None}
    assert output.event_line(added, False) == f"{time}  added    id=1 pid=7091"
    overflow = {"kind": "overflow", "time": time}
    assert output.event_line(overflow, False) == (
        f"{time}  overflow: events were dropped; reconnect"
    )
    line = output.event_line(exited, True)
    assert "\n" not in line and json.loads(line) == exited


# ---- tags and groups ---------------------------------------------------------------------


def test_label_counts_align_and_start_with_a_header() -> None:
    assert output.label_count_lines("tag", []) == ["TAG  COUNT"]
    rows = [{"name": "a-long-label", "count": 1}, {"name": "db", "count": 12}]
    assert output.label_count_lines("group", rows) == [
        "GROUP         COUNT",
        "a-long-label  1",
        "db            12",
    ]


def test_label_change_and_rename_lines() -> None:
    assert output.labels_lines("tags", [PG, entry(id=2)]) == ["id 1: tags db", "id 2: tags -"]
    assert output.labels_lines("groups", [PG]) == ["id 1: groups prod"]
    assert output.renamed_lines("tag", "old", "new", {"changed": 2}) == [
        "Renamed tag 'old' to 'new' on 2 entries"
    ]
    assert output.renamed_lines("tag", "old", "new", {"changed": 1}) == [
        "Renamed tag 'old' to 'new' on 1 entry"
    ]
    assert output.reset_lines({"removed": 1}) == ["Forgot 1 entry; ids start at 1 again"]


def test_wait_refusals_name_five_entries_at_most() -> None:
    many = [entry(id=i, pid=1000 + i) for i in range(1, 201)]
    line = output.timed_out_line("1s", many)
    assert line == (
        "goproc: timed out after 1s; still alive: id 1 (pid 1001), id 2 (pid 1002), "
        "id 3 (pid 1003), id 4 (pid 1004), id 5 (pid 1005), ... (200 in all)"
    )
    assert output.removed_line(many[:2]) == (
        "goproc: removed while waited for, not seen to exit: id 1 (pid 1001), id 2 (pid 1002)"
    )


def test_sparkline_heights_gaps_and_ascii() -> None:
    assert tables.sparkline([0, 12.5, 50, 99, 100, None, 30], top=100) == "▁▂▅██ ▃"
    assert tables.sparkline([0, 12.5, 50, 99, 100, None, 30], top=100, ascii=True) == "_.+@@ -"
    assert tables.sparkline([5, 5, 5]) == "███", "no top: the largest value is the top"
    assert tables.sparkline([0, 0]) == "▁▁" and tables.sparkline([]) == ""
    assert tables.sparkline([None, None], top=100) == "  "
