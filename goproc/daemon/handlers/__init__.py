"""The method table: every method of the contract (`goproc.api`) bound to its handler,
and the dispatch that runs them.

A handler takes the `Ctx` and its typed params and returns its method's typed result;
`make_dispatch` structures params and encodes results with the one converter
(`goproc.rpc.convert`), and `goproc.rpc.jsonrpc` maps whatever a handler raises to a
JSON-RPC error.  Mutations go through `Ctx.service.commit`: applied, journaled, then
answered.
Each request's method, outcome and duration are counted in `Ctx.rpc_stats` here, the
one place they are all known (a line that is not a valid request never gets here).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from goproc import api
from goproc.daemon.counters import OK, outcome_of
from goproc.daemon.handlers import (
    adoption,
    alerts,
    kill,
    metrics,
    procs,
    subscriptions,
    supervise,
    wait,
)
from goproc.daemon.handlers.context import Bound, Ctx, bind
from goproc.daemon.handlers.labels import label_handlers
from goproc.model import Proc
from goproc.rpc.convert import encode_result, structure_params
from goproc.rpc.entries import RawJSON
from goproc.rpc.jsonrpc import Dispatch, Request, error_code, method_not_found

TABLE: dict[str, Bound[Any, Any]] = {
    b.method.name: b
    for b in (
        bind(api.PING, procs.ping),
        bind(api.STATUS, procs.status),
        bind(api.ADD, procs.add),
        bind(api.LIST, procs.list_procs),
        bind(api.SHOW, procs.show),
        bind(api.REMOVE, procs.remove),
        bind(api.KILL, kill.kill),
        *label_handlers(api.TAG, "tags"),
        *label_handlers(api.GROUP, "groups"),
        bind(api.NAME_SET, procs.set_name),
        bind(api.RESET, procs.reset),
        bind(api.WAIT, wait.wait),
        bind(api.SUBSCRIBE, subscriptions.subscribe),
        bind(api.UNSUBSCRIBE, subscriptions.unsubscribe),
        bind(api.METRICS_HISTORY, metrics.history),
        bind(api.ALERT_ADD, alerts.add),
        bind(api.ALERT_LIST, alerts.list_rules),
        bind(api.ALERT_REMOVE, alerts.remove),
        bind(api.ADOPT_ADD, adoption.add),
        bind(api.ADOPT_LIST, adoption.list_rules),
        bind(api.ADOPT_REMOVE, adoption.remove),
        bind(api.SPAWN, supervise.spawn),
        bind(api.STOP, supervise.stop),
        bind(api.START, supervise.start),
        bind(api.RESTART, supervise.restart),
    )
}
assert TABLE.keys() == api.METHODS.keys(), "every method of the contract has a handler"


def make_dispatch(ctx: Ctx) -> Dispatch:
    """Request -> JSON result, through the method table."""

    def entries(procs: Sequence[Proc]) -> RawJSON:
        return ctx.entries_json(procs, ctx.metrics)

    async def answer(req: Request) -> Any:
        bound = TABLE.get(req.method)
        if bound is None:
            raise method_not_found(req.method)
        params = structure_params(req.params, bound.method.params)
        result = await bound.handler(ctx, params)
        return encode_result(result, bound.method.result, entries, ctx.metrics)

    stats = ctx.rpc_stats

    async def dispatch(req: Request) -> Any:
        # Every request that gets this far ends here once, with its outcome: counted.
        # One cancelled from outside (its connection torn down, a stop's grace run
        # out) has no outcome and is not.
        start = time.perf_counter()
        try:
            result = await answer(req)
        except Exception as e:
            stats.record(req.method, outcome_of(error_code(e)), time.perf_counter() - start)
            raise
        stats.record(req.method, OK, time.perf_counter() - start)
        return result

    return dispatch


__all__ = ["TABLE", "Ctx", "make_dispatch"]
