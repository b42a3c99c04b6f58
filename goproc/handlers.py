"""The method table: one small handler per JSON-RPC method.

A handler takes the `Context` (goproc.context) and its typed params and returns a
typed result; the dispatcher structures params and unstructures results with the one
converter, and `goproc.protocol` maps whatever a handler raises to a JSON-RPC error.
Mutations go through `Context.commit`: applied, journaled, then answered.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio
from attrs import frozen

from goproc import __version__
from goproc.context import Context as Context  # re-exported: the handlers' argument
from goproc.errors import Ambiguous, GoprocError, InvalidParams, NoMatch
from goproc.model import Proc, ProcessFacts, Selector
from goproc.protocol import (
    Dispatch,
    Label,
    Name,
    Pid,
    ProcId,
    RawJSON,
    Request,
    Seconds,
    Signal,
    method_not_found,
    proc_json,
    procs_json,
    structure_params,
    unstructure,
)
from goproc.registry import Kind


@frozen
class Method:
    params: type
    handler: Callable[[Context, Any], Awaitable[Any]]


# ---- params ----------------------------------------------------------------------------


@frozen
class NoParams:
    pass


@frozen
class AddParams:
    """`pid` for one process (the result is its entry) or `pids` for several, all or
    nothing (the result is the array of entries)."""

    pid: Pid | None = None
    pids: tuple[Pid, ...] | None = None
    tags: tuple[Label, ...] = ()
    groups: tuple[Label, ...] = ()
    name: Name | None = None


@frozen(kw_only=True)
class Targeted(Selector):
    """A selector for a command that changes or signals entries: matching more than one
    needs `all`."""

    all: bool = False

    def selector(self) -> Selector:
        return Selector(**{f.name: getattr(self, f.name) for f in attrs.fields(Selector)})


@frozen(kw_only=True)
class LabelParams(Targeted):
    labels: tuple[Label, ...]


@frozen
class RenameParams:
    old: Label
    new: Label


@frozen(kw_only=True)
class NameParams(Selector):
    name: Name | None


@frozen
class ResetParams:
    confirm: str


@frozen(kw_only=True)
class KillParams(Targeted):
    signal: Signal = Signal(15)  # noqa: RUF009  # NewType calls are free
    timeout: Seconds = Seconds(5.0)  # noqa: RUF009  # NewType calls are free
    group: bool = False
    rm: bool = False


# ---- handlers --------------------------------------------------------------------------


async def ping(ctx: Context, _: NoParams) -> str:
    return "pong"


async def status(ctx: Context, _: NoParams) -> dict[str, Any]:
    alive = sum(1 for p in ctx.registry if p.alive)
    return {
        "version": __version__,
        "pid": os.getpid(),
        "entries": len(ctx.registry),
        "alive": alive,
        "next_id": ctx.registry.next_id,
        **ctx.stats(),
    }


async def add(ctx: Context, params: AddParams) -> Proc | list[Proc]:
    if (params.pid is None) == (params.pids is None):
        raise InvalidParams("invalid params: pid, pids: give exactly one of them")
    pids = [params.pid] if params.pid is not None else list(params.pids or ())
    if not pids:
        raise InvalidParams("invalid params: pids: must not be empty")
    facts = [await _inspect(ctx, pid) for pid in pids]
    added, change = ctx.registry.plan_add(
        facts, tags=params.tags, groups=params.groups, name=params.name, now=ctx.clock()
    )
    await ctx.commit(change)
    return added[0] if params.pid is not None else added


# Right after exec(2) the new command line is not in /proc for a moment: a process
# added that early (by `goproc run`, a supervisor, a script) is asked again briefly.
_CMDLINE_RETRIES = (0.001, 0.002, 0.005, 0.01, 0.03)


async def _inspect(ctx: Context, pid: int) -> ProcessFacts:
    facts = ctx.probe.inspect(pid)
    for delay in _CMDLINE_RETRIES:
        if facts.cmd != f"pid:{pid}":
            break
        await trio.sleep(delay)
        facts = ctx.probe.inspect(pid)
    return facts


async def list_procs(ctx: Context, selector: Selector) -> list[Proc]:
    return ctx.registry.select(selector)


def _resolve(ctx: Context, selector: Selector, *, many: bool) -> list[Proc]:
    """The entries a command acts on: at least one, and several only when `many`."""
    procs = ctx.registry.select(selector)
    if not procs:
        raise NoMatch("no process matches")
    if len(procs) > 1 and not many:
        ids = [p.id for p in procs[:5]]
        more = ", ..." if len(procs) > 5 else ""
        raise Ambiguous(
            f"{len(procs)} processes match (ids {', '.join(map(str, ids))}{more}); "
            "narrow the selection or use --all",
            {"count": len(procs), "ids": ids},
        )
    return procs


async def show(ctx: Context, selector: Selector) -> Proc:
    return _resolve(ctx, selector, many=False)[0]


async def remove(ctx: Context, params: Targeted) -> list[Proc]:
    procs = _resolve(ctx, params.selector(), many=params.all)
    await ctx.commit(ctx.registry.plan_remove(p.id for p in procs))
    return procs


def _label_handlers(kind: Kind) -> dict[str, Method]:
    """tag.* or group.*: the same four methods over tags or over groups."""

    async def add_labels(ctx: Context, params: LabelParams) -> list[Proc]:
        procs = _resolve(ctx, params.selector(), many=params.all)
        out, change = ctx.registry.plan_labels([p.id for p in procs], kind, add=params.labels)
        await ctx.commit(change)
        return out

    async def remove_labels(ctx: Context, params: LabelParams) -> list[Proc]:
        procs = _resolve(ctx, params.selector(), many=params.all)
        out, change = ctx.registry.plan_labels([p.id for p in procs], kind, remove=params.labels)
        await ctx.commit(change)
        return out

    async def rename(ctx: Context, params: RenameParams) -> dict[str, int]:
        change = ctx.registry.plan_rename_label(kind, params.old, params.new)
        await ctx.commit(change)
        return {"changed": len(change.put)}

    async def counts(ctx: Context, _: NoParams) -> list[dict[str, Any]]:
        table = ctx.registry.tag_counts() if kind == "tags" else ctx.registry.group_counts()
        return [{"name": k, "count": n} for k, n in table.items()]

    prefix = kind[:-1]
    return {
        f"{prefix}.add": Method(LabelParams, add_labels),
        f"{prefix}.remove": Method(LabelParams, remove_labels),
        f"{prefix}.rename": Method(RenameParams, rename),
        f"{prefix}.list": Method(NoParams, counts),
    }


async def set_name(ctx: Context, params: NameParams) -> Proc:
    target = _resolve(ctx, params, many=False)[0]
    proc, change = ctx.registry.plan_set_name(target.id, params.name)
    await ctx.commit(change)
    return proc


RESET_WORD = "RESET"


async def reset(ctx: Context, params: ResetParams) -> dict[str, int]:
    if params.confirm != RESET_WORD:
        raise InvalidParams(f"invalid params: confirm: must be exactly {RESET_WORD!r}")
    removed = len(ctx.registry)
    await ctx.commit(ctx.registry.plan_reset())
    return {"removed": removed}


async def kill(ctx: Context, params: KillParams) -> list[dict[str, Any]]:
    """Signal every matching alive entry at once; see `_kill_one` for each outcome."""
    procs = _resolve(ctx, params.selector(), many=params.all)
    results: list[dict[str, Any]] = [{} for _ in procs]

    async def one(n: int, p: Proc) -> None:
        results[n] = await _kill_one(ctx, p, params)

    async with trio.open_nursery() as nursery:
        for n, p in enumerate(procs):
            nursery.start_soon(one, n, p)
    if params.rm:
        await ctx.commit(ctx.registry.plan_remove(p.id for p in procs))
    return results


async def _kill_one(ctx: Context, p: Proc, params: KillParams) -> dict[str, Any]:
    """Outcomes: "signalled" (a signal other than TERM was sent), "exited" (it ended
    within the timeout), "killed" (still running after the timeout: escalated to
    SIGKILL), "not alive" (nothing sent), "failed" (with `error`)."""
    out: dict[str, Any] = {"id": p.id, "pid": p.pid, "signal": _signal_name(params.signal)}
    if not p.alive:
        return {**out, "outcome": "not alive"}
    try:
        ctx.probe.send_signal(p.pid, p.started_at, params.signal, group=params.group)
        if int(params.signal) != signal.SIGTERM or float(params.timeout) == 0.0:
            return {**out, "outcome": "signalled"}
        if await _exits_within(ctx, p, params.timeout):
            return {**out, "outcome": "exited"}
        ctx.probe.send_signal(p.pid, p.started_at, signal.SIGKILL, group=params.group)
        await _exits_within(ctx, p, 1.0)
        return {**out, "outcome": "killed"}
    except GoprocError as e:
        return {**out, "outcome": "failed", "error": e.message}
    finally:
        if not ctx.probe.is_alive(p.pid, p.started_at):
            ctx.set_alive(p.id, False)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:  # real-time signals have numbers only
        return f"SIG{signum}"


async def _exits_within(ctx: Context, p: Proc, timeout: float) -> bool:
    """Wait for the exit: woken by an exit watcher, or found by probing every 20 ms."""
    with trio.move_on_after(timeout):
        while ctx.probe.is_alive(p.pid, p.started_at):
            with trio.move_on_after(0.02):
                await ctx.pulse.wait()
        return True
    return False


@frozen(kw_only=True)
class WaitParams(Selector):
    timeout: Seconds = Seconds(30.0)  # noqa: RUF009  # NewType calls are free
    any: bool = False


async def wait(ctx: Context, params: WaitParams) -> dict[str, Any]:
    """Reply once every matching entry is dead (or, with `any`, one of them), or at the
    timeout.  The entries are those matching when the request arrives; one removed
    meanwhile counts as ended."""
    ids = [p.id for p in _resolve(ctx, params, many=True)]

    def split() -> tuple[list[Proc], list[Proc]]:
        procs = [p for i in ids if (p := ctx.registry.get(i)) is not None]
        ended = [p for p in procs if not p.alive]
        return ended, [p for p in procs if p.alive]

    def done() -> bool:
        ended, alive = split()
        gone = len(ids) - len(ended) - len(alive)
        return not alive or (params.any and (bool(ended) or gone > 0))

    async def until_done() -> None:
        while not done():
            await ctx.pulse.wait()

    with trio.move_on_after(params.timeout) as scope:
        if ctx.session is None:
            await until_done()
        else:
            async with ctx.session.cancel_on_hangup():
                await until_done()
    timed_out = scope.cancelled_caught
    ended, alive = split()
    return {"exited": ended, "alive": alive, "timed_out": timed_out}


@frozen
class UnsubscribeParams:
    subscription: ProcId


async def subscribe(ctx: Context, selector: Selector) -> dict[str, int]:
    """Events matching the selector follow on this connection as `event` notifications."""
    if ctx.session is None:
        raise InvalidParams("invalid params: subscribe needs a connection")
    sub = ctx.bus.subscribe(selector)
    ctx.session.start_subscription(sub)
    return {"subscription": sub.id}


async def unsubscribe(ctx: Context, params: UnsubscribeParams) -> dict[str, bool]:
    if ctx.session is None or not ctx.session.owns(params.subscription):
        raise NoMatch(f"no subscription {params.subscription} on this connection")
    return {"unsubscribed": ctx.bus.unsubscribe(params.subscription)}


METHODS: dict[str, Method] = {
    "ping": Method(NoParams, ping),
    "status": Method(NoParams, status),
    "add": Method(AddParams, add),
    "list": Method(Selector, list_procs),
    "show": Method(Selector, show),
    "remove": Method(Targeted, remove),
    "kill": Method(KillParams, kill),
    **_label_handlers("tags"),
    **_label_handlers("groups"),
    "name.set": Method(NameParams, set_name),
    "reset": Method(ResetParams, reset),
    "wait": Method(WaitParams, wait),
    "subscribe": Method(Selector, subscribe),
    "unsubscribe": Method(UnsubscribeParams, unsubscribe),
}


def to_wire(result: Any) -> Any:
    """A handler's result as JSON: entries (alone or in a list) from their cached
    encoding, anything else through the converter."""
    if isinstance(result, Proc):
        return RawJSON((proc_json(result),))
    if isinstance(result, list) and result and all(isinstance(p, Proc) for p in result):
        return procs_json(result)
    return unstructure(result)


def make_dispatch(ctx: Context) -> Dispatch:
    """Request -> plain JSON result, through the method table."""

    async def dispatch(req: Request) -> Any:
        method = METHODS.get(req.method)
        if method is None:
            raise method_not_found(req.method)
        params: Any = structure_params(req.params, method.params)
        return to_wire(await method.handler(ctx, params))

    return dispatch
