"""JSON-RPC 2.0 over lines, without I/O: decode a line, validate requests, structure
params, encode results and errors.

The daemon's server only moves lines; everything it says is decided here.
`error_object` is the one place where an exception becomes a JSON-RPC error.
`make_converter` is the one cattrs converter factory: every hook lives there.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, NewType, TypeVar

import attrs
import cattrs
from attrs import frozen
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.v import transform_error

from goproc.errors import (
    INTERNAL_ERROR,
    GoprocError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ParseError,
)
from goproc.model import NAME_RE, NAME_RULE, Change, Proc

log = logging.getLogger("goproc.protocol")

T = TypeVar("T")
JsonId = int | float | str | None

# Value types with their own validation on the way in (see make_converter).
Pid = NewType("Pid", int)
ProcId = NewType("ProcId", int)
Name = NewType("Name", str)
Label = NewType("Label", str)
Signal = NewType("Signal", int)  # on the wire: a name ("TERM", "SIGKILL") or a number
Seconds = NewType("Seconds", float)  # on the wire: a number of seconds >= 0

PID_MAX = 2**31 - 1  # pid_t is a signed 32-bit integer
ID_MAX = 2**63 - 1


# ---- timestamps ------------------------------------------------------------------------


def format_time(ts: float) -> str:
    """Seconds since the epoch as an RFC 3339 UTC string with microseconds."""
    text: str = datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def parse_time(value: object) -> float:
    if not isinstance(value, str):
        raise _Invalid(f"must be an RFC 3339 timestamp string, got {_show(value)}")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise _Invalid(f"must be an RFC 3339 timestamp, got {_show(value)}") from None
    if dt.tzinfo is None:
        raise _Invalid(f"must carry a time zone (e.g. 'Z'), got {_show(value)}")
    return dt.timestamp()


# ---- the converter ---------------------------------------------------------------------


class _Invalid(ValueError):
    """A value was rejected by a structure hook; the message says what is wrong."""


def _show(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, float | int | str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _int_in(lo: int, hi: int, what: str) -> Callable[[Any, Any], int]:
    def hook(value: Any, _: Any) -> int:
        if type(value) is not int:
            raise _Invalid(f"must be {what}, got {_show(value)}")
        if not lo <= value <= hi:
            raise _Invalid(f"must be {what} (from {lo} to {hi}), got {value}")
        return value

    return hook


def _str(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be a string, got {_show(value)}")
    return value


def _name(value: Any, _: Any) -> str:
    text = _str(value, _)
    if not NAME_RE.fullmatch(text):
        raise _Invalid(f"must be {NAME_RULE}, got {_show(text)}")
    return text


def _signal(value: Any, _: Any) -> int:
    import signal

    if type(value) is int:
        valid = set(signal.valid_signals())
        if value in valid and value != 0:
            return value
        raise _Invalid(f"must be a signal number or name, got {value}")
    if isinstance(value, str):
        name = value.strip().upper()
        name = name if name.startswith("SIG") else "SIG" + name
        sig = getattr(signal.Signals, name, None) if name.isidentifier() else None
        if isinstance(sig, signal.Signals):
            return int(sig)
        raise _Invalid(f"must be a signal name like TERM or KILL, got {_show(value)}")
    raise _Invalid(f"must be a signal name or number, got {_show(value)}")


def _seconds(value: Any, _: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise _Invalid(f"must be a number of seconds, got {_show(value)}")
    if not 0 <= value <= 86400:
        raise _Invalid(f"must be from 0 to 86400 seconds, got {value}")
    return float(value)


def _bool(value: Any, _: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"must be true or false, got {_show(value)}")
    return value


def make_converter(*, detailed: bool = True) -> cattrs.Converter:
    """The converter for the wire and the snapshot.  Encodings:

    - timestamps (`started_at`, `added_at`, `last_seen`, `exited_at`): RFC 3339 UTC strings
      (`exited_at` may be null; a snapshot entry without it loads as null);
    - tuples: JSON arrays, and only arrays are accepted (a string is not a list of chars);
    - int, str, bool: exactly that JSON type (no `true` for 1, no `1.5` for 1);
    - Pid: 1..2**31-1; ProcId: 1..2**63-1; Name: `NAME_RE`; Label (tag/group): a string;
    - Signal: a name ("TERM", "SIGKILL", any case) or a valid number; Seconds: 0..86400;
    - unknown keys in an object are refused (`forbid_extra_keys`).
    Structuring failures raise cattrs' ClassValidationError; `invalid_params` words them.
    `detailed=False` gives the same rules with terse errors, faster: for loading our
    own snapshot, where a failure only needs to say "unreadable".
    """
    c = cattrs.Converter(forbid_extra_keys=True, detailed_validation=detailed)
    c.register_structure_hook(int, _int_in(-ID_MAX, ID_MAX, "an integer"))
    c.register_structure_hook(Pid, _int_in(1, PID_MAX, "a positive integer pid"))
    c.register_structure_hook(ProcId, _int_in(1, ID_MAX, "a positive integer id"))
    c.register_structure_hook(str, _str)
    c.register_structure_hook(Label, _str)
    c.register_structure_hook(Name, _name)
    c.register_structure_hook(bool, _bool)
    c.register_structure_hook(Signal, _signal)
    c.register_structure_hook(Seconds, _seconds)

    def tuple_hook(tp: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
        (item_type, _) = tp.__args__
        inner = c.get_structure_hook(item_type)

        plain_str = item_type in (str, Label)

        def structure(value: Any, _: Any) -> tuple[Any, ...]:
            if not isinstance(value, list):
                raise _Invalid(f"must be an array, got {_show(value)}")
            if plain_str and all(type(item) is str for item in value):
                # The common case, checked at once.  Tags and groups repeat across
                # entries: one string object each, not one per entry.
                return tuple(map(sys.intern, value))
            errors: list[Exception] = []
            out = []
            for i, item in enumerate(value):
                try:
                    out.append(inner(item, item_type))
                except Exception as e:
                    e.__notes__ = [
                        *getattr(e, "__notes__", []),
                        IterableValidationNote(f"Structuring {tp} @ index {i}", i, item_type),
                    ]
                    errors.append(e)
            if errors:
                raise IterableValidationError(f"While structuring {tp!r}", errors, tp)
            return tuple(out)

        return structure

    c.register_structure_hook_factory(
        lambda tp: (
            getattr(tp, "__origin__", None) is tuple
            and len(getattr(tp, "__args__", ())) == 2
            and tp.__args__[1] is Ellipsis
        ),
        tuple_hook,
    )

    time_out = override(unstruct_hook=format_time)
    c.register_unstructure_hook(
        Proc,
        make_dict_unstructure_fn(
            Proc,
            c,
            started_at=time_out,
            added_at=time_out,
            last_seen=time_out,
            exited_at=override(unstruct_hook=lambda ts: None if ts is None else format_time(ts)),
            _wire=override(omit=True),
        ),
    )
    time_in = override(struct_hook=lambda value, _: parse_time(value))
    c.register_structure_hook(
        Proc,
        make_dict_structure_fn(
            Proc,
            c,
            _cattrs_forbid_extra_keys=True,
            started_at=time_in,
            added_at=time_in,
            last_seen=time_in,
            exited_at=override(
                struct_hook=lambda value, _: None if value is None else parse_time(value)
            ),
        ),
    )
    return c


CONVERTER = make_converter()
FAST_CONVERTER = make_converter(detailed=False)


def structure_params(params: dict[str, Any] | list[Any], cls: type[T]) -> T:
    """Params object -> typed params; raises InvalidParams naming every bad field."""
    if isinstance(params, list):
        raise InvalidParams("invalid params: params must be an object (by name), not an array")
    try:
        return CONVERTER.structure(params, cls)
    except (ClassValidationError, IterableValidationError) as e:
        raise InvalidParams("invalid params: " + "; ".join(_describe(e)), None) from None


def _describe(exc: BaseException) -> list[str]:
    def fmt(e: BaseException, _type: Any) -> str:
        if isinstance(e, _Invalid):
            return str(e)
        if isinstance(e, KeyError):
            return "is required"
        if isinstance(e, ForbiddenExtraKeysError):
            names = ", ".join(repr(k) for k in sorted(e.extra_fields))
            return f"unknown parameter{'s' if len(e.extra_fields) > 1 else ''} {names}"
        return f"is invalid ({e})"

    out = []
    for line in transform_error(exc, "", fmt):
        text, _, path = line.rpartition(" @ ")
        path = path.lstrip(".")
        out.append(f"{path}: {text}" if path else text)
    return out


def unstructure(value: Any) -> Any:
    return CONVERTER.unstructure(value)


WIRE_KEYS = tuple(f.name for f in attrs.fields(Proc) if f.init)


def proc_json(p: Proc) -> bytes:
    """The entry's JSON, encoded once per entry (entries are immutable): listing or
    snapshotting 100,000 entries joins bytes instead of re-encoding them."""
    wire = p._wire
    if wire is None:
        wire = _dumps(CONVERTER.unstructure(p, Proc))
        object.__setattr__(p, "_wire", wire)  # a cache on a frozen value
    return wire


def remember_json(p: Proc, obj: dict[str, Any], line: bytes) -> None:
    """Keep `line` (the JSON `p` was structured from) as its encoding when it is what
    `proc_json` would make: every field, in order, timestamps in our form."""
    if tuple(obj) == WIRE_KEYS and all(
        obj[k] is None or (len(obj[k]) == 27 and obj[k][-1] == "Z")
        for k in ("started_at", "added_at", "last_seen", "exited_at")
    ):
        object.__setattr__(p, "_wire", line)


@frozen
class RawJSON:
    """A result already encoded (see `proc_json`), in parts that `encode` splices in
    as they are: a reply of 100,000 entries is joined once, not copied again per layer."""

    parts: tuple[bytes, ...]


def procs_json(procs: list[Proc]) -> RawJSON:
    """An array of entries as parts `[`, p1, `,`, p2, ..., `]`: joined once, by `encode`."""
    if not procs:
        return RawJSON((b"[]",))
    parts = [b","] * (2 * len(procs) + 1)
    parts[0], parts[-1] = b"[", b"]"
    parts[1:-1:2] = [proc_json(p) for p in procs]
    return RawJSON(tuple(parts))


def change_to_json(change: Change) -> dict[str, Any]:
    out: dict[str, Any] = {"next_id": change.next_id}
    if change.reset:
        out["reset"] = True
    if change.put:
        out["put"] = [CONVERTER.unstructure(p, Proc) for p in change.put]
    if change.deleted:
        out["deleted"] = list(change.deleted)
    return out


def change_line(change: Change) -> bytes:
    """A journal record: `change_to_json` as one line, its entries spliced in from their
    cached encoding (the reply to the same request reuses it)."""
    head: dict[str, Any] = {"next_id": change.next_id}
    if change.reset:
        head["reset"] = True
    if change.deleted:
        head["deleted"] = list(change.deleted)
    parts = [_dumps(head)[:-1]]
    if change.put:
        parts += [b',"put":[', b",".join(map(proc_json, change.put)), b"]"]
    parts.append(b"}\n")
    return b"".join(parts)


def change_from_json(obj: Any) -> Change:
    return CONVERTER.structure(obj, Change)


# ---- requests and responses ------------------------------------------------------------


@frozen
class Request:
    method: str
    params: dict[str, Any] | list[Any]
    id: JsonId
    notification: bool


_REQUEST_KEYS = frozenset({"jsonrpc", "method", "params", "id"})


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def decode_line(line: bytes) -> Any:
    """One request line -> a JSON value; raises ParseError (-32700)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError(f"parse error: request is not valid UTF-8 (byte {e.start})") from None
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise ParseError("parse error: JSON nested too deeply") from None
    except ValueError as e:
        raise ParseError(f"parse error: {e}") from None


