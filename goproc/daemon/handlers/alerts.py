"""Handlers of the alert rule methods: alert.add, alert.list, alert.remove.  Rules are
changed as entries are (`Ctx.service.commit`: applied, journaled, then answered); what
they fire is `goproc.daemon.alerting`'s."""

from __future__ import annotations

from goproc.alerts import parse_action, parse_condition
from goproc.api import AlertAddParams, AlertRemoveParams, AlertRule, NoParams
from goproc.daemon.handlers.context import Ctx


async def add(ctx: Ctx, params: AlertAddParams) -> AlertRule:
    condition = parse_condition(params.condition)
    action = parse_action(params.action)
    rule, change = ctx.registry.rules.plan_add(
        name=params.rule,
        select=params.target.select,
        all=params.target.all,
        condition=condition,
        action=action,
        now=ctx.clock(),
        next_entry_id=ctx.registry.next_id,
    )
    await ctx.service.commit(change)
    return AlertRule(rule)


async def list_rules(ctx: Ctx, _: NoParams) -> list[AlertRule]:
    return [AlertRule(r, ctx.firing(r)) for r in ctx.registry.rules]


async def remove(ctx: Ctx, params: AlertRemoveParams) -> AlertRule:
    rule = ctx.registry.rules.find(params.rule)
    firing = ctx.firing(rule)
    await ctx.service.commit(ctx.registry.rules.plan_remove(rule, ctx.registry.next_id))
    return AlertRule(rule, firing)
