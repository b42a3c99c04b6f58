"""The HTTP listener's pure parts: `http_listen` values, the exposure rule, query
strings read as selectors, the bearer token check and what `http_show_cmd` hides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from goproc.config import (
    Config,
    check_http_exposure,
    http_address,
    is_local,
    load_config,
    with_http,
)
from goproc.daemon.http.query import (
    authorized,
    selector_of,
    shown_entries,
    shown_event,
)
from goproc.errors import ConfigError, InvalidValue
from goproc.model import Selector

GOOD = ["127.0.0.1:0", "127.0.0.1:8080", "[::1]:65535", "0.0.0.0:80", "[::]:1", "unix:/run/x"]
BAD = [
    "localhost:80",
    "127.0.0.1",
    "127.0.0.1:65536",
    "127.0.0.1:080",
    "127.0.0.1:+80",
    " 127.0.0.1:80",
    "::1:80",
    "[127.0.0.1]:80",
    "300.1.1.1:80",
    "unix:",
    "unix:rel",
    "unix:/dir/",
    "http://127.0.0.1:80",
    "unix:/" + "x" * 200,
]


@pytest.mark.parametrize("value", GOOD)
def test_good_addresses(value: str) -> None:
    assert http_address(value) == value


@pytest.mark.parametrize("value", [*BAD, 8080, None])
def test_bad_addresses(value: object) -> None:
    with pytest.raises(ValueError):
        http_address(value)


@pytest.mark.parametrize(
    ("value", "local"),
    [
        ("127.0.0.1:1", True),
        ("127.9.9.9:1", True),
        ("[::1]:1", True),
        ("unix:/a", True),
        ("0.0.0.0:1", False),
        ("[::]:1", False),
        ("192.0.2.1:1", False),
    ],
)
def test_is_local(value: str, local: bool) -> None:
    assert is_local(value) is local


def test_exposure_needs_a_token() -> None:
    check_http_exposure(Config())
    check_http_exposure(Config(http_listen="127.0.0.1:1"))
    check_http_exposure(Config(http_listen="0.0.0.0:1", http_token="t"))
    with pytest.raises(ConfigError, match="http_token"):
        check_http_exposure(Config(http_listen="0.0.0.0:1"))
    with pytest.raises(ConfigError, match="--http"):
        with_http(Config(), "nowhere")
    assert with_http(Config(), "[::1]:0").http_listen == "[::1]:0"


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"http_listen": "x"}, "http_listen"),
        ({"http_token": ""}, "http_token"),
        ({"http_token": "a b"}, "http_token"),
        ({"http_token": 5}, "http_token"),
        ({"http_show_cmd": "no"}, "http_show_cmd"),
    ],
)
def test_bad_file_values_name_the_key(tmp_path: Path, config: dict[str, object], key: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=f"key '{key}'"):
        load_config(path, environ={})


def test_file_values(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps({"http_listen": "unix:/a/b", "http_token": "t0k", "http_show_cmd": False})
    )
    config = load_config(path, environ={})
    assert (config.http_listen, config.http_token, config.http_show_cmd) == (
        "unix:/a/b",
        "t0k",
        False,
    )
    assert Config().http_listen is None and Config().http_show_cmd is True


def test_query_to_selector() -> None:
    assert selector_of(b"") == Selector()
    got = selector_of(b"ids=1,2&ids=3&tags_all=a&tags_all=b,c&alive=false&search=x%2Cy")
    assert got == Selector(ids=(1, 2, 3), tags_all=("a", "b", "c"), alive=False, search="x,y")
    assert selector_of(b"names=a%20b").names == ("a b",)


@pytest.mark.parametrize(
    ("query", "named"),
    [
        (b"ids=a", "ids"),
        (b"pids=1.5", "pids"),
        (b"alive=1", "alive"),
        (b"search=a&search=b", "search"),
        (b"other=1", "other"),
        (b"tags_any=", "tags_any"),
        (b"ids=\xff", "ASCII"),
    ],
)
def test_bad_queries(query: bytes, named: str) -> None:
    with pytest.raises(InvalidValue, match=named):
        selector_of(query)


def test_search_is_refused_when_cmd_is_hidden() -> None:
    with pytest.raises(InvalidValue, match="search"):
        selector_of(b"search=x", show_cmd=False)
    assert selector_of(b"ids=1", show_cmd=False) == Selector(ids=(1,))


def test_authorized() -> None:
    assert authorized([], None)
    assert authorized([(b"authorization", b"Bearer t")], "t")
    assert authorized([(b"Authorization", b"Bearer t")], "t")
    assert not authorized([], "t")
    assert not authorized([(b"authorization", b"Bearer u")], "t")
    assert not authorized([(b"authorization", b"bearer t")], "t")
    assert not authorized([(b"authorization", b"Bearer t")] * 2, "t")


def test_hiding_cmd_and_a_started_commands_environment() -> None:
    entries = b'[{"id":1,"cmd":"secret --pw x","spawned":null},{"id":2,"cmd":"y"}]'
    assert shown_entries(entries, show_cmd=True) is entries  # nothing to hide: as it is
    assert json.loads(shown_entries(entries, show_cmd=False)) == [
        {"id": 1, "cmd": None, "spawned": None},
        {"id": 2, "cmd": None},
    ]
    started = b'[{"id":3,"cmd":"a b","spawned":{"argv":["a","b"],"env":["KEY=s3cret"],"cwd":"/"}}]'
    assert json.loads(shown_entries(started, show_cmd=True)) == [
        {"id": 3, "cmd": "a b", "spawned": {"argv": ["a", "b"], "env": None, "cwd": "/"}}
    ]
    assert json.loads(shown_entries(started, show_cmd=False)) == [
        {"id": 3, "cmd": None, "spawned": {"argv": None, "env": None, "cwd": "/"}}
    ]
    event = b'{"kind":"added","proc":{"id":1,"cmd":"secret"}}'
    assert shown_event(event, show_cmd=True) is event
    hidden = {"kind": "added", "proc": {"id": 1, "cmd": None}}
    assert json.loads(shown_event(event, show_cmd=False)) == hidden
    restarted = b'{"kind":"restarted","proc":{"id":1,"cmd":"x","spawned":{"env":["A=1"]}}}'
    assert b"A=1" not in shown_event(restarted, show_cmd=True)
    overflow = b'{"kind":"overflow","dropped_after":3}'
    assert json.loads(shown_event(overflow, show_cmd=False)) == json.loads(overflow)
