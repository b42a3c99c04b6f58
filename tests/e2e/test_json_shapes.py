"""One rule for `--json` (README: Output): a command that may touch or return several
entries prints an array, one element per line between `[` and `]` (even for one or
none); a command about one thing prints one object on one line; a stream (`wait`,
`events`) prints one object per line as things happen.  All of it compact ASCII."""

from __future__ import annotations

import subprocess
from typing import Any

from conftest import GOPROC
from helpers import array_lines, object_line, wait_until


def json_of(d: Any, *args: str) -> str:
    r = d.cli(*args, "--json")
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


def test_every_command_prints_its_shape(daemon: Any, sleeper: Any) -> None:
    a, b = sleeper(), sleeper()
    one = array_lines(json_of(daemon, "add", str(a.pid), "--tag", "t", "--name", "a"))
    assert [p["pid"] for p in one] == [a.pid], "add of one pid: still an array"
    assert len(array_lines(json_of(daemon, "add", str(b.pid), "--tag", "t,u"))) == 1
    assert [p["id"] for p in array_lines(json_of(daemon, "list"))] == [1, 2]
    assert array_lines(json_of(daemon, "list", "--tag", "nothing")) == []
    assert object_line(json_of(daemon, "show", "1"))["id"] == 1
    assert object_line(json_of(daemon, "status"))["entries"] == 2
    assert len(array_lines(json_of(daemon, "tag", "add", "v", "--tag", "t", "--all"))) == 2
    assert len(array_lines(json_of(daemon, "tag", "rm", "v", "--id", "1"))) == 1
    assert {c["name"] for c in array_lines(json_of(daemon, "tag"))} == {"t", "u", "v"}
    assert array_lines(json_of(daemon, "group", "list")) == []
    assert object_line(json_of(daemon, "tag", "rename", "u", "w")) == {"changed": 1}
    assert object_line(json_of(daemon, "name", "1", "api"))["name"] == "api"
    kill = array_lines(json_of(daemon, "kill", "api", "--signal", "CONT"))
    assert [o["outcome"] for o in kill] == ["signalled"]
    assert [p["id"] for p in array_lines(json_of(daemon, "rm", "--id", "2"))] == [2]
    assert object_line(json_of(daemon, "reset", "--confirm", "RESET")) == {"removed": 1}


def test_run_prints_one_object(daemon: Any, tmp_path: Any) -> None:
    out = tmp_path / "out"
    with out.open("w") as f:
        subprocess.run(
            [*GOPROC, "run", "--json", "--", "sleep", "60"],
            env=daemon.env,
            stdout=f,
            check=True,
            timeout=30,
        )
    proc = object_line(out.read_text())
    assert proc["id"] == 1 and proc["cmd"] == "sleep 60"
    daemon.call("kill", {"ids": [1], "signal": "KILL"})


def test_wait_and_events_print_one_object_per_line(daemon: Any, sleeper: Any) -> None:
    procs = [sleeper() for _ in range(2)]
    daemon.call("add", {"pids": [p.pid for p in procs]})
    events = subprocess.Popen(
        [*GOPROC, "events", "--json"], env=daemon.env, stdout=subprocess.PIPE, text=True
    )
    try:
        wait_until(lambda: daemon.call("status")["subscriptions"] == 1, timeout=10)
        waiting = subprocess.Popen(
            [*GOPROC, "wait", "--id", "1,2", "--json"],
            env=daemon.env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for p in procs:
            p.kill()
        out, _ = waiting.communicate(timeout=20)
        assert waiting.returncode == 0
        exited = [object_line(line + "\n") for line in out.splitlines()]
        assert sorted(p["id"] for p in exited) == [1, 2]
        assert events.stdout is not None
        lines = [events.stdout.readline() for _ in range(2)]
        assert [object_line(line)["kind"] for line in lines] == ["exited", "exited"]
    finally:
        events.kill()
        events.wait()
