"""`goproc add --match` against the real `pgrep`: for the same processes, `--dry-run
--json` selects exactly the pids `pgrep -u UID [flags] PATTERN` prints (after the kernel
threads, zombies and the daemon, which goproc never selects).  Real processes with
distinctive names (`exec -a`), names longer than `comm` keeps, a real forking shell for
`--parent` and `--children`, a real cgroup v2 directory for `--cgroup`.

Other processes come and go on the machine while a case runs: both answers are compared
on the processes that lived through the whole case, and each case's own processes must
be among them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon

pytestmark = pytest.mark.skipif(shutil.which("pgrep") is None, reason="pgrep is not installed")

TAG = f"gpdisc{os.getpid()}"  # in every name: this run's processes only
UID = str(os.geteuid())


def start_named(name: str, *, seconds: int = 300) -> subprocess.Popen[bytes]:
    """A `sleep` whose argv[0] (and so its comm, cut to 15 bytes) is `name`."""
    p = subprocess.Popen(["bash", "-c", f"exec -a {name} sleep {seconds}"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{p.pid}/cmdline").read_bytes().startswith(name.encode() + b"\0"):
                return p
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise AssertionError(f"{name} did not start")


@pytest.fixture(scope="module")
def world() -> Iterator[dict[str, Any]]:
    """The processes the cases look for: three workers, one long name, one with
    regex metacharacters, and a shell with two children."""
    procs = {
        "w1": start_named(f"{TAG}-worker-1"),
        "w2": start_named(f"{TAG}-worker-2"),
        "w3": start_named(f"{TAG}-worker-3"),
        "long": start_named(f"{TAG}-averyverylongname"),
        "meta": start_named(f"{TAG}.a+b"),
    }
    shell = subprocess.Popen(
        ["bash", "-c", f"(exec -a {TAG}-kid-1 sleep 300) & (exec -a {TAG}-kid-2 sleep 300) & wait"]
    )
    procs["shell"] = shell
    deadline = time.monotonic() + 10
    while len(children_of(shell.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield procs
    finally:
        for kid in children_of(shell.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(kid, 9)
        for p in procs.values():
            p.kill()
            p.wait()


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(x) for x in text.split()]


def processes() -> dict[int, bytes]:
    """Every process now, by pid, with its start time (to tell a reused pid)."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, IndexError):
                out[int(name)] = (
                    Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()[19]
                )
    return out


def never_selected(d: Daemon) -> set[int]:
    """Kernel threads, zombies and the daemon: pgrep shows them, goproc never does."""
    out = set() if d.proc is None else {d.proc.pid}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] in (b"Z", b"X") or int(fields[6]) & 0x00200000:
            out.add(int(name))
    return out


def goproc_finds(d: Daemon, *flags: str) -> list[int]:
    out = d.cli("add", *flags, "--dry-run", "--json")
    if out.returncode == 1 and "no process matches" in out.stderr:
        return []
    assert out.returncode == 0 and out.stderr == "", out.stderr
    return [m["pid"] for m in json.loads(out.stdout)]


def pgrep_finds(*args: str) -> list[int]:
    out = subprocess.run(["pgrep", "-u", UID, *args], capture_output=True, text=True)
    assert out.returncode in (0, 1), out.stderr
    return [int(x) for x in out.stdout.split()]


Case = tuple[list[str], list[str], Callable[[dict[str, Any]], set[int]]]


def pids(*keys: str) -> Callable[[dict[str, Any]], set[int]]:
    return lambda w: {w[k].pid for k in keys}


