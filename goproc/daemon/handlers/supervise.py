"""The supervision handlers: `spawn`, `stop`, `start`, `restart`.  The work is the
supervisor's (`goproc.daemon.supervisor`); here params are checked and turned into its
terms, and the descriptors an `attach` sent are taken from the session."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import trio

from goproc.api import SpawnParams, StopParams, Targeted
from goproc.daemon.handlers.context import Ctx, resolve
from goproc.daemon.spawning import Outputs
from goproc.daemon.supervisor import Supervisor
from goproc.errors import InvalidValue, NotStarted
from goproc.model import LogFiles, Proc, Spawned

ARGV_MAX = 4096  # arguments; their bytes are bounded by the request line's limit
ENV_MAX = 4096  # variables


def supervisor_of(ctx: Ctx) -> Supervisor:
    if ctx.supervisor is None:
        raise NotStarted("this daemon starts no processes")
    return ctx.supervisor


def check_spawn(params: SpawnParams) -> Spawned:
    """The command and policy of a `spawn`, or InvalidValue naming the field."""
    if not params.argv or not params.argv[0]:
        raise InvalidValue("argv: must name a command (a non-empty first item)")
    if len(params.argv) > ARGV_MAX:
        raise InvalidValue(f"argv: at most {ARGV_MAX} items")
    if any("\0" in a for a in params.argv):
        raise InvalidValue("argv: must not contain a NUL character")
    if not params.cwd.startswith("/") or "\0" in params.cwd:
        raise InvalidValue("cwd: must be an absolute path without NUL")
    if len(params.env) > ENV_MAX:
        raise InvalidValue(f"env: at most {ENV_MAX} variables")
    for n, item in enumerate(params.env):
        if item.find("=") < 1 or "\0" in item:
            raise InvalidValue(f"env.{n}: must be KEY=VALUE (a non-empty KEY, no NUL)")
    if params.backoff_min > params.backoff_max:
        raise InvalidValue("backoff_min: must not be above backoff_max")
    if params.attach and params.log not in (True, False):
        raise InvalidValue("attach: excludes log files (give one or the other)")
    if params.attach and params.restart != "never":
        raise InvalidValue(
            "restart: an attached command is never restarted (its descriptors are not kept)"
        )
    if not params.attach and params.log is False:
        raise InvalidValue("log: the output must go somewhere: true, paths, or attach")
    return Spawned(
        argv=params.argv,
        cwd=params.cwd,
        env=params.env,
        restart=params.restart,
        max_restarts=params.max_restarts,
        restart_window=params.restart_window,
        backoff_min=params.backoff_min,
        backoff_max=params.backoff_max,
        log_max_bytes=params.log_max_bytes,
    )


def _attached(ctx: Ctx) -> Outputs:
    fds = () if ctx.session is None else ctx.session.take_fds()
    if len(fds) != 2:
        for fd in fds:
            os.close(fd)
        raise InvalidValue("attach: send exactly 2 descriptors (stdout, stderr) with the request")
    return Outputs(fds[0], fds[1])


async def spawn(ctx: Ctx, params: SpawnParams) -> Proc:
    supervisor = supervisor_of(ctx)
    spawned = check_spawn(params)
    outputs = _attached(ctx) if params.attach else None
    return await supervisor.spawn(
        spawned,
        tags=params.tags,
        groups=params.groups,
        name=params.name,
        log_files=params.log if isinstance(params.log, LogFiles) else None,
        outputs=outputs,
    )


async def _each(
    ctx: Ctx, target: Targeted, act: Callable[[Supervisor, Proc], Awaitable[Proc]]
) -> list[Proc]:
    """`act` on every matching started entry at once; their entries after, by id.  When
    one fails, its error is the answer (the others are done all the same)."""
    supervisor = supervisor_of(ctx)
    procs = resolve(ctx, target.select, many=target.all)
    for p in procs:
        if p.spawned is None:
            raise NotStarted(f"id {p.id} was not started by goproc (run): use kill")
    out: dict[int, Proc] = {}
    failed: list[Exception] = []

    async def one(p: Proc) -> None:
        try:
            out[p.id] = await act(supervisor, p)
        except Exception as e:  # answered as the error; the others are done regardless
            failed.append(e)

    async with trio.open_nursery() as nursery:
        for p in procs:
            nursery.start_soon(one, p)
    if failed:
        raise failed[0]
    return [out[p.id] for p in procs]


async def stop(ctx: Ctx, params: StopParams) -> list[Proc]:
    return await _each(ctx, params.target, lambda s, p: s.stop(p, params.timeout))


async def restart(ctx: Ctx, params: StopParams) -> list[Proc]:
    return await _each(ctx, params.target, lambda s, p: s.restart(p, params.timeout))


async def start(ctx: Ctx, params: Targeted) -> list[Proc]:
    async def one(s: Supervisor, p: Proc) -> Proc:
        return p if p.alive else await s.start_again(p)

    return await _each(ctx, params, one)
