"""Counts of the daemon's own work that only grow: requests answered per method and
outcome, and how long they took.  Plain dicts and lists, filled on the request path
and read at scrape time by `goproc.daemon.exposition`; no Prometheus import here.

Label values are bounded: a method is one of the contract's (`goproc.api.METHODS`) or
"unknown", an outcome is "ok" or a JSON-RPC error code's name (`OUTCOMES`), so the
series are at most (methods + 1) x outcomes, whatever clients send.
"""

from __future__ import annotations

import math
from bisect import bisect_left

from goproc import api
from goproc.errors import (
    ALREADY_TRACKED,
    AMBIGUOUS,
    CANNOT_RUN,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    NAME_IN_USE,
    NO_MATCH,
    NO_SUCH_PROCESS,
    NOT_STARTED,
    PARSE_ERROR,
    PERMISSION_DENIED,
    SHUTTING_DOWN,
    STORAGE_ERROR,
    TOO_MANY_CONNECTIONS,
)

# The name an error code is counted under (spec/protocol.md names them alike).
OUTCOMES: dict[int, str] = {
    PARSE_ERROR: "parse_error",
    INVALID_REQUEST: "invalid_request",
    METHOD_NOT_FOUND: "method_not_found",
    INVALID_PARAMS: "invalid_params",
    INTERNAL_ERROR: "internal_error",
    NO_SUCH_PROCESS: "no_such_process",
    PERMISSION_DENIED: "permission_denied",
    ALREADY_TRACKED: "already_tracked",
    NAME_IN_USE: "name_in_use",
    STORAGE_ERROR: "storage_error",
    NO_MATCH: "no_match",
    AMBIGUOUS: "ambiguous",
    TOO_MANY_CONNECTIONS: "too_many_connections",
    SHUTTING_DOWN: "shutting_down",
    CANNOT_RUN: "cannot_run",
    NOT_STARTED: "not_started",
}
OK = "ok"
UNKNOWN_METHOD = "unknown"

# Upper bounds (seconds, inclusive, as Prometheus' `le`) of the duration histogram: from
# a ping (well under a millisecond) to a `wait` that runs its course; +Inf is implied.
BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


def outcome_of(code: int | None) -> str:
    """The outcome label of a reply: "ok" for a result (None), else the error code's
    name; a code goproc does not define (it makes none) counts as internal_error."""
    if code is None:
        return OK
    return OUTCOMES.get(code, OUTCOMES[INTERNAL_ERROR])


class RpcStats:
    """Requests answered, by (method, outcome), and one duration histogram over all of
    them (`buckets[i]`: durations in (BUCKETS[i-1], BUCKETS[i]]; the last one: above
    BUCKETS[-1]).  `record` is one dict increment and one bisect."""

    __slots__ = ("buckets", "requests", "seconds")

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], int] = {}
        self.buckets: list[int] = [0] * (len(BUCKETS) + 1)
        self.seconds = 0.0  # the sum of every duration recorded

    def record(self, method: str, outcome: str, seconds: float) -> None:
        if method not in api.METHODS:
            method = UNKNOWN_METHOD
        key = (method, outcome)
        self.requests[key] = self.requests.get(key, 0) + 1
        self.buckets[bisect_left(BUCKETS, seconds)] += 1
        self.seconds += seconds

    @property
    def count(self) -> int:
        return sum(self.buckets)

    def cumulative(self) -> list[tuple[float, int]]:
        """The histogram as Prometheus has it: (upper bound, requests at most that
        long), ascending, infinity last."""
        out, total = [], 0
        for bound, n in zip((*BUCKETS, math.inf), self.buckets, strict=True):
            total += n
            out.append((bound, total))
        return out
