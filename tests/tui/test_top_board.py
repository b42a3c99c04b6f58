"""The pure parts of `goproc top`: filter words, the board's order, selection and wait
marks, the columns that fit a width, and that untrusted text is shown escaped."""

from __future__ import annotations

import pytest
from tui.fixed import ENTRIES, NOW, RULES, entry

from goproc.model import Selector
from goproc.tui.board import CMD_MIN, TITLES, Board
from goproc.tui.detail import rule_applies, rule_lines
from goproc.tui.filters import FilterError, matches, parse_filter


@pytest.mark.parametrize(
    ("text", "selector"),
    [
        ("", Selector()),
        ("tag:web", Selector(tags_any=("web",))),
        ("tag:web tag:api", Selector(tags_any=("web", "api"))),
        ("group:prod name:api alive", Selector(groups_any=("prod",), names=("api",), alive=True)),
        ("dead search:nginx", Selector(alive=False, search="nginx")),
        (
            "id:3 pid:4242 tag-all:a group-all:b",
            Selector(ids=(3,), pids=(4242,), tags_all=("a",), groups_all=("b",)),
        ),
    ],
)
def test_filter_words_are_the_selector_flags(text: str, selector: Selector) -> None:
    assert parse_filter(text) == selector


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("colour:red", "unknown word 'colour:'"),
        ("nginx", "unknown word 'nginx'"),
        ("tag:", "needs a value"),
        ("id:x", "id must be a number"),
        ("pid:\u0661", "pid must be a number"),  # an Arabic-Indic digit is no ASCII one
    ],
)
def test_a_wrong_word_is_named(text: str, says: str) -> None:
    with pytest.raises(FilterError, match=says):
        parse_filter(text)


def test_matching_agrees_with_the_selector_definition() -> None:
    for text in (
        "tag:web",
        "group:prod alive",
        "dead",
        "search:sleep",
        "name:api tag:web",
        "tag-all:api tag-all:web",
    ):
        s = parse_filter(text)
        assert [p["id"] for p in ENTRIES if matches(s, p)] == [
            p["id"] for p in ENTRIES if _model_matches(s, p)
        ], text


def _model_matches(s: Selector, p: dict) -> bool:
    """`Selector.matches` itself, over the Proc the entry encodes."""
    from goproc.model import Proc

    proc = Proc(
        id=p["id"],
        pid=p["pid"],
        pgid=p["pgid"],
        cmd=p["cmd"],
        name=p["name"],
        alive=p["alive"],
        tags=tuple(p["tags"]),
        groups=tuple(p["groups"]),
        started_at=0.0,
        added_at=0.0,
        last_seen=0.0,
    )
    return s.matches(proc)


def board() -> Board:
    b = Board(now=lambda: NOW)
    b.load([dict(p) for p in ENTRIES])  # the board keeps (and updates) what it is given
    return b


def test_filter_sort_and_selection() -> None:
    b = board()
    assert list(b.shown) == [1, 2, 3, 4, 5]
    b.set_sort("cpu")
    assert list(b.shown) == [5, 2, 1, 4, 3]  # the most first, the dead (no value) last
    b.set_sort("cpu")
    assert b.reverse and list(b.shown) == [4, 1, 2, 5, 3]
    b.set_filter(parse_filter("tag:batch"))
    assert set(b.shown) == {3, 5}
    b.select_shown()
    assert b.selected == {3, 5} and b.targets(cursor=1) == [3, 5]
    b.selected.clear()
    assert b.targets(cursor=1) == [1]


def test_events_change_rows_and_mark_a_waited_exit() -> None:
    b = board()
    b.toggle_wait(2)
    dead = {**ENTRIES[1], "alive": False, "metrics": None}
    assert b.apply({"kind": "exited", "id": 2, "proc": dead, "time": "t"})
    assert b.cells(2)[TITLES.index("ALIVE")] == "no" and b.exited_waiting == {2}
    b.apply({"kind": "removed", "id": 2, "proc": dead, "time": "t"})
    assert 2 not in b.shown and not b.waiting
    added = entry(9, "new one")
    b.apply({"kind": "added", "id": 9, "proc": added, "time": "t"})
    assert list(b.shown)[-1] == 9
    assert not b.apply({"kind": "overflow", "subscription": 1, "time": "t"})


