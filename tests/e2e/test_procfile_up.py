"""`goproc up` and `goproc down` against a real daemon: a process file with ten programs
brought up, up again (nothing changes), edited and brought up again (only what changed
is replaced; a label change restarts nothing), a stopped one started again; a bad file
or a name taken by a watched entry refuses everything; down stops (and with --rm
removes) them; declared alert rules are made once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon
from helpers import array_lines, one_line, wait_until


@pytest.fixture
def d(spawn_daemon: Callable[..., Daemon]) -> Iterator[Daemon]:
    """A daemon whose children are killed at the end (a daemon never kills them)."""
    daemon = spawn_daemon()
    yield daemon
    for e in daemon.call("list"):
        if e["spawned"] is not None and e["alive"]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(e["pid"], signal.SIGKILL)


def program(name: str, cmd: str = "sleep 300", **keys: str) -> str:
    extra = "".join(f"{k} = {v}\n" for k, v in keys.items())
    return f"[proc.{name}]\ncmd = {json.dumps(cmd)}\n{extra}\n"


def write(path: Path, *programs: str) -> str:
    path.write_text("".join(programs))
    return str(path)


def ten(changed: dict[int, dict[str, str]] | None = None) -> list[str]:
    out = []
    for n in range(10):
        keys = {"tags": '["t"]', "env": f'{{ N = "{n}" }}', **(changed or {}).get(n, {})}
        out.append(program(f"p{n}", keys.pop("cmd", "sleep 300"), **keys))
    return out


def up(d: Daemon, file: str) -> list[dict[str, Any]]:
    r = d.cli("up", file, "--json")
    assert r.returncode == 0 and r.stderr == "", (r.stdout, r.stderr)
    return array_lines(r.stdout)


def pids(d: Daemon) -> dict[str, int]:
    return {e["name"]: e["pid"] for e in d.call("list") if e["alive"]}


def test_ten_programs_up_up_again_edited_and_up_again(d: Daemon, tmp_path: Path) -> None:
    file = write(tmp_path / "goproc.toml", *ten())
    first = up(d, file)
    assert [(x["program"], x["action"]) for x in first] == [(f"p{n}", "spawn") for n in range(10)]
    before = pids(d)
    assert len(before) == 10
    entry = d.call("show", {"names": ["p3"]})
    assert entry["spawned"]["argv"] == ["sleep", "300"] and "N=3" in entry["spawned"]["env"]

    again = up(d, file)
    assert {x["action"] for x in again} == {"keep"} and pids(d) == before

    edits = {1: {"cmd": "sleep 301"}, 2: {"env": '{ N = "x" }'}, 3: {"tags": '["t", "new"]'}}
    edits[4] = {"restart": '"always"'}
    write(tmp_path / "goproc.toml", *ten(edits))
    third = {x["program"]: x for x in up(d, file)}
    assert {n: x["action"] for n, x in third.items() if x["action"] != "keep"} == {
        "p1": "replace",
        "p2": "replace",
        "p4": "replace",
    }
    assert third["p1"]["changed"] == ["cmd"] and third["p2"]["changed"] == ["env"]
    after = pids(d)
    assert {n for n in before if after[n] != before[n]} == {"p1", "p2", "p4"}
    assert d.call("show", {"names": ["p3"]})["tags"] == ["new", "t"]  # no restart for labels
    assert d.call("show", {"names": ["p1"]})["cmd"] == "sleep 301"
    assert len(d.call("list")) == 10  # the replaced entries are gone, not kept beside

    d.cli("stop", "p5")
    fourth = {x["program"]: x["action"] for x in up(d, file)}
    assert fourth["p5"] == "start" and d.call("show", {"names": ["p5"]})["alive"]


def test_a_bad_file_or_a_taken_name_refuses_everything(
    d: Daemon, tmp_path: Path, sleeper: Any
) -> None:
    bad = write(tmp_path / "bad.toml", program("a"), program("b", tags='["x,y"]'))
    line = one_line(d.cli("up", bad), 2)
    assert line == (
        f"goproc: {bad}:6: proc.b.tags: [0]: must not contain a comma (one separates labels),"
        " got 'x,y'"
    )
    watched = d.call("add", {"pid": sleeper().pid, "name": "b"})
    taken = write(tmp_path / "taken.toml", program("a"), program("b"))
    line = one_line(d.cli("up", taken), 1)
    assert line == (
        f"goproc: {taken}: b: the name is entry {watched['id']}'s, which goproc did not start"
        " (goproc add); nothing was done"
    )
    assert [e["name"] for e in d.call("list")] == ["b"]  # "a" was not started either
    assert one_line(d.cli("up", str(tmp_path / "none.toml")), 2).endswith(
        "none.toml: No such file or directory"
    )


def test_down_stops_and_with_rm_removes(d: Daemon, tmp_path: Path) -> None:
    file = write(tmp_path / "goproc.toml", program("a"), program("b"), program("c"))
    up(d, write(tmp_path / "more.toml", program("a"), program("b")))
    r = d.cli("down", file)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "a: stopped, id 1",
        "b: stopped, id 2",
        "c: not started by goproc, nothing to stop",
    ]
    assert [(e["name"], e["alive"], e["stopped"]) for e in d.call("list")] == [
        ("a", False, True),
        ("b", False, True),
    ]
    assert {x["action"] for x in up(d, file)} == {"start", "spawn"}
    assert d.cli("down", file, "--rm").returncode == 0
    assert d.call("list") == []


def test_declared_alert_rules_are_made_once(d: Daemon, tmp_path: Path) -> None:
    rule = '[{ if = "cpu > 90% for 30s", then = "event", rule = "hot" }]'
    file = write(tmp_path / "goproc.toml", program("web", alert=rule))
    up(d, file)
    up(d, file)
    rules = d.call("alert.list")
    assert [(r["name"], r["condition"], r["select"]) for r in rules] == [
        ("hot", "cpu > 90% for 30s", {"names": ["web"]})
    ]
    write(tmp_path / "goproc.toml", program("web", alert=rule.replace("90%", "50%")))
    up(d, file)
    rules = d.call("alert.list")
    assert [(r["name"], r["condition"]) for r in rules] == [("hot", "cpu > 50% for 30s")]
    wait_until(lambda: d.call("show", {"names": ["web"]})["alive"], what="web running")
