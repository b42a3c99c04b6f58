"""The `goproc` command line end to end, as a user runs it against a real daemon.

Output formats (`pong`, the add line, the list table and `--json`), every `list` filter
flag, the exit codes (1 daemon error, 2 usage error, 3 no daemon) with one line on stderr
and never a traceback, `--config config.example.json` on every command, and the promise
that the CLI stays light: no trio, cattrs or psutil imported.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import GOPROC, Daemon
from helpers import wait_until

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO / "config.example.json"
README = REPO / "README.md"
HEADER = ["ID", "PID", "NAME", "ALIVE", "CPU%", "MEM", "AGE", "TAGS", "GROUPS", "CMD"]
AGE = r"[0-9]+s|[0-9]+m[0-9]+s"  # a just-started process's AGE cell
CPU, MEM = r"[0-9]+\.[0-9]|-", r"[0-9.]+[BKMGT]|-"  # a dash until it is sampled
HEAVY_MODULES = ("trio", "cattrs", "psutil")


def assert_one_line_error(out: subprocess.CompletedProcess[str]) -> None:
    """A failed command says why in exactly one line on stderr, without a traceback."""
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {out.stderr!r}"
    assert out.stdout == "", out.stdout


def exec_done(p: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """Wait until the child's command line is readable.  Popen returns as soon as the
    exec has begun, and /proc/PID/cmdline is empty for a moment after that; tests that
    look at `cmd` need the real one."""
    wait_until(lambda: Path(f"/proc/{p.pid}/cmdline").read_bytes(), what="the exec to complete")
    return p


def free_pid() -> int:
    """A valid pid that no process can have: the kernel hands out pids below pid_max."""
    return int(Path("/proc/sys/kernel/pid_max").read_text())


@pytest.fixture(scope="module")
def idle_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A running daemon with an empty registry, shared by tests that must not change it."""
    d = Daemon(tmp_path_factory.mktemp("cli-idle")).start()
    yield d
    d.stop()


# ---- ping and add ------------------------------------------------------------------------


def test_ping_prints_pong(idle_daemon: Daemon) -> None:
    out = idle_daemon.cli("ping")
    assert (out.returncode, out.stdout, out.stderr) == (0, "pong\n", "")


def test_add_prints_registered_line_and_stores_labels(daemon: Daemon, sleeper) -> None:
    p = sleeper()
    out = daemon.cli("add", str(p.pid), "--tag", "db", "--group", "prod", "--name", "n")
    assert out.returncode == 0, out.stderr
    [entry] = daemon.call("list")
    assert out.stdout == f"Process {p.pid} registered with id {entry['id']}\n"
    assert entry["id"] == 1
    assert (entry["pid"], entry["tags"], entry["groups"], entry["name"]) == (
        p.pid,
        ["db"],
        ["prod"],
        "n",
    )
    assert entry["alive"] is True


def test_add_repeated_tag_and_group_flags(daemon: Daemon, sleeper) -> None:
    p = sleeper()
    args = ["--tag", "web", "--tag", "db", "--tag", "db", "--group", "prod", "--group", "eu"]
    out = daemon.cli("add", str(p.pid), *args)
    assert out.returncode == 0, out.stderr
    [entry] = daemon.call("list")
    assert entry["tags"] == ["db", "web"] and entry["groups"] == ["eu", "prod"]


