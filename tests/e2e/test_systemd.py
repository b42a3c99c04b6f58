"""systemd integration against real parts: socket activation by the real
`systemd-socket-activate`, readiness datagrams to a notify socket the test binds, the
refusals of what is passed, and the unit files in contrib/systemd/.

Sockets are put at fd 3 (and on) by a small launcher (`LAUNCH`) that then execs the
daemon, so `LISTEN_PID` can name the daemon's own pid, as a service manager does.
"""

from __future__ import annotations

import configparser
import functools
import os
import shutil
import socket
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import GOPROC, Daemon
from helpers import one_line, wait_until as shared_wait_until

from goproc import paths
from goproc.daemon import activation
from goproc.daemon.notify import Notifier

wait_until = functools.partial(shared_wait_until, timeout=15.0)

SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")
UNITS = Path(__file__).resolve().parents[2] / "contrib" / "systemd"

# argv: FDS (comma-separated; they become 3, 4, ...), PID ("self" or a number), COMMAND...
LAUNCH = """
import fcntl, os, sys
fds, pid, *command = sys.argv[1:]
high = [fcntl.fcntl(int(fd), fcntl.F_DUPFD, 100) for fd in fds.split(",")]
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i)
    os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid()) if pid == "self" else pid
os.environ["LISTEN_FDS"] = str(len(high))
os.execv(command[0], command)
"""


def launcher(fds: list[int], pid: str = "self") -> tuple[str, ...]:
    return (sys.executable, "-c", LAUNCH, ",".join(map(str, fds)), pid)


def listener_at(path: Path) -> socket.socket:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(16)
    return s


def run_passing(d: Daemon, fd: int) -> subprocess.CompletedProcess[str]:
    """`goproc daemon` in `d`'s environment with `fd` passed as fd 3, to its end."""
    return subprocess.run(
        [*launcher([fd]), *GOPROC, "daemon"],
        env=d.env,
        pass_fds=(fd,),
        capture_output=True,
        text=True,
        timeout=30,
    )


