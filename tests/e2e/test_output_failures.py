"""Standard output that cannot be written: full (`> /dev/full`), closed (`>&-`) or a
pipe whose reader left (`| head`).  Full or closed is one line on stderr and exit 1
(the command itself still ran); a reader that left is no failure.  Never a traceback,
never Python's "Exception ignored" at exit."""

from __future__ import annotations

import shlex
import subprocess
import threading
import time
from typing import Any

import pytest
from conftest import GOPROC

FULL = "goproc: cannot write to standard output: No space left on device"
CLOSED = "goproc: cannot write to standard output: it is closed"


def shell(d: Any, command: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """`command` in sh, `goproc` standing for the CLI of daemon `d`."""
    script = f'goproc() {{ {shlex.join(GOPROC)} "$@"; }}\n{command}'
    return subprocess.run(
        ["sh", "-c", script], env=d.env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    ("command", "line"),
    [
        ("goproc ping > /dev/full", FULL),
        ("goproc status > /dev/full", FULL),
        ("goproc list > /dev/full", FULL),
        ("goproc list --json > /dev/full", FULL),
        ("goproc show 1 --json > /dev/full", FULL),
        ("goproc ping >&-", CLOSED),
        ("goproc list --json >&-", CLOSED),
    ],
)
def test_a_full_or_closed_stdout_is_one_line_and_exit_1(
    daemon: Any, sleeper: Any, command: str, line: str
) -> None:
    daemon.call("add", {"pid": sleeper().pid})
    r = shell(daemon, command)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", line + "\n")


def test_a_change_is_made_though_its_report_cannot_be_written(daemon: Any, sleeper: Any) -> None:
    daemon.call("add", {"pid": sleeper().pid})
    r = shell(daemon, "goproc tag add zz --id 1 > /dev/full")
    assert (r.returncode, r.stderr) == (1, FULL + "\n")
    assert daemon.call("show", {"ids": [1]})["tags"] == ["zz"]


def test_events_to_a_full_stdout_end_at_the_first_event(daemon: Any, sleeper: Any) -> None:
    daemon.call("add", {"pid": sleeper().pid})

    def change_soon() -> None:  # once the subscription is up
        time.sleep(1.0)
        daemon.call("tag.add", {"ids": [1], "labels": ["x"]})

    threading.Thread(target=change_soon, daemon=True).start()
    r = shell(daemon, "goproc events --json > /dev/full", timeout=20)
    assert (r.returncode, r.stderr) == (1, FULL + "\n")


def test_with_stderr_closed_too_the_exit_code_says_it(daemon: Any) -> None:
    r = shell(daemon, "goproc ping >&- 2>&-; echo $? >&2", timeout=20)
    assert r.stderr == "1\n"


def test_a_reader_that_leaves_is_not_a_failure(daemon: Any, sleeper: Any) -> None:
    for _ in range(3):
        daemon.call("add", {"pid": sleeper().pid})
    r = shell(daemon, 'goproc list | head -c 1; echo " $?"')
    assert (r.stdout, r.stderr) == ("I 0\n", "")
