"""The command set end to end: show, rm, kill, tag, group, name, reset, run and multi-PID
add, each run as a user runs it (the real `goproc` CLI) and over the protocol, against
real daemons and real processes.

Also here: the `--all` guard and its refusal listing up to five ids, "no process
matches", every command's `--json` output held to the result schema of its method in
`spec/openrpc.json`, shell completion scripts, and renames and resets that survive a
`kill -9` of the daemon right after they are answered.

Most tests share one daemon, reset before each test; those that need their own config,
a forged snapshot or a crash start their own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import GOPROC, Daemon
from helpers import wait_until
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parents[1] / "spec" / "openrpc.json"
SPEC_URI = "urn:goproc:spec:openrpc"
SNAPSHOT = "goproc.snapshot.json"
PROC_FIELDS = [
    "id",
    "pid",
    "pgid",
    "cmd",
    "name",
    "alive",
    "tags",
    "groups",
    "started_at",
    "added_at",
    "last_seen",
    "exited_at",
    "log",
    "adopted_by",
    "spawned",
    "exit_code",
    "exit_signal",
    "restarts",
    "stopped",
    "metrics",
]
NO_SUCH_PROCESS, ALREADY_TRACKED, NAME_IN_USE = -32001, -32003, -32004
NO_MATCH, AMBIGUOUS, INVALID_PARAMS = -32006, -32007, -32602
SIGTERM_BIT = 1 << (signal.SIGTERM - 1)


# ---- waiting and looking at processes ----------------------------------------------------


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, process group) of a pid, or None when no such process exists."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[2])


def running(pid: int) -> bool:
    """Whether the pid is a process that still runs (a zombie has ended)."""
    stat = proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def group_members(pgid: int) -> list[int]:
    """The pids of the processes of this group that still run."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat is not None and stat[1] == pgid and stat[0] not in ("Z", "X"):
                out.append(int(entry))
    return sorted(out)


def command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except (FileNotFoundError, ProcessLookupError):
        return []


def running_with(marker: str) -> list[int]:
    """Running processes whose command line contains `marker`."""
    return [
        int(e)
        for e in os.listdir("/proc")
        if e.isdigit() and running(int(e)) and marker in " ".join(command_line(int(e)))
    ]


def ignores_term(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^SigIgn:\s*([0-9a-f]+)", status, re.M)
    return found is not None and bool(int(found.group(1), 16) & SIGTERM_BIT)


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def free_pid() -> int:
    """A valid pid that no process can have: the kernel hands out pids below pid_max."""
    return int(Path("/proc/sys/kernel/pid_max").read_text())


class Procs:
    """Real target processes, each returned once its exec is done (its command line
    readable); all of them, and their process groups, are killed at teardown."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen[bytes]] = []
        self.groups: list[int] = []
        self.strays: list[int] = []

    def start(self, *argv: str, own_group: bool = False, exec_to: list[str] | None = None) -> Any:
        argv = argv or ("sleep", "300")
        p = subprocess.Popen(list(argv), process_group=0 if own_group else None)
        self.children.append(p)
        if own_group:
            self.groups.append(p.pid)
        final = exec_to or list(argv)
        # An exec takes a millisecond or two: poll often, there are many of them.
        wait_until(lambda: command_line(p.pid) == final, what=f"{final} exec'd", every=0.001)
        return p

    def cleanup(self) -> None:
        for pgid in self.groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        for pid in self.strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for p in self.children:
            if p.poll() is None:
                p.kill()
            p.wait(10)


@pytest.fixture
def procs() -> Iterator[Procs]:
    ps = Procs()
    yield ps
    ps.cleanup()


# ---- the spec's result schemas (resolved as tests/test_spec.py does) ---------------------


@cache
def spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


def pointer_get(doc: Any, pointer: str) -> Any:
    node = doc
    for part in pointer.lstrip("/").split("/") if pointer.strip("/") else []:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def result_schema_pointer(method: str) -> str:
    """The pointer to a method's result schema, following a reference object."""
    [i] = [n for n, m in enumerate(spec()["methods"]) if m["name"] == method]
    pointer = f"/methods/{i}/result"
    while set(obj := pointer_get(spec(), pointer)) == {"$ref"}:
        pointer = obj["$ref"][1:]
    return f"{pointer}/schema"


FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _is_rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value):
        return False
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


@cache
def result_validator(method: str) -> Draft202012Validator:
    """The whole spec as one resource, so its `#/components/...` refs resolve in place."""
    registry = Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(spec()))
    pointer = result_schema_pointer(method)
    return Draft202012Validator(
        {"$ref": f"{SPEC_URI}#{pointer}"}, registry=registry, format_checker=FORMATS
    )


def assert_fits_result(method: str, value: Any) -> None:
    problems = [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in result_validator(method).iter_errors(value)
    ]
    assert not problems, f"{json.dumps(value)[:600]} does not fit {method}'s result: {problems}"


# ---- talking to daemons -------------------------------------------------------------------


