"""Adoption rules end to end, with real daemons and real processes: `goproc adopt
add|list|rm` (text, --json, every error: one stderr line, nothing changed), processes
started later with distinctive names (`exec -a`) adopted with the rule's labels, name
template and `adopted_by`, an `added` event for each, processes running before the rule
left alone, a rule across `kill -9` (and the processes started while no daemon ran),
`--forget-after`, `--limit`, `--children-of` with a real forking shell, name clashes,
many processes at once (each adopted once), `reset`, and `status` (no scan without a
rule).

Every wait polls with a generous deadline; the daemons scan at the default 100 ms.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Conn, Daemon
from helpers import object_line, one_line, wait_until

Spawn = Callable[..., Daemon]


@pytest.fixture
def tag(request: pytest.FixtureRequest) -> str:
    """A word in this test's process names only (the test's name and this process)."""
    return f"gpad{os.getpid()}{abs(hash(request.node.name)) % 10**6}"


@pytest.fixture
def named() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Starts `sleep`s whose command line begins with the given name (`exec -a`)."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, seconds: float = 300) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(["bash", "-c", f"exec -a {name} sleep {seconds}"])
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(10)


def ok(d: Daemon, *args: str) -> str:
    r = d.cli(*args)
    assert r.returncode == 0 and r.stderr == "", (args, r.returncode, r.stderr)
    return r.stdout


def adopted(d: Daemon, rule: int | None = None) -> list[dict[str, Any]]:
    return [
        p for p in d.call("list") if p["adopted_by"] is not None and rule in (None, p["adopted_by"])
    ]


def entry_of(d: Daemon, pid: int) -> dict[str, Any] | None:
    return next((p for p in d.call("list", {"pids": [pid]}) if p["alive"]), None)


def exec_done(p: subprocess.Popen[bytes], name: str) -> None:
    """Wait until `p` runs under `name` (its exec is done)."""

    def done() -> bool:
        try:
            return Path(f"/proc/{p.pid}/cmdline").read_bytes().startswith(name.encode() + b"\0")
        except FileNotFoundError:
            return False

    wait_until(done, 10, f"{name} to start")


# ---- adopting ------------------------------------------------------------------------------


def test_a_process_started_later_is_adopted_with_the_rules_labels_and_an_added_event(
    daemon: Daemon, named: Callable[..., subprocess.Popen[bytes]], tag: str
) -> None:
    before = named(f"{tag}-w")
    exec_done(before, f"{tag}-w")
    out = ok(
        daemon, "adopt", "add", "--match", f"^{tag}-w", "--full", "--tag", "jobs,batch",
        "--group", "g", "--name", "{comm}-{n}", "--rule", "workers",
    )  # fmt: skip
    assert (
        out
        == f"adoption rule 1 added: --match ^{tag}-w --full --tag batch,jobs --group g (workers)\n"
    )
    with Conn(daemon) as sub:
        sub.call("subscribe", {"tags_any": ["jobs"]})
        p = named(f"{tag}-w")
        event = sub.line()
        assert event["method"] == "event", event
        got = event["params"]
        assert got["kind"] == "added" and got["proc"]["pid"] == p.pid, got
        assert got["proc"]["adopted_by"] == 1
    entry = entry_of(daemon, p.pid)
    assert entry is not None
    assert (entry["tags"], entry["groups"], entry["name"]) == (["batch", "jobs"], ["g"], "sleep-1")
    assert entry_of(daemon, before.pid) is None, "a process running before the rule is not adopted"
    listed = json.loads(ok(daemon, "adopt", "list", "--json"))
    assert [(r["id"], r["name"], r["adopted"], r["alive"]) for r in listed] == [
        (1, "workers", 1, 1)
    ]
    table = ok(daemon, "adopt").splitlines()
    assert table[0].split() == [
        "RULE",
        "NAME",
        "MATCH",
        "LABELS",
        "ENTRY",
        "NAME",
        "FORGET",
        "LIMIT",
        "ADOPTED",
        "ALIVE",
    ]
    assert table[1].split()[:4] == ["1", "workers", "--match", f"^{tag}-w"]
    assert table[1].split()[-2:] == ["1", "1"]


def test_the_name_pattern_matches_comm_as_pgrep_does(
    daemon: Daemon, named: Callable[..., subprocess.Popen[bytes]], tag: str
) -> None:
    """Without --full the pattern is searched in the process name: `exec -a` changes
    argv[0], not the name, which is the program's (`sleep`), as pgrep sees it."""
    ok(daemon, "adopt", "add", "--match", "^sleep$", "--parent", str(os.getpid()), "--exact")
    p = subprocess.Popen(["sleep", "300"])
    try:
        wait_until(lambda: entry_of(daemon, p.pid), 5, "the sleep to be adopted")
        q = named(f"{tag}-x")  # a child of this process's, but named sleep through exec
        wait_until(lambda: entry_of(daemon, q.pid), 5, "the named sleep to be adopted")
        assert [e["cmd"] for e in adopted(daemon)] == ["sleep 300", f"{tag}-x 300"]
    finally:
        p.kill()
        p.wait()


