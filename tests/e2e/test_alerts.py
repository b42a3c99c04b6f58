"""Alert rules end to end, with real daemons and real processes: `goproc alert add|list|rm`
(text, --json, every error: one stderr line, the rules unchanged), the socket's error
codes, rules across `kill -9` (the journal), a clean restart (the snapshot) and `reset`,
rules for entries added (or tagged) later, `alert` events on a subscription and in
`goproc events` from a process that really allocates memory, once per crossing, `for`
windows, the `signal:` and `kill` actions on the tracked process only, and `status`.

The daemons sample every 100 ms; every wait polls with a generous deadline.  What a
subscriber has *not* received is checked by order, never by waiting: a `ping` on the
subscription's connection is answered after every event published before it.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import GOPROC, Conn, Daemon, message
from helpers import array_lines, object_line, one_line, wait_until

Sleeper = Callable[..., subprocess.Popen[bytes]]
FAST = {"metrics_interval": "100ms"}
HOLDS = "threads >= 1"  # true of every process at its first sample
MB = 1000**2  # what `100MB` means in a condition

# Holds 150 MiB (touched, in an anonymous mapping, so freeing it really returns it) on
# `grow`, frees it on `shrink`; answers each line with it and its VmRSS afterwards.
BALLOON = """
import mmap, sys
SIZE = 150 << 20
held = []
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024
print('ready', rss(), flush=True)
for line in sys.stdin:
    word = line.strip()
    if word == 'grow' and not held:
        m = mmap.mmap(-1, SIZE)
        for i in range(0, SIZE, 4096):
            m[i] = 1
        held.append(m)
    elif word == 'shrink':
        while held:
            held.pop().close()
    print(word, rss(), flush=True)
"""
# Writes the name of each HUP or TERM it gets to the file argv[1], and keeps running.
RECORDER = """
import signal, sys, time
def note(signum, frame):
    with open(sys.argv[1], 'a') as f:
        f.write(signal.Signals(signum).name + '\\n')
signal.signal(signal.SIGHUP, note)
signal.signal(signal.SIGTERM, note)
print('ready', flush=True)
while True:
    time.sleep(1)
"""


# ---- helpers ------------------------------------------------------------------------------


def ok(d: Daemon, *args: str) -> str:
    """The stdout of a `goproc` command that must succeed."""
    r = d.cli(*args)
    assert r.returncode == 0 and r.stderr == "", (args, r.returncode, r.stderr)
    return r.stdout


def rules_json(d: Daemon) -> list[Any]:
    return array_lines(ok(d, "alert", "list", "--json"))


def add_pid(d: Daemon, pid: int, *labels: str) -> int:
    [entry] = array_lines(ok(d, "add", str(pid), *labels, "--json"))
    entry_id: int = entry["id"]
    return entry_id


def sweeps(d: Daemon, n: int) -> None:
    """Return once `n` more metrics sweeps have run (and been checked against the rules)."""
    first = d.call("status")["metrics_sweeps"]
    wait_until(lambda: d.call("status")["metrics_sweeps"] >= first + n, 15, f"{n} sweeps")


def timestamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def ready(p: subprocess.Popen[bytes]) -> bytes:
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line.startswith(b"ready"), line
    return line


class Watch:
    """A `subscribe` connection (every entry) and the events it has received, in order."""

    def __init__(self, d: Daemon) -> None:
        self.conn = Conn(d, timeout=20)
        self.events: list[dict[str, Any]] = []
        self._asked = 0
        self._ask("subscribe", {})

    def close(self) -> None:
        self.conn.close()

    def _ask(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self._asked += 1
        request_id = f"w{self._asked}"
        self.conn.sock.sendall(message(method, params, request_id))
        while (line := self.conn.line()) is not None:
            if line.get("id") == request_id:
                return line["result"]
            self.events.append(line["params"])
        raise AssertionError("the daemon closed the subscription's connection")

    def sync(self) -> list[dict[str, Any]]:
        """Every event published so far (the `ping` reply comes after them)."""
        self._ask("ping")
        return self.events

    def wait(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> Any:
        """The first event received that satisfies `predicate`, reading on as needed."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for e in self.events[seen:]:
                if predicate(e):
                    return e
            seen = len(self.events)
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no such event within {timeout}s; got {self.events}")
            self.conn.sock.settimeout(left)
            line = self.conn.line()
            assert line is not None, "the daemon closed the subscription's connection"
            self.events.append(line["params"])

    def alerts(self, rule: int | None = None) -> list[dict[str, Any]]:
        events = self.sync()
        return [e for e in events if e["kind"] == "alert" and rule in (None, e["rule"])]