def ok(out: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a command that must have succeeded."""
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    return out.stdout


def refused(out: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The one stderr line of a command that must have failed with `code`."""
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {out.stderr!r}"
    return lines[0]


def error_of(d: Daemon, method: str, params: dict[str, Any]) -> dict[str, Any]:
    reply = d.request(method, params)
    assert "error" in reply, f"{method} {params} must fail, got {reply}"
    return reply["error"]


def entries(d: Daemon, **selector: Any) -> list[dict[str, Any]]:
    return d.call("list", selector)


def run_cli(d: Daemon, tmp_path: Path, *args: str) -> tuple[int, str, str, float]:
    """`goproc ARGS` with stdout and stderr in files, not pipes: a child started by
    `goproc run` inherits them and would hold pipes open long after goproc exits.
    Returns (exit code, stdout, stderr, seconds it took)."""
    out, err = tmp_path / "run.out", tmp_path / "run.err"
    with out.open("wb") as o, err.open("wb") as e:
        t0 = time.monotonic()
        code = subprocess.run(
            [*GOPROC, *args], env=d.env, stdin=subprocess.DEVNULL, stdout=o, stderr=e, timeout=30
        ).returncode
        took = time.monotonic() - t0
    return code, out.read_text(), err.read_text(), took


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("commands")).start()
    yield d
    d.stop()


@pytest.fixture
def d(shared: Daemon) -> Daemon:
    """The shared daemon, emptied (ids start at 1 again)."""
    shared.call("reset", {"confirm": "RESET"})
    assert shared.call("status")["next_id"] == 1
    return shared


@pytest.fixture(scope="module")
def shared_unwatched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    config = {"exit_watch": "poll", "liveness_interval": "1h"}
    d = Daemon(tmp_path_factory.mktemp("unwatched"), config=config).start()
    yield d
    d.stop()


@pytest.fixture
def unwatched(shared_unwatched: Daemon) -> Daemon:
    """A daemon that does not notice exits (no exit watching, no sweep for an hour),
    emptied: a tracked process that ends stays alive in its registry."""
    shared_unwatched.call("reset", {"confirm": "RESET"})
    return shared_unwatched


def track(d: Daemon, procs: Procs, n: int = 1, **params: Any) -> list[dict[str, Any]]:
    """`n` fresh `sleep 300` processes, each added with `params`."""
    return [d.call("add", {"pid": procs.start().pid, **params}) for _ in range(n)]


def labelled(field: str, *labels: str) -> dict[str, Any]:
    """`{field: [*labels]}` for `**params`: as `dict[str, Any]`, not taken for `n`."""
    return {field: list(labels)}


# ---- show ---------------------------------------------------------------------------------


def test_show_by_id_or_name_prints_every_field_one_per_line(d: Daemon, procs: Procs) -> None:
    [other] = track(d, procs)
    e = d.call(
        "add", {"pid": procs.start().pid, "tags": ["web", "db"], "groups": ["g"], "name": "api"}
    )
    by_id = ok(d.cli("show", str(e["id"])))

    def ageless(text: str) -> list[str]:  # a second later it may be a second older
        return [line for line in text.splitlines() if not line.startswith("age ")]

    assert ageless(ok(d.cli("show", "api"))) == ageless(by_id)
    lines = by_id.splitlines()
    fields = list(PROC_FIELDS)
    fields.insert(fields.index("alive") + 1, "age")
    assert [line.split()[0] for line in lines] == fields
    shown = dict(line.split(None, 1) for line in lines)
    assert shown["id"] == str(e["id"]) and shown["id"] != str(other["id"])
    assert shown["pid"] == str(e["pid"])
    assert shown["pgid"] == str(e["pgid"])
    assert shown["cmd"] == "sleep 300"
    assert shown["name"] == "api"
    assert shown["alive"] == "yes", "as list has it"
    assert re.fullmatch(r"[0-9]+s", shown["age"]), shown["age"]
    assert shown["tags"] == "db,web"
    assert shown["groups"] == "g"
    for key in ("started_at", "added_at", "last_seen"):
        assert shown[key] == e[key]
    assert shown["exited_at"] == "-"
    column = max(map(len, fields)) + 2
    assert all(line[column:] == shown[line.split()[0]] for line in lines), "one value column"


def test_show_json_is_the_whole_entry(d: Daemon, procs: Procs) -> None:
    [e] = track(d, procs, tags=["x"], name="solo")
    for target in (str(e["id"]), "solo"):
        shown = json.loads(ok(d.cli("show", target, "--json")))
        assert shown == d.call("list", {"ids": [e["id"]]})[0]
        assert_fits_result("show", shown)
    assert d.call("show", {"names": ["solo"]}) == shown


def test_show_matching_several_exits_1_listing_five_ids(d: Daemon, procs: Procs) -> None:
    track(d, procs, 7, tags=["many"])
    line = refused(d.cli("show", "--tag", "many"))
    assert "7 processes match" in line, line
    assert "ids 1, 2, 3, 4, 5, ...)" in line, line
    assert "6" not in line.split("ids", 1)[1], line
    error = error_of(d, "show", {"tags_any": ["many"]})
    assert error["code"] == AMBIGUOUS
    assert error["data"] == {"count": 7, "ids": [1, 2, 3, 4, 5]}
    two = error_of(d, "show", {"ids": [6, 7]})
    assert two["data"] == {"count": 2, "ids": [6, 7]}


def test_show_matching_nothing_exits_1(d: Daemon, procs: Procs) -> None:
    track(d, procs)
    for args in (["nobody"], ["1", "--dead"]):
        assert refused(d.cli("show", *args)) == "goproc: no process matches", args
    for selector in ({"ids": [999]}, {"tags_any": ["nope"]}, {"ids": [1], "alive": False}):
        assert error_of(d, "show", selector)["code"] == NO_MATCH, selector


# ---- rm -----------------------------------------------------------------------------------


