"""JSON-RPC 2.0 over lines, without I/O: decode a line, validate the envelope, encode
replies, and map every exception to a JSON-RPC error.  No trio.

The daemon's server only moves lines; what it answers is decided here and by the
dispatch callable it is given.  `error_object` is the one place where an exception
becomes a JSON-RPC error, and the one place that writes the `invalid params: ` prefix.
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import math
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Iterator
from typing import Any

from attrs import frozen

from goproc.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    GoprocError,
    InvalidRequest,
    MethodNotFound,
    ParseError,
    TooManyConnections,
)
from goproc.rpc.entries import Part, RawJSON, dumps, read_parts

log = logging.getLogger("goproc.rpc")

JsonId = int | float | str | None
INVALID_PARAMS_PREFIX = "invalid params: "


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
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # JSON's own


def _skip_space(text: str, idx: int) -> int:
    match = _WHITESPACE.match(text, idx)
    return idx if match is None else match.end()


def decode_line(line: bytes, max_batch: int | None = None) -> Any:
    """One request line -> a JSON value; raises ParseError (-32700), or InvalidRequest
    (-32600) for a batch of more than `max_batch` requests, found before the rest of
    the line is decoded (24,000 small requests in 1 MiB take 50 ms or more to decode)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError(f"parse error: request is not valid UTF-8 (byte {e.start})") from None
    try:
        start = _skip_space(text, 0)
        if max_batch is not None and text.startswith("[", start):
            return _decode_batch(text, start + 1, max_batch)
        return _DECODER.decode(text)
    except RecursionError:
        raise ParseError("parse error: JSON nested too deeply") from None
    except ValueError as e:
        raise ParseError(f"parse error: {e}") from None


def _decode_batch(text: str, idx: int, max_batch: int) -> list[Any]:
    """The array that starts just before `idx`, one element at a time, as the decoder
    would read it; stops at element `max_batch + 1`."""
    items: list[Any] = []
    idx = _skip_space(text, idx)
    if text.startswith("]", idx):
        idx += 1
    else:
        while True:
            if len(items) == max_batch:
                raise InvalidRequest(f"invalid request: batch too large (limit {max_batch})")
            try:
                # The decoder's own element reader: the same values and errors.
                item, idx = _DECODER.scan_once(text, idx)  # type: ignore[attr-defined]
            except StopIteration as e:
                raise json.JSONDecodeError("Expecting value", text, e.value) from None
            items.append(item)
            idx = _skip_space(text, idx)
            if text.startswith("]", idx):
                idx += 1
                break
            if not text.startswith(",", idx):
                raise json.JSONDecodeError("Expecting ',' delimiter", text, idx)
            idx = _skip_space(text, idx + 1)
    if _skip_space(text, idx) != len(text):
        raise json.JSONDecodeError("Extra data", text, idx)
    return items


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
    if not obj.keys() <= _REQUEST_KEYS:
        extra = sorted(set(obj) - _REQUEST_KEYS)
        raise InvalidRequest(f"invalid request: unknown member {', '.join(map(repr, extra))}")
    params = obj.get("params", {})
    if not isinstance(params, dict | list):
        raise InvalidRequest('invalid request: "params" must be an object')
    # Array params are a valid request (and a notification stays a notification);
    # `goproc.rpc.convert.structure_params` refuses them, since every goproc parameter is by name.
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
        message = exc.message
        if exc.code == INVALID_PARAMS:
            message = INVALID_PARAMS_PREFIX + message
        err: dict[str, Any] = {"code": exc.code, "message": message}
        if exc.data is not None:
            err["data"] = exc.data
        return err
    if _out_of_descriptors(exc):
        # Out of descriptors for a moment (see the `fd_reserve` setting): not a bug.
        return error_object(TooManyConnections("out of file descriptors; try again later"))
    log.error("internal error", exc_info=exc)
    return {"code": INTERNAL_ERROR, "message": f"internal error: {type(exc).__name__}"}