def test_add_right_after_exec_records_the_real_command_line(daemon: Daemon) -> None:
    """`cmd` is the real command line even for a process started a moment ago (as
    `goproc run` or a supervisor adds it): right after exec /proc shows an empty
    command line for a short while, which is not "unreadable".  Many tries, because
    the window is short; each child gets its own process group, as `goproc run` does."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with daemon.connect() as s, s.makefile("rb") as f:
            for n in range(200):
                p = subprocess.Popen(["sleep", "300"], process_group=0)
                procs.append(p)
                request = {"jsonrpc": "2.0", "id": n, "method": "add", "params": {"pid": p.pid}}
                s.sendall(json.dumps(request).encode() + b"\n")
                assert json.loads(f.readline())["result"]["pid"] == p.pid
        wrong = [e for e in daemon.call("list") if e["cmd"] != "sleep 300"]
        assert not wrong, f"{len(wrong)} of 200 recorded as {wrong[0]['cmd']!r}"
    finally:
        for p in procs:
            p.kill()
            p.wait()


# ---- list: table and json ----------------------------------------------------------------


def test_list_table_has_header_aligned_columns_and_no_ansi(daemon: Daemon, sleeper) -> None:
    short = exec_done(sleeper("sleep", "300"))
    long = exec_done(sleeper("sleep", "300.123456789"))
    daemon.call("add", {"pid": short.pid, "tags": ["db"]})
    daemon.call(
        "add",
        {
            "pid": long.pid,
            "tags": ["a-rather-long-tag", "web"],
            "groups": ["production"],
            "name": "a-long-name",
        },
    )
    out = daemon.cli("list")
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout, "colour escapes on a non-terminal"
    lines = out.stdout.splitlines()
    assert len(lines) == 3
    header = lines[0]
    assert header.split() == HEADER
    starts = [header.index(col) for col in HEADER]
    empty = None  # an empty cell: blank or a placeholder such as "-"
    expected_rows: list[list[str | None]] = [
        ["1", str(short.pid), empty, "yes", CPU, MEM, AGE, "db", empty, "sleep 300"],
        [
            "2",
            str(long.pid),
            "a-long-name",
            "yes",
            CPU,
            MEM,
            AGE,
            "a-rather-long-tag,web",
            "production",
            "sleep 300.123456789",
        ],
    ]
    for line, cells in zip(lines[1:], expected_rows, strict=True):
        for start, cell, end in zip(starts, cells, [*starts[1:], None], strict=True):
            got = line[start:end].rstrip()
            if cell is empty:
                assert got in ("", "-"), f"column at {start} of {line!r}"
            elif cell in (CPU, MEM, AGE):
                assert re.fullmatch(cell, got), f"{cell} at {start} of {line!r}"
            else:
                assert got == cell, f"column at {start} of {line!r}"
            assert start == 0 or line[start - 1] == " "


def test_list_json_prints_the_array(daemon: Daemon, sleeper) -> None:
    empty = daemon.cli("list", "--json")
    assert empty.returncode == 0 and json.loads(empty.stdout) == []
    for _ in range(2):
        daemon.call("add", {"pid": sleeper().pid, "tags": ["x"]})
    out = daemon.cli("list", "--json")
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    assert isinstance(printed, list)
    assert printed == daemon.call("list")
    assert [p["id"] for p in printed] == [1, 2]


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, dict]]:
    """One daemon with four entries (one dead) for the filter flags:

    alpha: tags db,web   groups prod      `sleep 301`
    beta:  tags db       groups eu,prod   `sleep 302`
    gamma: tags cache    groups dev       `sleep 303`
    delta: tags db       groups dev       `sleep 304`, killed (dead)
    """
    root = tmp_path_factory.mktemp("cli-filters")
    d = Daemon(root, config={"liveness_interval": "100ms"}).start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        spec = {
            "alpha": ("301", ["db", "web"], ["prod"]),
            "beta": ("302", ["db"], ["eu", "prod"]),
            "gamma": ("303", ["cache"], ["dev"]),
            "delta": ("304", ["db"], ["dev"]),
        }
        by_name: dict[str, dict[str, Any]] = {}
        for name, (secs, tags, groups) in spec.items():
            p = subprocess.Popen(["sleep", secs])
            procs.append(p)
            exec_done(p)
            by_name[name] = d.call(
                "add", {"pid": p.pid, "tags": tags, "groups": groups, "name": name}
            )
        procs[-1].kill()
        procs[-1].wait()
        wait_until(lambda: d.call("list", {"alive": False}), what="the killed process to turn dead")
        yield d, by_name
    finally:
        d.stop()
        for p in procs:
            p.kill()
            p.wait()


FILTER_CASES: list[tuple[list[str], set[str]]] = [
    (["--tag", "db"], {"alpha", "beta", "delta"}),
    (["--tag", "web", "--tag", "cache"], {"alpha", "gamma"}),
    (["--tag-all", "db", "--tag-all", "web"], {"alpha"}),
    (["--group", "eu"], {"beta"}),
    (["--group", "eu", "--group", "dev"], {"beta", "gamma", "delta"}),
    (["--group-all", "prod", "--group-all", "eu"], {"beta"}),
    (["--name", "alpha", "--name", "gamma"], {"alpha", "gamma"}),
    (["--alive"], {"alpha", "beta", "gamma"}),
    (["--dead"], {"delta"}),
    (["--search", "302"], {"beta"}),
    (["--tag", "db", "--alive"], {"alpha", "beta"}),
    ([], {"alpha", "beta", "gamma", "delta"}),
]


@pytest.mark.parametrize(
    ("flags", "expected"), FILTER_CASES, ids=[" ".join(f) or "no-flags" for f, _ in FILTER_CASES]
)
def test_list_filter_flags(population, flags: list[str], expected: set[str]) -> None:
    d, _ = population
    out = d.cli("list", "--json", *flags)
    assert out.returncode == 0, out.stderr
    everything = {p["name"]: (p["cmd"], p["alive"]) for p in d.call("list")}
    assert {p["name"] for p in json.loads(out.stdout)} == expected, everything


def test_list_pid_and_id_flags_repeatable(population) -> None:
    d, by_name = population
    alpha, gamma = by_name["alpha"], by_name["gamma"]
    out = d.cli("list", "--json", "--pid", str(alpha["pid"]), "--pid", str(gamma["pid"]))
    assert out.returncode == 0, out.stderr
    assert [p["name"] for p in json.loads(out.stdout)] == ["alpha", "gamma"]
    out = d.cli("list", "--json", "--id", str(alpha["id"]), "--id", str(gamma["id"]))
    assert out.returncode == 0, out.stderr
    assert [p["name"] for p in json.loads(out.stdout)] == ["alpha", "gamma"]


def test_list_table_shows_the_filtered_rows(population) -> None:
    d, _ = population
    out = d.cli("list", "--tag", "db", "--alive")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == HEADER
    assert [line.split()[2] for line in lines[1:]] == ["alpha", "beta"]


# ---- exit codes ------------------------------------------------------------------------


def test_add_of_missing_pid_exits_1_with_one_line(idle_daemon: Daemon) -> None:
    pid = free_pid()
    out = idle_daemon.cli("add", str(pid))
    assert out.returncode == 1
    assert_one_line_error(out)
    assert str(pid) in out.stderr
    assert idle_daemon.call("list") == []


def test_add_twice_exits_1_with_one_line(daemon: Daemon, sleeper) -> None:
    p = sleeper()
    assert daemon.cli("add", str(p.pid)).returncode == 0
    out = daemon.cli("add", str(p.pid))
    assert out.returncode == 1
    assert_one_line_error(out)
    assert len(daemon.call("list")) == 1


USAGE_CASES = [
    ["list", "--bogus"],
    ["add", "abc"],
    ["add"],
    ["add", "123", "--tag"],
    ["ping", "--timeout", "soon"],
    ["no-such-command"],
    ["ping", "--config", "{missing}"],
    ["list", "--config", "{bad_json}"],
    ["add", "1", "--config", "{unknown_key}"],
]


@pytest.mark.parametrize("args", USAGE_CASES, ids=" ".join)
def test_usage_error_exits_2_with_one_line(
    idle_daemon: Daemon, tmp_path: Path, args: list[str]
) -> None:
    files = {
        "missing": tmp_path / "missing.json",
        "bad_json": tmp_path / "bad.json",
        "unknown_key": tmp_path / "unknown.json",
    }
    files["bad_json"].write_text("{not json")
    files["unknown_key"].write_text('{"colour": "blue"}')
    args = [a.format(**files) for a in args]
    out = idle_daemon.cli(*args)
    assert out.returncode == 2, (args, out.stderr)
    assert_one_line_error(out)
    assert idle_daemon.call("list") == []


@pytest.mark.parametrize("args", [["ping"], ["list"], ["add", "1"]])
def test_no_daemon_exits_3_naming_socket(spawn_daemon, args: list[str]) -> None:
    d = spawn_daemon(start=False)
    out = d.cli(*args)
    assert out.returncode == 3, out.stderr
    assert_one_line_error(out)
    assert str(d.socket) in out.stderr
    assert "goproc daemon" in out.stderr


def test_no_daemon_exits_3_with_one_line_without_runtime_dir_variables(tmp_path: Path) -> None:
    """With neither GOPROC_RUNTIME_DIR nor XDG_RUNTIME_DIR set (a cron job, ssh without
    a login session), the platform's fallback socket is used, and the error is still
    one line: no library warning in front of it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GOPROC_SOCKET", "GOPROC_RUNTIME_DIR", "XDG_RUNTIME_DIR")
    }
    env["GOPROC_STATE_DIR"] = str(tmp_path / "state")
    probe = "from goproc import paths; print(paths.socket_path())"
    fallback = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", probe], env=env, capture_output=True, text=True
    ).stdout.strip()
    if Path(fallback).exists():
        pytest.skip(f"a socket exists at the fallback path {fallback}")
    out = subprocess.run([*GOPROC, "ping"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 3
    assert_one_line_error(out)
    assert fallback in out.stderr


def test_stale_socket_without_daemon_exits_3(spawn_daemon) -> None:
    d = spawn_daemon(start=False)
    d.runtime_dir.mkdir(mode=0o700)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(d.socket))
    s.close()  # the file stays; nobody listens
    out = d.cli("ping")
    assert out.returncode == 3
    assert_one_line_error(out)
    assert str(d.socket) in out.stderr and "goproc daemon" in out.stderr


# ---- --config on every command ---------------------------------------------------------


def test_config_example_accepted_by_every_command(spawn_daemon, sleeper) -> None:
    d = spawn_daemon(start=False)
    d.config_path = EXAMPLE_CONFIG  # the daemon itself starts with it
    d.start()
    cfg = ["--config", str(EXAMPLE_CONFIG)]
    p = sleeper()
    ping = d.cli("ping", *cfg)
    assert (ping.returncode, ping.stdout) == (0, "pong\n"), ping.stderr
    add = d.cli("add", str(p.pid), "--tag", "db", *cfg)
    assert add.returncode == 0, add.stderr
    listed = d.cli("list", "--json", "--tag", "db", *cfg)
    assert listed.returncode == 0, listed.stderr
    assert [e["pid"] for e in json.loads(listed.stdout)] == [p.pid]
    assert d.stop() == 0


# ---- the CLI stays light ---------------------------------------------------------------


def _imported_top_level(importtime_stderr: str) -> set[str]:
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            names.add(name.split(".")[0])
    return names


def test_cli_commands_import_no_trio_cattrs_psutil(daemon: Daemon, sleeper) -> None:
    pid = str(sleeper().pid)
    for args in (["ping"], ["add", pid, "--tag", "t"], ["list"]):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", *GOPROC[1:], *args],
            env=daemon.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        imported = _imported_top_level(out.stderr)
        assert "goproc" in imported and "cyclopts" in imported  # the measure works
        assert imported.isdisjoint(HEAVY_MODULES), (args, imported & set(HEAVY_MODULES))


# ---- the README's socat and nc one-liners ------------------------------------------------


def readme_one_liners() -> tuple[str | None, list[tuple[str, str]]]:
    """The README's `SOCK=...` line and each `echo ... | socat/nc ...` command with the
    output line shown under it."""
    lines = README.read_text().splitlines()
    sock_line = next((ln[2:] for ln in lines if ln.startswith("$ SOCK=")), None)
    pairs = [
        (ln[2:], lines[i + 1])
        for i, ln in enumerate(lines[:-1])
        if ln.startswith("$ echo ") and re.search(r"\|\s*(socat|nc)\s", ln)
    ]
    return sock_line, pairs


def test_readme_socat_and_nc_one_liners(daemon: Daemon, sleeper) -> None:
    for tool in ("socat", "nc"):
        assert shutil.which(tool), f"{tool} is needed (see README: apt-get install ...)"
    sock_line, pairs = readme_one_liners()
    assert any("socat" in cmd for cmd, _ in pairs), "no socat one-liner in README"
    assert any(" nc " in cmd for cmd, _ in pairs), "no nc one-liner in README"
    daemon.call("add", {"pid": sleeper().pid, "tags": ["db"], "groups": ["prod"]})
    env = {**daemon.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    setup = sock_line if sock_line is not None else f"SOCK={daemon.socket}"
    for cmd, shown in pairs:
        out = subprocess.run(
            ["bash", "-c", f"set -euo pipefail\n{setup}\n{cmd}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, (cmd, out.stderr)
        got, expected = json.loads(out.stdout), json.loads(shown)
        assert got["jsonrpc"] == "2.0" and got["id"] == expected["id"], (cmd, got)
        assert ("error" in got) == ("error" in expected), (cmd, got)
        if "error" in expected:
            assert got["error"]["code"] == expected["error"]["code"], (cmd, got)
        elif isinstance(expected["result"], list):
            assert got["result"] and all(
                set(p) == set(expected["result"][0]) for p in got["result"]
            )
        else:
            assert got["result"] == expected["result"], (cmd, got)
