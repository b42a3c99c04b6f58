"""`goproc list --watch` in a real terminal (tmux): the table is drawn in place and
redrawn as the registry changes, Ctrl+C ends it with exit 0 and gives the screen back;
off a terminal each table follows the last."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import GOPROC
from helpers import wait_until

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)"
)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[list[str]]:
    """A tmux server of its own (its socket in tmp_path): the command prefix."""
    prefix = ["tmux", "-S", str(tmp_path / "tmux.sock")]
    yield prefix
    subprocess.run([*prefix, "kill-server"], capture_output=True)


def screen(tmux: list[str]) -> str:
    return subprocess.run(
        [*tmux, "capture-pane", "-p", "-t", "w"], capture_output=True, text=True, check=True
    ).stdout


def test_watch_redraws_in_place_and_ctrl_c_ends_it(
    daemon: Any, sleeper: Any, tmux: list[str], tmp_path: Path
) -> None:
    daemon.call("add", {"pid": sleeper().pid, "name": "first"})
    code = tmp_path / "code"
    command = [
        "env",
        *(f"{k}={v}" for k, v in daemon.env.items()),
        *GOPROC,
        "list",
        "--watch",
        "0.2",
    ]
    # bash, not sh: at Ctrl+C it waits for the command and carries on when the command
    # handled the signal itself (exit 0), so the code can be written down.
    script = f"{shlex.join(command)}; echo $? > {shlex.quote(str(code))}; sleep 60"
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", "w", "-x", "120", "-y", "30", "bash", "-c", script],
        check=True,
        env={**daemon.env, "TERM": "xterm"},
    )
    first = wait_until(
        lambda: "first" in screen(tmux) and screen(tmux), timeout=15, what="the table"
    )
    assert first.splitlines()[0].split()[:4] == ["ID", "PID", "NAME", "ALIVE"], "drawn at the top"
    daemon.call("add", {"pid": sleeper().pid, "name": "second"})
    shown = wait_until(
        lambda: "second" in screen(tmux) and screen(tmux), timeout=10, what="a redraw"
    )
    lines = [line for line in shown.splitlines() if line.strip()]
    assert len(lines) == 3 and lines[0].startswith("ID"), "one table, redrawn in place"
    subprocess.run([*tmux, "send-keys", "-t", "w", "C-c"], check=True)
    wait_until(lambda: code.exists() and code.read_text().strip(), timeout=10, what="the exit")
    assert code.read_text().strip() == "0"
    assert "second" not in screen(tmux), "the alternate screen is left: the screen as it was"


def test_watch_off_a_terminal_prints_table_after_table(daemon: Any, sleeper: Any) -> None:
    daemon.call("add", {"pid": sleeper().pid, "name": "only"})
    p = subprocess.Popen(
        [*GOPROC, "list", "--watch", "0.2"], env=daemon.env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout is not None
        seen = [p.stdout.readline() for _ in range(6)]
    finally:
        p.kill()
        p.wait()
    assert [line.split()[:1] for line in seen] == [["ID"], ["1"], [], ["ID"], ["1"], []]
    assert "\x1b" not in "".join(seen)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--watch", "50ms"], "goproc: --watch: must be at least 100ms, got '50ms'"),
        (["--watch", "--json"], "goproc: --watch and --json exclude each other: give one"),
        (["--watch", "soon"], "goproc: --watch: invalid duration 'soon': expected a number"),
    ],
)
def test_a_bad_watch_is_a_usage_error(daemon: Any, args: list[str], line: str) -> None:
    r = daemon.cli("list", *args)
    assert (r.returncode, r.stdout) == (2, "") and r.stderr.startswith(line), r.stderr
    assert len(r.stderr.splitlines()) == 1