def test_rm_prints_each_removed_entry_and_leaves_the_processes(d: Daemon, procs: Procs) -> None:
    a, b, c = track(d, procs, 3, tags=["t"])
    out = ok(d.cli("rm", str(a["id"])))
    assert out == f"Removed id {a['id']} (pid {a['pid']}, sleep 300)\n"
    out = ok(d.cli("rm", "--tag", "t", "--all"))
    assert out.splitlines() == [f"Removed id {p['id']} (pid {p['pid']}, sleep 300)" for p in (b, c)]
    assert entries(d) == []
    assert all(p.poll() is None and running(p.pid) for p in procs.children), (
        "rm forgets entries, it does not touch the processes"
    )


def test_rm_of_several_needs_all(d: Daemon, procs: Procs) -> None:
    added = track(d, procs, 7, tags=["t"])
    line = refused(d.cli("rm", "--tag", "t"))
    assert "7 processes match (ids 1, 2, 3, 4, 5, ...)" in line, line
    assert "--all" in line, line
    assert error_of(d, "remove", {"tags_any": ["t"]})["code"] == AMBIGUOUS
    assert entries(d) == added, "a refusal removes nothing"
    removed = json.loads(ok(d.cli("rm", "--tag", "t", "--all", "--json")))
    assert removed == added
    assert_fits_result("remove", removed)
    assert entries(d) == []
    assert refused(d.cli("rm", "--tag", "t", "--all")) == "goproc: no process matches"


# ---- kill ---------------------------------------------------------------------------------


def test_kill_sends_term_and_reports_exited(d: Daemon, procs: Procs) -> None:
    [e] = track(d, procs)
    out = ok(d.cli("kill", str(e["id"])))
    assert out == f"id {e['id']} pid {e['pid']}: exited\n"
    assert procs.children[0].wait(5) == -signal.SIGTERM


def test_kill_escalates_to_kill_when_term_is_ignored(d: Daemon, procs: Procs) -> None:
    """Within the timeout + 1 s: TERM, the wait, KILL and the verdict."""
    stubborn = []
    for _ in range(2):
        p = procs.start("sh", "-c", "trap '' TERM; exec sleep 300", exec_to=["sleep", "300"])
        assert ignores_term(p.pid)
        stubborn.append((p, d.call("add", {"pid": p.pid})))
    (p1, e1), (p2, e2) = stubborn
    t0 = time.monotonic()
    outcome = d.call("kill", {"ids": [e1["id"]], "timeout": 0.5})
    took = time.monotonic() - t0
    assert outcome == [{"id": e1["id"], "pid": p1.pid, "signal": "SIGTERM", "outcome": "killed"}]
    assert 0.5 <= took < 1.5, f"kill took {took:.2f}s"
    assert p1.wait(1) == -signal.SIGKILL

    out = ok(d.cli("kill", str(e2["id"]), "--timeout", "500ms"))
    assert (
        out == f"id {e2['id']} pid {p2.pid}: still running after the timeout: escalated to KILL\n"
    )
    assert p2.wait(1) == -signal.SIGKILL
    assert [x["alive"] for x in entries(d)] == [False, False]


@pytest.mark.parametrize(
    ("flag", "signum"), [("HUP", signal.SIGHUP), ("USR1", signal.SIGUSR1), ("9", signal.SIGKILL)]
)
def test_kill_with_signal_reports_signalled(
    d: Daemon, procs: Procs, flag: str, signum: int
) -> None:
    [e] = track(d, procs)
    out = ok(d.cli("kill", str(e["id"]), "--signal", flag))
    assert out == f"id {e['id']} pid {e['pid']}: signalled {signal.Signals(signum).name}\n"
    assert procs.children[0].wait(5) == -signum, "the very signal arrived"
    wait_until(lambda: not entries(d)[0]["alive"], what="the entry to turn dead")


GROUP_SCRIPT = "sleep 300 & sleep 300 & wait"


def start_group(procs: Procs) -> subprocess.Popen[bytes]:
    """A shell leading its own process group, with two `sleep` children in it."""
    sh = procs.start("sh", "-c", GROUP_SCRIPT, own_group=True)

    def all_three() -> bool:
        argvs = [command_line(m) for m in group_members(sh.pid)]
        return sorted(argvs) == [["sh", "-c", GROUP_SCRIPT], ["sleep", "300"], ["sleep", "300"]]

    wait_until(all_three, what="the shell and both sleeps to run in the group")
    return sh


def test_kill_group_kill_signals_the_whole_process_group(d: Daemon, procs: Procs) -> None:
    sh = start_group(procs)
    e = d.call("add", {"pid": sh.pid})
    assert e["pgid"] == sh.pid
    out = ok(d.cli("kill", str(e["id"]), "--group-kill"))
    assert out == f"id {e['id']} pid {sh.pid}: exited\n"
    assert sh.wait(5) == -signal.SIGTERM
    wait_until(lambda: group_members(sh.pid) == [], what="every member of the group to end")


def test_kill_without_group_kill_signals_only_the_process(d: Daemon, procs: Procs) -> None:
    """The contrast that shows what --group-kill adds."""
    sh = start_group(procs)
    e = d.call("add", {"pid": sh.pid})
    assert ok(d.cli("kill", str(e["id"]))) == f"id {e['id']} pid {sh.pid}: exited\n"
    assert sh.wait(5) == -signal.SIGTERM
    rest = group_members(sh.pid)
    assert len(rest) == 2 and all(command_line(m) == ["sleep", "300"] for m in rest)


