"""Readiness for systemd (`Type=notify`): sd_notify's datagrams, by hand.

When `NOTIFY_SOCKET` names an AF_UNIX datagram socket (a path, or `@name` for the
abstract namespace), the daemon sends `READY=1` once it is listening and `STOPPING=1`
when a stop begins, each with `STATUS=` (a short text `systemctl status` shows) and
`MAINPID=`.  The variable is unset once read, so no child could notify in our name.
Without it every call does nothing.  A failed send is logged, never raised: systemd's
bookkeeping is no reason to stop serving.  Only the sending lives here; when to send is
`goproc.daemon.wiring.run`'s.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("goproc.daemon")


class Notifier:
    """Sends state changes to the service manager at `address`; None: to nobody."""

    def __init__(self, address: str | None) -> None:
        self.address = address

    @classmethod
    def from_environment(cls) -> Notifier:
        """The notifier `NOTIFY_SOCKET` asks for; the variable is unset."""
        return cls(os.environ.pop("NOTIFY_SOCKET", None) or None)

    def ready(self, status: str) -> None:
        self.send(f"READY=1\nSTATUS={status}\nMAINPID={os.getpid()}\n")

    def stopping(self, status: str) -> None:
        self.send(f"STOPPING=1\nSTATUS={status}\n")

    def send(self, message: str) -> None:
        """One datagram; a failure is logged (once per message) and otherwise ignored."""
        if self.address is None:
            return
        target = self.address
        if target.startswith("@"):
            target = "\0" + target[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.setblocking(False)  # a full queue must not stall the event loop
                s.sendto(message.encode(), target)
        except (OSError, ValueError) as e:  # ValueError: a NUL inside the address
            log.warning("could not notify the service manager at %s: %s", self.address, e)