# goproc's flags, pgrep's, and the case's own processes that both must find.
CASES: list[Case] = [
    (["--match", f"{TAG}-wor"], [f"{TAG}-wor"], pids()),  # comm is cut: only the full one
    (["--match", f"{TAG}-worker", "--full"], ["-f", f"{TAG}-worker"], pids("w1", "w2", "w3")),
    (["--match", f"{TAG}-worker-[12]", "--full"], ["-f", f"{TAG}-worker-[12]"], pids("w1", "w2")),
    (
        ["--match", f"^{TAG}-worker-(1|3) ", "--full"],
        ["-f", f"^{TAG}-worker-(1|3) "],
        pids("w1", "w3"),
    ),
    (
        ["--match", f"{TAG}-w.rker-[[:digit:]]+", "--full"],
        ["-f", f"{TAG}-w.rker-[[:digit:]]+"],
        pids("w1", "w2", "w3"),
    ),
    (["--match", f"{TAG}-worker-[^2]", "--full"], ["-f", f"{TAG}-worker-[^2]"], pids("w1", "w3")),
    (
        ["--match", f"{TAG}-worker-1 300$", "--full", "--exact"],
        ["-f", "-x", f"{TAG}-worker-1 300$"],
        pids(),
    ),
    (
        ["--match", f"{TAG}-worker-1 300", "--full", "--exact"],
        ["-f", "-x", f"{TAG}-worker-1 300"],
        pids("w1"),
    ),
    (["--match", f"{TAG}-worker-1", "--full", "--exact"], ["-f", "-x", f"{TAG}-worker-1"], pids()),
    (["--match", f"{TAG}-worker", "--full", "--newest"], ["-f", "-n", f"{TAG}-worker"], pids()),
    (["--match", f"{TAG}-worker", "--full", "--oldest"], ["-f", "-o", f"{TAG}-worker"], pids()),
    (
        ["--match", f"{TAG}-averyverylongname", "--full"],
        ["-f", f"{TAG}-averyverylongname"],
        pids("long"),
    ),
    (["--match", "averyverylongname"], ["averyverylongname"], pids()),  # beyond comm's 15
    (["--match", f"{TAG}\\.a\\+b", "--full"], ["-f", f"{TAG}\\.a\\+b"], pids("meta")),
    (["--match", f"{TAG}.a+b", "--full"], ["-f", f"{TAG}.a+b"], pids()),  # + is a repeat
    (["--match", f"{TAG}.a.b", "--full"], ["-f", f"{TAG}.a.b"], pids("meta")),
    (["--match", f"{TAG}-kid-[0-9]", "--full"], ["-f", f"{TAG}-kid-[0-9]"], pids()),
    (["--match", "sleep", "--parent", "PARENT"], ["-P", "PARENT", "sleep"], pids()),
    (
        ["--match", f"{TAG}", "--full", "--user", UID],
        ["-f", "-u", UID, f"{TAG}"],
        pids("w1", "w2", "w3", "long", "meta"),
    ),
    (["--match", f"{TAG}", "--full", "--user", "root"], ["-f", "-u", "root", f"{TAG}"], pids()),
    (["--match", "^(sleep|bash)$"], ["^(sleep|bash)$"], pids()),
    (["--match", "^s.e+p$", "--exact"], ["-x", "^s.e+p$"], pids()),
    (["--match", "sle{2}p"], ["sle{2}p"], pids()),
    (["--match", "\\d"], ["\\d"], pids()),  # ERE: a plain d, as pgrep reads it
    (["--match", "x|y|z", "--full"], ["-f", "x|y|z"], pids()),
    (["--match", "bash", "--oldest"], ["-o", "bash"], pids()),
]


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path_factory.mktemp("discovery")).start()
    try:
        yield daemon
    finally:
        daemon.stop()


def case_id(args: list[str]) -> str:
    """A case's name, the same in every process (TAG is not: pytest-xdist compares)."""
    return " ".join(args).replace(TAG, "TAG")


@pytest.mark.parametrize(("ours", "theirs", "own"), CASES, ids=[case_id(c[0]) for c in CASES])
def test_dry_run_finds_what_pgrep_finds(
    d: Daemon, world: dict[str, Any], ours: list[str], theirs: list[str], own: Any
) -> None:
    parent = str(world["shell"].pid)
    ours = [parent if a == "PARENT" else a for a in ours]
    theirs = [parent if a == "PARENT" else a for a in theirs]
    if "root" in ours and os.geteuid() != 0:
        pytest.skip("only a daemon running as root may find root's processes")
    for _ in range(5):  # a busy machine: retry when a process came or went meanwhile
        before = processes()
        got = goproc_finds(d, *ours)
        want = pgrep_finds(*theirs)
        after = processes()
        stable = {p for p, t in before.items() if after.get(p) == t}
        hidden = never_selected(d)
        picks = "--newest" in ours or "--oldest" in ours
        if not picks or (set(got) | set(want)) <= stable:
            break
    want_here = {p for p in want if p not in hidden}
    if picks:  # newest/oldest of all: both must pick the same one
        assert got == sorted(want_here), (got, want)
    else:
        assert set(got) & stable == want_here & stable, (ours, sorted(got), sorted(want_here))
    assert own(world) <= set(got), (own(world), got)