def test_a_metrics_poll_never_undoes_an_exit() -> None:
    b = board()
    b.apply({"kind": "exited", "id": 1, "proc": {**ENTRIES[0], "alive": False}, "time": "t"})
    b.merge_metrics([{**p, "metrics": {"cpu_percent": 50.0}} for p in ENTRIES])  # made before
    assert ENTRIES[1]["metrics"]["cpu_percent"] == 23.4  # what was loaded was a copy
    assert b.entries[1]["alive"] is False
    assert b.entries[2]["metrics"] == {"cpu_percent": 50.0}


def test_columns_drop_by_priority_the_command_cut_first() -> None:
    b = board()
    wide = b.layout(200)
    assert [TITLES[c] for c in wide.columns] == list(TITLES)
    at_80 = b.layout(78)
    assert [TITLES[c] for c in at_80.columns] == list(TITLES)  # the command is cut...
    assert at_80.widths[-1] >= CMD_MIN and sum(at_80.widths) + 2 * 9 <= 78
    narrow = b.layout(60)
    assert "GROUPS" not in [TITLES[c] for c in narrow.columns]  # ...then GROUPS goes
    assert "CMD" in [TITLES[c] for c in narrow.columns]


def test_untrusted_text_is_escaped_in_cells() -> None:
    b = board()
    cmd = b.cells(4)[TITLES.index("CMD")]
    assert "\x1b" not in cmd and "\\x1b[31mred[/]" in cmd


def test_alert_rules_that_apply() -> None:
    proc = ENTRIES[1]  # tags api, web
    assert rule_applies({"all": True, "select": {}}, proc)
    assert rule_applies({"all": False, "select": {"tags_any": ["api"]}}, proc)
    assert not rule_applies({"all": False, "select": {"tags_any": ["db"]}}, proc)
    assert not rule_applies({"all": False, "select": {"future_field": 1}}, proc)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tag:web",
        "tag:web tag:batch",
        "tag-all:api tag-all:web",
        "group:prod dead",
        "alive",
        "id:1 id:4",
        "pid:4243",
        "name:api name:cache",
        "search:sleep",
        "group-all:prod tag:web",
    ],
)
def test_the_compiled_filter_agrees_with_matches(text: str) -> None:
    from goproc.tui.filters import predicate

    s = parse_filter(text)
    test = predicate(s)
    assert [p["id"] for p in ENTRIES if test is None or test(p)] == [
        p["id"] for p in ENTRIES if matches(s, p)
    ]


def test_events_of_an_entry_gone_or_replaced_are_forgotten_on_load() -> None:
    b = board()
    for i in (1, 2):
        b.apply({"kind": "updated", "id": i, "proc": dict(ENTRIES[i - 1]), "time": "t"})
    again = {**ENTRIES[0], "added_at": "2026-12-01T00:00:00.000000Z"}  # id 1 after a reset
    b.load([again, dict(ENTRIES[2])])
    assert b.events == {}


@pytest.mark.parametrize(
    ("colorfgbg", "light"),
    [("0;15", True), ("0;7", True), ("15;0", False), ("", False), ("12;8", False)],
)
def test_a_light_background_is_told_by_colorfgbg(colorfgbg: str, light: bool) -> None:
    from goproc.tui.app import light_background

    assert light_background({"COLORFGBG": colorfgbg}) is light


def test_a_poll_with_the_same_cpu_and_memory_changes_no_row() -> None:
    b = board()
    again = [
        {**p, "metrics": {**p["metrics"], "sampled_at": "later"}} for p in ENTRIES if p["metrics"]
    ]
    assert not b.merge_metrics(again)
    assert b.entries[1]["metrics"]["sampled_at"] == "later"  # kept for the detail pane
    hotter = [{**ENTRIES[0], "metrics": {**ENTRIES[0]["metrics"], "cpu_percent": 80.0}}]
    assert b.merge_metrics(hotter)
    assert b.cells(1)[TITLES.index("CPU%")] == "80.0"


def test_a_rule_firing_for_the_entry_says_so() -> None:
    assert rule_lines(RULES, 2)[0] == "#1 hot: cpu > 90% for 30s -> signal:HUP  (firing)"
    assert rule_lines(RULES, 1)[0].endswith("signal:HUP")
    assert rule_lines([], 1) == ["none"]