def test_kill_of_several_needs_all(d: Daemon, procs: Procs) -> None:
    added = track(d, procs, 6, tags=["t"])
    line = refused(d.cli("kill", "--tag", "t"))
    assert "6 processes match (ids 1, 2, 3, 4, 5, ...)" in line, line
    error = error_of(d, "kill", {"tags_any": ["t"], "signal": "KILL"})
    assert (error["code"], error["data"]) == (AMBIGUOUS, {"count": 6, "ids": [1, 2, 3, 4, 5]})
    assert all(p.poll() is None for p in procs.children), "a refused kill signals nothing"
    assert entries(d) == added
    out = ok(d.cli("kill", "--tag", "t", "--all"))
    assert out.splitlines() == [f"id {e['id']} pid {e['pid']}: exited" for e in added]
    assert [p.wait(5) for p in procs.children] == [-signal.SIGTERM] * 6


def test_kill_entries_stay_marked_dead_without_rm(d: Daemon, procs: Procs) -> None:
    [e] = track(d, procs, name="victim")
    ok(d.cli("kill", "victim"))
    [after] = entries(d)
    assert (after["id"], after["alive"], after["name"]) == (e["id"], False, "victim")
    assert after["exited_at"] is not None
    again = json.loads(ok(d.cli("kill", "victim", "--json")))
    assert again == [{"id": e["id"], "pid": e["pid"], "signal": "SIGTERM", "outcome": "not alive"}]


def test_kill_rm_forgets_the_entries(d: Daemon, procs: Procs) -> None:
    track(d, procs, 2, tags=["t"])
    [keep] = track(d, procs)
    out = ok(d.cli("kill", "--tag", "t", "--all", "--rm"))
    assert len(out.splitlines()) == 2
    assert all(x.endswith(": exited (removed)") for x in out.splitlines()), out
    assert entries(d) == [keep]
    assert [p.poll() for p in procs.children[:2]] == [-signal.SIGTERM] * 2


def test_kill_does_not_signal_an_entry_whose_pid_is_another_process(
    spawn_daemon: Callable[..., Daemon], procs: Procs
) -> None:
    """The snapshot records this pid with a start time an hour earlier: another process
    now holds the pid.  The daemon finds the entry dead when it loads it, and no kill
    (any signal, with or without --group-kill) reaches the process."""
    p = procs.start()
    started = psutil.Process(p.pid).create_time()
    d = spawn_daemon(start=False)
    d.state_dir.mkdir(mode=0o700, parents=True)
    stamp = rfc3339(started - 3600)
    forged = {
        "id": 1,
        "pid": p.pid,
        "pgid": p.pid,
        "cmd": "sleep 300",
        "name": "forged",
        "alive": True,
        "tags": [],
        "groups": [],
        "started_at": stamp,
        "added_at": stamp,
        "last_seen": stamp,
    }
    snapshot = {"version": 1, "next_id": 2, "procs": [forged]}
    (d.state_dir / SNAPSHOT).write_text(json.dumps(snapshot))
    d.start()
    assert entries(d)[0]["alive"] is False
    for args in ([], ["--signal", "KILL"], ["--group-kill"], ["--signal", "HUP", "--group-kill"]):
        out = ok(d.cli("kill", "forged", *args))
        assert out == f"id 1 pid {p.pid}: not alive\n", args
        assert p.poll() is None and running(p.pid), f"kill {args} signalled another process"
    result = d.call("kill", {"names": ["forged"], "signal": "KILL", "group": True})
    assert result == [{"id": 1, "pid": p.pid, "signal": "SIGKILL", "outcome": "not alive"}]
    assert_fits_result("kill", result)
    assert p.poll() is None and running(p.pid)


def unsignalled(e: dict[str, Any]) -> str:
    """The line of `goproc kill` for an entry whose process is no longer there: it
    exited (by itself, before the signal), nothing failed."""
    return f"id {e['id']} pid {e['pid']}: exited"


def start_on_pid(pid: int) -> subprocess.Popen[bytes] | None:
    """A `sleep 300` on this very (free) pid, by setting the pid namespace's last pid;
    None when that is not allowed here."""
    for _ in range(20):
        try:
            Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid - 1))
        except OSError:
            return None
        p = subprocess.Popen(["sleep", "300"])
        if p.pid == pid:
            return p
        p.kill()  # another process took the pid first: try again
        p.wait()
    return None


def test_kill_fails_when_the_pid_was_reused(unwatched: Daemon, procs: Procs) -> None:
    """A tracked process exits unnoticed (exit watching off, no sweep for an hour) and
    its pid goes to a new process.  The identity check before the signal refuses it:
    the tracked process is reported `exited` (it ended by itself), the new process is
    untouched, exit 0 (the other entry of the same kill is signalled as usual)."""
    d = unwatched
    spawned = time.monotonic()
    # Three candidates, since another process may take a freed pid before we can.
    olds = [procs.start() for _ in range(3)]
    candidates = [d.call("add", {"pid": p.pid, "tags": ["old"]}) for p in olds]
    [bystander] = track(d, procs, tags=["t"])
    for p in olds:
        p.kill()
        p.wait()
    # Start times have the kernel's clock-tick resolution (10 ms): a pid reused within
    # the same tick would look like the same process even to the kernel.  Let a few
    # ticks pass (on the monotonic clock: start times count from boot, not the wall).
    wait_until(lambda: time.monotonic() > spawned + 0.1, what="a few clock ticks")
    for e in candidates:
        new = start_on_pid(e["pid"])
        if new is not None:
            break
    else:
        pytest.skip("cannot choose the next pid here (/proc/sys/kernel/ns_last_pid)")
    procs.children.append(new)
    gap = psutil.Process(new.pid).create_time() - psutil.Process(bystander["pid"]).create_time()
    assert gap > 0.02, f"the new process must start ticks after the old one, not {gap:.3f}"
    assert entries(d, ids=[e["id"]])[0]["alive"] is True, "the daemon has not noticed the exit"

    out = d.cli("kill", "--id", str(e["id"]), "--id", str(bystander["id"]), "--all")
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert out.stdout.splitlines() == [
        unsignalled(e),
        f"id {bystander['id']} pid {bystander['pid']}: exited",
    ]
    assert new.poll() is None and running(new.pid), "the new owner of the pid was signalled"
    assert entries(d, ids=[e["id"]])[0]["alive"] is False, "the check also finds it dead"


