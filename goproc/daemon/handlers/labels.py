"""Handlers of tag.* and group.*: the same four methods over tags or over groups."""

from __future__ import annotations

from typing import Any

from goproc.api import LabelCount, LabelMethods, LabelParams, NoParams, Renamed, RenameParams
from goproc.daemon.handlers.context import Bound, Ctx, bind, resolve
from goproc.errors import InvalidValue
from goproc.model import Proc, normalize_labels
from goproc.registry import Kind


def label_handlers(methods: LabelMethods, kind: Kind) -> list[Bound[Any, Any]]:
    async def change(ctx: Ctx, params: LabelParams, *, adding: bool) -> list[Proc]:
        if not normalize_labels(params.labels):  # nothing to add or remove: a mistake
            raise InvalidValue("labels: must hold a label that is not blank")
        target = params.target
        ids = [p.id for p in resolve(ctx, target.select, many=target.all)]
        plus, minus = (params.labels, ()) if adding else ((), params.labels)
        out, planned = ctx.registry.plan_labels(ids, kind, add=plus, remove=minus)
        await ctx.service.commit(planned)
        return out

    async def add(ctx: Ctx, params: LabelParams) -> list[Proc]:
        return await change(ctx, params, adding=True)

    async def remove(ctx: Ctx, params: LabelParams) -> list[Proc]:
        return await change(ctx, params, adding=False)

    async def rename(ctx: Ctx, params: RenameParams) -> Renamed:
        planned = ctx.registry.plan_rename_label(kind, params.old, params.new)
        await ctx.service.commit(planned)
        return Renamed(changed=len(planned.put))

    async def counts(ctx: Ctx, _: NoParams) -> list[LabelCount]:
        reg = ctx.registry
        table = reg.tag_counts() if kind == "tags" else reg.group_counts()
        return [LabelCount(name=k, count=n) for k, n in table.items()]

    return [
        bind(methods.add, add),
        bind(methods.remove, remove),
        bind(methods.rename, rename),
        bind(methods.list, counts),
    ]
