"""What the daemon trusts on disk: its directories, the files in them, and the lock.

- A runtime or state dir is used only when it is the daemon's uid's and nobody else can
  write it (as OpenSSH and tmux ask of theirs); else one line naming the dir, what is
  wrong with it and the variable to set, exit 1, and nothing written there.  A socket in
  a shared dir like /tmp (through `GOPROC_SOCKET`) is refused the same way.
- A `goproc.*` entry in those dirs that is a symlink (or not a regular file of ours) is
  refused at start, never followed and never removed: planted by `nobody` while the dir
  was open to all, pointing at a file of root's, that file is left as it was.
- Temp files get unpredictable names and are created with `O_EXCL | O_NOFOLLOW`: a
  symlink planted at the name the daemon used to use is not followed.
- `--force` signals the process that holds the lock (from /proc/locks), only if it is a
  goproc daemon of ours: never the pid the lock file names.
- A runtime dir squatted by another user (platformdirs' fallback) is one line naming it
  and the variable to set, for `goproc daemon` and for a command alike.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import GOPROC, Daemon
from helpers import wait_until as shared_wait_until

NOBODY_UID = 65534
NOGROUP_GID = 65534
STRANGER_UID = 4321  # a uid with no account
VICTIM_TEXT = "precious, root's own\n"

wait_until = functools.partial(shared_wait_until, timeout=15.0)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="plants files as nobody: needs root")


@pytest.fixture
def open_root() -> Iterator[Path]:
    """A daemon root any user can traverse (pytest's own temp dirs are root's only)."""
    root = Path(tempfile.mkdtemp(prefix="goproc-trust-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def victim(open_root: Path) -> Path:
    """A file of root's that a planted symlink points at."""
    path = open_root / "victim"
    path.write_text(VICTIM_TEXT)
    path.chmod(0o644)
    return path


def assert_untouched(victim: Path) -> None:
    st = victim.stat()
    assert victim.read_text() == VICTIM_TEXT, "the daemon wrote through a planted symlink"
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o644)


def as_nobody(*cmd: str) -> None:
    subprocess.run(["runuser", "-u", "nobody", "--", *cmd], check=True, timeout=30)


def refusal(d: Daemon) -> str:
    """The daemon exits 1 at start; its last line (checked to be the only problem)."""
    assert d.proc is not None
    assert d.proc.wait(15) == 1, d.log()
    log = d.log()
    assert "Traceback" not in log, log
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines[-1].startswith("goproc: "), log
    return lines[-1]


def answering_pid(d: Daemon) -> int | None:
    """The pid of the daemon answering on `d`'s socket, or None when none answers."""
    try:
        return int(d.call("status")["pid"])
    except OSError:
        return None


def wait_answering(d: Daemon) -> None:
    assert d.proc is not None
    pid = d.proc.pid
    wait_until(lambda: answering_pid(d) == pid, what="the new daemon to answer")


def is_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# ---- directories -------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["state", "runtime"])
@pytest.mark.parametrize("problem", ["owned-by-nobody", "mode-0777", "mode-0770"])
def test_a_dir_not_ours_or_writable_by_others_is_refused_and_nothing_written_there(
    spawn_daemon: Callable[..., Daemon], which: str, problem: str
) -> None:
    d = spawn_daemon(start=False)
    target = d.state_dir if which == "state" else d.runtime_dir
    target.mkdir(mode=0o700)
    if problem == "owned-by-nobody":
        os.chown(target, NOBODY_UID, NOGROUP_GID)
        expected = f"{target} is owned by uid {NOBODY_UID}, not 0"
    else:
        mode = int(problem[-4:], 8)
        target.chmod(mode)
        expected = f"{target} has mode {mode:04o}, writable by "
    d.start(wait=False)
    line = refusal(d)
    variable = "GOPROC_STATE_DIR" if which == "state" else "GOPROC_RUNTIME_DIR"
    assert line.startswith(f"goproc: {expected}"), line
    assert variable in line, line
    assert list(target.iterdir()) == [], "something was written in a dir not trusted"