def alert_for(rule: int, entry: int) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["kind"] == "alert" and e["rule"] == rule and e["id"] == entry


class Balloon:
    """A process whose memory the test moves above and below 150 MiB."""

    def __init__(self, sleeper: Sleeper) -> None:
        self.proc = sleeper(
            sys.executable, "-c", BALLOON, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.pid = self.proc.pid
        self.rss = int(ready(self.proc).split()[1])

    def _say(self, word: str) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(word.encode() + b"\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().split()
        assert answer[0] == word.encode(), answer
        self.rss = int(answer[1])
        return self.rss

    def grow(self) -> int:
        rss = self._say("grow")
        assert rss > 150 * MB, rss
        return rss

    def shrink(self) -> int:
        rss = self._say("shrink")
        assert rss < 60 * MB, rss
        return rss


def recorder(sleeper: Sleeper, path: Path) -> subprocess.Popen[bytes]:
    p = sleeper(sys.executable, "-c", RECORDER, str(path), stdout=subprocess.PIPE)
    ready(p)
    return p


def received(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


# ---- add, list, rm through the CLI ------------------------------------------------------------


def test_add_list_rm_in_text_and_json(daemon: Daemon) -> None:
    d = daemon
    assert ok(d, "alert") == "RULE  NAME  IF  THEN  FOR  FIRING\n"
    assert ok(d, "alert", "list", "--json") == "[]\n"
    text = ok(d, "alert", "add", "--tag", "web", "--if", "mem>100MB")
    assert text == "rule 1 added: if mem > 100MB then event, for --tag web\n"
    hot = object_line(
        ok(d, "alert", "add", "--tag", "web,db", "--if", "cpu > 90 for 30s", "--then",
           "signal:hup", "--rule", "hot", "--json")
    )  # fmt: skip
    assert {k: v for k, v in hot.items() if k != "created_at"} == {
        "id": 2,
        "name": "hot",
        "select": {"tags_any": ["web", "db"]},
        "all": False,
        "condition": "cpu > 90% for 30s",
        "action": "signal:HUP",
        "firing": [],
    }
    assert abs(timestamp(hot["created_at"]) - time.time()) < 60
    text = ok(d, "alert", "add", "--all", "--if", "mem >= 1.5GiB", "--then", "kill")
    assert text == "rule 3 added: if mem >= 1.5GiB then kill, for every entry\n"
    ok(d, "alert", "add", "--name", "api", "--id", "4,5", "--if", "fds > 1000", "--rule", "fd")

    listed = rules_json(d)
    assert [r["id"] for r in listed] == [1, 2, 3, 4]
    assert listed[1] == hot
    assert listed[3]["select"] == {"ids": [4, 5], "names": ["api"]}
    assert ok(d, "alert", "list").splitlines() == [
        "RULE  NAME  IF                 THEN        FOR                  FIRING",
        "1     -     mem > 100MB        event       --tag web            -",
        "2     hot   cpu > 90% for 30s  signal:HUP  --tag web,db         -",
        "3     -     mem >= 1.5GiB      kill        every entry          -",
        "4     fd    fds > 1000         event       --id 4,5 --name api  -",
    ]

    assert object_line(ok(d, "alert", "rm", "hot", "--json")) == hot  # by name
    assert ok(d, "alert", "rm", "3") == (  # by number
        "rule 3 removed: if mem >= 1.5GiB then kill, for every entry\n"
    )
    assert [r["id"] for r in rules_json(d)] == [1, 4]
    assert ok(d, "alert", "add", "--tag", "x", "--if", "age > 2h")  # numbers are not reused
    assert [r["id"] for r in rules_json(d)] == [1, 4, 5]


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("add", "--all", "--if", "cpu > lots"), 2, ("condition", "'lots'")),
        (("add", "--all", "--if", "disk > 1"), 2, ("condition", "'disk'")),
        (("add", "--all", "--if", "mem > 1MB for -1s"), 2, ("condition", "window")),
        (("add", "--all", "--if", "cpu > 90 for ever"), 2, ("condition", "'ever'")),
        (("add", "--all", "--if", ""), 2, ("condition",)),
        (("add", "--all", "--if", "cpu > 9", "--then", "boom"), 2, ("action", "'boom'")),
        (("add", "--all", "--if", "cpu > 9", "--then", "signal:NOPE"), 2, ("action", "NOPE")),
        (("add", "--all", "--if", "cpu > 9", "--then", "signal:0"), 2, ("action",)),
        (("add", "--if", "cpu > 9"), 2, ("--all",)),
        (("add", "--tag", "x"), 2, ("--if",)),
        (("add", "--tag", "x", "--if", "cpu > 9", "--rule", "a b"), 2, ("rule",)),
        (("add", "--tag", "x", "--if", "cpu > 9", "--rule", "123"), 2, ("rule", "non-digit")),
        (("add", "--all", "--if", "cpu > 1" + "0" * 400), 2, ("condition", "too large")),
        (("add", "--tag", "x", "--if", "cpu > 9", "--rule", "taken"), 1, ("'taken'", "rule 1")),
        (("rm", "99"), 1, ("99",)),
        (("rm", "nope"), 1, ("'nope'",)),
        (("rm", "0"), 2, ("rule",)),
        (("rm",), 2, ("RULE",)),
        (("frob",), 2, ("frob",)),
    ],
)
def test_an_error_is_one_line_and_changes_no_rule(
    daemon: Daemon, args: tuple[str, ...], code: int, words: tuple[str, ...]
) -> None:
    ok(daemon, "alert", "add", "--tag", "x", "--if", "cpu > 9", "--rule", "taken")
    before = rules_json(daemon)
    line = one_line(daemon.cli("alert", *args), code)
    assert line.startswith("goproc: ") and all(w in line for w in words), line
    assert rules_json(daemon) == before


