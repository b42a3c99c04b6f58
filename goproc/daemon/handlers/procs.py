"""Handlers of the entry methods: ping, status, add, list, show, remove, name.set, reset."""

from __future__ import annotations

from collections.abc import Callable

import trio

from goproc.api import (
    RESET_WORD,
    AddParams,
    Matched,
    NameParams,
    NoParams,
    ResetParams,
    ResetResult,
    Status as Status,
    Targeted,
)
from goproc.daemon.handlers import discovery
from goproc.daemon.handlers.context import Ctx, resolve
from goproc.errors import InvalidValue
from goproc.model import LogFiles, Proc, ProcessFacts, Selector


async def ping(ctx: Ctx, _: NoParams) -> str:
    return "pong"


async def status(ctx: Ctx, _: NoParams) -> Status:
    return ctx.status()


async def add(ctx: Ctx, params: AddParams) -> Proc | list[Proc] | Matched:
    if params.match is not None:
        return await discovery.add_matching(ctx, params, _log_files(ctx, params.log))
    if params.dry_run:
        raise InvalidValue("dry_run: goes with match only")
    if (params.pid is None) == (params.pids is None):
        raise InvalidValue("pid, pids: give exactly one of them (or a match)")
    pids = [params.pid] if params.pid is not None else list(params.pids or ())
    if not pids:
        raise InvalidValue("pids: must not be empty")
    log = _log_files(ctx, params.log)
    if log is not None and len(pids) != 1:  # before anything is looked at
        raise InvalidValue("log: a log can be given to exactly one process")
    facts = [await _inspect(ctx, pid) for pid in pids]
    added, change = ctx.registry.plan_add(
        facts,
        tags=params.tags,
        groups=params.groups,
        name=params.name,
        log=log,
        now=ctx.clock(),
    )
    await ctx.service.commit(change)
    return added[0] if params.pid is not None else added


def _log_files(ctx: Ctx, log: bool | LogFiles) -> Callable[[int], LogFiles] | None:
    """The entry's log files from its new id: the daemon's own (`true`), the given
    paths, or none (`false`)."""
    if isinstance(log, LogFiles):
        return lambda _: log
    if not log:
        return None
    log_dir = ctx.log_dir
    if log_dir is None:
        raise InvalidValue("log: this daemon keeps no log files; give their paths")
    return lambda proc_id: LogFiles(f"{log_dir}/{proc_id}.out", f"{log_dir}/{proc_id}.err")


# Right after exec(2) the new command line is not in /proc for a moment: a process
# added that early (by `goproc run`, a supervisor, a script) is asked again briefly.
_CMDLINE_RETRIES = (0.001, 0.002, 0.005, 0.01, 0.03)


async def _inspect(ctx: Ctx, pid: int) -> ProcessFacts:
    facts = ctx.probe.inspect(pid)
    for delay in _CMDLINE_RETRIES:
        if facts.cmd != f"pid:{pid}":
            break
        await trio.sleep(delay)
        facts = ctx.probe.inspect(pid)
    return facts


async def list_procs(ctx: Ctx, selector: Selector) -> list[Proc]:
    return ctx.registry.select(selector)


async def show(ctx: Ctx, selector: Selector) -> Proc:
    return resolve(ctx, selector, many=False, can_all=False)[0]


async def remove(ctx: Ctx, params: Targeted) -> list[Proc]:
    procs = resolve(ctx, params.select, many=params.all)
    await ctx.service.commit(ctx.registry.plan_remove(p.id for p in procs))
    return procs


async def set_name(ctx: Ctx, params: NameParams) -> Proc:
    target = resolve(ctx, params.select, many=False, can_all=False)[0]
    proc, change = ctx.registry.plan_set_name(target.id, params.name)
    await ctx.service.commit(change)
    return proc


async def reset(ctx: Ctx, params: ResetParams) -> ResetResult:
    if params.confirm != RESET_WORD:
        raise InvalidValue(f"confirm: must be exactly {RESET_WORD!r}")
    removed = len(ctx.registry)
    await ctx.service.commit(ctx.registry.plan_reset())
    return ResetResult(removed=removed)
