"""`goproc run`'s log files and `goproc logs`, end to end: a real daemon, the real CLI.

- `goproc run` never holds its caller's stdout or stderr (command substitution,
  `capture_output`): the command's output goes to `logs/<id>.out|.err` (0600 in a 0700
  dir), its stdin is /dev/null; `--log PATH` appends both to one file;
- `goproc logs` prints the last lines (`-n`, `--err`), follows (`-f`, through a
  truncation, until SIGINT or until its reader goes away), and refuses in one line an
  entry without logs, a missing file, a symlink;
- with rotated files made by hand (no index: their mtimes date their lines), `-n` reads
  back into them, `--since` keeps what came since, `--all` merges out and err by time,
  `--timestamps` prefixes each line's time, `-f --all` follows both through a rename;
  `--err --all` and a bad `--since` are refused in one line (exit 2);
- the `log` field in `show`, kept across a clean restart (snapshot) and a `kill -9`
  (journal); `add`'s `log` param refused (-32602, nothing changed) when it is hostile or
  given for several processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import GOPROC, Daemon
from helpers import log_pumps, open_files, wait_until

INVALID_PARAMS = -32602
STARTED = re.compile(r"Started pid=(\d+) id=(\d+)\n")


class Started:
    """The process groups `goproc run` started, killed at teardown."""

    def __init__(self) -> None:
        self.groups: list[int] = []

    def note(self, stdout: str) -> tuple[int, int]:
        found = STARTED.fullmatch(stdout)
        assert found, stdout
        pid, proc_id = int(found.group(1)), int(found.group(2))
        self.groups.append(pid)
        return pid, proc_id

    def cleanup(self) -> None:
        for pgid in self.groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)


@pytest.fixture
def started() -> Iterator[Started]:
    s = Started()
    yield s
    s.cleanup()


def ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr)
    assert out.stderr == "", out.stderr
    return out.stdout


def refused(out: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and out.stdout == "", out
    [line] = out.stderr.splitlines()
    return line


def run(d: Daemon, started: Started, *args: str) -> tuple[int, int]:
    """`goproc run ARGS` with its output captured (pipes: it must not hold them)."""
    return started.note(ok(d.cli("run", *args, timeout=20)))


def logs_dir(d: Daemon) -> Path:
    return d.state_dir / "logs"


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def logs(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return d.cli("logs", *args, timeout=20)


# ---- run never holds the caller's output ---------------------------------------------------


def test_run_in_a_command_substitution_returns_and_logs_shows_the_output(
    daemon: Daemon, started: Started
) -> None:
    goproc = shlex.join(GOPROC)
    script = f"out=$({goproc} run --name hi -- sh -c 'echo hi; sleep 1000'); echo \"$out\""
    t0 = time.monotonic()
    out = subprocess.run(
        ["bash", "-c", script], env=daemon.env, capture_output=True, text=True, timeout=20
    )
    assert time.monotonic() - t0 < 15
    pid, proc_id = started.note(ok(out))
    assert running(pid), "the command runs on"
    wait_until(lambda: logs(daemon, "hi").stdout == "hi\n", what="hi in the log")
    assert ok(logs(daemon, str(proc_id))) == "hi\n"
    shown = json.loads(ok(daemon.cli("show", "hi", "--json")))
    assert shown["log"] == {
        "out": str(logs_dir(daemon) / f"{proc_id}.out"),
        "err": str(logs_dir(daemon) / f"{proc_id}.err"),
    }
    text = dict(line.split(None, 1) for line in ok(daemon.cli("show", "hi")).splitlines())
    assert (text["log.out"], text["log.err"]) == (shown["log"]["out"], shown["log"]["err"])


def test_run_under_capture_output_returns_with_private_files_and_stdin_devnull(
    daemon: Daemon, started: Started
) -> None:
    pid, proc_id = run(daemon, started, "--", "sh", "-c", "echo out; echo err >&2; exec sleep 1000")
    assert running(pid)
    fds = {n: os.readlink(f"/proc/{pid}/fd/{n}") for n in (0, 1, 2)}
    here = logs_dir(daemon)
    # stdout and stderr: two pipes the daemon's log pump reads into the two files.
    assert fds[0] == os.devnull and fds[1] != fds[2]
    assert fds[1].startswith("pipe:") and fds[2].startswith("pipe:")
    (pump,) = log_pumps(daemon.proc.pid)  # type: ignore[union-attr]
    held = open_files(pump)
    assert {fds[1], fds[2], str(here / f"{proc_id}.out"), str(here / f"{proc_id}.err")} <= held
    st = here.lstat()
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
    assert st.st_uid == os.geteuid()
    assert sorted(p.name for p in here.iterdir()) == [
        f"{proc_id}.{kind}{idx}" for kind in ("err", "out") for idx in ("", ".idx")
    ]
    for name in (f"{proc_id}.out", f"{proc_id}.err"):
        st = (here / name).lstat()
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, name
        assert st.st_uid == os.geteuid()
    wait_until(lambda: logs(daemon, str(proc_id), "--err").stdout == "err\n", what="err")
    assert ok(logs(daemon, str(proc_id))) == "out\n"


def test_run_with_log_appends_both_streams_to_one_private_file(
    daemon: Daemon, started: Started, tmp_path: Path
) -> None:
    kept = tmp_path / "kept.log"
    kept.write_text("before\n")
    new = tmp_path / "new.log"
    script = "echo out; echo err >&2; exec sleep 1000"
    pid, proc_id = run(daemon, started, "--log", str(kept), "--", "sh", "-c", script)
    subprocess.run(
        [*GOPROC, "run", "--log", "new.log", "--", "sh", "-c", script],
        env=daemon.env,
        cwd=tmp_path,  # a relative path is the caller's
        capture_output=True,
        timeout=20,
        check=True,
    )
    [second] = [e for e in daemon.call("list") if e["id"] != proc_id]
    started.groups.append(second["pid"])
    assert second["log"] == {"out": str(new), "err": str(new)}
    assert stat.S_IMODE(new.stat().st_mode) == 0o600
    assert daemon.call("show", {"ids": [proc_id]})["log"] == {"out": str(kept), "err": str(kept)}
    wait_until(lambda: len(kept.read_text().splitlines()) == 3, what="both lines")
    assert sorted(kept.read_text().splitlines()[1:]) == ["err", "out"]
    assert kept.read_text().startswith("before\n"), "appended, not replaced"
    assert ok(logs(daemon, str(proc_id), "--err")) == ok(logs(daemon, str(proc_id)))
    assert os.readlink(f"/proc/{pid}/fd/0") == os.devnull
    assert not logs_dir(daemon).exists() or not list(logs_dir(daemon).iterdir())


def test_run_with_log_refuses_a_symlink_and_attach_with_log(daemon: Daemon, tmp_path: Path) -> None:
    link = tmp_path / "link.log"
    link.symlink_to(tmp_path / "target.log")
    line = refused(daemon.cli("run", "--log", str(link), "--", "true"))
    assert "symlink" in line and str(link) in line
    assert not (tmp_path / "target.log").exists()
    line = refused(daemon.cli("run", "--attach", "--log", str(tmp_path / "x"), "--", "true"), 2)
    assert "--attach" in line and "--log" in line
    assert daemon.call("list") == []


def test_run_that_cannot_be_tracked_leaves_no_log_files(daemon: Daemon, started: Started) -> None:
    run(daemon, started, "--name", "taken", "--", "sleep", "1000")
    before = sorted(p.name for p in logs_dir(daemon).iterdir())
    line = refused(daemon.cli("run", "--name", "taken", "--", "sleep", "1000"))
    assert "taken" in line
    assert sorted(p.name for p in logs_dir(daemon).iterdir()) == before
    line = refused(daemon.cli("run", "--", str(logs_dir(daemon) / "no-such-command")), 127)
    assert sorted(p.name for p in logs_dir(daemon).iterdir()) == before


def test_run_refuses_a_logs_dir_open_to_others(daemon: Daemon) -> None:
    logs_dir(daemon).mkdir(mode=0o700)
    logs_dir(daemon).chmod(0o777)
    line = refused(daemon.cli("run", "--", "sleep", "1000"))
    assert str(logs_dir(daemon)) in line and "0777" in line
    assert daemon.call("list") == [] and list(logs_dir(daemon).iterdir()) == []


# ---- goproc logs -------------------------------------------------------------------------


def test_logs_prints_the_last_lines_of_out_or_err(daemon: Daemon, started: Started) -> None:
    script = "seq 1 100; echo e1 >&2; printf 'e2\\ne3' >&2; exec sleep 1000"
    _, proc_id = run(daemon, started, "--name", "seq", "--", "sh", "-c", script)
    wait_until(lambda: logs(daemon, "seq", "--err").stdout == "e1\ne2\ne3", what="the errors")
    numbers = [f"{n}\n" for n in range(1, 101)]
    assert ok(logs(daemon, "seq")) == "".join(numbers[-50:]), "50 lines by default"
    assert ok(logs(daemon, "seq", "-n", "3")) == "98\n99\n100\n"
    assert ok(logs(daemon, "seq", "--lines", "1000")) == "".join(numbers)
    assert ok(logs(daemon, "seq", "-n", "0")) == ""
    assert ok(logs(daemon, str(proc_id), "--err", "-n", "2")) == "e2\ne3"
    for bad in ("-1", "x", "1.5"):
        assert refused(logs(daemon, "seq", "-n", bad), 2)


@contextlib.contextmanager
def following(daemon: Daemon, proc_id: int) -> Iterator[subprocess.Popen[bytes]]:
    """`goproc logs ID -f`, killed at the end if it has not exited."""
    follower = subprocess.Popen(
        [*GOPROC, "logs", str(proc_id), "-f"],
        env=daemon.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        yield follower
    finally:
        if follower.poll() is None:
            follower.kill()
        follower.wait(10)


def test_logs_follow_sees_appended_lines_and_a_truncation_and_exits_0_on_sigint(
    daemon: Daemon, started: Started
) -> None:
    _, proc_id = run(daemon, started, "--", "sh", "-c", "echo first; exec sleep 1000")
    path = logs_dir(daemon) / f"{proc_id}.out"
    wait_until(lambda: path.read_text() == "first\n", what="the first line")
    with following(daemon, proc_id) as follower:
        assert follower.stdout is not None
        assert follower.stdout.readline() == b"first\n"
        with path.open("ab") as f:
            f.write(b"later\n")
        assert follower.stdout.readline() == b"later\n"
        os.truncate(path, 0)
        time.sleep(0.5)  # the follower polls: let it see the file shorter
        with path.open("ab") as f:
            f.write(b"again\n")
        assert follower.stdout.readline() == b"again\n"
        follower.send_signal(signal.SIGINT)
        assert follower.wait(10) == 0
        assert follower.stderr is not None and follower.stderr.read() == b""


def test_logs_follow_ends_quietly_when_its_reader_goes_away(
    daemon: Daemon, started: Started
) -> None:
    _, proc_id = run(daemon, started, "--", "sh", "-c", "echo first; exec sleep 1000")
    wait_until(lambda: logs(daemon, str(proc_id)).stdout == "first\n", what="the first line")
    with following(daemon, proc_id) as follower:
        assert follower.stdout is not None
        assert follower.stdout.readline() == b"first\n"
        follower.stdout.close()  # nothing more is written: it must notice anyway
        assert follower.wait(10) == 0
        assert follower.stderr is not None and follower.stderr.read() == b""


def test_logs_of_an_entry_without_logs_exits_1_in_one_line(
    daemon: Daemon, started: Started, sleeper: Callable[..., subprocess.Popen[bytes]]
) -> None:
    added = daemon.call("add", {"pid": sleeper().pid, "name": "byhand"})
    _, attached = started.note(ok(_run_attached(daemon)))
    assert daemon.call("show", {"ids": [attached]})["log"] is None
    for target in ("byhand", str(added["id"]), str(attached)):
        line = refused(logs(daemon, target))
        assert "no log" in line, line
    assert "no process matches" in refused(logs(daemon, "nobody"))


def _run_attached(d: Daemon) -> subprocess.CompletedProcess[str]:
    """`goproc run --attach` with its stdout in a file: the command inherits it."""
    out = d.root / "attached.out"
    with out.open("w") as f:
        code = subprocess.run(
            [*GOPROC, "run", "--attach", "--", "sleep", "1000"],
            env=d.env,
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.DEVNULL,
            timeout=20,
        ).returncode
    return subprocess.CompletedProcess([], code, out.read_text(), "")


def test_logs_refuses_a_missing_file_and_a_symlink(daemon: Daemon, started: Started) -> None:
    _, proc_id = run(daemon, started, "--", "sleep", "1000")
    out, err = (logs_dir(daemon) / f"{proc_id}.{x}" for x in ("out", "err"))
    out.unlink()
    line = refused(logs(daemon, str(proc_id)))
    assert str(out) in line and "No such file" in line, line
    secret = daemon.root / "secret"
    secret.write_text("not for logs\n")
    err.unlink()
    err.symlink_to(secret)
    line = refused(logs(daemon, str(proc_id), "--err"))
    assert "symlink" in line and str(err) in line, line


# ---- rotated files, --since, --all, --timestamps (files made by hand: no index) ----------------


def _quiet_run(d: Daemon, started: Started, script: str) -> tuple[int, Path, Path]:
    """`goproc run` of `script` (it then sleeps); its files once it has written them."""
    _, proc_id = run(d, started, "--", "sh", "-c", f"{script}; echo done >&2; exec sleep 1000")
    out, err = (logs_dir(d) / f"{proc_id}.{x}" for x in ("out", "err"))
    wait_until(lambda: err.read_text().endswith("done\n"), what="the output")
    return proc_id, out, err


def _aged(path: Path, text: str, seconds_ago: float) -> None:
    path.write_text(text)
    when = time.time() - seconds_ago
    os.utime(path, (when, when))


def test_logs_reads_back_into_rotated_files_and_since_dates_them_by_mtime(
    daemon: Daemon, started: Started
) -> None:
    proc_id, out, _ = _quiet_run(daemon, started, "seq 1 3")
    _aged(Path(f"{out}.2"), "a1\na2\n", 7200)
    _aged(Path(f"{out}.1"), "b1\nb2\nb3\n", 1800)
    _aged(Path(f"{out}.1.idx"), "", 0)  # an empty index: no times, the mtime then
    target = str(proc_id)
    assert ok(logs(daemon, target, "-n", "5")) == "b2\nb3\n1\n2\n3\n"
    assert ok(logs(daemon, target)) == "a1\na2\nb1\nb2\nb3\n1\n2\n3\n"
    assert ok(logs(daemon, target, "--since", "1h")) == "b1\nb2\nb3\n1\n2\n3\n", "all since"
    assert ok(logs(daemon, target, "--since", "10m")) == "1\n2\n3\n"
    assert ok(logs(daemon, target, "--since", "1h", "-n", "2")) == "2\n3\n"
    Path(f"{out}.1").unlink()  # a missing rotated file is no error
    assert ok(logs(daemon, target, "-n", "4")) == "a2\n1\n2\n3\n"


def test_logs_all_merges_by_receive_time_and_timestamps_prefix_each_line(
    daemon: Daemon, started: Started
) -> None:
    """The log pump dates each burst in the files' indexes: `--all` interleaves the two
    streams by those times, `--timestamps` prints them."""
    before = time.time()
    script = "echo o1; sleep 0.05; echo e1 >&2; sleep 0.05; echo o2; sleep 0.05"
    proc_id, _, _ = _quiet_run(daemon, started, script)
    after = time.time()
    target = str(proc_id)
    assert ok(logs(daemon, target, "--all")) == "o1\ne1\no2\ndone\n"
    assert ok(logs(daemon, target, "--all", "-n", "2")) == "o2\ndone\n"
    stamped = ok(logs(daemon, target, "--all", "--timestamps")).splitlines()
    times = []
    for line, text in zip(stamped, ["o1", "e1", "o2", "done"], strict=True):
        found = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z (\w+)", line)
        assert found and found.group(2) == text, line
        when = datetime.strptime(found.group(1), "%Y-%m-%dT%H:%M:%S.%f")
        times.append(when.replace(tzinfo=UTC).timestamp())
    assert before - 0.001 <= times[0] < times[1] < times[2] < times[3] <= after + 0.001
    assert times[1] - times[0] >= 0.04  # the sleeps between the bursts


def test_logs_all_of_one_file_reads_it_once(
    daemon: Daemon, started: Started, tmp_path: Path
) -> None:
    both = tmp_path / "both.log"
    run(
        daemon,
        started,
        "--name",
        "one",
        "--log",
        str(both),
        "--",
        "sh",
        "-c",
        "echo x; exec sleep 1000",
    )
    wait_until(lambda: both.read_text() == "x\n", what="the line")
    assert ok(logs(daemon, "one", "--all")) == "x\n"


def test_logs_refuses_err_with_all_and_a_bad_since_in_one_line(
    daemon: Daemon, started: Started
) -> None:
    run(daemon, started, "--name", "s", "--", "sleep", "1000")
    assert "--all" in refused(logs(daemon, "s", "--err", "--all"), 2)
    for bad in ("x", "0", "-5m", "10", ""):
        assert "--since" in refused(logs(daemon, "s", "--since", bad), 2), bad
    assert "--lines" in refused(logs(daemon, "s", "--since", "1m", "-n", "x"), 2)


def test_logs_follow_all_with_timestamps_follows_both_and_a_rename(
    daemon: Daemon, started: Started
) -> None:
    proc_id, out, err = _quiet_run(daemon, started, "echo o1")
    follower = subprocess.Popen(
        [*GOPROC, "logs", str(proc_id), "-f", "--all", "--timestamps", "-n", "0"],
        env=daemon.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stamp = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (.*\n)")
    try:
        assert follower.stdout is not None
        time.sleep(0.5)  # let it start following before anything is appended
        with err.open("ab") as f:
            f.write(b"on err\n")
        line = stamp.fullmatch(follower.stdout.readline())
        assert line and line.group(1) == b"on err\n"
        out.rename(f"{out}.1")  # rotated by hand: a new file at the name
        out.write_bytes(b"in the new file\n")
        line = stamp.fullmatch(follower.stdout.readline())
        assert line and line.group(1) == b"in the new file\n"
        follower.send_signal(signal.SIGINT)
        assert follower.wait(10) == 0
        assert follower.stderr is not None and follower.stderr.read() == b""
    finally:
        if follower.poll() is None:
            follower.kill()
        follower.wait(10)


def test_rm_keeps_the_log_files(daemon: Daemon, started: Started) -> None:
    _, proc_id = run(daemon, started, "--", "sh", "-c", "echo kept; exec sleep 1000")
    ok(daemon.cli("rm", str(proc_id)))
    path = logs_dir(daemon) / f"{proc_id}.out"
    wait_until(lambda: path.read_text() == "kept\n", what="the line")
    assert (logs_dir(daemon) / f"{proc_id}.err").exists()


# ---- the log field is kept, and add's log param is checked -----------------------------------


@pytest.mark.parametrize("how", ["snapshot", "journal"])
def test_the_log_field_survives_a_restart(
    spawn_daemon: Callable[..., Daemon], started: Started, how: str
) -> None:
    d = spawn_daemon(config={"snapshot_delay": "1h"} if how == "journal" else None)
    _, proc_id = run(d, started, "--name", "kept", "--", "sleep", "1000")
    before = d.call("show", {"ids": [proc_id]})["log"]
    assert before is not None
    if how == "journal":
        d.kill9()  # the snapshot was never written: the journal has it
    else:
        assert d.stop() == 0
        assert '"log":{"out":' in (d.state_dir / "goproc.snapshot.json").read_text()
    d.start()
    assert d.call("show", {"ids": [proc_id]})["log"] == before
    assert json.loads(ok(d.cli("show", "kept", "--json")))["log"] == before


def test_add_with_log_for_two_pids_is_invalid_params_naming_log(
    daemon: Daemon, sleeper: Callable[..., subprocess.Popen[bytes]]
) -> None:
    a, b = sleeper(), sleeper()
    for log in (True, {"out": "/tmp/o", "err": "/tmp/e"}):
        reply = daemon.request("add", {"pids": [a.pid, b.pid], "log": log})
        assert reply["error"]["code"] == INVALID_PARAMS
        assert "log" in reply["error"]["message"]
    assert daemon.call("list") == [] and daemon.call("status")["next_id"] == 1
    [one] = [daemon.call("add", {"pids": [a.pid], "log": True})]
    assert one[0]["log"]["out"].endswith("/logs/1.out"), "pids with one pid takes a log"


HOSTILE_LOGS: list[Any] = [
    "relative.log",
    "/abs/but/a/string",
    1,
    None,
    [],
    ["/a", "/b"],
    {"out": "relative", "err": "/e"},
    {"out": "/o", "err": "../e"},
    {"out": "/o"},
    {"out": "/o", "err": "/e", "extra": "/x"},
    {"out": "/o", "err": 5},
    {"out": "/o\u0000x", "err": "/e"},
    {"out": "/" + "a" * 5000, "err": "/e"},
    {"out": "/\ud800", "err": "/e"},
    {"out": "", "err": "/e"},
]


@pytest.mark.parametrize("log", HOSTILE_LOGS, ids=[json.dumps(x)[:30] for x in HOSTILE_LOGS])
def test_a_hostile_log_param_is_refused_and_changes_nothing(
    daemon: Daemon, sleeper: Callable[..., subprocess.Popen[bytes]], log: Any
) -> None:
    p = sleeper()
    reply = daemon.request("add", {"pid": p.pid, "log": log})
    assert reply["error"]["code"] == INVALID_PARAMS, reply
    assert reply["error"]["message"].startswith("invalid params: log"), reply
    assert daemon.call("list") == [] and daemon.call("status")["next_id"] == 1
    assert daemon.call("add", {"pid": p.pid})["id"] == 1, "the process was not tracked"
