"""The rules of supervision, pure: whether a spawned entry's exit is restarted and after
how long, and the versions of an entry its process's exit and a new start make.

No trio, no clock, no OS: `goproc.daemon.supervisor` asks these with the times and
statuses it observed.  A restart policy (`goproc.model.Spawned`):

- `restart`: "never"; "on-failure" (an exit status other than 0, or a signal); "always".
  An entry stopped on request (`stop`) is never restarted.
- at most `max_restarts` restarts (None: no limit) within the last `restart_window`
  seconds: one more is refused, and the entry stays dead (`start` brings it back);
- the n-th restart within the window (counting from 0, n at most 64) waits
  `min(backoff_max, backoff_min * 2**n)` seconds: a process that crashes at once is
  restarted more and more slowly, one that ran for a window starts again at the minimum.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from goproc.model import Proc, ProcessFacts, Spawned

BACKOFF_DOUBLINGS_MAX = 64  # 2**64 times any positive minimum is above any maximum


def wants_restart(spawned: Spawned, exit_code: int | None, stopped: bool) -> bool:
    """Whether the policy asks for a new process after this exit (`exit_code` None:
    ended by a signal, or not known)."""
    if stopped or spawned.restart == "never":
        return False
    return spawned.restart == "always" or exit_code != 0


def recent(restarted_at: Sequence[float], window: float, now: float) -> list[float]:
    """The restart times within the window that ends now (oldest first)."""
    return [t for t in restarted_at if now - t < window]


def backoff(spawned: Spawned, restarts_in_window: int) -> float:
    """The delay before the next restart, after this many within the window."""
    n = min(restarts_in_window, BACKOFF_DOUBLINGS_MAX)
    return min(spawned.backoff_max, spawned.backoff_min * 2.0**n)


def restart_delay(
    spawned: Spawned,
    exit_code: int | None,
    stopped: bool,
    restarted_at: Sequence[float],
    now: float,
) -> float | None:
    """Seconds to wait before starting the entry's process again, or None: not
    restarted (the policy does not ask for it, or `max_restarts` are used up)."""
    if not wants_restart(spawned, exit_code, stopped):
        return None
    count = len(recent(restarted_at, spawned.restart_window, now))
    if spawned.max_restarts is not None and count >= spawned.max_restarts:
        return None
    return backoff(spawned, count)


def ended(p: Proc, exit_code: int | None, exit_signal: int | None, now: float) -> Proc:
    """The entry once its process has ended with this status."""
    return attrs.evolve(
        p,
        alive=False,
        exited_at=p.exited_at if not p.alive and p.exited_at is not None else now,
        exit_code=exit_code,
        exit_signal=exit_signal,
    )


def started_again(p: Proc, facts: ProcessFacts, now: float) -> Proc:
    """The entry (same id, name, labels, logs) of its new process."""
    return attrs.evolve(
        p,
        pid=facts.pid,
        pgid=facts.pgid,
        cmd=facts.cmd,
        alive=True,
        started_at=facts.started_at,
        last_seen=now,
        exited_at=None,
        exit_code=None,
        exit_signal=None,
        restarts=p.restarts + 1,
        stopped=False,
    )


def exit_status(
    si_code: int, si_status: int, exited: int, *, signalled: tuple[int, ...]
) -> tuple[int | None, int | None]:
    """(exit_code, exit_signal) from a `waitid` result: an exit status when it exited
    (`si_code == exited`), the signal when one of `signalled` (killed, dumped)."""
    if si_code == exited:
        return si_status, None
    if si_code in signalled:
        return None, si_status
    return None, None