def parse_request(obj: Any) -> Request:
    """A decoded JSON value -> Request; raises InvalidRequest (-32600)."""
    if not isinstance(obj, dict):
        raise InvalidRequest(f"invalid request: must be a JSON object, got {_kind(obj)}")
    if obj.get("jsonrpc") != "2.0":
        raise InvalidRequest('invalid request: "jsonrpc" must be "2.0"')
    method = obj.get("method")
    if not isinstance(method, str):
        raise InvalidRequest('invalid request: "method" must be a string')
    request_id = obj.get("id")
    if "id" in obj and not _valid_id(request_id):
        raise InvalidRequest('invalid request: "id" must be a string, a number or null')
    extra = sorted(set(obj) - _REQUEST_KEYS)
    if extra:
        raise InvalidRequest(f"invalid request: unknown member {', '.join(map(repr, extra))}")
    params = obj.get("params", {})
    if not isinstance(params, dict | list):
        raise InvalidRequest('invalid request: "params" must be an object')
    # Array params are a valid request (and a notification stays a notification);
    # `structure_params` refuses them, since every goproc parameter is by name.
    return Request(method=method, params=params, id=request_id, notification="id" not in obj)


def _valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, int | float | str) and not isinstance(value, bool))


def _kind(obj: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(obj), "a number"
    )