def test_the_socket_answers_the_documented_error_codes(daemon: Daemon) -> None:
    d = daemon
    d.call("alert.add", {"tags_any": ["x"], "condition": "cpu > 9", "rule": "r"})
    bad = d.error("alert.add", {"all": True, "condition": "cpu > lots"})
    assert bad["code"] == -32602 and "condition" in bad["message"] and "'lots'" in bad["message"]
    assert d.error("alert.add", {"condition": "cpu > 9"})["code"] == -32602  # no selector
    assert d.error("alert.add", {"all": True, "condition": "cpu > 9", "action": "x"})["code"] == (
        -32602
    )
    assert d.error("alert.add", {"all": True, "condition": "cpu > 9", "rule": "r"})["code"] == (
        -32004
    )
    assert d.error("alert.remove", {"rule": 99})["code"] == -32006
    assert d.error("alert.remove", {"rule": "nope"})["code"] == -32006
    assert [r["name"] for r in d.call("alert.list")] == ["r"]


# ---- durability ---------------------------------------------------------------------------


def kept(rules: list[Any]) -> list[Any]:
    """Rules as they are kept (`firing` is memory only)."""
    return [{k: v for k, v in r.items() if k != "firing"} for r in rules]


def snapshot_rules(d: Daemon) -> Any:
    return json.loads((d.state_dir / "goproc.snapshot.json").read_text()).get("rules")


def test_rules_survive_kill9_and_a_restart_and_removals_stay_removed(
    spawn_daemon: Callable[..., Daemon], sleeper: Sleeper
) -> None:
    # The snapshot is written at the first start and then not before a clean stop: after
    # `kill -9` the rules can only come from the journal.
    d = spawn_daemon({**FAST, "snapshot_delay": "1h", "last_seen_interval": "1h"})
    ok(d, "alert", "add", "--tag", "web", "--if", "cpu > 90% for 30s", "--then", "signal:HUP",
       "--rule", "hot")  # fmt: skip
    ok(d, "alert", "add", "--all", "--if", "mem >= 1.5GiB", "--then", "kill")
    ok(d, "alert", "add", "--name", "api", "--group", "g", "--if", "fds > 1000")
    ok(d, "alert", "add", "--tag-all", "a,b", "--search", "py", "--if", "read_rate > 10MB/s")
    ok(d, "alert", "add", "--id", "1", "--if", HOLDS, "--rule", "live")
    ok(d, "alert", "rm", "3")
    ok(d, "alert", "rm", "hot")
    entry = add_pid(d, sleeper().pid)
    wait_until(lambda: d.call("status")["alerts_fired"] == 1, 15, "rule 5 to fire")
    before = rules_json(d)
    assert [r["id"] for r in before] == [2, 4, 5]
    assert snapshot_rules(d) is None

    d.kill9()
    d.start()
    assert kept(rules_json(d)) == kept(before)
    # Crossings are memory only: the condition that still holds fires once more.
    wait_until(lambda: d.call("status")["alerts_fired"] == 1, 15, "rule 5 to fire again")
    assert rules_json(d) == before and before[2]["firing"] == [entry]
    added = object_line(ok(d, "alert", "add", "--tag", "z", "--if", "age > 1h", "--json"))
    assert added["id"] == 6  # numbering goes on from the journal's counter
    after_add = rules_json(d)

    d.stop()
    assert [r["id"] for r in snapshot_rules(d)] == [2, 4, 5, 6]
    d.start()
    assert kept(rules_json(d)) == kept(after_add)
    assert ok(d, "alert", "add", "--tag", "z", "--if", "age > 1h").startswith("rule 7 added")


