"""Snapshot generations, end to end with real daemons and real files: the previous
snapshot (`goproc.snapshot.json.prev`) and the journal generations it needs are kept, so
a newest snapshot that cannot be read is set aside and the previous one loaded with the
same entries and ids; when no snapshot can be loaded but the state dir shows earlier use,
the start is refused (exit 1, one line naming the files, nothing touched) unless
`--fresh` is given, and then ids go on above every one the files still show.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon
from helpers import wait_until as shared_wait_until

from goproc.cli.launch import daemon_argv

SNAPSHOT = "goproc.snapshot.json"
PREV = "goproc.snapshot.json.prev"
JOURNAL = re.compile(r"goproc\.journal\.\d+")

wait_until = functools.partial(shared_wait_until, timeout=10.0)


def identity(e: dict[str, Any]) -> tuple[Any, ...]:
    return (e["id"], e["pid"], e["name"], tuple(e["tags"]), tuple(e["groups"]), e["added_at"])


def listed(d: Daemon) -> list[tuple[Any, ...]]:
    return [identity(e) for e in d.call("list")]


def files_of(state_dir: Path) -> dict[str, bytes]:
    """Every file of the state dir but the lock, with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(state_dir.iterdir()) if p.name != "goproc.lock"}


def used_state(d: Daemon, new_pid: Callable[[], int], *, end: str) -> list[tuple[Any, ...]]:
    """Two runs of a daemon: adds, a name, tags, a remove (so one id is used and gone);
    the first run stops cleanly, the second ends with `end` ("stop" or "kill9", after
    more adds that only the journal holds).  Returns the entries it held."""
    d.start()
    d.call("add", {"pid": new_pid(), "name": "web", "tags": ["a"]})
    gone = d.call("add", {"pid": new_pid()})["id"]
    d.call("add", {"pid": new_pid(), "groups": ["g"]})
    d.call("remove", {"ids": [gone]})
    assert d.stop() == 0
    d.start()
    d.call("add", {"pid": new_pid(), "tags": ["b"]})
    d.call("tag.add", {"ids": [1], "labels": ["c"]})
    held = listed(d)
    if end == "stop":
        assert d.stop() == 0
    else:
        d.call("add", {"pid": new_pid(), "name": "late"})  # in the journal only
        held = listed(d)
        d.kill9()
    return held


def start_refused(d: Daemon, *extra: str) -> str:
    """Start, expect exit 1 before serving; the new lines of its log."""
    before = len(d.log())
    d.start(*extra, wait=False)
    with pytest.raises(RuntimeError, match="daemon exited with 1"):
        d.wait_ready()  # fails at once if the daemon serves instead
    d.stop()  # reaped already; closes the log
    return d.log()[before:]


@pytest.mark.parametrize("end", ["stop", "kill9"])
def test_a_stray_byte_on_the_newest_snapshot_loads_the_previous_generation(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any], end: str
) -> None:
    """A byte appended to the newest snapshot (after a clean stop, or a kill -9 with
    changes in the journal only): it is set aside with a warning, the previous snapshot
    and the journals after it are loaded, and the entries and ids are as they were."""
    d = spawn_daemon(config={"snapshot_delay": "1h"}, start=False)
    held = used_state(d, lambda: sleeper().pid, end=end)
    used = max(e[0] for e in held)
    assert (d.state_dir / PREV).exists(), "the previous generation is kept"
    newest = d.state_dir / SNAPSHOT
    with newest.open("ab") as f:
        f.write(b"x")
    damaged = newest.read_bytes()
    d.start()
    assert listed(d) == held, "the previous generation and its journals hold everything"
    assert d.call("status")["next_id"] == used + 1
    [aside] = [p for p in d.state_dir.iterdir() if p.name.startswith(f"{SNAPSHOT}.corrupt-")]
    assert aside.read_bytes() == damaged, "nothing is deleted"
    warning = [line for line in d.log().splitlines() if str(aside) in line]
    assert warning and "WARNING" in warning[0] and str(newest) in warning[0], d.log()
    assert d.call("add", {"pid": sleeper().pid})["id"] == used + 1
    again = listed(d)
    d.kill9()
    d.start()
    assert listed(d) == again, "what was loaded from the previous generation is kept"
    assert d.stop() == 0
    d.start()
    assert listed(d) == again


def both_unreadable(state_dir: Path) -> None:
    for name in (SNAPSHOT, PREV):
        with (state_dir / name).open("ab") as f:
            f.write(b"x")


def snapshots_gone(state_dir: Path) -> None:
    for name in (SNAPSHOT, PREV):
        (state_dir / name).unlink()