def error_object(exc: BaseException) -> dict[str, Any]:
    """The one mapping from exceptions to JSON-RPC error objects.  A GoprocError carries
    its code and a message fit for the client; anything else is a bug: logged with its
    traceback here, reported to the client as -32603 without one."""
    if isinstance(exc, GoprocError):
        err: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if exc.data is not None:
            err["data"] = exc.data
        return err
    log.error("internal error", exc_info=exc)
    return {"code": INTERNAL_ERROR, "message": f"internal error: {type(exc).__name__}"}


def error_response(request_id: JsonId, exc: BaseException) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": error_object(exc)}


def result_response(request_id: JsonId, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def encode(message: Any) -> bytes:
    """A response (or a batch of them) -> one line.  ASCII with escapes: any string a
    client sent (lone surrogates included) or a process reported (non-UTF-8 argv comes
    as surrogate escapes) has a valid encoding."""
    return b"".join(encode_parts(message))


def encode_parts(message: Any) -> list[bytes]:
    """`encode` in pieces whose concatenation is the line: a reply of 100,000 cached
    entries can be sent a slice at a time, never copied whole."""
    if isinstance(message, list):
        parts = [b"["]
        for n, one in enumerate(message):
            if n:
                parts.append(b",")
            parts += _encode_one(one)
        parts.append(b"]\n")
    else:
        parts = [*_encode_one(message), b"\n"]
    return parts


def _encode_one(message: Any) -> list[bytes]:
    result = message.get("result") if isinstance(message, dict) else None
    if isinstance(result, RawJSON):
        head = _dumps({k: v for k, v in message.items() if k != "result"})
        return [head[:-1], b',"result":', *result.parts, b"}"]
    return [_dumps(message)]


def _dumps(value: Any) -> bytes:
    return _ENCODER.encode(value).encode()


Dispatch = Callable[[Request], Awaitable[Any]]


async def respond(obj: Any, dispatch: Dispatch) -> dict[str, Any] | None:
    """Answer one decoded request object: the response, or None for a notification."""
    try:
        req = parse_request(obj)
    except GoprocError as e:
        salvaged = obj.get("id") if isinstance(obj, dict) and _valid_id(obj.get("id")) else None
        return error_response(salvaged, e)
    try:
        result = await dispatch(req)
    except Exception as e:
        response = error_response(req.id, e)
    else:
        response = result_response(req.id, result)
    return None if req.notification else response


async def respond_line(line: bytes, dispatch: Dispatch) -> bytes | None:
    """Answer one request line (a request or a batch): the reply line, or None when
    nothing is to be sent (notifications only)."""
    parts = await respond_parts(line, dispatch)
    return None if parts is None else b"".join(parts)


async def respond_parts(line: bytes, dispatch: Dispatch) -> list[bytes] | None:
    """`respond_line` in pieces (see `encode_parts`)."""
    try:
        obj = decode_line(line)
    except ParseError as e:
        return encode_parts(error_response(None, e))
    if isinstance(obj, list):
        if not obj:
            empty = InvalidRequest("invalid request: empty batch")
            return encode_parts(error_response(None, empty))
        replies = [r for item in obj if (r := await respond(item, dispatch)) is not None]
        return encode_parts(replies) if replies else None
    reply = await respond(obj, dispatch)
    return None if reply is None else encode_parts(reply)


def method_not_found(method: str) -> MethodNotFound:
    return MethodNotFound(f"method not found: {method!r}")