def test_rules_of_tiny_values_survive_a_restart(spawn_daemon: Callable[..., Daemon]) -> None:
    """What a rule keeps is its condition's text, which must read back (`1e-05` did not,
    and the daemon then refused its own snapshot)."""
    d = spawn_daemon()
    for condition in ("cpu > 0.00001", "mem > 0.5", "age > 1us", "fds > 1 for 1ns"):
        ok(d, "alert", "add", "--all", "--if", condition)
    before = rules_json(d)
    assert [r["condition"] for r in before] == [
        "cpu > 0.00001%",
        "mem > 0.5",
        "age > 0.000001s",
        "fds > 1 for 0.000000001s",
    ]
    d.stop()
    d.start()
    assert rules_json(d) == before
    d.kill9()
    d.start()
    assert rules_json(d) == before


def test_reset_forgets_the_rules_and_numbering_starts_at_1(
    spawn_daemon: Callable[..., Daemon],
) -> None:
    d = spawn_daemon({"snapshot_delay": "1h", "last_seen_interval": "1h"})
    for n in range(3):
        ok(d, "alert", "add", "--tag", f"t{n}", "--if", "cpu > 50")
    ok(d, "alert", "rm", "3")
    assert object_line(ok(d, "reset", "--confirm", "RESET", "--json")) == {"removed": 0}
    assert rules_json(d) == []
    assert ok(d, "alert", "add", "--tag", "new", "--if", "cpu > 50").startswith("rule 1 added")
    d.kill9()  # the reset is in the journal
    d.start()
    [rule] = rules_json(d)
    assert (rule["id"], rule["select"]) == (1, {"tags_any": ["new"]})
    d.stop()  # and in the snapshot
    d.start()
    assert [r["id"] for r in rules_json(d)] == [1]
    assert ok(d, "alert", "add", "--tag", "t", "--if", "cpu > 50").startswith("rule 2 added")


# ---- which entries a rule is for ----------------------------------------------------------


def test_a_rule_applies_to_entries_added_or_tagged_later_that_match(
    spawn_daemon: Callable[..., Daemon], sleeper: Sleeper
) -> None:
    d = spawn_daemon(FAST)
    ok(d, "alert", "add", "--tag", "web", "--if", HOLDS, "--rule", "web")
    ok(d, "alert", "add", "--name", "api", "--if", HOLDS, "--rule", "api")
    watch = Watch(d)
    web = add_pid(d, sleeper().pid, "--tag", "web,db")
    db = add_pid(d, sleeper().pid, "--tag", "db")
    api = add_pid(d, sleeper().pid, "--name", "api")
    other = add_pid(d, sleeper().pid, "--name", "other", "--tag", "webby")
    watch.wait(alert_for(1, web))
    watch.wait(alert_for(2, api))
    sweeps(d, 5)
    assert {(e["rule"], e["id"]) for e in watch.alerts()} == {(1, web), (2, api)}
    assert len(watch.alerts()) == 2
    assert [r["firing"] for r in rules_json(d)] == [[web], [api]]

    ok(d, "tag", "add", "web", "--id", str(db))  # it matches from now on
    watch.wait(alert_for(1, db))
    sweeps(d, 3)
    assert sorted((e["rule"], e["id"]) for e in watch.alerts()) == [(1, web), (1, db), (2, api)]
    assert [r["firing"] for r in rules_json(d)] == [[web, db], [api]]
    assert other not in {e["id"] for e in watch.alerts()}
    watch.close()