def error_code(exc: BaseException) -> int:
    """The code of `error_object(exc)`, without making it (or logging anything)."""
    if isinstance(exc, GoprocError):
        return exc.code
    return TooManyConnections.code if _out_of_descriptors(exc) else INTERNAL_ERROR


def _out_of_descriptors(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE)


def error_response(request_id: JsonId, exc: BaseException) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": error_object(exc)}


def result_response(request_id: JsonId, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def encode(message: Any) -> bytes:
    """A response (or a batch of them) -> one line.  ASCII with escapes: any string a
    client sent (lone surrogates included) or a process reported (non-UTF-8 argv comes
    as surrogate escapes) has a valid encoding."""
    return read_parts(encode_parts(message))


def encode_parts(message: Any) -> Iterable[Part]:
    """`encode` in pieces whose concatenation is the line, made as they are taken: a
    reply of 100,000 entries is encoded a chunk at a time while it is sent, never
    held whole.  A reply with nothing encoded ahead is one piece (most are)."""
    if isinstance(message, dict) and not isinstance(message.get("result"), RawJSON):
        return (dumps(message) + b"\n",)
    return _parts(message)


def _parts(message: Any) -> Iterator[Part]:
    if isinstance(message, list):
        yield b"["
        for n, one in enumerate(message):
            if n:
                yield b","
            yield from _encode_one(one)
        yield b"]\n"
    else:
        yield from _encode_one(message)
        yield b"\n"


def _encode_one(message: Any) -> Iterator[Part]:
    result = message.get("result") if isinstance(message, dict) else None
    if isinstance(result, RawJSON):
        head = dumps({k: v for k, v in message.items() if k != "result"})
        yield head[:-1] + b',"result":'
        yield from result.parts
        yield b"}"
    else:
        yield dumps(message)


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


DEFAULT_MAX_BATCH = 1000


async def respond_line(
    line: bytes, dispatch: Dispatch, *, max_batch: int = DEFAULT_MAX_BATCH
) -> bytes | None:
    """Answer one request line (a request or a batch): the reply line, or None when
    nothing is to be sent (notifications only)."""
    parts = await respond_parts(line, dispatch, max_batch=max_batch)
    return None if parts is None else read_parts(parts)


async def respond_parts(
    line: bytes, dispatch: Dispatch, *, max_batch: int = DEFAULT_MAX_BATCH
) -> Iterable[Part] | None:
    """`respond_line` in pieces (see `encode_parts`)."""
    pieces = [p async for p in respond_stream(line, dispatch, max_batch=max_batch)]
    if not pieces:
        return None
    return pieces[0] if len(pieces) == 1 else itertools.chain.from_iterable(pieces)


async def respond_stream(
    line: bytes, dispatch: Dispatch, *, max_batch: int = DEFAULT_MAX_BATCH
) -> AsyncGenerator[Iterable[Part]]:
    """The reply to one line as it is made: one piece for a request; for a batch, one
    piece per reply, each yielded once its request is answered and before the next is
    dispatched, so a batch is never held whole (its pieces joined are the one line).
    Nothing is yielded for notifications only.  A batch of more than `max_batch`
    requests is refused whole (-32600), none of it dispatched."""
    try:
        obj = decode_line(line, max_batch)
    except (ParseError, InvalidRequest) as e:
        yield encode_parts(error_response(None, e))
        return
    if not isinstance(obj, list):
        reply = await respond(obj, dispatch)
        if reply is not None:
            yield encode_parts(reply)
        return
    if not obj:
        yield encode_parts(error_response(None, InvalidRequest("invalid request: empty batch")))
        return
    opened = False
    for item in obj:
        reply = await respond(item, dispatch)
        if reply is not None:
            yield itertools.chain((b"," if opened else b"[",), _encode_one(reply))
            opened = True
    if opened:
        yield (b"]\n",)


def method_not_found(method: str) -> MethodNotFound:
    return MethodNotFound(f"method not found: {method!r}")
