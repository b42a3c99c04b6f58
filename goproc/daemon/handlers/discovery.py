"""`add` with a `match`: find processes as `pgrep` does (`goproc.matching`) in a scan of
`/proc` (`goproc.daemon.scan`, in a worker thread), then add those not tracked yet, all
or nothing, as `add` of several pids does.  Never selected: this daemon, the client
that asked, kernel threads, zombies, and processes of other users (unless the daemon
runs as root and `user` names them).
"""

from __future__ import annotations

import functools
import os
import pwd

import trio

from goproc.api import AddParams, Matched, MatchedProcess, MatchSpec
from goproc.daemon.ere import Ere
from goproc.daemon.handlers.context import Ctx
from goproc.daemon.probe import Probe
from goproc.daemon.scan import Seen, cgroup_pids, scan
from goproc.errors import GoprocError, InvalidValue, NoMatch, PermissionDenied
from goproc.matching import Criteria, select
from goproc.model import Proc, ProcessFacts, Selector


async def add_matching(ctx: Ctx, params: AddParams, log_files: object) -> Matched:
    """Add (or with `dry_run`, only list) every process `params.match` selects."""
    spec = params.match
    assert spec is not None
    if params.pid is not None or params.pids is not None:
        raise InvalidValue("match: give pid, pids or match, not more than one")
    if log_files is not None:
        raise InvalidValue("log: a log can be given to exactly one process, not to a match")
    users = match_users(spec)
    within, root = _within(ctx, spec)
    with Ere(spec.pattern or "", exact=spec.exact, field="match.pattern") as ere:
        criteria = Criteria(
            ere.search if spec.pattern is not None else None,
            full=spec.full,
            users=users,
            parents=None if spec.parent is None else frozenset(spec.parent),
            pick=spec.pick,
        )
        excluded = {os.getpid()}
        peer = None if ctx.session is None else ctx.session.peer_pid
        if peer is not None:
            excluded.add(peer)
        find = functools.partial(_found, ctx.probe, criteria, within, root, excluded)
        found = await trio.to_thread.run_sync(find)
    if not found:
        raise NoMatch("no process matches")
    return await _add(ctx, params, found)


def _found(
    probe: Probe,
    criteria: Criteria,
    within: set[int] | None,
    root: int | None,
    excluded: set[int],
) -> list[ProcessFacts]:
    """What the probe says of each process selected, in pid order, among those of
    `within` (None: all) and below `root` (None: anywhere); one that ended (or changed
    hands) since the scan is left out.  Blocking: a scan of /proc, then the probes."""
    full = criteria.full
    procs = scan(cmdline=full) if within is None else scan(cmdline=full, pids=within)
    if root is not None:
        below = descendants(root, procs if within is None else scan(cmdline=False))
        procs = [p for p in procs if p.pid in below]
    out = []
    for pid in select(procs, criteria, excluded):
        try:
            out.append(probe.inspect(pid))
        except GoprocError:
            continue
    return out


def match_users(spec: MatchSpec) -> frozenset[int]:
    """The effective uids a match is for: the daemon's own unless `user` names others,
    which only a daemon running as root may."""
    own = os.geteuid()
    if spec.user is None:
        return frozenset({own})
    uids = set()
    for n, text in enumerate(spec.user):
        word = text.strip()
        if word.isdigit() and word.isascii():
            uids.add(int(word))
            continue
        try:
            uids.add(pwd.getpwnam(word).pw_uid)
        except KeyError:
            raise InvalidValue(f"match.user[{n}]: no such user {text!r}") from None
    if own != 0 and uids - {own}:
        raise PermissionDenied(
            f"match.user: this daemon runs as uid {own} and may track only its own processes"
        )
    return frozenset(uids)


def _within(ctx: Ctx, spec: MatchSpec) -> tuple[set[int] | None, int | None]:
    """The pids of the cgroup a match is limited to (None: no cgroup), and the pid of
    the tracked process whose descendants it is limited to (None: not so limited)."""
    within = None if spec.cgroup is None else cgroup_members(spec.cgroup)
    if spec.children_of is not None:
        return within, children_root(ctx, spec.children_of).pid
    return within, None


def cgroup_members(path: str) -> set[int]:
    """The pids of the cgroup v2 directory `path`; InvalidValue naming `match.cgroup`
    when it is not one."""
    try:
        return set(cgroup_pids(path))
    except OSError as e:
        raise InvalidValue(
            f"match.cgroup: not a cgroup v2 directory ({e.strerror or e}): {path!r}"
        ) from None


def children_root(ctx: Ctx, ref: int | str) -> Proc:
    """The alive entry (by id or name) whose process's descendants a match is for."""
    selector = Selector(ids=(ref,)) if isinstance(ref, int) else Selector(names=(ref,))
    entries = ctx.registry.select(selector)
    if not entries:
        raise NoMatch(f"match.children_of: no entry {ref!r}")
    if not entries[0].alive:
        raise InvalidValue(f"match.children_of: entry {ref!r} is not alive")
    return entries[0]


def descendants(root: int, procs: list[Seen]) -> set[int]:
    """Every process below `root` in the parent tree, as it is now."""
    children: dict[int, list[int]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p.pid)
    out: set[int] = set()
    todo = [root]
    while todo:
        for kid in children.get(todo.pop(), ()):
            if kid not in out:
                out.add(kid)
                todo.append(kid)
    return out


async def _add(ctx: Ctx, params: AddParams, found: list[ProcessFacts]) -> Matched:
    """Skip what is tracked already, then add the rest in one change (or only say so)."""
    matched: list[MatchedProcess] = []
    fresh: list[ProcessFacts] = []
    for facts in found:
        tracked = ctx.registry.live_entry(facts.pid, facts.started_at)
        if tracked is not None:
            matched.append(MatchedProcess(facts.pid, facts.cmd, "tracked", tracked.id))
        else:
            fresh.append(facts)
            matched.append(MatchedProcess(facts.pid, facts.cmd, "would add"))
    if params.dry_run or not fresh:
        if params.name is not None and len(fresh) > 1:
            raise InvalidValue("name: a name can be given to one process only")
        return Matched(matched=matched, added=[])
    added, change = ctx.registry.plan_add(
        fresh, tags=params.tags, groups=params.groups, name=params.name, now=ctx.clock()
    )
    await ctx.service.commit(change)
    ids = {p.pid: p.id for p in added}
    return Matched(
        matched=[
            MatchedProcess(m.pid, m.cmd, "added", ids[m.pid]) if m.outcome == "would add" else m
            for m in matched
        ],
        added=added,
    )
