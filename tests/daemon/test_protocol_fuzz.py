"""Protocol fuzzing: any line gets a valid JSON-RPC 2.0 reply (or none, for notifications).

Two halves:
- pure: `goproc.rpc.jsonrpc.respond_line` with the real method table over a real Registry,
  a fixed-table probe and an in-memory journal; arbitrary bytes, arbitrary JSON values,
  near-valid requests and batches.  Nothing may escape, no reply may be an internal error,
  and every journaled change replays to the registry as it is.
- live (tests/e2e/test_protocol_fuzz_live.py): hostile lines on a real daemon's socket.

An independent oracle (tests/fuzzing.py) says, for any line, which replies JSON-RPC 2.0 requires.
"""

from __future__ import annotations

import pytest
from fuzzing import (
    LIVE,
    check_reply,
    initial_registry,
    lines,
    new_context,
    respond,
    strict_json,
    wire,
)
from hypothesis import HealthCheck, event, given, settings, strategies as st

from goproc.model import ProcessFacts


def _outcome(reply: bytes | None) -> str:
    """A label for hypothesis' statistics: which kinds of reply the run produced."""
    if reply is None:
        return "no reply"
    value = strict_json(reply)
    if isinstance(value, list):
        return "batch reply"
    return "result" if "result" in value else f"error {value['error']['code']}"


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(lines, min_size=1, max_size=3))
def test_respond_line_gives_a_valid_reply_to_any_line_and_journals_every_change(
    batch: list[bytes],
) -> None:
    """Several lines against one context: a successful add changes what later ones see.
    Every change journaled replays to the registry as it stands."""
    ctx, journal = new_context()
    for line in batch:
        reply = respond(line, ctx)
        check_reply(line, reply)
        event(_outcome(reply))
    replayed = initial_registry()
    for change in journal.changes:
        replayed.apply(change)
    assert wire(replayed) == wire(ctx.registry)


@pytest.mark.parametrize(
    "line",
    [
        b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
        b'{"jsonrpc":"2.0","method":"ping"}',
        b'{"jsonrpc":"2.0","method":"add","params":{"pid":"abc"}}',
        b"[]",
        b"[1]",
        b'[{"jsonrpc":"2.0","method":"ping"}]',
        b'[{"jsonrpc":"2.0","method":"ping","id":"a"},{"jsonrpc":"2.0","method":"ping"},5]',
        b'{"jsonrpc":"2.0","id":1,"method":"add","params":{"pid":4242,"tags":[" db"]}}',
        b'{"jsonrpc":"2.0","id":[],"method":"ping"}',
        b'{"jsonrpc":"2.0","id":true,"method":"ping"}',
        b'{"jsonrpc":"1.0","id":7,"method":"ping"}',
        b'{"jsonrpc":"2.0","id":7,"method":"ping","extra":1}',
        b"\xff\xfe",
        b"NaN",
        b'{"jsonrpc":"2.0","id":1,"method":"list","params":{"ids":[NaN]}}',
        b"[" * 100_000,
        b"[" * 900 + b"]" * 900,
        b'{"jsonrpc":"2.0","id":1,"method":"list","params":{"search":'
        + b"[" * 900
        + b"]" * 900
        + b"}}",
        b'{"jsonrpc":"2.0","id":1,"method":"add","params":{"pid":'
        + b"[" * 900
        + b"]" * 900
        + b"}}",
    ],
)
def test_respond_line_examples(line: bytes) -> None:
    ctx, _ = new_context()
    check_reply(line, respond(line, ctx))


def test_notification_with_params_by_position_gets_no_reply() -> None:
    """JSON-RPC 2.0: a Request without "id" is a notification, params may be an array,
    and the server must not reply to a notification."""
    ctx, _ = new_context()
    assert respond(b'{"jsonrpc":"2.0","method":"ping","params":[]}', ctx) is None


def test_reply_to_an_id_with_a_lone_surrogate_is_valid_json() -> None:
    r"""`"\ud800"` is a legal JSON string escape; the reply must echo it as valid JSON."""
    ctx, _ = new_context()
    line = b'{"jsonrpc":"2.0","id":"\\ud800","method":"ping"}'
    check_reply(line, respond(line, ctx))


def test_reply_to_an_id_too_large_for_a_double_is_valid_json() -> None:
    """`1e400` is valid JSON; Python reads it as infinity, which must not come back as
    the non-JSON token `Infinity`."""
    ctx, _ = new_context()
    reply = respond(b'{"jsonrpc":"2.0","id":1e400,"method":"ping"}', ctx)
    assert reply is not None
    strict_json(reply)


def test_add_of_a_process_with_non_utf8_argv_gets_a_valid_reply() -> None:
    """psutil reports argv bytes that are not UTF-8 as lone surrogates; such a process
    can be added and listed, and the replies are valid JSON."""
    odd = ProcessFacts(pid=4444, started_at=1_700_000_300.0, cmd="python x.py \udcff", pgid=None)
    ctx, journal = new_context({**LIVE, 4444: odd})
    for line in (
        b'{"jsonrpc":"2.0","id":1,"method":"add","params":{"pid":4444}}',
        b'{"jsonrpc":"2.0","id":2,"method":"list","params":{"pids":[4444]}}',
    ):
        reply = respond(line, ctx)
        check_reply(line, reply)
        assert reply is not None and "result" in strict_json(reply), reply
    assert len(journal.changes) == 1
