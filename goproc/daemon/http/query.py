"""Pure helpers of the HTTP listener: a query string read as a `Selector` (structured
by the socket's converter, so a bad value reads as it does there), the bearer token
check, and the rewrite that hides `cmd` when `http_show_cmd` is false.  No I/O."""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from goproc.api import HistoryParams
from goproc.errors import InvalidValue
from goproc.model import Selector
from goproc.rpc.convert import structure_params
from goproc.rpc.entries import dumps

LIST_KEYS = ("ids", "pids", "names", "tags_any", "tags_all", "groups_any", "groups_all")
INT_KEYS = ("ids", "pids")
MAX_QUERY_BYTES = 16 * 1024  # hypercorn bounds the whole request head the same way


def selector_of(query: bytes, *, show_cmd: bool = True) -> Selector:
    """The selector a query string gives: each list key as comma lists or repeated
    (`ids=1,2&ids=3`), `alive=true|false`, `search` once.  Raises InvalidValue naming
    the parameter.  Without `show_cmd`, `search` (a probe of the hidden `cmd`) is
    refused."""
    return structure_params(_params(query, show_cmd), Selector)


def history_params_of(query: bytes, *, show_cmd: bool = True) -> HistoryParams:
    """`/api/history`'s query: a selector as `selector_of` reads it, and `since` (an
    RFC 3339 time), as `metrics.history` takes them."""
    return structure_params(_params(query, show_cmd), HistoryParams)


def _params(query: bytes, show_cmd: bool) -> dict[str, Any]:
    if len(query) > MAX_QUERY_BYTES:
        raise InvalidValue(f"the query string is longer than {MAX_QUERY_BYTES} bytes")
    try:
        pairs = parse_qsl(query.decode("ascii"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise InvalidValue("the query string must be ASCII (percent-encode the rest)") from None
    params: dict[str, Any] = {}
    for key, value in pairs:
        if key in LIST_KEYS:
            items: list[Any] = params.setdefault(key, [])
            items.extend(_item(key, part) for part in value.split(","))
        elif key in params:
            raise InvalidValue(f"{key}: give it once")
        elif key == "alive":
            params[key] = {"true": True, "false": False}.get(value, value)
        else:
            params[key] = value
    if not show_cmd and "search" in params:
        raise InvalidValue("search: not available while http_show_cmd is false")
    return params


def _item(key: str, part: str) -> Any:
    """An id or pid as a number when it is one; anything else is left for the
    converter to refuse with its own words."""
    if key in INT_KEYS and part.isascii() and part.lstrip("-").isdigit():
        return int(part)
    return part


def authorized(headers: Iterable[tuple[bytes, bytes]], token: str | None) -> bool:
    """Whether the request may be answered: no token is set, or its `Authorization`
    header is `Bearer TOKEN` (compared in constant time)."""
    if token is None:
        return True
    expected = b"Bearer " + token.encode("ascii")
    given = [v for k, v in headers if k.lower() == b"authorization"]
    return len(given) == 1 and hmac.compare_digest(given[0], expected)


def shown_entry(entry: dict[str, Any], show_cmd: bool) -> dict[str, Any]:
    """An entry as HTTP shows it: the environment of a command the daemon started
    never (it can hold secrets), its command line (`cmd`, `spawned.argv`) only with
    `show_cmd`."""
    out = dict(entry)
    if not show_cmd:
        out["cmd"] = None
    spawned = entry.get("spawned")
    if isinstance(spawned, dict):
        out["spawned"] = {**spawned, "env": None, **({} if show_cmd else {"argv": None})}
    return out


def _plain(body: bytes, show_cmd: bool) -> bool:
    """Whether `body` needs nothing hidden: commands may be shown and no entry in it
    was started by the daemon (the common case is not parsed again)."""
    return show_cmd and b'"spawned":{' not in body


def shown_entries(body: bytes, show_cmd: bool) -> bytes:
    """An array of entries (the `list` result's bytes) as HTTP shows them."""
    if _plain(body, show_cmd):
        return body
    return dumps([shown_entry(e, show_cmd) for e in json.loads(body)])


def shown_event(params: bytes, show_cmd: bool) -> bytes:
    """An event's params with its entry as HTTP shows it (an overflow has no entry)."""
    if _plain(params, show_cmd):
        return params
    value = json.loads(params)
    if isinstance(value.get("proc"), dict):
        value["proc"] = shown_entry(value["proc"], show_cmd)
    return dumps(value)
