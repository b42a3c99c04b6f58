"""The error hierarchy shared by daemon and client, each error with its JSON-RPC code.

The registry and the daemon's handlers raise these; `goproc.rpc.jsonrpc.error_object`
is the one place that turns any exception into a JSON-RPC error object (and the one
place that adds the `invalid params: ` prefix to an `InvalidValue`'s message).  The
client turns error objects back into `RemoteError`.  No I/O lives here.
"""

from __future__ import annotations

from typing import Any

# JSON-RPC 2.0 reserved codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# goproc application codes (documented in spec/openrpc.json and spec/protocol.md).
NO_SUCH_PROCESS = -32001
PERMISSION_DENIED = -32002
ALREADY_TRACKED = -32003
NAME_IN_USE = -32004
STORAGE_ERROR = -32005
NO_MATCH = -32006
AMBIGUOUS = -32007
TOO_MANY_CONNECTIONS = -32008  # also: subscriptions, descriptors (a limit is reached)
SHUTTING_DOWN = -32009
CANNOT_RUN = -32010
NOT_STARTED = -32011


class GoprocError(Exception):
    """An error with a JSON-RPC code; its message is safe to show to a client."""

    code: int = INTERNAL_ERROR

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class ParseError(GoprocError):
    code = PARSE_ERROR


class InvalidRequest(GoprocError):
    code = INVALID_REQUEST


class MethodNotFound(GoprocError):
    code = METHOD_NOT_FOUND


class InvalidValue(GoprocError):
    """A parameter's value is not acceptable.  The message starts with the field's name
    (`"name: ..."`); the JSON-RPC layer prefixes it with `invalid params: `."""

    code = INVALID_PARAMS


class NoSuchProcess(GoprocError):
    code = NO_SUCH_PROCESS


class PermissionDenied(GoprocError):
    code = PERMISSION_DENIED


class AlreadyTracked(GoprocError):
    code = ALREADY_TRACKED


class NameInUse(GoprocError):
    code = NAME_IN_USE


class StorageError(GoprocError):
    """The change could not be made durable; it was not applied."""

    code = STORAGE_ERROR


class NoMatch(GoprocError):
    """A selector that must match something matched nothing."""

    code = NO_MATCH


class Ambiguous(GoprocError):
    """A selector matched several entries where one was needed or `all` was not given;
    `data` holds `{"count": N, "ids": [up to 5 ids]}`."""

    code = AMBIGUOUS


class TooManyConnections(GoprocError):
    """A limit of the daemon is reached: connections, subscriptions or descriptors."""

    code = TOO_MANY_CONNECTIONS


class TooManySubscriptions(TooManyConnections):
    """`max_subscriptions` on this connection, or `max_subscriptions_total` in all."""


class TooManyRules(TooManyConnections):
    """`goproc.rulebook.MAX_RULES` alert rules are kept already."""


class ShuttingDown(GoprocError):
    """The daemon is stopping: a request that would block (`wait`) is ended unanswered
    by its result."""

    code = SHUTTING_DOWN


class CannotRun(GoprocError):
    """`spawn` (or a start again) could not start the command: no such program, not
    executable, no such directory, or its log files cannot be opened."""

    code = CANNOT_RUN


class NotStarted(GoprocError):
    """`stop`, `start` or `restart` on an entry the daemon did not start (`spawn`)."""

    code = NOT_STARTED


class UsageError(Exception):
    """A command line that parsed but cannot be run as given (the CLI exits 2)."""


class ConfigError(Exception):
    """A configuration file or value is unusable; the message names the file and key."""
