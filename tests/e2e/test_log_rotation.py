"""Rotating logs of what the daemon starts, end to end: a real daemon, its real log
pump, real commands writing through real pipes.

- `goproc run --log-max-bytes 4K` of a command printing numbered lines: every line is
  in the files read oldest first, in order, none lost or cut; the daemon's `log_keep`
  rotated files are kept (0600, each with its index);
- a `kill -9` of the daemon while a command writes: the command lives on, its output
  is still written while no daemon runs, and the next daemon tracks it, restarts it
  into the same files;
- a new entry's id given again after `reset` starts with no old rotated files;
- no pump to be had (its socket's name taken by a directory): the command writes its
  files itself, and the daemon's log says so;
- bad sizes refused with the field named and nothing changed: the `spawn` param, the
  CLI flag, the config keys.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from conftest import GOPROC, Daemon
from helpers import log_pumps, stream_files, wait_until

from goproc.logformat import index_of, records, rotated

INVALID_PARAMS = -32602
STARTED = re.compile(r"Started pid=(\d+) id=(\d+)\n")
COUNT = 3000


@pytest.fixture
def groups() -> Iterator[list[int]]:
    """Process groups started here, killed at teardown."""
    out: list[int] = []
    yield out
    for pgid in out:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def run(d: Daemon, groups: list[int], *args: str) -> tuple[int, int]:
    r = d.cli("run", *args)
    found = STARTED.fullmatch(r.stdout)
    assert found, (r.stdout, r.stderr)
    pid, proc_id = int(found.group(1)), int(found.group(2))
    groups.append(pid)
    return pid, proc_id


def numbered(count: int) -> str:
    return f'i=0; while [ $i -lt {count} ]; do echo "line $i of a rotating log"; i=$((i+1)); done'


def test_rotation_loses_no_line_and_keeps_log_keep_files(
    spawn_daemon: Callable[..., Daemon], groups: list[int]
) -> None:
    d = spawn_daemon(config={"log_keep": 40})
    _, proc_id = run(d, groups, "--log-max-bytes", "4K", "--", "sh", "-c", numbered(COUNT))
    wait_until(lambda: not d.call("show", {"ids": [proc_id]})["alive"], 20, "the exit")
    logs = d.state_dir / "logs"
    wanted = "".join(f"line {i} of a rotating log\n" for i in range(COUNT))
    wait_until(
        lambda: "".join(f.read_text() for f in stream_files(logs, f"{proc_id}.out")) == wanted,
        10,
        "every line in the files, in order",
    )
    files = stream_files(logs, f"{proc_id}.out")
    assert len(files) >= 20  # 83 kB in 4 KiB files
    for f in files:
        st = f.lstat()
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_size <= 4096 + 65536
        assert f.read_text().endswith("\n"), f"{f.name} ends inside a line"
        assert records((logs / index_of(f.name)).read_bytes())[0][0] == 0
    # The CLI reads across them: the last lines come from the current file and before.
    tail = d.cli("logs", str(proc_id), "-n", "3")
    assert tail.returncode == 0 and tail.stdout == "".join(wanted.splitlines(True)[-3:])


def test_only_log_keep_rotated_files_are_kept(
    spawn_daemon: Callable[..., Daemon], groups: list[int]
) -> None:
    d = spawn_daemon(config={"log_keep": 2, "log_max_bytes": 4096})
    _, proc_id = run(d, groups, "--", "sh", "-c", numbered(COUNT))
    wait_until(lambda: not d.call("show", {"ids": [proc_id]})["alive"], 20, "the exit")
    logs = d.state_dir / "logs"
    wait_until(
        lambda: (
            (logs / f"{proc_id}.out").read_text().endswith(f"line {COUNT - 1} of a rotating log\n")
        ),
        10,
        "the last line",
    )
    names = sorted(p.name for p in logs.iterdir() if p.name.startswith(f"{proc_id}.out"))
    base = f"{proc_id}.out"
    assert names == sorted(
        [base, index_of(base)]
        + [n for k in (1, 2) for n in (rotated(base, k), index_of(rotated(base, k)))]
    )
    kept = "".join(f.read_text() for f in stream_files(logs, base)).splitlines()
    first = int(kept[0].split()[1])
    assert kept == [f"line {i} of a rotating log" for i in range(first, COUNT)]


def test_a_writing_command_outlives_a_kill_9_of_the_daemon_and_its_output_is_kept(
    spawn_daemon: Callable[..., Daemon], groups: list[int]
) -> None:
    d = spawn_daemon()
    script = "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.01; done"
    pid, proc_id = run(d, groups, "--name", "ticker", "--", "sh", "-c", script)
    out = d.state_dir / "logs" / f"{proc_id}.out"
    wait_until(lambda: out.read_text().count("\n") > 5, 10, "its first lines")
    (pump,) = log_pumps(d.proc.pid)  # type: ignore[union-attr]
    d.kill9()
    lines = out.read_text().count("\n")
    wait_until(lambda: out.read_text().count("\n") > lines + 20, 10, "lines with no daemon")
    assert psutil.Process(pid).is_running() and psutil.Process(pump).is_running()
    again = spawn_daemon(root=d.root)
    p = again.call("show", {"names": ["ticker"]})
    assert (p["alive"], p["pid"]) == (True, pid)
    [restarted] = again.call("restart", {"names": ["ticker"], "timeout": 2})
    groups.append(restarted["pid"])
    assert restarted["alive"] and restarted["pid"] != pid and restarted["log"] == p["log"]
    text = out.read_text()
    wait_until(lambda: out.read_text().count("tick 0\n") == 2, 10, "the new process's lines")
    assert out.read_text().startswith(text)  # appended to, in the same file
    assert log_pumps(again.proc.pid) == []  # type: ignore[union-attr]
    assert psutil.Process(pump).is_running()  # the same pump, reached again


def test_an_id_given_again_after_reset_has_no_old_rotated_files(
    spawn_daemon: Callable[..., Daemon], groups: list[int]
) -> None:
    d = spawn_daemon(config={"log_max_bytes": 4096})
    _, proc_id = run(d, groups, "--", "sh", "-c", numbered(1000))
    logs = d.state_dir / "logs"
    wait_until(lambda: (logs / rotated(f"{proc_id}.out", 2)).exists(), 10, "two rotations")
    wait_until(lambda: not d.call("show", {"ids": [proc_id]})["alive"], 20, "the exit")
    d.call("reset", {"confirm": "RESET"})
    _, again = run(d, groups, "--", "sh", "-c", "echo fresh")
    assert again == proc_id
    wait_until(lambda: (logs / f"{proc_id}.out").read_text() == "fresh\n", 10, "the new output")
    assert stream_files(logs, f"{proc_id}.out") == [logs / f"{proc_id}.out"]
    assert len(records((logs / index_of(f"{proc_id}.out")).read_bytes())) == 1


def test_with_no_pump_to_be_had_the_command_writes_its_files_itself(
    spawn_daemon: Callable[..., Daemon], groups: list[int]
) -> None:
    d = spawn_daemon(start=False)
    d.runtime_dir.mkdir(parents=True, mode=0o700)
    (d.runtime_dir / "logpump.goproc.sock").mkdir()  # the pump's socket cannot be made
    d.start()
    pid, proc_id = run(d, groups, "--", "sh", "-c", "echo direct; exec sleep 300")
    logs = d.state_dir / "logs"
    assert os.readlink(f"/proc/{pid}/fd/1") == str(logs / f"{proc_id}.out")
    wait_until(lambda: (logs / f"{proc_id}.out").read_text() == "direct\n", 10, "the line")
    assert "writing" in d.log() and "unrotated" in d.log()
    assert log_pumps(d.proc.pid) == []  # type: ignore[union-attr]


@pytest.mark.parametrize("size", [4095, 0, -1, 2**50 + 1, "4K", 1.5, True])
def test_a_bad_log_max_bytes_is_refused_naming_it(daemon: Daemon, size: object) -> None:
    err = daemon.error("spawn", {"argv": ["true"], "cwd": "/", "log_max_bytes": size})
    assert err["code"] == INVALID_PARAMS and "log_max_bytes" in err["message"]
    assert daemon.call("list") == []


@pytest.mark.parametrize("flag", ["4095", "1x", "", "3.5M", "-4K", "99999999G"])
def test_a_bad_log_max_bytes_flag_is_one_line_and_exit_2(daemon: Daemon, flag: str) -> None:
    r = daemon.cli("run", "--log-max-bytes", flag, "--", "true")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "--log-max-bytes" in r.stderr
    assert daemon.call("list") == []


@pytest.mark.parametrize(
    ("key", "value"),
    [("log_keep", -1), ("log_keep", 1001), ("log_max_bytes", 100), ("log_keep", "3")],
)
def test_a_bad_log_config_key_stops_the_start_naming_it(
    spawn_daemon: Callable[..., Daemon], key: str, value: object
) -> None:
    d = spawn_daemon(config={key: value}, start=False)
    d.start(wait=False)
    assert d.proc is not None and d.proc.wait(15) == 2
    assert f"'{key}'" in d.log() and json.dumps(value) in d.log()


@pytest.mark.parametrize("flags", [(), ("--timestamps",)])
def test_follow_sees_every_line_through_rotations_and_a_restart(
    spawn_daemon: Callable[..., Daemon], groups: list[int], tmp_path: Path, flags: tuple[str, ...]
) -> None:
    """Many 4 KiB rotations between two looks of the follower, then a second run of the
    command (`start`) into the same files: every line once, in order."""
    d = spawn_daemon(config={"log_keep": 200})
    marker = tmp_path / "ran-once"
    script = (
        f"if [ -e {marker} ]; then run=second; else run=first; touch {marker}; fi; "
        'i=0; while [ $i -lt 1500 ]; do echo "$run $i of a followed log"; i=$((i+1)); '
        "[ $((i % 100)) -eq 0 ] && sleep 0.02; done"
    )
    _, proc_id = run(d, groups, "--log-max-bytes", "4K", "--", "sh", "-c", script)
    printed = tmp_path / "printed"
    with open(printed, "w") as sink:
        follower = subprocess.Popen(
            [*GOPROC, "logs", str(proc_id), "-f", "-n", "0", *flags],
            env=d.env,
            stdout=sink,
            stderr=subprocess.PIPE,
            text=True,
        )
    try:
        wait_until(lambda: not d.call("show", {"ids": [proc_id]})["alive"], 20, "the first run")
        d.call("start", {"ids": [proc_id]})
        wait_until(lambda: not d.call("show", {"ids": [proc_id]})["alive"], 20, "the second run")
        time.sleep(1.0)  # the follower's last looks
    finally:
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=10)
    out = printed.read_text()
    assert follower.returncode == 0 and err == ""
    text = [line.split(" ", 1)[1] if flags else line for line in out.splitlines()]
    wanted = [f"{run} {i} of a followed log" for run in ("first", "second") for i in range(1500)]
    # -n 0 from the moment it started: a few first lines may have come before.
    start = wanted.index(text[0]) if text and text[0] in wanted else 0
    missing = [w for w in wanted[start:] if w not in set(text)]
    logs = d.state_dir / "logs"
    kept = "".join(f.read_text() for f in stream_files(logs, f"{proc_id}.out")).splitlines()
    assert kept == wanted, (len(kept), kept[-1], d.call("show", {"ids": [proc_id]}))
    assert text == wanted[start:], (start, len(text), missing[:5], len(missing))
    assert len(text) > 1500