def test_rules_survive_kill_9_and_adopt_what_started_while_no_daemon_ran(
    spawn_daemon: Spawn, named: Callable[..., subprocess.Popen[bytes]], tag: str
) -> None:
    d = spawn_daemon()
    ok(d, "adopt", "add", "--match", f"^{tag}", "--full", "--name", "n{n}")
    first = named(f"{tag}-a")
    wait_until(lambda: entry_of(d, first.pid), 5, "the first adoption")
    d.kill9()
    meanwhile = named(f"{tag}-b")
    exec_done(meanwhile, f"{tag}-b")
    d.start()
    wait_until(lambda: entry_of(d, meanwhile.pid), 5, "the adoption at start")
    rules = d.call("adopt.list")
    assert [(r["id"], r["adopted"], r["alive"]) for r in rules] == [(1, 2, 2)]
    assert [(e["pid"], e["name"]) for e in adopted(d)] == [(first.pid, "n1"), (meanwhile.pid, "n2")]
    d.stop()
    d.start()  # from the snapshot this time: the same, adopted once each
    time.sleep(0.3)  # three scans: a second adoption would show
    assert [(e["pid"], e["name"]) for e in adopted(d)] == [(first.pid, "n1"), (meanwhile.pid, "n2")]
    assert d.call("adopt.list")[0]["adopted"] == 2


def test_forget_after_removes_a_rules_dead_entries_that_long_after_their_exit(
    daemon: Daemon, named: Callable[..., subprocess.Popen[bytes]], tag: str
) -> None:
    ok(daemon, "adopt", "add", "--match", f"^{tag}-short", "--full", "--forget-after", "1s")
    ok(daemon, "adopt", "add", "--match", f"^{tag}-kept", "--full")
    short = named(f"{tag}-short", 0.5)
    kept = named(f"{tag}-kept", 0.5)
    wait_until(lambda: len(adopted(daemon)) == 2, 5, "both adopted")
    short.wait(10)
    kept.wait(10)
    exited = wait_until(
        lambda: [e for e in adopted(daemon) if not e["alive"]] or None, 5, "the exits"
    )
    assert exited
    wait_until(lambda: [e["pid"] for e in adopted(daemon)] == [kept.pid], 5, "the forgetting")
    assert daemon.call("adopt.list")[0]["adopted"] == 1  # the count stays


def test_limit_caps_the_rules_alive_entries(
    daemon: Daemon, named: Callable[..., subprocess.Popen[bytes]], tag: str
) -> None:
    ok(daemon, "adopt", "add", "--match", f"^{tag}", "--full", "--limit", "2")
    first = [named(f"{tag}-{n}") for n in range(2)]
    wait_until(lambda: len(adopted(daemon)) == 2, 5, "two adopted")
    more = named(f"{tag}-late")
    exec_done(more, f"{tag}-late")
    time.sleep(0.3)  # three scans
    assert entry_of(daemon, more.pid) is None
    first[0].kill()
    first[0].wait()
    wait_until(lambda: sum(e["alive"] for e in adopted(daemon)) == 1, 5, "the exit")
    again = named(f"{tag}-again")
    wait_until(lambda: entry_of(daemon, again.pid), 5, "room for one more")
    assert entry_of(daemon, more.pid) is None, "one seen at the limit is not adopted later"