def test_status_shows_alert_rules_and_alerts_fired(
    spawn_daemon: Callable[..., Daemon], sleeper: Sleeper
) -> None:
    d = spawn_daemon(FAST)
    ok(d, "alert", "add", "--tag", "t", "--if", HOLDS)
    ok(d, "alert", "add", "--tag", "t", "--if", "mem > 1TB")
    add_pid(d, sleeper().pid, "--tag", "t")
    wait_until(lambda: d.call("status")["alerts_fired"] == 1, 15, "the rule to fire")
    sweeps(d, 3)
    status = object_line(ok(d, "status", "--json"))
    assert (status["alert_rules"], status["alerts_fired"]) == (2, 1)
    lines = ok(d, "status").splitlines()
    assert re.search(r"^alert_rules\s+2$", "\n".join(lines), re.M), lines
    assert re.search(r"^alerts_fired\s+1$", "\n".join(lines), re.M), lines


# ---- alert events from real memory ----------------------------------------------------------


def test_a_process_crossing_100mb_fires_once_per_crossing(
    spawn_daemon: Callable[..., Daemon], sleeper: Sleeper, tmp_path: Path
) -> None:
    d = spawn_daemon(FAST)
    balloon = Balloon(sleeper)
    entry = add_pid(d, balloon.pid, "--name", "balloon")
    ok(d, "alert", "add", "--id", str(entry), "--if", "mem > 100MB", "--rule", "big")
    watch = Watch(d)
    as_json, as_text = tmp_path / "events.json", tmp_path / "events.txt"
    for path, flags in ((as_json, ("--json",)), (as_text, ())):
        with path.open("wb") as out:
            sleeper(*GOPROC, "events", *flags, env=d.env, stdout=out, stderr=subprocess.PIPE)
    wait_until(lambda: d.call("status")["subscriptions"] == 3, 15, "goproc events to subscribe")
    sweeps(d, 3)
    assert watch.alerts() == []  # small: nothing fires

    rss = balloon.grow()
    first = watch.wait(alert_for(1, entry))
    assert (first["rule_name"], first["condition"], first["action"]) == (
        "big",
        "mem > 100MB",
        "event",
    )
    # The sample that fired may have been taken while the pages were being touched.
    assert 100 * MB < first["value"] <= rss * 1.02, (first["value"], rss)
    assert first["proc"]["metrics"]["rss_bytes"] == first["value"]
    assert (first["pid"], first["name"]) == (balloon.pid, "balloon")
    assert [r["firing"] for r in rules_json(d)] == [[entry]]
    assert ok(d, "alert").splitlines()[1].endswith(f"--id {entry}  {entry}")
    sweeps(d, 5)  # held over five more samples: no more events
    assert len(watch.alerts(1)) == 1

    balloon.shrink()
    wait_until(lambda: rules_json(d)[0]["firing"] == [], 15, "the rule to clear")
    assert len(watch.alerts(1)) == 1  # clearing is no event
    balloon.grow()
    second = watch.wait(lambda e: e["kind"] == "alert" and e is not first)
    assert second["rule"] == 1 and timestamp(second["time"]) > timestamp(first["time"])
    sweeps(d, 3)
    assert len(watch.alerts(1)) == 2
    assert d.call("status")["alerts_fired"] == 2
    watch.close()

    def printed(path: Path) -> list[str]:
        return [line for line in path.read_text().splitlines() if "alert" in line]

    wait_until(lambda: len(printed(as_json)) == 2 and len(printed(as_text)) == 2, 15)
    shown = [json.loads(line) for line in printed(as_json)]
    assert [(e["kind"], e["id"], e["rule"], e["value"]) for e in shown] == [
        ("alert", entry, 1, first["value"]),
        ("alert", entry, 1, second["value"]),
    ]
    pattern = (
        rf"\S+  alert    id={entry} pid={balloon.pid} name=balloon rule=1 \(big\):"
        rf" mem > 100MB, value {first['value']}; then event"
    )
    assert re.fullmatch(pattern, printed(as_text)[0]), printed(as_text)


