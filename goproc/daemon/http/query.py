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


def without_cmd(entry: dict[str, Any]) -> dict[str, Any]:
    return {**entry, "cmd": None}


def hide_cmd_in_entries(body: bytes) -> bytes:
    """An array of entries with each `cmd` null."""
    return dumps([without_cmd(e) for e in json.loads(body)])


def hide_cmd_in_event(params: bytes) -> bytes:
    """An event's params with its entry's `cmd` null (an overflow has no entry)."""
    value = json.loads(params)
    if isinstance(value.get("proc"), dict):
        value["proc"] = without_cmd(value["proc"])
    return dumps(value)