def test_kill_of_processes_that_ended_unnoticed_reports_them_exited(
    unwatched: Daemon, procs: Procs
) -> None:
    """Processes that ended unnoticed cannot be signalled: they exited (by themselves),
    which is no failure; the others of the same kill are signalled as usual, exit 0.
    (A kill that fails exits 1: `test_a_signal_the_probe_may_not_send_is_failed_with_the_reason`
    and `test_kill_outcome_lines`.)"""
    d = unwatched
    gone, also_gone, alive, last = track(d, procs, 4, tags=["t"])
    for p in (procs.children[0], procs.children[1], procs.children[3]):
        p.kill()
        p.wait()
    out = d.cli("kill", "--tag", "t", "--id", "1", "--id", "2", "--id", "3", "--all")
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert out.stdout.splitlines() == [
        unsignalled(gone),
        unsignalled(also_gone),
        f"id {alive['id']} pid {alive['pid']}: exited",
    ]
    assert [e["alive"] for e in entries(d)] == [False, False, False, True]
    result = d.call("kill", {"ids": [last["id"]], "signal": "HUP"})
    assert_fits_result("kill", result)
    assert result == [
        {"id": last["id"], "pid": last["pid"], "signal": "SIGHUP", "outcome": "exited"}
    ]
    assert [e["alive"] for e in entries(d)] == [False, False, False, False]


# ---- tag and group ------------------------------------------------------------------------

KINDS = [("tag", "tags"), ("group", "groups")]


@pytest.mark.parametrize(("kind", "field"), KINDS)
def test_label_add_and_rm(d: Daemon, procs: Procs, kind: str, field: str) -> None:
    a, _ = track(d, procs, 2, **labelled(field, "base"))
    out = ok(d.cli(kind, "add", "--id", str(a["id"]), "web", "db"))
    assert out == f"id {a['id']}: {field} base,db,web\n"
    out = ok(d.cli(kind, "rm", "--id", str(a["id"]), "web", "base"))
    assert out == f"id {a['id']}: {field} db\n"
    assert [x[field] for x in entries(d)] == [["db"], ["base"]]
    flag = f"--{kind}"
    line = refused(d.cli(kind, "add", flag, "base", flag, "db", "more"))
    assert "2 processes match (ids 1, 2)" in line, line
    out = ok(d.cli(kind, "add", flag, "base", flag, "db", "more", "--all"))
    assert out.splitlines() == [f"id 1: {field} db,more", f"id 2: {field} base,more"]
    params: dict[str, Any] = {f"{field}_any": ["more"], "labels": ["more", " db"]}
    assert error_of(d, f"{kind}.remove", params)["code"] == AMBIGUOUS
    out = ok(d.cli(kind, "rm", "--all", flag, "more", "more", "db"))
    assert out.splitlines() == [f"id 1: {field} -", f"id 2: {field} base"]
    assert [x[field] for x in entries(d)] == [[], ["base"]]
    params = {f"{field}_any": ["nope"], "labels": ["x"], "all": True}
    assert error_of(d, f"{kind}.add", params)["code"] == NO_MATCH
    other = "groups" if field == "tags" else "tags"
    assert [x[other] for x in entries(d)] == [[], []], "the other kind is untouched"


@pytest.mark.parametrize(("kind", "field"), KINDS)
def test_label_rename_counts_and_renames_everywhere(
    d: Daemon, procs: Procs, kind: str, field: str
) -> None:
    track(d, procs, **labelled(field, "old", "x"))
    track(d, procs, **labelled(field, "old", "new"))
    track(d, procs, **labelled(field, "x"))
    out = ok(d.cli(kind, "rename", "old", "new"))
    assert out == f"Renamed {kind} 'old' to 'new' on 2 entries\n"
    assert [x[field] for x in entries(d)] == [["new", "x"], ["new"], ["x"]]
    out = ok(d.cli(kind, "rename", "absent", "y"))
    assert out == f"Renamed {kind} 'absent' to 'y' on 0 entries\n"
    result = d.call(f"{kind}.rename", {"old": "x", "new": "y"})
    assert result == {"changed": 2}
    assert [x[field] for x in entries(d)] == [["new", "y"], ["new"], ["y"]]
    assert error_of(d, f"{kind}.rename", {"old": "new", "new": "  "})["code"] == INVALID_PARAMS
    assert [x[field] for x in entries(d)] == [["new", "y"], ["new"], ["y"]]