def test_a_socket_in_a_shared_dir_like_tmp_is_refused_naming_goproc_socket(
    spawn_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    """`GOPROC_SOCKET` naming a socket in a world-writable sticky dir (what /tmp is): the
    socket's dir is the runtime dir, so the start is refused, as tmux refuses such a
    socket dir; the line says to set GOPROC_SOCKET elsewhere."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    d = spawn_daemon(start=False)
    d.env["GOPROC_SOCKET"] = str(shared / "goproc.sock")
    d.start(wait=False)
    line = refusal(d)
    assert line.startswith(f"goproc: {shared} has mode 1777, writable by group and others")
    assert "GOPROC_SOCKET" in line, line
    assert list(shared.iterdir()) == []


def test_missing_parents_of_the_dirs_are_made_private_whatever_the_umask(
    spawn_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    """Under umask 000 the parents the daemon makes for its dirs are 0700 too, not 0777."""
    made = tmp_path / "made"
    env = {
        "GOPROC_STATE_DIR": str(made / "a" / "state"),
        "GOPROC_RUNTIME_DIR": str(made / "b" / "run"),
    }
    d = spawn_daemon(env=env, start=False)
    d.socket = made / "b" / "run" / "goproc.sock"
    old = os.umask(0)
    try:
        d.start()
    finally:
        os.umask(old)
    assert d.call("ping") == "pong"
    for path in (made, made / "a", made / "a" / "state", made / "b", made / "b" / "run"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path


# ---- files in them: planted symlinks -----------------------------------------------------

# name -> the dir of the daemon it is planted in
PLANTED = {
    "goproc.pid": "runtime",
    "goproc.lock": "state",
    "goproc.journal.1": "state",
    "goproc.snapshot.json": "state",
    "goproc.snapshot.json.tmp-4242": "state",
    "goproc.snapshot.rows": "state",
}


@pytest.mark.parametrize("name", list(PLANTED))
def test_a_symlink_planted_by_nobody_is_refused_and_its_target_untouched(
    spawn_daemon: Callable[..., Daemon], open_root: Path, victim: Path, name: str
) -> None:
    """`nobody` plants a symlink to root's file while the dir is 0777; the dir is then
    made 0700 again.  The daemon refuses to start with one line naming the symlink,
    follows it nowhere, and leaves it where it is."""
    d = spawn_daemon(root=open_root, start=False)
    where = d.runtime_dir if PLANTED[name] == "runtime" else d.state_dir
    where.mkdir(mode=0o700)
    where.chmod(0o777)
    as_nobody("ln", "-s", str(victim), str(where / name))
    where.chmod(0o700)
    d.start(wait=False)
    line = refusal(d)
    assert line.startswith(f"goproc: {where / name} is a symlink"), line
    assert_untouched(victim)
    assert (where / name).is_symlink()


@pytest.mark.parametrize("kind", ["file-of-nobody", "hard-link"])
def test_a_file_not_the_daemons_own_is_refused(
    spawn_daemon: Callable[..., Daemon], victim: Path, kind: str
) -> None:
    """A regular file at a daemon's name that belongs to another uid, or that is a hard
    link to a file elsewhere, is refused as well: the daemon would write into it."""
    d = spawn_daemon(start=False)
    d.state_dir.mkdir(mode=0o700)
    lock = d.state_dir / "goproc.lock"
    if kind == "hard-link":
        os.link(victim, lock)
        expected = f"goproc: {lock} has 2 hard links"
    else:
        lock.write_text("")
        os.chown(lock, NOBODY_UID, NOGROUP_GID)
        expected = f"goproc: {lock} is owned by uid {NOBODY_UID}, not 0"
    d.start(wait=False)
    assert refusal(d).startswith(expected)
    assert_untouched(victim)


def test_snapshot_temp_file_never_follows_a_symlink_at_the_old_predictable_name(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any], victim: Path
) -> None:
    """The snapshot used to be written as `goproc.snapshot.json.tmp-<pid>`: a symlink
    there (planted while the daemon runs) was followed, the victim overwritten, and the
    symlink renamed into place.  Now the temp name is random and made with O_EXCL."""
    d = spawn_daemon(config={"snapshot_delay": "0.1s"})
    assert d.proc is not None
    planted = d.state_dir / f"goproc.snapshot.json.tmp-{d.proc.pid}"
    planted.symlink_to(victim)
    entry = d.call("add", {"pid": sleeper().pid})
    snapshot = d.state_dir / "goproc.snapshot.json"

    def written() -> bool:
        return snapshot.exists() and f'"id":{entry["id"]}' in snapshot.read_text()

    wait_until(written, what="the snapshot to hold the entry")
    assert_untouched(victim)
    assert not snapshot.is_symlink() and stat.S_IMODE(snapshot.stat().st_mode) == 0o600
    assert planted.is_symlink()
    assert d.stop() == 0


# ---- --force -------------------------------------------------------------------------------

LOCK_HOLDER = r"""
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, f"{sys.argv[2]}\n{sys.argv[3]}\n".encode())
print("locked", flush=True)
time.sleep(300)
"""


def test_force_stops_the_lock_holder_not_the_pid_the_lock_file_names(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any]
) -> None:
    """The lock file of a running daemon rewritten to name an unrelated `sleep` (as a
    daemon in another PID namespace would leave its namespace-local pid): `--force`
    stops the daemon that holds the lock, and the sleep is not signalled."""
    old = spawn_daemon()
    assert old.proc is not None
    bystander = sleeper()
    with open(old.state_dir / "goproc.lock", "r+") as f:  # another open: the flock stays
        f.truncate()
        f.write(f"{bystander.pid}\n{old.socket}\n")
    new = spawn_daemon(root=old.root, start=False)
    new.start("--force", wait=False)
    assert old.proc.wait(15) == 0, "the daemon holding the lock was not stopped"
    wait_answering(new)
    assert bystander.poll() is None and is_running(bystander.pid), "an unrelated pid was hit"
    assert f"stopping the running daemon (pid {old.proc.pid})" in new.log()
    assert f"the lock file names pid {bystander.pid}" in new.log()
    assert new.stop() == 0


def test_force_refuses_when_the_lock_holder_is_not_a_goproc_daemon(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any]
) -> None:
    """A process that is no goproc daemon holds the lock, and the file names a `sleep`:
    `--force` signals neither, and says why in one line (exit 1)."""
    bystander = sleeper()
    d = spawn_daemon(start=False)
    d.state_dir.mkdir(mode=0o700)
    lock = d.state_dir / "goproc.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(lock), str(bystander.pid), str(d.socket)],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        d.start("--force", wait=False)
        line = refusal(d)
        assert line.startswith(f"goproc: cannot stop what holds {lock}: pid {holder.pid}"), line
        assert "is not a goproc daemon" in line, line
        assert holder.poll() is None, "the lock holder was signalled"
        assert bystander.poll() is None and is_running(bystander.pid), "the named pid was hit"
    finally:
        holder.kill()
        holder.wait(10)


def test_force_stops_a_daemon_of_another_pid_namespace_by_its_pid_here(
    spawn_daemon: Callable[..., Daemon],
) -> None:
    """A daemon started in a PID namespace of its own records its pid there (1 or 2) in the
    lock file; `--force` from here finds it by the lock it holds, under its pid as seen
    from here, and stops it."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to make a PID namespace")
    d = spawn_daemon(start=False)
    inner = subprocess.Popen(
        # --kill-child: were the test to fail, killing unshare ends the namespace too
        [
            "unshare",
            "--pid",
            "--kill-child",
            "--mount-proc",
            "sh",
            "-c",
            " ".join(GOPROC) + " daemon",
        ],
        env=d.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        lock = d.state_dir / "goproc.lock"
        try:
            wait_until(lambda: answering_pid(d), what="the daemon in its namespace")
        except pytest.fail.Exception:
            pytest.skip("a daemon cannot run in a PID namespace of its own here")
        recorded = int(lock.read_text().split()[0])
        [host_pid] = [
            p.pid
            for p in psutil.Process(inner.pid).children(recursive=True)
            if "goproc.daemon" in p.cmdline()
        ]
        if recorded == host_pid:
            pytest.skip("the daemon did not get a pid of its own namespace")
        d.start("--force", wait=False)
        assert inner.wait(15) == 0, "the daemon in the other namespace did not stop"
        wait_answering(d)
        assert f"stopping the running daemon (pid {host_pid})" in d.log()
        assert d.stop() == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            inner.kill()
        inner.wait(10)


# ---- a runtime dir squatted by another user ------------------------------------------------


def setpriv_prefix(uid: int) -> list[str] | None:
    """Run as `uid` keeping CAP_DAC_READ_SEARCH (to read this environment's Python under
    /root); None when setpriv cannot do that here."""
    if shutil.which("setpriv") is None:
        return None
    prefix = [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
    ]
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import os; print(os.getuid())"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return prefix if probe.stdout.strip() == str(uid) else None


@pytest.mark.parametrize("command", [["daemon"], ["ping"]], ids=["daemon", "ping"])
def test_a_squatted_runtime_dir_is_one_line_naming_it_and_the_variable(
    open_root: Path, command: list[str]
) -> None:
    """A user with no XDG_RUNTIME_DIR and no /run/user/<uid>: platformdirs falls back to
    `$TMPDIR/runtime-<uid>`, which `nobody` made first.  Both the daemon and a command
    say so in one line naming that dir and GOPROC_RUNTIME_DIR, no traceback."""
    prefix = setpriv_prefix(STRANGER_UID)
    if prefix is None:
        pytest.skip("setpriv cannot run a Python as another uid here")
    if Path(f"/run/user/{STRANGER_UID}").exists():
        pytest.skip(f"/run/user/{STRANGER_UID} exists: no fallback would be used")
    tmp = open_root / "tmp"
    tmp.mkdir()
    tmp.chmod(0o1777)
    squatted = tmp / f"runtime-{STRANGER_UID}"
    squatted.mkdir(mode=0o700)
    os.chown(squatted, NOBODY_UID, NOGROUP_GID)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOPROC_", "XDG_"))}
    env.update(TMPDIR=str(tmp), GOPROC_STATE_DIR=str(tmp / "state"), HOME=str(tmp))
    out = subprocess.run(
        [*prefix, *GOPROC, *command], env=env, capture_output=True, text=True, timeout=60
    )
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("goproc: ") and str(squatted) in lines[0], lines
    assert "GOPROC_RUNTIME_DIR" in lines[0], lines
    assert out.returncode == (1 if command == ["daemon"] else 3), out
    assert list(squatted.iterdir()) == []


def test_force_normal_path_still_replaces_the_running_daemon(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any]
) -> None:
    """The plain case: `--force` with the lock file as the daemon wrote it."""
    old = spawn_daemon()
    assert old.proc is not None
    entry = old.call("add", {"pid": sleeper().pid})
    new = spawn_daemon(root=old.root, start=False)
    new.start("--force", wait=False)
    assert old.proc.wait(15) == 0
    wait_answering(new)
    assert [p["id"] for p in new.call("list")] == [entry["id"]]
    assert new.stop() == 0
