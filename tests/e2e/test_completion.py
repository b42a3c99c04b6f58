"""Shell completion, in real shells: the scripts `goproc --install-completion` writes
for bash, zsh and fish, loaded as a user's shell loads them and asked what TAB offers
(how, for each shell: tests/shells.py).  A shell that is not installed is skipped,
saying so (.ci/run installs all three).

Cases: flags that take no value (every flag of the commands with a completed positional
is classified), values from the daemon (ids, names, pids, tags, groups) and signal
names, nothing and no delay without a daemon, hostile labels offered quoted and never
run, and the shells README, --help and --shell agree on.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import GOPROC, Daemon
from shells import Shells, install_completion, needs, offered

from goproc.cli import completers
from goproc.cli.commands.completion import SHELLS

README = Path(__file__).resolve().parents[2] / "README.md"

# Every flag the commands below offer, by whether it takes a value.  A new flag fails
# test_flags_take_a_value_or_none until it is put in one of them.
NO_VALUE = {"--alive", "--dead", "--json", "--all", "--group-kill", "--rm", "--any", "--clear"}
NO_VALUE |= {"--help", "-h", "--version", "--force", "-f", "--fresh"}
COMPLETED = {"--id", "--pid", "--name", "--tag", "--tag-all", "--group", "--group-all"}
COMPLETED |= {"--signal"}  # their values are completed: test_values_come_from_the_daemon
TAKES_VALUE = COMPLETED | {"--search", "--timeout", "--config", "--confirm", "--http"}
# Commands whose next word (an ID|NAME, a label) is completed from the daemon: after a
# flag that takes no value, TAB offers what it offers right after the command.
WITH_TARGETS = ("kill", "wait", "name", "tag add")


each_shell = pytest.mark.parametrize("shell", [pytest.param(s, marks=needs(s)) for s in SHELLS])


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The installed script of each shell; zsh's in a directory for $fpath, named as
    cyclopts names it there."""
    root = tmp_path_factory.mktemp("completion")
    paths = {"bash": root / "goproc.bash", "zsh": root / "zsh" / "_cyclopts_goproc"}
    paths["fish"] = root / "goproc.fish"
    for shell, path in paths.items():
        out = install_completion(shell, path, root)
        assert out.returncode == 0, out.stderr
    return paths


@pytest.fixture
def tracked(daemon: Daemon, sleeper: Callable[..., subprocess.Popen[bytes]]) -> dict[str, str]:
    """Two entries: id 1 named web.1 (tags a-tag and "two words", group g1), id 2
    (tag b-tag, group g2); their pids, by id."""
    one, two = sleeper(), sleeper()
    daemon.call("add", {"pid": one.pid, "name": "web.1", "tags": ["a-tag", "two words"]})
    daemon.call("group.add", {"ids": [1], "labels": ["g1"]})
    daemon.call("add", {"pid": two.pid, "tags": ["b-tag"], "groups": ["g2"]})
    return {"1": str(one.pid), "2": str(two.pid)}


@pytest.fixture
def shells(scripts: dict[str, Path], daemon: Daemon, tmp_path: Path) -> Shells:
    return Shells(scripts, daemon.env, tmp_path)


@each_shell
def test_flags_take_a_value_or_none(shell: str, shells: Shells, tracked: dict[str, str]) -> None:
    """After a flag that takes no value TAB offers what it offers right after the
    command (here: ids, names or labels); after one that takes a value, not that.  Each
    flag is tried once, on the first command in WITH_TARGETS that has it; for zsh and
    fish only on kill (each TAB that asks the daemon costs a `goproc __complete`, about a
    python start-up, and the scripts declare each command's flags the same way)."""
    listing = [f"goproc {command} {dash}" for command in WITH_TARGETS for dash in ("--", "-")]
    listed = iter(shells.complete(shell, listing))
    tried: set[str] = set()
    lines: dict[str, tuple[str, str]] = {}  # line: (command, flag or "" for none)
    for command in WITH_TARGETS:
        long, short = next(listed), next(listed)
        if command != "kill" and shell != "bash":  # kill has all flags but two
            continue
        flags = {f.rstrip("=") for f in long} | {f for f in short if f[1] != "-"}
        assert "--json" in flags, (command, flags)
        assert flags <= NO_VALUE | TAKES_VALUE, f"unclassified: {flags - NO_VALUE - TAKES_VALUE}"
        new = sorted(flags - tried - COMPLETED - {"--help", "-h", "--version"})
        tried |= flags
        lines[f"goproc {command} "] = (command, "")
        lines.update({f"goproc {command} {flag} ": (command, flag) for flag in new})
    results = [offered(shell, found) for found in shells.complete(shell, list(lines))]
    found = dict(zip(lines.values(), results, strict=True))
    for (command, flag), offers in found.items():
        bare = found[command, ""]
        assert bare, f"goproc {command} <TAB> offers nothing"
        if flag in NO_VALUE:
            assert offers == bare, f"{command} {flag} takes no value: {offers}"
        elif flag:
            assert offers != bare, f"{command} {flag} takes a value: {offers}"
    assert {"--alive", "--dead", "--all", "--rm", "--signal", "--tag"} <= tried
    assert shell != "bash" or {"--any", "--clear"} <= tried


