"""The handler of `metrics.history`: the samples the sampler kept of each matching entry
(`goproc.metrics.History`); none for an entry never sampled, or dead."""

from __future__ import annotations

from goproc.api import History, HistoryParams, HistorySample
from goproc.daemon.handlers.context import Ctx, resolve
from goproc.rpc.entries import format_time


async def history(ctx: Ctx, params: HistoryParams) -> list[History]:
    out = []
    for p in resolve(ctx, params.select, many=True):
        track = ctx.metrics.track(p)
        samples = [] if track is None else track.history.since(params.since)
        out.append(
            History(
                id=p.id,
                interval=ctx.metrics_interval,
                samples=[
                    HistorySample(
                        format_time(s.t), s.cpu_percent, s.rss_bytes, s.read_rate, s.write_rate
                    )
                    for s in samples
                ],
            )
        )
    return out