def test_children_of_adopts_every_descendant_of_a_tracked_forking_shell(
    daemon: Daemon, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    script = (
        f"while [ ! -e {go} ]; do sleep 0.02; done; "
        "sleep 300 & (sleep 301 & wait) & sh -c 'sleep 302' & wait"
    )
    shell = subprocess.Popen(["sh", "-c", script])
    try:
        root = daemon.call("add", {"pid": shell.pid})["id"]
        ok(daemon, "adopt", "add", "--children-of", str(root), "--tag", "kid")
        go.touch()

        def kids() -> list[str]:
            return sorted(
                e["cmd"] for e in daemon.call("list", {"tags_any": ["kid"]}) if e["alive"]
            )

        wait_until(lambda: {"sleep 300", "sleep 301", "sleep 302"} <= set(kids()), 5, "the kids")
        assert all(e["adopted_by"] == 1 for e in daemon.call("list", {"tags_any": ["kid"]}))
        assert entry_of(daemon, os.getpid()) is None
    finally:
        subprocess.run(["pkill", "-KILL", "-P", str(shell.pid)], check=False)
        for e in daemon.call("list", {"tags_any": ["kid"]}):
            if e["alive"]:
                os.kill(e["pid"], 9)
        shell.kill()
        shell.wait()


def test_a_name_clash_leaves_the_name_off_and_never_fails(
    daemon: Daemon, named: Callable[..., subprocess.Popen[bytes]], tag: str
) -> None:
    ok(daemon, "adopt", "add", "--match", f"^{tag}", "--full", "--name", "fixed")
    a = named(f"{tag}-a")
    wait_until(lambda: entry_of(daemon, a.pid), 5, "the first")
    b = named(f"{tag}-b")
    wait_until(lambda: entry_of(daemon, b.pid), 5, "the second")
    assert [(e["pid"], e["name"]) for e in adopted(daemon)] == [(a.pid, "fixed"), (b.pid, None)]


def test_fifty_processes_at_once_are_each_adopted_once(
    daemon: Daemon, named: Callable[..., subprocess.Popen[bytes]], tag: str
) -> None:
    ok(daemon, "adopt", "add", "--match", f"^{tag}", "--full", "--name", "{comm}{n}")
    procs = [named(f"{tag}-{n}") for n in range(50)]
    wait_until(lambda: len(adopted(daemon)) == 50, 10, "all fifty")
    entries = adopted(daemon)
    assert sorted(e["pid"] for e in entries) == sorted(p.pid for p in procs)
    assert sorted(e["name"] for e in entries) == sorted(f"sleep{n}" for n in range(1, 51))
    assert daemon.call("adopt.list")[0]["adopted"] == 50


def test_removing_a_rule_stops_it_and_keeps_its_entries(
    daemon: Daemon, named: Callable[..., subprocess.Popen[bytes]], tag: str
) -> None:
    ok(daemon, "adopt", "add", "--match", f"^{tag}", "--full", "--rule", "r")
    a = named(f"{tag}-a")
    wait_until(lambda: entry_of(daemon, a.pid), 5, "the adoption")
    out = ok(daemon, "adopt", "rm", "r")
    assert out == f"adoption rule 1 removed: --match ^{tag} --full (r)\n"
    b = named(f"{tag}-b")
    exec_done(b, f"{tag}-b")
    time.sleep(0.3)
    assert [e["pid"] for e in adopted(daemon)] == [a.pid]
    assert daemon.call("adopt.list") == []
    assert daemon.call("status")["discovery"] == "off"


def test_reset_forgets_adoption_rules_and_numbers_start_again(daemon: Daemon, tag: str) -> None:
    ok(daemon, "adopt", "add", "--match", f"^{tag}", "--full")
    ok(daemon, "reset", "--confirm", "RESET")
    assert daemon.call("adopt.list") == []
    assert daemon.call("adopt.add", {"match": {"pattern": "x"}})["id"] == 1


def test_status_tells_the_scan_and_nothing_scans_without_a_rule(daemon: Daemon, tag: str) -> None:
    status = daemon.call("status")
    assert (status["discovery"], status["adopt_rules"], status["discovery_scans"]) == ("off", 0, 0)
    time.sleep(0.3)
    assert daemon.call("status")["discovery_scans"] == 0
    daemon.call("adopt.add", {"match": {"pattern": tag}})
    status = wait_until(
        lambda: (s := daemon.call("status"))["discovery_scans"] >= 2 and s, 5, "scans"
    )
    assert status["discovery"] == "scan" and status["adopt_rules"] == 1
    assert status["discovery_interval"] == 0.1


# ---- bad input: one clear error, nothing changed ------------------------------------------------


@pytest.mark.parametrize(
    ("params", "code", "names"),
    [
        ({"match": {"pattern": "a("}}, -32602, "match.pattern"),
        ({"match": {}}, -32602, "match: give a pattern"),
        ({"match": {"pattern": "x", "pick": "newest"}}, -32602, "match.pick"),
        ({"match": {"pattern": "x"}, "name": "a b"}, -32602, "name: ' '"),
        ({"match": {"pattern": "x"}, "name": "{who}"}, -32602, "name: unknown field {who}"),
        ({"match": {"pattern": "x"}, "limit": 0}, -32602, "limit"),
        ({"match": {"pattern": "x"}, "forget_after": -1}, -32602, "forget_after"),
        ({"match": {"pattern": "x"}, "rule": "a b"}, -32602, "rule"),
        ({"match": {"pattern": "x"}, "color": "red"}, -32602, "color"),
        ({"match": {"cgroup": "/nonexistent"}}, -32602, "match.cgroup"),
        ({"match": {"children_of": 99}}, -32006, "match.children_of"),
        ({"match": {"user": ["no-such-user-x"]}}, -32602, "match.user[0]"),
    ],
)
def test_a_bad_rule_is_refused_naming_the_field(
    daemon: Daemon, params: dict[str, Any], code: int, names: str
) -> None:
    error = daemon.error("adopt.add", params)
    assert error["code"] == code, error
    assert names in error["message"], error
    assert daemon.call("adopt.list") == []
    assert daemon.call("status")["discovery"] == "off"


def test_a_rule_name_in_use_and_an_unknown_rule_are_refused(daemon: Daemon) -> None:
    daemon.call("adopt.add", {"match": {"pattern": "x"}, "rule": "r"})
    assert daemon.error("adopt.add", {"match": {"pattern": "y"}, "rule": "r"})["code"] == -32004
    assert daemon.error("adopt.remove", {"rule": 7})["code"] == -32006
    assert daemon.error("adopt.remove", {"rule": "nope"})["code"] == -32006
    assert [r["name"] for r in daemon.call("adopt.list")] == ["r"]


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("adopt", "add", "--tag", "x"), 2, "give what to adopt"),
        (("adopt", "add", "--match", "x", "--limit", "0"), 2, "--limit"),
        (("adopt", "add", "--match", "x", "--limit", "many"), 2, "--limit"),
        (("adopt", "add", "--match", "x", "--forget-after", "soon"), 2, "--forget-after"),
        (("adopt", "add", "--match", "a("), 2, "match.pattern"),
        (("adopt", "add", "--match", "x", "--name", "{who}"), 2, "unknown field"),
        (("adopt", "rm", "9"), 1, "no adoption rule with number 9"),
    ],
)
def test_the_cli_says_what_is_wrong_in_one_line(
    daemon: Daemon, args: tuple[str, ...], code: int, says: str
) -> None:
    line = one_line(daemon.cli(*args), code)
    assert line.startswith("goproc: ") and says in line, line
    assert daemon.call("adopt.list") == []


def test_adopt_add_json_is_the_rule_as_the_daemon_keeps_it(daemon: Daemon, tag: str) -> None:
    out = ok(
        daemon, "adopt", "add", "--match", tag, "--user", str(os.geteuid()), "--limit", "3",
        "--forget-after", "1m30s", "--json",
    )  # fmt: skip
    rule = object_line(out)
    assert rule == {
        **rule,
        "id": 1,
        "match": {"pattern": tag, "user": [str(os.geteuid())]},
        "limit": 3,
        "forget_after": 90.0,
        "adopted": 0,
        "alive": 0,
    }
    assert daemon.call("adopt.list") == [rule]
