"""Comma-separated lists in every repeatable flag (`--tag web,prod` is two tags, as in
the upstream goproc), and the label rules that make that safe: a tag or group holds no
comma, no control character and at most 64 characters; anything else is refused
(-32602 naming the label, exit 2) and changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import Conn


def _ids(d: Any, *args: str) -> list[int]:
    r = d.cli("list", "--json", *args)
    assert r.returncode == 0, r.stderr
    return [p["id"] for p in json.loads(r.stdout)]


def test_add_and_run_take_comma_lists_of_tags_and_groups(daemon: Any, sleeper: Any) -> None:
    r = daemon.cli("add", str(sleeper().pid), "--tag", "web,prod", "--tag", "x", "--group", "a,b")
    assert r.returncode == 0, r.stderr
    proc = daemon.call("show", {"ids": [1]})
    assert (proc["tags"], proc["groups"]) == (["prod", "web", "x"], ["a", "b"])


def test_empty_pieces_of_a_new_entrys_labels_are_dropped(daemon: Any, sleeper: Any) -> None:
    assert daemon.cli("add", str(sleeper().pid), "--tag", "a,,b,", "--tag=,").returncode == 0
    assert daemon.call("show", {"ids": [1]})["tags"] == ["a", "b"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--id", "1,3"], [1, 3]),
        (["--id", "1", "--id", "2,3"], [1, 2, 3]),
        (["--tag", "one,three"], [1, 3]),
        (["--tag-all", "odd,one"], [1]),
        (["--group", "g2,g3"], [2, 3]),
        (["--group-all", "all,g3"], [3]),
        (["--name", "n1,n2"], [1, 2]),
        (["--name", "n1", "--name", "n3,n2"], [1, 2, 3]),
    ],
)
def test_every_repeatable_selector_takes_a_comma_list(
    daemon: Any, sleeper: Any, args: list[str], expected: list[int]
) -> None:
    labels = [
        (["one", "odd"], ["all"]),
        (["two"], ["all", "g2"]),
        (["three", "odd"], ["all", "g3"]),
    ]
    for n, (tags, groups) in enumerate(labels, 1):
        daemon.call("add", {"pid": sleeper().pid, "tags": tags, "groups": groups, "name": f"n{n}"})
    assert _ids(daemon, *args) == expected


def test_pid_selector_takes_a_comma_list(daemon: Any, sleeper: Any) -> None:
    pids = [sleeper().pid for _ in range(3)]
    daemon.call("add", {"pids": pids})
    assert _ids(daemon, "--pid", f"{pids[0]},{pids[2]}") == [1, 3]


def test_tag_add_and_rm_take_comma_lists(daemon: Any, sleeper: Any) -> None:
    daemon.call("add", {"pid": sleeper().pid})
    assert daemon.cli("tag", "add", "a,b", "c", "--id", "1").returncode == 0
    assert daemon.call("show", {"ids": [1]})["tags"] == ["a", "b", "c"]
    assert daemon.cli("tag", "rm", "a,c", "--id", "1").returncode == 0
    assert daemon.call("show", {"ids": [1]})["tags"] == ["b"]


@pytest.mark.parametrize("value", ["1,", ",2", "1,,2", "1,x", "1, 2"])
def test_a_bad_piece_of_an_id_list_is_a_usage_error(daemon: Any, value: str) -> None:
    r = daemon.cli("list", "--id", value)
    assert r.returncode == 2 and r.stderr.startswith("goproc: Invalid value for --id: "), r.stderr


@pytest.mark.parametrize("value", [",", "a,", "a,,b", " ,a"])
def test_a_blank_piece_of_a_selector_is_refused_not_dropped(
    daemon: Any, sleeper: Any, value: str
) -> None:
    """Dropped, `rm --tag , --all` would be a bare `rm --all`: everything."""
    daemon.call("add", {"pid": sleeper().pid, "tags": ["a"]})
    r = daemon.cli("rm", "--tag", value, "--all")
    assert r.returncode == 2 and "must not be blank" in r.stderr, r.stderr
    assert len(daemon.call("list")) == 1


BAD_LABELS = [
    ("web,prod", "must not contain a comma"),
    ("a\nb", "must not contain control characters"),
    ("tab\there", "must not contain control characters"),
    ("\x1b[31mred", "must not contain control characters"),
    ("del\x7f", "must not contain control characters"),
    ("c1\x9b", "must not contain control characters"),
    ("x" * 65, "must be at most 64 characters, got 65"),
]


REQUESTS = [  # (method, params, the field the label is in) with the label as LABEL
    ("add", {"pid": "PID", "tags": ["LABEL"]}, "tags[0]"),
    ("add", {"pid": "PID", "groups": ["ok", "LABEL"]}, "groups[1]"),
    ("tag.add", {"ids": [1], "labels": ["LABEL"]}, "labels[0]"),
    ("group.remove", {"ids": [1], "labels": ["LABEL"]}, "labels[0]"),
    ("tag.rename", {"old": "t", "new": "LABEL"}, "new"),
    ("group.rename", {"old": "LABEL", "new": "g"}, "old"),
]


def _filled(value: Any, **names: Any) -> Any:
    """`value` with each string that is a key of `names` put as its value."""
    if isinstance(value, dict):
        return {k: _filled(v, **names) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, **names) for v in value]
    return names.get(value, value) if isinstance(value, str) else value


@pytest.mark.parametrize(("label", "reason"), BAD_LABELS)
def test_a_bad_label_is_refused_naming_it_and_nothing_changes(
    daemon: Any, sleeper: Any, label: str, reason: str
) -> None:
    daemon.call("add", {"pid": sleeper().pid, "tags": ["t"], "groups": ["g"]})
    before = daemon.call("list")
    shown = repr(label) if len(repr(label)) <= 40 else repr(label)[:37] + "..."
    pid = sleeper().pid
    with Conn(daemon) as conn:
        for method, template, field in REQUESTS:
            params = _filled(template, PID=pid, LABEL=label)
            error = conn.request(method, params)["error"]
            assert error["code"] == -32602, (method, error)
            assert error["message"].startswith(f"invalid params: {field}: {reason}"), error
            assert shown in error["message"], error
    assert daemon.call("list") == before


@pytest.mark.parametrize(("label", "reason"), BAD_LABELS[1:])
def test_a_bad_label_on_the_command_line_exits_2(
    daemon: Any, sleeper: Any, label: str, reason: str
) -> None:
    r = daemon.cli("add", str(sleeper().pid), "--tag", label)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"goproc: invalid params: tags[0]: {reason}"), r.stderr
    assert len(r.stderr.splitlines()) == 1
    assert daemon.call("list") == []


def test_labels_that_are_fine(daemon: Any, sleeper: Any) -> None:
    """Spaces inside, 64 characters, non-ASCII letters, surrounding blanks (trimmed)."""
    good = ["my tag", "x" * 64, "café", "  padded  ", "日本"]
    daemon.call("add", {"pid": sleeper().pid, "tags": good})
    assert daemon.call("show", {"ids": [1]})["tags"] == sorted(
        ["my tag", "x" * 64, "café", "padded", "日本"]
    )