def test_a_for_window_fires_only_once_the_window_has_held(
    spawn_daemon: Callable[..., Daemon], sleeper: Sleeper
) -> None:
    d = spawn_daemon(FAST)
    balloon = Balloon(sleeper)
    entry = add_pid(d, balloon.pid)
    ok(d, "alert", "add", "--id", str(entry), "--if", "mem > 100MB for 1s")
    watch = Watch(d)
    for _ in range(2):  # above for a few samples, well under the window
        balloon.grow()
        sweeps(d, 2)
        balloon.shrink()
        sweeps(d, 2)
    assert watch.alerts() == [] and d.call("status")["alerts_fired"] == 0

    growing = time.time()  # no sample before this can hold
    balloon.grow()
    fired = watch.wait(alert_for(1, entry))
    assert timestamp(fired["time"]) - growing >= 1.0, (fired["time"], growing)
    sweeps(d, 3)
    assert len(watch.alerts()) == 1
    watch.close()


# ---- actions ------------------------------------------------------------------------------


def test_signal_action_reaches_the_tracked_process_once_and_it_keeps_running(
    spawn_daemon: Callable[..., Daemon], sleeper: Sleeper, tmp_path: Path
) -> None:
    d = spawn_daemon(FAST)
    notes = tmp_path / "hup"
    target = recorder(sleeper, notes)
    entry = add_pid(d, target.pid, "--tag", "reload")
    bystander_notes = tmp_path / "bystander"
    add_pid(d, recorder(sleeper, bystander_notes).pid, "--tag", "other")
    ok(d, "alert", "add", "--tag", "reload", "--if", HOLDS, "--then", "signal:HUP")
    wait_until(lambda: received(notes) == ["SIGHUP"], 15, "the HUP")
    sweeps(d, 5)
    assert received(notes) == ["SIGHUP"]  # once per crossing, not once per sample
    assert received(bystander_notes) == []
    assert target.poll() is None and d.call("show", {"ids": [entry]})["alive"] is True
    done = f"alert: rule 1: signal:HUP of id {entry} (pid {target.pid}): signalled"
    wait_until(lambda: done in d.log(), 15, "the action's log line")


def test_kill_action_escalates_to_kill_for_a_process_that_ignores_term(
    spawn_daemon: Callable[..., Daemon], sleeper: Sleeper, tmp_path: Path
) -> None:
    d = spawn_daemon(FAST)
    notes = tmp_path / "term"
    target = recorder(sleeper, notes)
    entry = add_pid(d, target.pid)
    watch = Watch(d)
    ok(d, "alert", "add", "--id", str(entry), "--if", HOLDS, "--then", "kill")
    fired = watch.wait(alert_for(1, entry))
    wait_until(lambda: received(notes) == ["SIGTERM"], 15, "the TERM")
    exited = watch.wait(lambda e: e["kind"] == "exited" and e["id"] == entry, 20)
    waited = timestamp(exited["time"]) - timestamp(fired["time"])
    assert 4.5 <= waited <= 12, waited  # TERM, then KILL after 5 s
    assert target.wait(10) == -signal.SIGKILL
    assert received(notes) == ["SIGTERM"]
    assert d.call("show", {"ids": [entry]})["alive"] is False
    wait_until(lambda: f"kill of id {entry} (pid {target.pid}): killed" in d.log(), 15)
    watch.close()


def test_no_action_reaches_a_process_the_daemon_shows_dead(
    spawn_daemon: Callable[..., Daemon], sleeper: Sleeper, tmp_path: Path
) -> None:
    """The window of a `kill` rule would complete after the process died: a dead entry
    is not sampled, so it never fires, and nothing is signalled: not a process that is
    not the tracked one (a bystander, tracked under another tag), not anyone."""
    d = spawn_daemon(FAST)
    bystander_notes = tmp_path / "bystander"
    bystander = recorder(sleeper, bystander_notes)
    add_pid(d, bystander.pid, "--tag", "spare")
    ok(d, "alert", "add", "--tag", "doomed", "--if", f"{HOLDS} for 3s", "--then", "kill")
    victim = sleeper()
    entry = add_pid(d, victim.pid, "--tag", "doomed")
    added = time.monotonic()
    victim.kill()  # within the 3 s window
    victim.wait()
    wait_until(lambda: not d.call("show", {"ids": [entry]})["alive"], 15, "the death")
    assert time.monotonic() - added < 3, "too slow to test the window"
    wait_until(lambda: time.monotonic() - added > 4, 5)  # past the window
    sweeps(d, 3)
    assert d.call("status")["alerts_fired"] == 0
    assert rules_json(d)[0]["firing"] == []
    assert "kill of id" not in d.log()
    assert received(bystander_notes) == [] and bystander.poll() is None