@pytest.mark.parametrize(("kind", "field"), KINDS)
def test_label_without_subcommand_lists_counts(
    d: Daemon, procs: Procs, kind: str, field: str
) -> None:
    assert ok(d.cli(kind)).splitlines() == [f"{kind.upper()}  COUNT"]
    track(d, procs, **labelled(field, "web", "db"))
    track(d, procs, **labelled(field, "web", "a-long-label"))
    width = len("a-long-label")
    assert ok(d.cli(kind)).splitlines() == [
        f"{kind.upper().ljust(width)}  COUNT",
        f"{'a-long-label'.ljust(width)}  1",
        f"{'db'.ljust(width)}  1",
        f"{'web'.ljust(width)}  2",
    ]
    counts = json.loads(ok(d.cli(kind, "--json")))
    assert counts == [
        {"name": "a-long-label", "count": 1},
        {"name": "db", "count": 1},
        {"name": "web", "count": 2},
    ]
    assert counts == d.call(f"{kind}.list")
    assert_fits_result(f"{kind}.list", counts)


# ---- name ---------------------------------------------------------------------------------


def test_name_set_and_clear(d: Daemon, procs: Procs) -> None:
    a, _ = track(d, procs, 2)
    assert ok(d.cli("name", str(a["id"]), "web-1")) == f"id {a['id']}: named web-1\n"
    assert d.call("show", {"names": ["web-1"]})["id"] == a["id"]
    assert ok(d.cli("name", "web-1", "web-2")) == f"id {a['id']}: named web-2\n"
    assert entries(d, names=["web-1"]) == []
    assert ok(d.cli("name", "web-2", "--clear")) == f"id {a['id']}: name cleared\n"
    assert [x["name"] for x in entries(d)] == [None, None]
    assert d.cli("name", str(a["id"])).returncode == 2, "neither a name nor --clear"
    assert error_of(d, "name.set", {"ids": [a["id"]], "name": "bad name!"})["code"] == (
        INVALID_PARAMS
    )
    assert error_of(d, "name.set", {"ids": [999], "name": "x"})["code"] == NO_MATCH


def test_name_clash_exits_1_and_is_name_in_use(d: Daemon, procs: Procs) -> None:
    a, b = track(d, procs, 2)
    d.call("name.set", {"ids": [a["id"]], "name": "taken"})
    line = refused(d.cli("name", str(b["id"]), "taken"))
    assert "taken" in line and "already" in line, line
    error = error_of(d, "name.set", {"ids": [b["id"]], "name": "taken"})
    assert error["code"] == NAME_IN_USE
    assert [x["name"] for x in entries(d)] == ["taken", None]
    # `add --name` reports the same clash, and adds nothing.
    p = procs.start()
    line = refused(d.cli("add", str(p.pid), "--name", "taken"))
    assert "taken" in line, line
    assert error_of(d, "add", {"pid": p.pid, "name": "taken"})["code"] == NAME_IN_USE
    assert len(entries(d)) == 2
    # Setting the name an entry already has is no clash.
    assert d.call("name.set", {"names": ["taken"], "name": "taken"})["id"] == a["id"]
    error = error_of(d, "name.set", {"ids": [a["id"], b["id"]], "name": "z"})
    assert error["code"] == AMBIGUOUS


# ---- reset --------------------------------------------------------------------------------


def test_reset_forgets_everything_and_ids_restart_at_1(d: Daemon, procs: Procs) -> None:
    track(d, procs, 3, tags=["t"], groups=["g"])
    d.call("name.set", {"ids": [2], "name": "n"})
    assert d.call("status")["next_id"] == 4
    out = ok(d.cli("reset", "--confirm", "RESET"))
    assert out == "Forgot 3 entries; ids start at 1 again\n"
    assert entries(d) == [] and d.call("tag.list") == [] and d.call("group.list") == []
    assert d.call("status")["next_id"] == 1
    assert all(p.poll() is None for p in procs.children), "reset does not touch processes"
    again = d.call("add", {"pid": procs.children[1].pid, "name": "n"})
    assert (again["id"], again["name"]) == (1, "n"), "names and pids are free again"


def test_reset_without_the_exact_word_refuses(d: Daemon, procs: Procs) -> None:
    added = track(d, procs, 2)
    for args in ([], ["--confirm", "reset"]):
        out = d.cli("reset", *args)
        assert out.returncode not in (0, 3), (args, out.returncode, out.stderr)
        assert "RESET" in out.stderr and out.stdout == "", (args, out.stderr)
        assert entries(d) == added, args
    for params in ({"confirm": "yes"}, {"confirm": "RESET "}, {"confirm": ""}, {}):
        assert error_of(d, "reset", params)["code"] == INVALID_PARAMS, params
    assert entries(d) == added
    assert d.call("status")["next_id"] == 3


# ---- run ----------------------------------------------------------------------------------


def test_run_starts_the_command_in_its_own_group_and_exits_0(
    d: Daemon, procs: Procs, tmp_path: Path
) -> None:
    code, out, err, took = run_cli(
        d, tmp_path, "run", "--tag", "t", "--group", "g", "--name", "runner", "--", "sleep", "301"
    )
    found = re.fullmatch(r"Started pid=(\d+) id=(\d+)\n", out)
    assert code == 0 and found, (code, out, err)
    pid, proc_id = int(found.group(1)), int(found.group(2))
    procs.strays.append(pid)
    assert took < 10, "goproc returns while the command runs on"
    assert running(pid) and command_line(pid) == ["sleep", "301"]
    assert os.getpgid(pid) == pid, "the command leads its own process group"
    assert os.getpgid(pid) != os.getpgid(0)
    [e] = entries(d)
    assert (e["id"], e["pid"], e["pgid"], e["cmd"]) == (proc_id, pid, pid, "sleep 301")
    assert (e["tags"], e["groups"], e["name"], e["alive"]) == (["t"], ["g"], "runner", True)


