"""The process file (`goproc.procfile`): a file with every key read into its
programs; every kind of mistake refused whole with the file, line and key named; and,
driven by hypothesis, any declared set written as TOML reads back as it was, and one
bad value put anywhere in it is found at its line and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from goproc.params import RESTARTS
from goproc.procfile import ProcFileError, Program, parse_procfile, read_procfile
from goproc.procvalues import AlertDecl

FULL = """\
# two programs
[proc.web]
cmd = "python3 -m http.server 'port 8000'"
cwd = "srv"
env = { PORT = "8000", MODE = "prod" }
tags = ["web", " http ", ""]
groups = ["prod"]
restart = "on-failure"
max_restarts = 5
restart_window = "1m"
backoff = "500ms..1m"
log_max_bytes = 1048576

[[proc.web.alert]]
if = "cpu > 90% for 30s"
then = "kill"
rule = "hot"

[proc.'job-2']
cmd = ["sh", "-c", "echo hi"]
"""


def test_a_file_with_every_key_is_read_whole() -> None:
    web, job = parse_procfile(FULL, "goproc.toml", "/base")
    assert web == Program(
        name="web",
        argv=("python3", "-m", "http.server", "port 8000"),
        cwd="/base/srv",
        env=(("PORT", "8000"), ("MODE", "prod")),
        tags=("web", "http"),
        groups=("prod",),
        restart="on-failure",
        max_restarts=5,
        restart_window=60.0,
        backoff=(0.5, 60.0),
        log_max_bytes=1048576,
        alerts=(AlertDecl("cpu > 90% for 30s", "kill", "hot"),),
    )
    assert job == Program(name="job-2", argv=("sh", "-c", "echo hi"), cwd="/base")


BAD = [
    ('[proc.a]\ncmd = "x"\ncolour = "red"\n', 3, "proc.a.colour", "unknown key"),
    ("[proc.a]\ncwd = '/'\n", 1, "proc.a.cmd", "missing"),
    ("[proc.a]\ncmd = []\n", 2, "proc.a.cmd", "must name a program"),
    ('[proc.a]\ncmd = "echo \'open"\n', 2, "proc.a.cmd", "cannot be split"),
    ("[proc.a]\ncmd = 3\n", 2, "proc.a.cmd", "got an integer"),
    ('[proc.a]\ncmd = "x"\ntags = ["a,b"]\n', 3, "proc.a.tags", "[0]: must not contain a comma"),
    ('[proc.a]\ncmd = "x"\ngroups = ["' + "g" * 65 + '"]\n', 3, "proc.a.groups", "at most 64"),
    ('[proc.a]\ncmd = "x"\ntags = "web"\n', 3, "proc.a.tags", "must be an array"),
    ('[proc.a]\ncmd = "x"\nrestart = "sometimes"\n', 3, "proc.a.restart", "one of never"),
    ('[proc.a]\ncmd = "x"\nmax_restarts = 0\n', 3, "proc.a.max_restarts", "from 1 to"),
    ('[proc.a]\ncmd = "x"\nmax_restarts = true\n', 3, "proc.a.max_restarts", "whole number"),
    ('[proc.a]\ncmd = "x"\nrestart_window = "soon"\n', 3, "proc.a.restart_window", "duration"),
    ('[proc.a]\ncmd = "x"\nbackoff = "1s"\n', 3, "proc.a.backoff", "MIN..MAX"),
    ('[proc.a]\ncmd = "x"\nbackoff = "9s..1s"\n', 3, "proc.a.backoff", "less than MIN"),
    ('[proc.a]\ncmd = "x"\nlog_max_bytes = 10\n', 3, "proc.a.log_max_bytes", "at least 4096"),
    ('[proc.a]\ncmd = "x"\nenv = { "A=B" = "c" }\n', 3, "proc.a.env", "without '='"),
    ('[proc.a]\ncmd = "x"\nenv = { A = 1 }\n', 3, "proc.a.env", "A: must be a string"),
    ('[proc.a]\ncmd = "x"\n[[proc.a.alert]]\nif = "cpu >"\n', 3, "proc.a.alert", "[0]: condition"),
    ('[proc.a]\ncmd = "x"\n[[proc.a.alert]]\nwhen = "x"\n', 3, "proc.a.alert", "[0]: must be"),
    (
        '[proc.a]\ncmd = "x"\n[[proc.a.alert]]\nif = "cpu > 1%"\nthen = "explode"\n',
        3,
        "proc.a.alert",
        "[0]: action",
    ),
    ('[proc.123]\ncmd = "x"\n', 1, "", "proc.123: a name is never all digits"),
    ('[proc."a b"]\ncmd = "x"\n', 1, "", "proc.a b: must be at most 64 of letters"),
    ('[proc]\na = "x"\n', 2, "", "proc.a: must be a table"),
    ('[procs.a]\ncmd = "x"\n', 1, "procs", "unknown table"),
    ("# nothing\n", None, "proc", "declares no program"),
    ('[proc.a]\ncmd = "x"\ncmd = "y"\n', 3, "", "not valid TOML"),
    ('[proc.a]\ncmd = "x\n', 2, "", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "line", "key", "reason"), BAD)
def test_a_bad_file_is_refused_with_its_line_and_key(
    text: str, line: int | None, key: str, reason: str
) -> None:
    with pytest.raises(ProcFileError) as caught:
        parse_procfile(text, "my.toml", "/base")
    e = caught.value
    assert (e.file, e.line, e.key) == ("my.toml", line, key), str(e)
    assert reason in e.reason, str(e)
    where = "my.toml" if line is None else f"my.toml:{line}"
    assert str(e) == (f"{where}: {key}: {e.reason}" if key else f"{where}: {e.reason}")


def test_a_file_that_cannot_be_read_or_decoded_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(ProcFileError, match=r"missing\.toml: No such file or directory$"):
        read_procfile(str(tmp_path / "missing.toml"))
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[proc.a]\ncmd = "caf\xe9"\n')
    with pytest.raises(ProcFileError, match=r"latin\.toml:2: not UTF-8 text$"):
        read_procfile(str(latin))
    good = tmp_path / "sub" / "goproc.toml"
    good.parent.mkdir()
    good.write_text('[proc.a]\ncmd = "sleep 1"\ncwd = ".."\n')
    assert read_procfile(str(good)) == [Program(name="a", argv=("sleep", "1"), cwd=str(tmp_path))]


# ---- any declared set, written and read back ----------------------------------------------

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,15}", fullmatch=True)
words = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=1)
labels = st.text(
    st.characters(blacklist_categories=["Cc", "Cs"], blacklist_characters=","), max_size=64
).filter(lambda t: "\x85" not in t and not any(0x80 <= ord(c) <= 0x9F for c in t))


@st.composite
def programs(draw: st.DrawFn) -> list[Program]:
    out = []
    for name in draw(st.lists(names, min_size=1, max_size=4, unique=True)):
        tags = draw(st.lists(labels, max_size=3))
        out.append(
            Program(
                name=name,
                argv=tuple(draw(st.lists(words, min_size=1, max_size=4))),
                cwd="/base",
                env=tuple(draw(st.dictionaries(names, words, max_size=3)).items()),
                tags=tuple(t.strip() for t in tags if t.strip()),
                restart=draw(st.sampled_from(RESTARTS)),
                max_restarts=draw(st.none() | st.integers(1, 1_000_000)),
            )
        )
    return out


def toml_value(value: object) -> str:
    """`value` as TOML: JSON's strings are TOML's basic strings, but for DEL, which TOML
    wants escaped, and surrogate pairs, which it does not read."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_of(progs: list[Program]) -> tuple[str, dict[tuple[str, str], int]]:
    """The TOML of `progs` (JSON strings are TOML basic strings) and each key's line."""
    rows: list[str] = []
    at: dict[tuple[str, str], int] = {}

    def put(name: str, key: str, value: object) -> None:
        rows.append(f"{key} = {toml_value(value)}")
        at[name, key] = len(rows)

    for p in progs:
        rows.append(f"[proc.{p.name}]")
        put(p.name, "cmd", list(p.argv))
        rows.append(f"env = {{ {', '.join(f'{k} = {toml_value(v)}' for k, v in p.env)} }}")
        at[p.name, "env"] = len(rows)
        put(p.name, "tags", list(p.tags))
        put(p.name, "restart", p.restart)
        if p.max_restarts is not None:
            put(p.name, "max_restarts", p.max_restarts)
        rows.append("")
    return "\n".join(rows), at