@each_shell
def test_values_come_from_the_daemon(shell: str, shells: Shells, tracked: dict[str, str]) -> None:
    expected = {
        "goproc show ": {"1", "2", "web.1"},
        "goproc rm --id ": {"1", "2"},
        "goproc list --pid ": set(tracked.values()),
        "goproc wait --name ": {"web.1"},
        "goproc list --tag ": {"a-tag", "b-tag", "two words"},
        "goproc events --tag-all a": {"a-tag"},
        "goproc kill --group ": {"g1", "g2"},
        "goproc rm --group-all g": {"g1", "g2"},
        "goproc tag rm ": {"a-tag", "b-tag", "two words"},
        "goproc group rename ": {"g1", "g2"},
        "goproc add --tag b": {"b-tag"},
        "goproc add --name ": set(),  # a new name: nothing to offer
        "goproc kill --timeout ": set(),
        "goproc name w": {"web.1"},
    }
    if shell != "bash":  # the same candidates: what differs by shell is slot and quoting
        some = ("show ", "rm --id ", "list --tag ", "tag rm ", "group rename ", "add --name ")
        expected = {f"goproc {line}": expected[f"goproc {line}"] for line in some}
    if shell == "zsh":  # a single match is inserted at once: the line shows it
        lines = [*expected, "goproc kill --signal K", "goproc show w"]
        typed = dict(zip(lines, shells.zsh(lines), strict=True))
        assert typed["goproc kill --signal K"][1] == "goproc kill --signal KILL "
        assert typed["goproc show w"][1] == "goproc show web.1 "
        for line, want in expected.items():
            assert set(typed[line][0]) == want, line
        return
    lines = [*expected, "goproc kill --signal ", "goproc kill --signal K"]
    found = dict(zip(lines, shells.complete(shell, lines), strict=True))
    # fish offers file names for a value it is given no candidates for
    files = {f"{p.name}/" if p.is_dir() else p.name for p in shells.cwd.iterdir()}
    for line, want in expected.items():
        assert offered(shell, found[line]) == (want or files if shell == "fish" else want), line
    assert {"TERM", "KILL", "HUP", "INT", "USR1"} <= set(found["goproc kill --signal "])
    assert found["goproc kill --signal K"] == ["KILL"]