def test_run_attach_gives_the_command_goproc_stdio_and_its_arguments(
    d: Daemon, procs: Procs, tmp_path: Path
) -> None:
    """Everything after `--` is the command's, even what looks like goproc's flags."""
    script = 'echo "out:$*"; echo "err:$1" >&2; exec sleep 302'
    code, _, _, _ = run_cli(
        d, tmp_path, "run", "--attach", "--", "sh", "-c", script, "sh", "--name", "x"
    )
    assert code == 0
    [e] = entries(d)
    procs.strays.append(e["pid"])
    assert (e["name"], e["tags"], e["log"]) == (None, [], None)
    wait_until(lambda: command_line(e["pid"]) == ["sleep", "302"], what="the script to exec")
    out = (tmp_path / "run.out").read_text().splitlines()
    assert sorted(out) == sorted([f"Started pid={e['pid']} id={e['id']}", "out:--name x"])
    assert (tmp_path / "run.err").read_text() == "err:--name\n"


@pytest.mark.parametrize("what", ["missing", "not executable"])
def test_run_of_a_command_that_cannot_start_exits_127(d: Daemon, tmp_path: Path, what: str) -> None:
    if what == "missing":
        command, reason = str(tmp_path / "no-such-command"), "No such file or directory"
    else:
        script = tmp_path / "script.sh"
        script.write_text("#!/bin/sh\nexit 0\n")
        script.chmod(0o644)
        command, reason = str(script), "Permission denied"
    code, out, err, _ = run_cli(d, tmp_path, "run", "--", command, "arg")
    assert code == 127, (code, out, err)
    assert out == ""
    assert err == f"goproc: cannot run {command!r}: {reason}\n"
    assert entries(d) == []


def test_run_kills_the_command_when_registration_fails(
    d: Daemon, procs: Procs, tmp_path: Path
) -> None:
    track(d, procs, name="taken")
    marker = f"303.{os.getpid()}"
    pid_file = tmp_path / "child.pid"
    script = f"echo $$ > {pid_file}; exec sleep {marker}"
    code, out, err, _ = run_cli(d, tmp_path, "run", "--name", "taken", "--", "sh", "-c", script)
    assert code == 1, (code, out, err)
    assert "taken" in err and out == ""
    assert running_with(marker) == [], "a started command that is not tracked is left behind"
    if pid_file.exists() and pid_file.read_text().strip():
        assert not running(int(pid_file.read_text()))
    assert [e["name"] for e in entries(d)] == ["taken"]