def test_match_adds_then_skips_what_is_tracked(d: Daemon, world: dict[str, Any]) -> None:
    pattern = f"^{TAG}-worker-[12] "
    first = d.cli("add", "--match", pattern, "--full", "--tag", "found", "--json")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == "[" and lines[-1] == "]" and len(lines) == 4, first.stdout
    found = [json.loads(line.rstrip(",")) for line in lines[1:-1]]
    assert [m["pid"] for m in found] == sorted([world["w1"].pid, world["w2"].pid])
    assert {m["outcome"] for m in found} == {"added"}
    listed = d.call("list", {"tags_any": ["found"]})
    assert sorted(p["pid"] for p in listed) == [m["pid"] for m in found]
    again = d.cli("add", "--match", f"^{TAG}-worker-[123] ", "--full")
    assert again.returncode == 0, again.stderr
    text = again.stdout.splitlines()
    assert f"Process {world['w1'].pid} is already tracked as id {found[0]['id']}: skipped" in text
    assert any(line.startswith(f"Process {world['w3'].pid} registered with id ") for line in text)
    d.call("remove", {"tags_any": ["found"], "all": True})
    d.call("remove", {"pids": [world["w3"].pid], "all": True})


def test_children_finds_a_tracked_shells_descendants(d: Daemon, world: dict[str, Any]) -> None:
    shell = world["shell"]
    entry = d.call("add", {"pid": shell.pid, "name": "disc-shell"})
    try:
        kids = children_of(shell.pid)
        assert len(kids) == 2
        assert goproc_finds(d, "--children", "disc-shell") == sorted(kids)
        assert goproc_finds(d, "--children", str(entry["id"]), "--match", "kid-1", "--full") == [
            min(kids, key=lambda k: Path(f"/proc/{k}/cmdline").read_bytes())
        ]
    finally:
        d.call("remove", {"ids": [entry["id"]]})


def test_cgroup_finds_the_processes_of_a_cgroup(d: Daemon, world: dict[str, Any]) -> None:
    root = Path("/sys/fs/cgroup/unified")
    if not (root / "cgroup.procs").exists():
        root = Path("/sys/fs/cgroup")
    group = root / f"{TAG}-cg"
    try:
        group.mkdir()
        (group / "cgroup.procs").write_text(str(world["meta"].pid))
    except OSError as e:
        pytest.skip(f"no cgroup v2 directory to make here: {e}")
    try:
        assert goproc_finds(d, "--cgroup", str(group)) == [world["meta"].pid]
        assert goproc_finds(d, "--cgroup", str(group), "--match", "nomatch") == []
    finally:
        (root / "cgroup.procs").write_text(str(world["meta"].pid))
        group.rmdir()


BAD_MATCHES = [
    (["--match", "("], 2, "match.pattern: not an extended regular expression"),
    (["--match", f"^{TAG}-nothing$"], 1, "no process matches"),
    (["--match", "x", "--user", "no-such-user-x"], 2, "match.user[0]: no such user"),
    (["--match", "x", "--cgroup", "/nonexistent"], 2, "match.cgroup: not a cgroup v2"),
    (["--match", "x", "--newest", "--oldest"], 2, "--newest and --oldest exclude each other"),
    (["--match", "x", "1"], 2, "give PIDs or --match"),
    (["--full"], 2, "give what to find"),
    (["--children", "no-such-entry"], 1, "match.children_of: no entry"),
]


@pytest.mark.parametrize(
    ("args", "code", "says"), BAD_MATCHES, ids=[case_id(b[0]) for b in BAD_MATCHES]
)
def test_a_bad_match_is_one_line_and_adds_nothing(
    d: Daemon, args: list[str], code: int, says: str
) -> None:
    before = d.call("list")
    out = d.cli("add", *args)
    assert out.returncode == code, out.stderr
    assert len(out.stderr.splitlines()) == 1 and says in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert d.call("list") == before
