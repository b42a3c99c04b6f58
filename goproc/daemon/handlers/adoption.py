"""Handlers of the adoption rule methods: adopt.add, adopt.list, adopt.remove.  Rules
are changed as entries are (`Ctx.service.commit`: applied, journaled, then answered);
finding the processes they adopt is `goproc.daemon.adopting`'s, told by `Ctx.adopting`
that the rules changed."""

from __future__ import annotations

from goproc.adoption import check_template
from goproc.api import AdoptAddParams, AdoptInfo, AdoptRemoveParams, NoParams
from goproc.daemon.ere import Ere
from goproc.daemon.handlers.context import Ctx
from goproc.daemon.handlers.discovery import cgroup_members, children_root, match_users
from goproc.errors import InvalidValue
from goproc.model import AdoptRule, normalize_labels


async def add(ctx: Ctx, params: AdoptAddParams) -> AdoptInfo:
    spec = params.match
    if spec.pick != "all":
        raise InvalidValue(
            "match.pick: a rule adopts every process that matches (newest and oldest "
            "are for a one-time add)"
        )
    if (spec.pattern, spec.user, spec.parent, spec.cgroup, spec.children_of) == (None,) * 5:
        raise InvalidValue(
            "match: give a pattern, user, parent, cgroup or children_of "
            "(a rule must say which new processes it adopts)"
        )
    if spec.pattern is not None:
        Ere(spec.pattern, exact=spec.exact, field="match.pattern").close()  # it compiles
    users = None if spec.user is None else tuple(sorted(match_users(spec)))
    if spec.cgroup is not None:
        cgroup_members(spec.cgroup)  # it is a cgroup v2 directory now
    root = None if spec.children_of is None else children_root(ctx, spec.children_of).id
    template = None if params.name is None else check_template(params.name)
    rule, change = ctx.registry.adopts.plan_add(
        AdoptRule(
            id=0,
            name=params.rule,
            pattern=spec.pattern,
            full=spec.full,
            exact=spec.exact,
            users=users,
            parents=spec.parent,
            cgroup=spec.cgroup,
            children_of=root,
            tags=normalize_labels(params.tags),
            groups=normalize_labels(params.groups),
            name_template=template,
            forget_after=params.forget_after,
            limit=params.limit,
            created_at=ctx.clock(),
        ),
        ctx.registry.next_id,
    )
    await ctx.service.commit(change)
    ctx.adopting()
    return AdoptInfo(rule)


def _info(ctx: Ctx, rule: AdoptRule) -> AdoptInfo:
    return AdoptInfo(rule, sum(1 for p in ctx.registry.adopted(rule.id) if p.alive))


async def list_rules(ctx: Ctx, _: NoParams) -> list[AdoptInfo]:
    return [_info(ctx, r) for r in ctx.registry.adopts]


async def remove(ctx: Ctx, params: AdoptRemoveParams) -> AdoptInfo:
    rule = ctx.registry.adopts.find(params.rule)
    info = _info(ctx, rule)
    await ctx.service.commit(ctx.registry.adopts.plan_remove(rule, ctx.registry.next_id))
    ctx.adopting()
    return info
