"""A blocking line-JSON-RPC client over the daemon's UNIX socket.

Standard library and the contract only (`goproc.api`): the CLI imports this and must not
pay for trio, cattrs or psutil.  A request is a `goproc.api.Method` and its params
object; the wire names come from the contract, never spelled here.  Results stay decoded
JSON.  Every failure to talk to the daemon is a `DaemonUnreachable` (exit 3); an error
reply is a `RemoteError` (exit 1).
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from goproc import api

P = TypeVar("P")
EventHandler = Callable[[dict[str, Any]], None]


class DaemonUnreachable(Exception):
    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(
            f"cannot reach the daemon at {path} ({reason}); start it with 'goproc daemon'"
        )
        self.path = path


class RemoteError(Exception):
    """The daemon answered with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class Client:
    """One connection; `call` sends a request and waits for its reply.  Closed by
    `close()` or on leaving a `with` block."""

    def __init__(self, path: Path | str, timeout: float | None = None) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(path))
        except OSError as e:
            self._sock.close()
            raise DaemonUnreachable(path, _connect_failure(e)) from None
        self._file = self._sock.makefile("rb")
        self._next_id = 1

    def call(
        self,
        method: api.Method[P, Any],
        params: P,
        on_event: EventHandler | None = None,
        fds: Sequence[int] = (),
    ) -> Any:
        """Send one request (with `fds` passed along it, SCM_RIGHTS) and return its
        decoded result; event notifications that arrive before the reply go to
        `on_event`."""
        self._send(method, params, fds)
        while "id" not in (reply := self._read()):
            if on_event is not None and reply.get("method") == api.EVENT_METHOD:
                on_event(reply["params"])
        return _result(reply)

    def call_raw(self, method: api.Method[P, Any], params: P) -> bytes:
        """Like `call`, but the result as the JSON text the daemon sent, undecoded:
        for results too big to decode and encode again just to print them."""
        request_id = self._send(method, params)
        line = self._readline()
        # The daemon writes a success as exactly this prefix, the result, and "}".
        prefix = b'{"jsonrpc":"2.0","id":%d,"result":' % request_id
        if line.startswith(prefix) and line.endswith(b"}\n"):
            return line[len(prefix) : -2]
        result = _result(json.loads(line))
        return json.dumps(result, separators=(",", ":")).encode()

    def listen(self, on_event: EventHandler) -> None:
        """Pass event notifications to `on_event` until the daemon closes the connection."""
        while True:
            try:
                reply = self._read()
            except DaemonUnreachable:
                return
            if reply.get("method") == api.EVENT_METHOD:
                on_event(reply["params"])

    def interrupt(self) -> None:
        """End a `listen` (or `call`) blocked in another thread: it sees the connection
        closed.  The socket stays to be `close`d by its owner."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: api.Method[P, Any], params: P, fds: Sequence[int] = ()) -> int:
        request_id = self._next_id
        self._next_id += 1
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method.name}
        wire = api.params_json(params)
        if wire:
            request["params"] = wire
        data = json.dumps(request, separators=(",", ":")).encode() + b"\n"
        try:
            if fds:  # the descriptors ride on the first bytes; the rest follows plainly
                sent = socket.send_fds(self._sock, [data], list(fds))
                data = data[sent:]
            self._sock.sendall(data)
        except OSError as e:
            raise DaemonUnreachable(self.path, e.strerror or str(e)) from None
        return request_id

    def _read(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self._readline())
        return message

    def _readline(self) -> bytes:
        try:
            line = self._file.readline()
        except TimeoutError:
            raise DaemonUnreachable(self.path, "no answer in time") from None
        except OSError as e:
            raise DaemonUnreachable(self.path, e.strerror or str(e)) from None
        if not line:
            raise DaemonUnreachable(self.path, "the daemon closed the connection")
        return line


def _connect_failure(e: OSError) -> str:
    """Why a connect failed, in the words the CLI prints."""
    if isinstance(e, FileNotFoundError):
        return "no socket"
    if isinstance(e, ConnectionRefusedError):
        return "nobody listens"
    if isinstance(e, TimeoutError):
        return "timed out"
    return e.strerror or str(e)


def _result(reply: dict[str, Any]) -> Any:
    """A reply's result; an error reply raises RemoteError."""
    if "error" in reply:
        err = reply["error"]
        raise RemoteError(err.get("code", 0), err.get("message", "?"), err.get("data"))
    return reply["result"]
