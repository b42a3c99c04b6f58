"""What `goproc up` plans for each program (`goproc.cli.upplan`), from wire dicts: the
steps, what counts as changed (only the variables the file sets, of the environment),
labels brought in line, and alert rules added once or replaced by name."""

from __future__ import annotations

from typing import Any

from goproc.cli.upplan import missing_alerts, plan_up, spawn_params
from goproc.procfile import Program
from goproc.procvalues import AlertDecl

WEB = Program(name="web", argv=("sleep", "9"), cwd="/srv", env=(("A", "1"),), tags=("t",))


def entry(**over: Any) -> dict[str, Any]:
    spawned = spawn_params(WEB, {"HOME": "/root", "TERM": "xterm"})
    wire = {
        "argv": list(spawned.argv),
        "cwd": spawned.cwd,
        "env": list(spawned.env),
        "restart": spawned.restart,
        "max_restarts": spawned.max_restarts,
        "restart_window": spawned.restart_window,
        "backoff_min": spawned.backoff_min,
        "backoff_max": spawned.backoff_max,
    }
    base = {"id": 4, "name": "web", "alive": True, "stopped": False, "tags": ["t"], "groups": []}
    return {**base, "spawned": wire, **over}


def test_each_program_gets_one_step() -> None:
    assert [s.action for s in plan_up([WEB], [])] == ["spawn"]
    assert [s.action for s in plan_up([WEB], [entry()])] == ["keep"]
    assert [s.action for s in plan_up([WEB], [entry(alive=False)])] == ["start"]
    assert [s.action for s in plan_up([WEB], [entry(stopped=True)])] == ["start"]
    (refused,) = plan_up([WEB], [entry(spawned=None)])
    assert refused.action == "refuse" and "entry 4's" in refused.changed[0]


def test_only_what_the_file_says_is_compared() -> None:
    other_shell = entry()
    other_shell["spawned"]["env"] = ["A=1", "TERM=screen", "SSH_TTY=/dev/pts/3"]
    assert plan_up([WEB], [other_shell])[0].action == "keep"
    changed = entry()
    changed["spawned"] |= {"argv": ["sleep", "10"], "env": ["A=2"], "restart": "always"}
    (step,) = plan_up([WEB], [changed])
    assert (step.action, step.changed) == ("replace", ("cmd", "env", "restart"))
    (labels,) = plan_up([WEB], [entry(tags=["old", "t"], groups=["g"])])
    assert (labels.action, labels.tags, labels.groups) == ("keep", ((), ("old",)), ((), ("g",)))


def test_alert_rules_are_added_once_and_replaced_by_name() -> None:
    program = Program(
        name="web", argv=("x",), cwd="/", alerts=(AlertDecl("cpu>90%  for 30s", "event", "hot"),)
    )
    rule = {
        "id": 7,
        "name": "hot",
        "select": {"names": ["web"]},
        "condition": "cpu > 90% for 30s",
        "action": "event",
    }
    assert missing_alerts(program, [rule]) == ([], [])
    add, remove = missing_alerts(program, [rule | {"condition": "cpu > 50% for 30s"}])
    assert remove == [7] and [a.condition for a in add] == ["cpu>90%  for 30s"]
    add, remove = missing_alerts(program, [])
    assert remove == [] and add[0].target.select.names == ("web",)
