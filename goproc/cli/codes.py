"""The CLI's exit codes (README: Exit codes and output), one enum for the app and every command."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    REMOTE = 1  # the daemon answered with an error, a kill failed, a wait timed out
    USAGE = 2  # bad flags or values, a bad config file
    UNREACHABLE = 3  # no daemon answers on the socket
    CANNOT_RUN = 127  # `goproc run`: the command could not be started
    INTERRUPTED = 130  # Ctrl+C