@each_shell
def test_nothing_from_a_daemon_that_is_not_running(
    shell: str, scripts: dict[str, Path], spawn_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    """No daemon: no ids, names or labels, and not a word on stderr (`Shells` checks);
    commands, flags and signals still complete."""
    d = spawn_daemon(start=False)
    shells = Shells(scripts, d.env, tmp_path)
    lines = [
        "goproc show ",
        "goproc kill --tag ",
        "goproc tag rm ",
        "goproc ki",
        "goproc kill --sig",
    ]
    if shell == "zsh":
        found = shells.zsh(lines)
        assert [matches for matches, _ in found[:3]] == [[], [], []]
        assert [line for _, line in found[3:]] == ["goproc kill ", "goproc kill --signal "]
        return
    show, tag, labels, command, flag = shells.complete(shell, lines)
    assert (show, tag, labels) == ([], [], [])
    assert command == ["kill"]
    assert [f.partition("=")[0] for f in flag] == ["--signal"]


HOSTILE_TAGS = ("x$(touch pwned-1)", "y`touch pwned-2`'\"", "z;touch pwned-3 #")


@each_shell
def test_hostile_labels_are_offered_quoted_and_never_run(
    shell: str,
    shells: Shells,
    daemon: Daemon,
    sleeper: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    """Labels (and command lines, shown as descriptions) come from users: TAB offers a
    label as one word that stands for itself, and nothing in it ever runs."""
    argv = [sys.executable, "-c", "import time; time.sleep(300)", "$(touch pwned-4)", "\x1b[2J"]
    p = sleeper(*argv)
    daemon.call("add", {"pid": p.pid, "tags": list(HOSTILE_TAGS), "groups": ["g;touch pwned-5"]})
    lines = ["goproc list --tag x", "goproc list --tag y", "goproc list --tag z", "goproc show "]
    lines.append("goproc list --group ")
    if shell == "zsh":
        found = shells.zsh(lines)
        inserted = [line.removeprefix("goproc list --tag ").rstrip(" ") for _, line in found[:3]]
        # The word the line now holds stands for the tag, in zsh itself.
        shown = [shells.run(["zsh", "-f", "-c", f"print -rn -- {word}"]) for word in inserted]
        assert shown == list(HOSTILE_TAGS)
        assert found[4][0] == ["g;touch pwned-5"]
    elif shell == "bash":
        found_bash = shells.complete(shell, lines)
        assert [len(x) for x in found_bash[:3]] == [1, 1, 1], found_bash
        words = [x[0] for x in found_bash[:3]]
        shown = [shells.run(["bash", "--norc", "-c", f"printf %s {word}"]) for word in words]
        assert shown == list(HOSTILE_TAGS)
        assert len(found_bash[4]) == 1
    else:  # fish quotes what it inserts itself: the candidates are the tags as they are
        found_fish = shells.complete(shell, lines)
        assert [x for y in found_fish[:3] for x in y] == list(HOSTILE_TAGS)
        assert found_fish[4] == ["g;touch pwned-5"]
    assert sorted(tmp_path.glob("pwned-*")) == []
    assert sorted(Path.cwd().glob("pwned-*")) == []


def test_complete_is_silent_and_quick_without_a_daemon(
    spawn_daemon: Callable[..., Daemon],
) -> None:
    d = spawn_daemon(start=False)
    started = time.monotonic()
    out = d.cli("__complete", "kill", "")
    took = time.monotonic() - started
    assert out.returncode == 0 and out.stderr == ""
    assert [line for line in out.stdout.split("\n") if line and line[0] != "\x1f"] == []
    assert took < 2.0, f"{took:.2f}s"  # about a python start-up


@pytest.fixture
def silent_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """GOPROC_SOCKET names a socket that accepts connections and never answers."""
    path = tmp_path / "mute.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(8)
        monkeypatch.setenv("GOPROC_SOCKET", str(path))
        yield


def test_a_daemon_that_does_not_answer_costs_a_timeout(silent_socket: None) -> None:
    started = time.monotonic()
    assert completers.targets() == []
    assert time.monotonic() - started < completers.TIMEOUT + 0.5


def test_unshowable_values_are_not_offered_and_descriptions_are_escaped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entry = {"id": 1, "pid": 5, "name": "n", "cmd": "a\x1b[2Jb", "groups": []}
    entry["tags"] = ["ok", "bad\nline", "tab\there", "\x1b[31m", 3]
    monkeypatch.setattr(completers, "entries", lambda: [entry, {**entry, "id": "2"}])
    assert completers.tags() == [("ok", "2 entries")]
    assert completers.ids() == [("1", "n id 1 pid 5 a\\x1b[2Jb")]
    assert completers.targets() == [
        ("1", "n id 1 pid 5 a\\x1b[2Jb"),
        ("n", "id 1 pid 5 a\\x1b[2Jb"),
    ]


def test_signals_are_the_names_the_daemon_takes() -> None:
    names = [name for name, _ in completers.signals()]
    assert {"TERM", "KILL", "HUP", "USR1", "RTMIN"} <= set(names)
    assert all(signal.Signals[f"SIG{n}"] for n in names) and len(set(names)) == len(names)


# ---- installing ----------------------------------------------------------------------------


@each_shell
def test_install_completion_writes_the_script(tmp_path: Path, shell: str) -> None:
    """Into the given file only: the home directory (and its rc files) stays untouched."""
    home = tmp_path / "home"
    home.mkdir()
    script = tmp_path / f"goproc.{shell}"
    out = install_completion(shell, script, home)
    assert out.returncode == 0, out.stderr
    assert str(script) in out.stdout
    assert list(home.iterdir()) == [], "nothing is added to the shell's startup files"
    text = script.read_text()
    first = {"bash": "complete -F ", "zsh": "#compdef goproc", "fish": "complete -c goproc"}
    assert first[shell] in text
    for command in ("kill", "rename", "reset", "show", "run"):
        assert command in text, f"{command} is not completed"


def test_readme_help_and_shell_agree_on_the_shells(tmp_path: Path) -> None:
    """The README's `--shell a|b|c`, the choices --help lists and the shells taken are
    one list; any other shell (given, or detected) is a usage error on one line."""
    readme = re.search(r"--install-completion \[--shell\s+([a-z|]+)\]", README.read_text())
    assert readme is not None, "README no longer shows --install-completion [--shell ...]"
    assert tuple(readme.group(1).split("|")) == SHELLS
    helped = subprocess.run(
        [*GOPROC, "--install-completion", "--help"], capture_output=True, text=True, timeout=30
    )
    choices = re.search(r"\[choices: ([a-z, ]+)\]", helped.stdout)
    assert choices is not None, helped.stdout
    assert tuple(choices.group(1).split(", ")) == SHELLS
    for shell in SHELLS:
        assert install_completion(shell, tmp_path / shell, tmp_path).returncode == 0
    undetected = {"ZSH_VERSION": "", "BASH_VERSION": "", "FISH_VERSION": ""}
    for given, detected in (("powershell", ""), ("tcsh", ""), ("", "pwsh"), ("", "tcsh")):
        env = {**undetected, "SHELL": f"/usr/bin/{detected}"} if detected else undetected
        out = install_completion(given, tmp_path / "refused", tmp_path, env)
        assert out.returncode == 2, (given, detected, out)
        assert out.stderr.count("\n") == 1, out.stderr
        assert all(shell in out.stderr for shell in SHELLS), out.stderr
        assert not (tmp_path / "refused").exists()