def listening_paths(pid: int) -> list[str]:
    """The paths of the listening UNIX sockets process `pid` holds (/proc/net/unix)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    found = []
    with open("/proc/net/unix") as f:
        next(f)  # "Num RefCount Protocol Flags Type St Inode Path"
        for line in f:
            fields = line.split()
            if len(fields) == 8 and int(fields[6]) in inodes and int(fields[3], 16) & 0x10000:
                found.append(fields[7])
    return sorted(found)


def fields(datagram: bytes) -> dict[str, str]:
    text = datagram.decode()
    assert text.endswith("\n"), text
    return dict(line.split("=", 1) for line in text.splitlines())


# ---- socket activation by systemd-socket-activate ---------------------------------------


@pytest.mark.skipif(SOCKET_ACTIVATE is None, reason="systemd-socket-activate is not installed")
def test_socket_activated_daemon_serves_and_leaves_the_socket(spawn_daemon) -> None:
    d = spawn_daemon(start=False)
    d.runtime_dir.mkdir(mode=0o700)
    assert SOCKET_ACTIVATE is not None
    # Without --accept it waits for the first connection, then execs the daemon (same
    # pid) with the listening socket at fd 3.  It passes only the variables -E names.
    d.launcher = (
        SOCKET_ACTIVATE,
        "-l",
        str(d.socket),
        *(f"-E{name}" for name in d.env if name.startswith("GOPROC_")),
        "--",
    )
    d.start(wait=False)
    inode = wait_until(lambda: d.socket.exists() and d.socket.stat().st_ino, what="the socket")
    d.wait_ready()
    assert d.proc is not None
    status = d.call("status")
    assert status["pid"] == d.proc.pid
    assert status["socket"] == str(d.socket)
    assert d.socket.stat().st_ino == inode, "the daemon bound a socket of its own"
    assert listening_paths(d.proc.pid) == [str(d.socket)]
    assert "using the socket passed by the service manager" in d.log()
    assert (d.runtime_dir / "goproc.pid").read_text().strip() == str(d.proc.pid)
    assert d.stop() == 0, d.log()
    assert stat.S_ISSOCK(d.socket.lstat().st_mode), "the passed socket's file was removed"
    assert d.socket.stat().st_ino == inode
    assert not (d.runtime_dir / "goproc.pid").exists()
    assert "Traceback" not in d.log() and "WARNING" not in d.log(), d.log()


def test_several_passed_sockets_the_first_serves(spawn_daemon, tmp_path: Path) -> None:
    d = spawn_daemon(start=False, env={"LISTEN_FDNAMES": "main:spare"})
    first, spare = listener_at(d.socket), listener_at(tmp_path / "spare.sock")
    with first, spare:
        fds = [first.fileno(), spare.fileno()]
        d.launcher, d.pass_fds = launcher(fds), tuple(fds)
        d.start()
    assert d.call("status")["socket"] == str(d.socket)
    assert "2 sockets were passed (names main:spare); using fd 3, ignoring fds 4" in d.log()
    assert d.stop() == 0, d.log()
    assert d.socket.exists()


# ---- readiness -------------------------------------------------------------------------


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request, tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket standing in for systemd's: (the NOTIFY_SOCKET value, it)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.settimeout(15.0)  # each recv waits for the daemon's datagram, no longer
    if request.param == "path":
        address = str(tmp_path / "notify")
        s.bind(address)
    else:
        address = f"@goproc-test-{uuid.uuid4().hex}"
        s.bind("\0" + address[1:])
    with s:
        yield address, s


def test_ready_once_serving_and_stopping_on_sigterm(spawn_daemon, notify_socket) -> None:
    address, notify = notify_socket
    d = spawn_daemon(start=False, env={"NOTIFY_SOCKET": address})
    d.start(wait=False)
    ready = fields(notify.recv(4096))
    assert d.call("ping") == "pong"  # at once, no retry: ready means serving
    assert d.proc is not None
    assert ready["READY"] == "1" and ready["MAINPID"] == str(d.proc.pid), ready
    assert ready["STATUS"] == f"listening on {d.socket}"
    d.proc.terminate()
    stopping = fields(notify.recv(4096))
    assert stopping["STOPPING"] == "1" and "SIGTERM" in stopping["STATUS"], stopping
    assert d.proc.wait(15) == 0, d.log()  # one SIGTERM, as systemd sends
    d.stop()
    notify.settimeout(0)
    with pytest.raises(BlockingIOError):
        notify.recv(4096)  # nothing more


def test_a_failing_notify_socket_never_stops_the_daemon(spawn_daemon, tmp_path: Path) -> None:
    d = spawn_daemon(env={"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert d.call("ping") == "pong"
    wait_until(lambda: "could not notify the service manager" in d.log(), what="the warning")
    assert d.stop() == 0, d.log()


def test_the_variables_are_unset_once_read(monkeypatch) -> None:
    # LISTEN_PID names another process: its fds are not looked at, only forgotten.
    monkeypatch.setenv("LISTEN_PID", str(os.getppid()))
    monkeypatch.setenv("LISTEN_FDS", "1")
    monkeypatch.setenv("LISTEN_FDNAMES", "goproc.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", "@goproc-test")
    assert activation.passed_socket() is None
    assert Notifier.from_environment().address == "@goproc-test"
    for name in (*activation.VARIABLES, "NOTIFY_SOCKET"):
        assert name not in os.environ


# ---- refusals --------------------------------------------------------------------------


def test_fds_of_another_pid_are_ignored(spawn_daemon, tmp_path: Path) -> None:
    d = spawn_daemon(start=False)
    other = listener_at(tmp_path / "other.sock")
    with other:
        d.launcher, d.pass_fds = launcher([other.fileno()], str(os.getpid())), (other.fileno(),)
        d.start()
        assert d.call("status")["socket"] == str(d.socket)
        assert d.proc is not None
        assert str(d.socket) in listening_paths(d.proc.pid)
        assert stat.S_IMODE(d.socket.stat().st_mode) == 0o600  # bound by the daemon
        assert d.stop() == 0, d.log()
    assert not d.socket.exists(), "the daemon's own socket is removed at exit"
    assert (tmp_path / "other.sock").exists()
    assert "passed" not in d.log()


@pytest.mark.parametrize(
    "make_fd, problem",
    [
        (lambda tmp: os.open(tmp / "file", os.O_RDWR | os.O_CREAT), "is not a socket"),
        (
            lambda tmp: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).detach(),
            "is not a listening AF_UNIX SOCK_STREAM socket (AF_UNIX SOCK_STREAM, not listening)",
        ),
        (
            lambda tmp: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).detach(),
            "is not a listening AF_UNIX SOCK_STREAM socket (AF_UNIX SOCK_DGRAM",
        ),
    ],
    ids=["regular-file", "unbound-stream", "datagram"],
)
def test_unusable_fd_refused_in_one_line(
    tmp_path: Path, make_fd: Callable[[Path], int], problem: str
) -> None:
    d = Daemon(tmp_path)
    fd = make_fd(tmp_path)
    try:
        r = run_passing(d, fd)
    finally:
        os.close(fd)
    line = one_line(r, 1)
    assert line.startswith("goproc: LISTEN_FDS passes fd 3, but it ") and problem in line, line
    assert not d.socket.exists() and not d.state_dir.exists()


def test_passed_socket_in_a_shared_dir_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    d = Daemon(tmp_path)
    with listener_at(shared / "goproc.sock") as s:
        r = run_passing(d, s.fileno())
    # The log line naming the passed socket comes first; the refusal is the last line.
    assert r.returncode == 1, r.stderr
    assert r.stderr.splitlines()[-1] == (
        f"goproc: {shared} has mode 0777, writable by group and others: refusing to use "
        "it; set the socket unit's ListenStream= to a path in a directory of yours that "
        "only you can write"
    )
    assert not d.state_dir.exists()


# ---- the unit files --------------------------------------------------------------------


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    assert parser.read(UNITS / name) == [str(UNITS / name)]
    return parser


def test_units_say_what_the_daemon_expects(monkeypatch, tmp_path: Path) -> None:
    sock, service = unit("goproc.socket")["Socket"], unit("goproc.service")["Service"]
    assert sock["ListenStream"] == "%t/goproc/goproc.sock"
    assert (sock["SocketMode"], sock["DirectoryMode"]) == ("0600", "0700")
    assert sock.get("Accept", "no") == "no"
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert service["ExecStart"] == "%h/.local/bin/goproc daemon"
    assert service["Restart"] == "on-failure"
    # %t is $XDG_RUNTIME_DIR in a user unit: where the CLI looks by default.
    for name in ("GOPROC_SOCKET", "GOPROC_RUNTIME_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert paths.socket_path() == tmp_path / "goproc" / "goproc.sock"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_units_verify(tmp_path: Path) -> None:
    home, runtime = tmp_path / "home", tmp_path / "xdg"
    (home / ".local" / "bin").mkdir(parents=True)
    runtime.mkdir(mode=0o700)
    goproc = Path(sys.executable).with_name("goproc")
    if not goproc.exists():
        pytest.skip(f"no goproc script beside {sys.executable}")
    (home / ".local" / "bin" / "goproc").symlink_to(goproc)  # what %h/.local/bin names
    for name in ("goproc.socket", "goproc.service"):
        shutil.copy(UNITS / name, tmp_path / name)
    r = subprocess.run(
        ["systemd-analyze", "verify", "--user", "--man=no", "./goproc.socket", "./goproc.service"],
        cwd=tmp_path,
        env={**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "Failed to initialize manager" in r.stderr or "Failed to lookup" in r.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {r.stderr.strip()}")
    assert r.returncode == 0 and r.stderr == "", r.stderr
