"""`goproc top` in a real terminal: tmux runs it at 120x30 on a tmux server of the
test's own (its own socket), keys go in with `send-keys`, and `capture-pane` shows
what a person would see."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Daemon
from helpers import wait_until

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    def __init__(self, socket: Path) -> None:
        self.socket = socket

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-S", str(self.socket), *args], capture_output=True, text=True, timeout=10
        )

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "top").stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        self("send-keys", "-t", "top", *(["-l"] if literal else []), *keys)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    t = Tmux(tmp_path / "tmux.sock")
    yield t
    t("kill-server")


def start_top(tmux: Tmux, d: Daemon) -> None:
    env = [f"{k}={d.env[k]}" for k in ("GOPROC_RUNTIME_DIR", "GOPROC_STATE_DIR")]
    # Textual takes COLUMNS and LINES over the terminal's size: the pane's size must count.
    command = shlex.join(
        ["env", "-u", "COLUMNS", "-u", "LINES", sys.executable, "-m", "goproc", "top"]
    )
    args = ["new-session", "-d", "-s", "top", "-x", "120", "-y", "30"]
    for pair in env:
        args += ["-e", pair]
    r = tmux(*args, "-e", "TERM=xterm-256color", f"{command}; sleep 30")
    assert r.returncode == 0, r.stderr


def test_a_person_sees_the_table_filters_and_an_exit(tmux: Tmux, daemon: Daemon, sleeper) -> None:
    web = sleeper()
    daemon.call("add", {"pid": web.pid, "tags": ["web"], "name": "front"})
    daemon.call("add", {"pid": sleeper().pid, "groups": ["prod"], "name": "back"})
    start_top(tmux, daemon)
    wait_until(lambda: "front" in tmux.screen() and "back" in tmux.screen(), timeout=15)
    screen = tmux.screen()
    assert "ID" in screen and "ALIVE" in screen and "CMD" in screen
    assert "entries 2: 2 alive, 0 dead" in screen
    assert "Traceback" not in screen

    tmux.keys("/")
    wait_until(lambda: "search:nginx" in tmux.screen(), timeout=5)  # the filter line's hint
    tmux.keys("tag:web", literal=True)
    tmux.keys("Enter")
    wait_until(lambda: "back" not in tmux.screen() and "1 shown" in tmux.screen(), timeout=5)
    assert "front" in tmux.screen()

    web.kill()
    row = lambda: next(line for line in tmux.screen().splitlines() if "front" in line)  # noqa: E731
    wait_until(lambda: " no " in row(), timeout=5)

    tmux.keys("q")
    wait_until(lambda: "ALIVE" not in tmux.screen(), timeout=10)  # back on the shell's screen
    assert "Traceback" not in tmux.screen()
