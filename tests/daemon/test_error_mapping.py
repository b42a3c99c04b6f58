"""Errors are mapped to JSON-RPC in one place (`goproc.rpc.jsonrpc.error_object`): a
domain error's code is kept, and every -32602 message gets the `invalid params: `
prefix there, also those raised by the pure registry and by handlers."""

from __future__ import annotations

import json

import pytest
from fuzzing import new_context, respond

from goproc.errors import INVALID_PARAMS, NO_MATCH

CASES = [
    ('"add","params":{"pids":[4242,4242]}', "invalid params: pids: the same pid is given"),
    ('"add","params":{"pids":[4242,4343],"name":"x"}', "invalid params: name: a name can be"),
    ('"add","params":{"pid":4242,"pids":[4343]}', "invalid params: pid, pids: give exactly"),
    ('"tag.rename","params":{"old":" ","new":"x"}', "invalid params: old: must not be blank"),
    ('"reset","params":{"confirm":"yes"}', "invalid params: confirm: must be exactly"),
    ('"list","params":{"ids":"x"}', "invalid params: ids: must be an array"),
    # JSON values are spelled as JSON, not as Python (`True`, `None`).
    (
        '"add","params":{"pid":true}',
        "invalid params: pid: must be a positive integer pid, got true",
    ),
    (
        '"list","params":{"tags_any":[false]}',
        "invalid params: tags_any[0]: must be a string, got false",
    ),
]


@pytest.mark.parametrize(("call", "message"), CASES)
def test_every_invalid_params_message_has_the_prefix_once(call: str, message: str) -> None:
    ctx, journal = new_context()
    line = ('{"jsonrpc":"2.0","id":1,"method":' + call + "}").encode()
    reply = respond(line, ctx)
    assert reply is not None
    error = json.loads(reply)["error"]
    assert error["code"] == INVALID_PARAMS
    assert error["message"].startswith(message), error
    assert error["message"].count("invalid params: ") == 1
    assert journal.changes == [], "an error answer means nothing changed"


def test_a_domain_error_keeps_its_code() -> None:
    ctx, _ = new_context()
    line = b'{"jsonrpc":"2.0","id":1,"method":"show","params":{"ids":[99]}}'
    reply = respond(line, ctx)
    assert reply is not None
    assert json.loads(reply)["error"] == {"code": NO_MATCH, "message": "no process matches"}