def test_run_without_a_daemon_starts_nothing(
    spawn_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    gone = spawn_daemon(start=False)
    marker = tmp_path / "started"
    code, _, err, _ = run_cli(gone, tmp_path, "run", "--", "sh", "-c", f"touch {marker}")
    assert code == 3, err
    assert not marker.exists()


# ---- add with several PIDs -----------------------------------------------------------------


def test_add_several_pids_all_or_nothing(d: Daemon, procs: Procs) -> None:
    p1, p2, p3 = (procs.start() for _ in range(3))
    out = ok(d.cli("add", str(p1.pid), str(p2.pid), str(p3.pid), "--tag", "web"))
    assert out.splitlines() == [
        f"Process {p.pid} registered with id {n}" for n, p in enumerate((p1, p2, p3), 1)
    ]
    assert [(e["pid"], e["tags"]) for e in entries(d)] == [(p.pid, ["web"]) for p in (p1, p2, p3)]
    before = entries(d)
    p4, p5 = procs.start(), procs.start()
    line = refused(d.cli("add", str(p4.pid), str(free_pid()), str(p5.pid), "--tag", "web"))
    assert str(free_pid()) in line, line
    error = error_of(d, "add", {"pids": [p4.pid, free_pid(), p5.pid]})
    assert error["code"] == NO_SUCH_PROCESS
    error = error_of(d, "add", {"pids": [p4.pid, p1.pid]})
    assert (error["code"], error["data"]) == (ALREADY_TRACKED, {"id": 1})
    line = refused(d.cli("add", str(p4.pid), str(p5.pid), "--name", "one"), code=2)
    assert line.startswith("goproc: invalid params: name"), line
    assert entries(d) == before, "none of them is added"
    assert d.call("status")["next_id"] == 4
    added = d.call("add", {"pids": [p4.pid, p5.pid], "groups": ["g"]})
    assert [e["id"] for e in added] == [4, 5]


# ---- --json of every command ----------------------------------------------------------------

# (method whose result schema applies, the command line; ID1/ID2/PID are filled in)
JSON_COMMANDS = [
    ("status", ["status"]),
    ("list", ["list"]),
    ("add", ["add", "PID"]),
    ("add", ["add", "PID", "PID2", "--tag", "t"]),
    ("show", ["show", "ID1"]),
    ("remove", ["rm", "ID1"]),
    ("remove", ["rm", "--all", "--alive"]),
    ("kill", ["kill", "ID1"]),
    ("kill", ["kill", "--all", "--tag", "both"]),
    ("kill", ["kill", "ID1", "--signal", "USR1", "--rm"]),
    ("tag.add", ["tag", "add", "--all", "--tag", "both", "x", "y"]),
    ("tag.remove", ["tag", "rm", "--id", "ID1", "both"]),
    ("tag.rename", ["tag", "rename", "both", "all"]),
    ("tag.list", ["tag"]),
    ("group.add", ["group", "add", "--id", "ID2", "z"]),
    ("group.remove", ["group", "rm", "--all", "--group", "g", "g"]),
    ("group.rename", ["group", "rename", "g", "h"]),
    ("group.list", ["group"]),
    ("name.set", ["name", "ID1", "renamed"]),
    ("name.set", ["name", "one", "--clear"]),
    ("reset", ["reset", "--confirm", "RESET"]),
    ("alert.add", ["alert", "add", "--tag", "both", "--if", "mem > 1GiB", "--rule", "r1"]),
    ("alert.add", ["alert", "add", "--all", "--if", "cpu>5 for 1m", "--then", "signal:hup"]),
]


@pytest.mark.parametrize(
    ("method", "args"), JSON_COMMANDS, ids=[" ".join(a) for _, a in JSON_COMMANDS]
)
def test_json_output_fits_the_result_schema(
    d: Daemon, procs: Procs, method: str, args: list[str]
) -> None:
    one = d.call(
        "add", {"pid": procs.start().pid, "tags": ["both"], "groups": ["g"], "name": "one"}
    )
    two = d.call("add", {"pid": procs.start().pid, "tags": ["both"], "groups": ["g"]})
    fill = {"ID1": str(one["id"]), "ID2": str(two["id"])}
    fill.update({key: str(procs.start().pid) for key in ("PID", "PID2") if key in args})
    out = ok(d.cli(*[fill.get(a, a) for a in args], "--json"))
    value = json.loads(out)
    assert value not in ([], {}), out
    assert_fits_result(method, value)


def test_run_json_fits_the_add_result(d: Daemon, procs: Procs, tmp_path: Path) -> None:
    code, out, err, _ = run_cli(d, tmp_path, "run", "--json", "--", "sleep", "304")
    assert code == 0, err
    value = json.loads(out)
    procs.strays.append(value["pid"])
    assert_fits_result("add", value)
    assert value == entries(d)[0]


# ---- durability of renames and resets ------------------------------------------------------


@pytest.mark.parametrize("snapshot_delay", ["1h", "10ms"], ids=["journal-only", "folding"])
def test_renames_and_other_changes_survive_kill9_right_after_the_reply(
    spawn_daemon: Callable[..., Daemon], procs: Procs, snapshot_delay: str
) -> None:
    """Tag and group renames, rm, tag and group add/rm, name set/clear and kill --rm:
    every answered change is back after a `kill -9`, whether only the journal holds it
    (no snapshot for an hour) or snapshots fold it meanwhile.  The last one, a rename
    by the CLI, is answered right before the crash."""
    d = spawn_daemon(config={"snapshot_delay": snapshot_delay})
    track(d, procs, 3, tags=["old", "keep"], groups=["old-g"])
    track(d, procs, 4, tags=["keep"], groups=["keep-g"])
    d.call("remove", {"ids": [1]})
    d.call("tag.add", {"ids": [4], "labels": ["extra"]})
    d.call("group.remove", {"ids": [5], "labels": ["keep-g"]})
    d.call("name.set", {"ids": [6], "name": "six"})
    d.call("name.set", {"ids": [4], "name": "four"})
    d.call("name.set", {"names": ["four"], "name": None})
    d.call("kill", {"ids": [7], "rm": True})
    d.call("group.rename", {"old": "old-g", "new": "new-g"})
    ok(d.cli("tag", "rename", "old", "new"))
    d.kill9()
    d.start()
    assert [(e["id"], e["tags"], e["groups"], e["name"]) for e in entries(d)] == [
        (2, ["keep", "new"], ["new-g"], None),
        (3, ["keep", "new"], ["new-g"], None),
        (4, ["extra", "keep"], ["keep-g"], None),
        (5, ["keep"], [], None),
        (6, ["keep"], ["keep-g"], "six"),
    ]
    assert d.call("tag.list") == [
        {"name": "extra", "count": 1},
        {"name": "keep", "count": 5},
        {"name": "new", "count": 2},
    ]
    assert d.call("group.list") == [{"name": "keep-g", "count": 2}, {"name": "new-g", "count": 2}]
    assert d.call("status")["next_id"] == 8


@pytest.mark.parametrize("snapshot_delay", ["1h", "10ms"], ids=["journal-only", "folding"])
def test_reset_survives_kill9_right_after_the_reply(
    spawn_daemon: Callable[..., Daemon], procs: Procs, snapshot_delay: str
) -> None:
    """With a snapshot folding, it already holds the entries the reset forgets."""
    d = spawn_daemon(config={"snapshot_delay": snapshot_delay})
    track(d, procs, 3, tags=["t"])
    d.call("name.set", {"ids": [1], "name": "n"})
    if snapshot_delay == "10ms":
        wait_until(
            lambda: len(json.loads((d.state_dir / SNAPSHOT).read_text())["procs"]) == 3,
            what="the snapshot to hold the entries",
        )
    ok(d.cli("reset", "--confirm", "RESET"))
    d.kill9()
    d.start()
    assert entries(d) == []
    assert d.call("status")["next_id"] == 1
    again = d.call("add", {"pid": procs.children[0].pid, "name": "n", "tags": ["t"]})
    assert (again["id"], again["name"]) == (1, "n")
    assert d.call("tag.list") == [{"name": "t", "count": 1}]
