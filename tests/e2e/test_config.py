"""Configuration: Go duration syntax, the JSON config file, `GOPROC_*` overrides.

Unit tests of `parse_duration` and `load_config`, then real daemons showing that the
values take effect (sweep counts and `last_seen` are what a user can observe), that a
bad environment value is ignored with one warning, and that a bad file stops the start
with a message naming the file and the key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon
from helpers import wait_until

from goproc.config import Config, load_config
from goproc.durations import parse_duration
from goproc.errors import ConfigError

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "config.example.json"
LIVENESS_VAR = "GOPROC_LIVENESS_INTERVAL"
LAST_SEEN_VAR = "GOPROC_LAST_SEEN_INTERVAL"


def write_config(tmp_path: Path, content: Any, raw: bool = False) -> Path:
    path = tmp_path / "goproc.json"
    path.write_text(content if raw else json.dumps(content))
    return path


# ---- parse_duration --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("15s", 15.0),
        ("2m", 120.0),
        ("1h30m", 5400.0),
        ("1h2m3s4ms", 3723.004),
        ("1.5h", 5400.0),
        (".5s", 0.5),
        ("300us", 300e-6),
        ("300µs", 300e-6),
        ("7ns", 7e-9),
        ("0", 0.0),
        ("0s", 0.0),
        ("-1s", -1.0),
        ("+2s", 2.0),
    ],
)
def test_parse_duration_accepts_go_syntax(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "10", "s", "ms", "1x", "1S", "1 s", "1h 30m", "abc", "1.2.3s", "1s1", "--1s", "-"]
)
def test_parse_duration_rejects_invalid(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


# ---- load_config -----------------------------------------------------------------------


def test_load_config_defaults() -> None:
    config = load_config(None, environ={})
    assert (config.liveness_interval, config.last_seen_interval) == (10.0, 30.0)


def test_load_config_reads_file_durations(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"liveness_interval": "250ms", "last_seen_interval": "1h30m"})
    config = load_config(path, environ={})
    assert (config.liveness_interval, config.last_seen_interval) == (0.25, 5400.0)


def test_load_config_env_overrides_file_and_default(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"liveness_interval": "250ms", "last_seen_interval": "15s"})
    config = load_config(path, environ={LIVENESS_VAR: "2m"})
    assert (config.liveness_interval, config.last_seen_interval) == (120.0, 15.0)
    config = load_config(None, environ={LAST_SEEN_VAR: "1h30m"})
    assert (config.liveness_interval, config.last_seen_interval) == (10.0, 5400.0)


@pytest.mark.parametrize("value", ["banana", "10", "0", "0s", "-3s"])
@pytest.mark.parametrize("var", [LIVENESS_VAR, LAST_SEEN_VAR])
def test_load_config_invalid_env_ignored_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], var: str, value: str
) -> None:
    path = write_config(tmp_path, {"liveness_interval": "2m", "last_seen_interval": "15s"})
    config = load_config(path, environ={var: value})
    assert (config.liveness_interval, config.last_seen_interval) == (120.0, 15.0)
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert var in err and value in err


@pytest.mark.parametrize(
    ("content", "key"),
    [
        ({"liveness_interval": "soon"}, "liveness_interval"),
        ({"last_seen_interval": "10"}, "last_seen_interval"),
        ({"liveness_interval": "0s"}, "liveness_interval"),
        ({"last_seen_interval": "-5s"}, "last_seen_interval"),
        ({"liveness_interval": 10}, "liveness_interval"),
        ({"liveness_interval": "1s", "livenes_interval": "1s"}, "livenes_interval"),
    ],
)
def test_load_config_bad_file_names_file_and_key(tmp_path: Path, content, key: str) -> None:
    path = write_config(tmp_path, content)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(path) in str(info.value) and key in str(info.value)


@pytest.mark.parametrize("text", ["{not json", "", '["a list"]', "\xff"])
def test_load_config_not_a_json_object_names_file(tmp_path: Path, text: str) -> None:
    path = write_config(tmp_path, text, raw=True)
    with pytest.raises(ConfigError, match="config") as info:
        load_config(path, environ={})
    assert str(path) in str(info.value)


def test_load_config_missing_file_names_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.json", environ={})
    assert str(tmp_path / "nope.json") in str(info.value)


def test_config_example_loads_as_is() -> None:
    example = json.loads(EXAMPLE_CONFIG.read_text())
    config = load_config(EXAMPLE_CONFIG, environ={})
    assert isinstance(config, Config)
    assert config.liveness_interval == parse_duration(example["liveness_interval"])
    assert config.last_seen_interval == parse_duration(example["last_seen_interval"])


# ---- real daemons ----------------------------------------------------------------------


def sweeps(d: Daemon) -> int:
    return int(d.call("status")["sweeps"])


def last_seen_moved(d: Daemon, proc_id: int) -> bool:
    [entry] = d.call("list", {"ids": [proc_id]})
    return entry["last_seen"] > entry["added_at"]


def test_daemon_and_cli_accept_go_durations_in_file(spawn_daemon, tmp_path: Path) -> None:
    d = spawn_daemon(config={"liveness_interval": "250ms", "last_seen_interval": "1h30m"})
    wait_until(lambda: sweeps(d) >= 3, timeout=3, what="sweeps every 250ms")
    other = write_config(tmp_path, {"liveness_interval": "15s", "last_seen_interval": "2m"})
    out = d.cli("ping", "--config", str(other))
    assert (out.returncode, out.stdout, out.stderr) == (0, "pong\n", "")
    assert d.stop() == 0


def test_file_durations_take_effect(spawn_daemon, sleeper) -> None:
    d = spawn_daemon(config={"liveness_interval": "100ms", "last_seen_interval": "200ms"})
    entry = d.call("add", {"pid": sleeper().pid})
    wait_until(lambda: sweeps(d) >= 5, timeout=3, what="sweeps every 100ms")
    wait_until(lambda: last_seen_moved(d, entry["id"]), timeout=3, what="last_seen to move")


def test_env_liveness_interval_overrides_file(spawn_daemon) -> None:
    d = spawn_daemon(config={"liveness_interval": "1h"}, env={LIVENESS_VAR: "100ms"})
    wait_until(lambda: sweeps(d) >= 5, timeout=3, what="sweeps every 100ms from the variable")


def test_env_last_seen_interval_overrides_file(spawn_daemon, sleeper) -> None:
    d = spawn_daemon(
        config={"liveness_interval": "100ms", "last_seen_interval": "1h"},
        env={LAST_SEEN_VAR: "200ms"},
    )
    entry = d.call("add", {"pid": sleeper().pid})
    wait_until(lambda: last_seen_moved(d, entry["id"]), timeout=3, what="last_seen to move")


def test_daemon_ignores_invalid_env_with_one_warning(spawn_daemon) -> None:
    d = spawn_daemon(config={"liveness_interval": "100ms"}, env={LIVENESS_VAR: "banana"})
    wait_until(lambda: sweeps(d) >= 5, timeout=3, what="the file's 100ms to stay in force")
    warnings = [line for line in d.log().splitlines() if LIVENESS_VAR in line]
    assert len(warnings) == 1, d.log()
    assert "banana" in warnings[0]


def test_cli_keeps_working_with_invalid_env(daemon: Daemon) -> None:
    out = daemon.cli("ping", env={LIVENESS_VAR: "banana"})
    assert (out.returncode, out.stdout) == (0, "pong\n")
    lines = out.stderr.strip().splitlines()
    assert len(lines) <= 1 and all(LIVENESS_VAR in line and "banana" in line for line in lines)


@pytest.mark.parametrize(
    ("content", "key"),
    [
        ("{not json", None),
        ('{"liveness_interval": "soon"}', "liveness_interval"),
        ('{"last_seen_interval": "0s"}', "last_seen_interval"),
        ('{"liveness_interval": "1s", "colour": "blue"}', "colour"),
    ],
)
def test_daemon_refuses_bad_config_file(spawn_daemon, content: str, key: str | None) -> None:
    d = spawn_daemon(start=False)
    d.config_path = d.root / "bad-config.json"
    d.config_path.write_text(content)
    d.start(wait=False)
    assert d.proc.wait(15) != 0
    log = d.log()
    assert "Traceback" not in log
    assert str(d.config_path) in log
    if key is not None:
        assert key in log
    assert not d.socket.exists()


# ---- floors and exact values ------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("liveness_interval", "1ns", "must be at least 100ms"),
        ("liveness_interval", "99ms", "must be at least 100ms"),
        ("last_seen_interval", "1us", "must be at least 100ms"),
        ("idle_timeout", "10ms", "must be at least 100ms"),
        ("send_timeout", "0.05s", "must be at least 100ms"),
        ("snapshot_delay", "1us", "must be at least 1ms"),
        ("journal_sync_interval", "500us", "must be at least 1ms"),
        ("liveness_interval", " 1s", "must not have spaces around it"),
        ("snapshot_delay", "1s\n", "must not have spaces around it"),
    ],
)
def test_a_duration_below_its_floor_or_padded_is_a_config_error(
    tmp_path: Path, key: str, value: str, why: str
) -> None:
    """A 1ns liveness interval made the daemon spin at 100% CPU; `" 1s"` was taken."""
    path = write_config(tmp_path, {key: value})
    with pytest.raises(ConfigError) as e:
        load_config(path, environ={})
    assert str(e.value) == f"config {path}: key {key!r}: {why}, got {value!r}"


def test_the_floors_themselves_are_accepted(tmp_path: Path) -> None:
    floors = {"liveness_interval": "100ms", "snapshot_delay": "1ms", "idle_timeout": "100ms"}
    config = load_config(write_config(tmp_path, floors), environ={})
    assert (config.liveness_interval, config.snapshot_delay, config.idle_timeout) == (
        0.1,
        0.001,
        0.1,
    )


def test_a_variable_below_the_floor_is_ignored_with_a_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = load_config(None, environ={LIVENESS_VAR: "1ns"})
    assert config.liveness_interval == 10.0
    err = capsys.readouterr().err
    assert err == (
        f"goproc: warning: ignoring {LIVENESS_VAR}='1ns': must be at least 100ms, got '1ns'\n"
    )


def test_the_daemon_refuses_a_spinning_liveness_interval_in_one_line(spawn_daemon) -> None:
    d = spawn_daemon(config={"liveness_interval": "1ns"}, start=False)
    d.start(wait=False)
    assert d.proc.wait(15) == 2
    lines = d.log().splitlines()
    assert lines == [
        f"goproc: config {d.config_path}: key 'liveness_interval': must be at least 100ms, "
        "got '1ns'"
    ]


# ---- metrics_interval: a duration that may also be off --------------------------------

METRICS_VAR = "GOPROC_METRICS_INTERVAL"


def test_metrics_settings_default_to_2s_and_300() -> None:
    config = load_config(None, environ={})
    assert (config.metrics_interval, config.metrics_history) == (2.0, 300)


@pytest.mark.parametrize(("value", "seconds"), [("off", 0.0), ("0", 0.0), (0, 0.0), ("100ms", 0.1)])
def test_metrics_interval_in_the_file(tmp_path: Path, value: object, seconds: float) -> None:
    path = write_config(tmp_path, {"metrics_interval": value, "metrics_history": 10})
    config = load_config(path, environ={})
    assert (config.metrics_interval, config.metrics_history) == (seconds, 10)


@pytest.mark.parametrize("value", ["99ms", "0s", "-1s", "on", 1, True])
def test_metrics_interval_below_100ms_or_not_a_duration_is_refused(
    tmp_path: Path, value: object
) -> None:
    path = write_config(tmp_path, {"metrics_interval": value})
    with pytest.raises(ConfigError, match="metrics_interval"):
        load_config(path, environ={})


def test_metrics_interval_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, {"metrics_interval": "5s"})
    assert load_config(path, environ={METRICS_VAR: "off"}).metrics_interval == 0.0
    assert load_config(path, environ={METRICS_VAR: "250ms"}).metrics_interval == 0.25
    assert load_config(path, environ={METRICS_VAR: "1ms"}).metrics_interval == 5.0
    err = capsys.readouterr().err
    assert METRICS_VAR in err and "1ms" in err
