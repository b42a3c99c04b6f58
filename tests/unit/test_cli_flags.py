"""How the CLI's flags become the contract's params (`goproc.cli.flags`), and the
leading `--config` of `goproc.cli.app`, on plain values: no daemon, no subprocess."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from goproc import api
from goproc.cli.argv import leading_config
from goproc.cli.flags import Labels, Select, seconds_of, signal_of
from goproc.errors import UsageError


def test_leading_config_is_taken_off_the_front_only() -> None:
    assert leading_config(["--config", "a.json", "ping"]) == (Path("a.json"), ["ping"])
    assert leading_config(["--config=b.json", "list", "--json"]) == (
        Path("b.json"),
        ["list", "--json"],
    )
    assert leading_config(["ping", "--config", "c.json"]) == (None, ["ping", "--config", "c.json"])
    assert leading_config(["--config"]) == (None, ["--config"]), "a usage error for cyclopts"
    assert leading_config(["--config", "a", "--config", "b", "x"]) == (Path("b"), ["x"])


def test_select_gives_only_the_flags_given() -> None:
    assert api.params_json(Select().selector()) == {}
    select = Select(id=[3], tag=["db"], group_all=["prod", "eu"], alive=False, search="")
    assert api.params_json(select.selector()) == {
        "ids": [3],
        "tags_any": ["db"],
        "groups_all": ["prod", "eu"],
        "alive": False,
        "search": "",
    }


def test_a_target_is_an_id_when_it_is_digits_else_a_name() -> None:
    assert api.params_json(Select(id=[1]).selector("7")) == {"ids": [1, 7]}
    assert api.params_json(Select().selector("web-1")) == {"names": ["web-1"]}
    assert api.params_json(Select().selector("²")) == {"names": ["²"]}


def test_targeted_sends_all_only_when_given() -> None:
    assert api.params_json(Select(tag=["t"]).targeted(None, False)) == {"tags_any": ["t"]}
    assert api.params_json(Select().targeted("3", True)) == {"ids": [3], "all": True}


def test_labels_add_one_pid_or_several() -> None:
    assert api.params_json(Labels().add_params([5])) == {"pid": 5}
    labels = Labels(tag=["db"], group=["prod"], name="pg")
    assert api.params_json(labels.add_params([5])) == {
        "pid": 5,
        "tags": ["db"],
        "groups": ["prod"],
        "name": "pg",
    }
    assert api.params_json(Labels(tag=["x"]).add_params([5, 6])) == {
        "pids": [5, 6],
        "tags": ["x"],
    }


def test_signals_are_names_or_numbers_for_the_daemon_to_check() -> None:
    assert signal_of("9") == 9
    # `api.Signal` is typed as an int, but a name is sent as the string typed.
    assert cast(object, signal_of("SIGUSR1")) == "SIGUSR1"
    assert cast(object, signal_of("-1")) == "-1", "the daemon refuses it, with its own message"
    kill = api.KillParams(signal=signal_of("HUP"), timeout=seconds_of("--timeout", "2s"))
    assert api.params_json(kill) == {"signal": "HUP", "timeout": 2.0}
    assert api.params_json(api.KillParams(signal=signal_of("15"))) == {}


def test_durations_are_seconds_or_usage_errors() -> None:
    assert seconds_of("--timeout", "1m30s") == 90.0
    assert seconds_of("--timeout", "0s") == 0.0
    with pytest.raises(UsageError, match=r"^--timeout: "):
        seconds_of("--timeout", "soon")
    with pytest.raises(UsageError, match="must not be negative"):
        seconds_of("--timeout", "-1s")