@pytest.mark.parametrize("damage", [both_unreadable, snapshots_gone], ids=lambda f: f.__name__)
def test_no_loadable_snapshot_is_refused_without_fresh_and_fresh_ids_go_on(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any], damage: Any
) -> None:
    """No snapshot that loads, but files that show earlier use (unreadable snapshots,
    or journals only): the start is refused with exit 1 and one line naming the files,
    and nothing is changed; `--fresh` starts empty, sets the files aside, and ids go on
    above every one used."""
    d = spawn_daemon(config={"snapshot_delay": "1h"}, start=False)
    held = used_state(d, lambda: sleeper().pid, end="kill9")
    used = max(e[0] for e in held)
    damage(d.state_dir)
    before = files_of(d.state_dir)
    assert any(JOURNAL.fullmatch(name) for name in before), before
    out = start_refused(d)
    [line] = out.splitlines()
    assert line.startswith("goproc: ") and "--fresh" in line, out
    for name in before:
        assert str(d.state_dir / name) in line, (name, line)
    assert "Traceback" not in out
    assert files_of(d.state_dir) == before, "a refused start changes nothing"
    assert start_refused(d).splitlines() == [line], "and is refused again"

    d.start("--fresh")
    assert d.call("list") == []
    assert d.call("status")["next_id"] > used
    new = d.call("add", {"pid": sleeper().pid, "name": "web"})
    assert new["id"] > used, "an id is never given twice"
    kept = b"".join(files_of(d.state_dir).values())
    for data in before.values():
        assert data in kept, "every file is set aside, none deleted"
    assert d.stop() == 0
    d.start()  # the fresh state is the state now: no flag needed
    assert [e["id"] for e in d.call("list")] == [new["id"]]


def test_a_first_start_and_an_intact_state_need_no_flag_and_fresh_keeps_them(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any]
) -> None:
    """An empty state dir starts without `--fresh`; `--fresh` on a state that loads
    loads it (the flag only allows a start that would be refused)."""
    d = spawn_daemon()
    d.call("add", {"pid": sleeper().pid})
    held = listed(d)
    assert d.stop() == 0
    d.start("--fresh")
    assert listed(d) == held


def test_daemon_help_and_fast_path_know_fresh(spawn_daemon: Callable[..., Daemon]) -> None:
    d = spawn_daemon(start=False)
    done = d.cli("daemon", "--help")
    assert done.returncode == 0 and "--fresh" in done.stdout, done
    assert daemon_argv(["daemon", "--fresh"]) == ["--fresh"]
    assert daemon_argv(["daemon", "-f", "--fresh", "--config", "c"]) == [
        "--force",
        "--fresh",
        "--config=c",
    ]
    helped = subprocess.run(
        [sys.executable, "-m", "goproc.daemon", "--help"],
        env=d.env,
        capture_output=True,
        text=True,
    )
    assert "--fresh" in helped.stdout, helped


def header(path: Path) -> dict[str, Any]:
    first = path.read_bytes().split(b"\n", 1)[0]
    parsed: dict[str, Any] = json.loads(first.removesuffix(b',"procs":[') + b"}")
    return parsed


def journal_gens(state_dir: Path) -> list[int]:
    return sorted(
        int(p.name.rsplit(".", 1)[1]) for p in state_dir.iterdir() if JOURNAL.fullmatch(p.name)
    )


def journals_bounded(state_dir: Path) -> bool:
    """No journal older than the previous snapshot's, at most three generations (the
    previous snapshot's, the newest's, the current one)."""
    oldest = header(state_dir / PREV)["journal"]
    assert header(state_dir / SNAPSHOT)["journal"] > oldest
    gens = journal_gens(state_dir)
    return bool(gens) and min(gens) >= oldest and len(gens) <= 3


def test_only_the_journals_the_previous_generation_needs_are_kept(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any]
) -> None:
    """Snapshot after snapshot, the journal generations older than the previous
    snapshot's are deleted, and the ones from it on kept: they never pile up."""
    d = spawn_daemon(config={"snapshot_delay": "10ms"})

    def writes() -> int:
        count: int = d.call("status")["snapshot_writes"]
        return count

    for n in range(6):
        before = writes()
        d.call("add", {"pid": sleeper().pid, "tags": [f"t{n}"]})
        wait_until(functools.partial(lambda seen: writes() > seen, before), what="a write")
        # The counter goes up when the snapshot is written, before the folded journals
        # are deleted: wait for that too.
        wait_until(lambda: journals_bounded(d.state_dir), what="the folded journals to go")
    assert d.stop() == 0


def test_ids_go_on_above_what_the_unreadable_newest_header_says(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any]
) -> None:
    """The previous generation is loaded, but the newest one's header (still readable)
    says more ids were given: ids go on above those too."""
    d = spawn_daemon(config={"snapshot_delay": "1h"}, start=False)
    held = used_state(d, lambda: sleeper().pid, end="stop")
    newest = d.state_dir / SNAPSHOT
    said = header(newest)["next_id"] + 10
    first, rest = newest.read_bytes().split(b"\n", 1)
    first = re.sub(rb'"next_id":\d+', b'"next_id":%d' % said, first)
    newest.write_bytes(first + b"\n" + rest + b"x")
    d.start()
    assert listed(d) == held
    assert d.call("add", {"pid": sleeper().pid})["id"] == said


def test_a_stop_between_keeping_the_previous_snapshot_and_writing_the_next_one_starts(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any]
) -> None:
    """Just before a snapshot is written the newest one is linked as the previous one:
    a daemon that dies right then leaves two names for one file.  Both are the daemon's
    own, so the next start takes it (a hard link from elsewhere is still refused:
    `test_a_file_not_the_daemons_own_is_refused`)."""
    d = spawn_daemon(config={"snapshot_delay": "1h"}, start=False)
    held = used_state(d, lambda: sleeper().pid, end="stop")
    newest, prev = d.state_dir / SNAPSHOT, d.state_dir / PREV
    prev.unlink()
    prev.hardlink_to(newest)
    assert newest.stat().st_nlink == 2
    d.start()
    assert listed(d) == held
