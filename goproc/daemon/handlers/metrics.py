"""The handler of `metrics.history`: the samples the sampler kept of each matching entry
(`goproc.metrics.History`); none for an entry never sampled, or dead."""

from __future__ import annotations

from collections.abc import Iterable

from goproc.api import History, HistoryParams, HistorySample
from goproc.daemon.handlers.context import Ctx, resolve
from goproc.metrics import MetricsStore
from goproc.model import Proc
from goproc.rpc.entries import format_time


async def history(ctx: Ctx, params: HistoryParams) -> list[History]:
    procs = resolve(ctx, params.select, many=True)
    return histories(procs, ctx.metrics, ctx.metrics_interval, params.since)


def histories(
    procs: Iterable[Proc], store: MetricsStore, interval: float, since: float | None
) -> list[History]:
    """Each entry's samples taken at `since` or later (all: None), oldest first (the
    socket's `metrics.history` and the HTTP listener's `/api/history`)."""
    out = []
    for p in procs:
        track = store.track(p)
        samples = [] if track is None else track.history.since(since)
        out.append(
            History(
                id=p.id,
                interval=interval,
                samples=[
                    HistorySample(
                        format_time(s.t), s.cpu_percent, s.rss_bytes, s.read_rate, s.write_rate
                    )
                    for s in samples
                ],
            )
        )
    return out