@given(programs())
def test_any_declared_set_reads_back_as_written(progs: list[Program]) -> None:
    assert parse_procfile(toml_of(progs)[0], "f.toml", "/base") == progs


BAD_VALUES = {"cmd": [], "env": "x", "tags": ["a,b"], "restart": "no", "max_restarts": -2}


@given(programs(), st.data())
def test_one_bad_value_anywhere_is_found_at_its_line_and_key(
    progs: list[Program], data: st.DataObject
) -> None:
    text, at = toml_of(progs)
    name, key = data.draw(st.sampled_from(sorted(at)))
    rows = text.split("\n")
    rows[at[name, key] - 1] = f"{key} = {json.dumps(BAD_VALUES[key])}"
    with pytest.raises(ProcFileError) as caught:
        parse_procfile("\n".join(rows), "f.toml", "/base")
    assert (caught.value.line, caught.value.key) == (at[name, key], f"proc.{name}.{key}")


def test_the_readmes_process_file_reads() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### A process file", 1)[1]
    text = section.split("```toml\n", 1)[1].split("```", 1)[0]
    web, worker = parse_procfile(text, "goproc.toml", "/here")
    assert (web.name, web.cwd, web.restart, web.backoff) == (
        "web",
        "/here/site",
        "on-failure",
        (1.0, 30.0),
    )
    assert web.alerts[0].rule == "web-mem" and worker.argv[:2] == ("python3", "worker.py")
