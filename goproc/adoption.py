"""Adoption rules: pure and synchronous, as the registry that keeps them.

A rule (`goproc.model.AdoptRule`) adds every process that starts after it was made and
matches it.  Which processes are new and match is the daemon's business
(`goproc.daemon.adopting`, reading `/proc`); here is what adding them means:
`plan_adoption` (skip what is tracked, keep the rule's `limit`, name each from the
rule's template, count them in the rule), `plan_forget` (the rule's dead entries past
`forget_after`) and the book the rules live in.  No trio, no files.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from goproc.errors import InvalidValue
from goproc.model import NAME_RE, AdoptRule, Change, Proc, ProcessFacts
from goproc.rulebook import Book

if TYPE_CHECKING:
    from goproc.registry import Registry

TEMPLATE_FIELDS = ("comm", "pid", "n")
_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "._-")


class AdoptBook(Book[AdoptRule]):
    """The adoption rules."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("adoption rule")

    def plan_add(self, rule: AdoptRule, next_entry_id: int) -> tuple[AdoptRule, Change]:
        """`rule` numbered as the next rule, and the Change that makes it; NameInUse
        when its name is another rule's, TooManyRules at MAX_RULES."""
        self.check_new(rule.name)
        new = attrs.evolve(rule, id=self.next_id, adopted=0)
        return new, Change(next_id=next_entry_id, adopts_put=(new,), next_adopt=new.id + 1)

    def plan_remove(self, rule: AdoptRule, next_entry_id: int) -> Change:
        return Change(next_id=next_entry_id, adopts_deleted=(rule.id,))

    def apply(self, change: Change) -> None:
        """The adoption rule part of `change` (a reset has cleared the book already)."""
        self.apply_parts(change.adopts_put, change.adopts_deleted, change.next_adopt)

    def undo_for(self, change: Change) -> tuple[tuple[AdoptRule, ...], tuple[int, ...]]:
        return self.undo_parts(change.adopts_put, change.adopts_deleted)


def check_template(template: str) -> str:
    """A name template as given, or InvalidValue naming what is wrong: text an entry
    name may hold (letters, digits, '.', '-', '_') and the fields {comm}, {pid}, {n}."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as e:
        raise InvalidValue(f"name: not a name template ({e}): {template!r}") from None
    for literal, field, spec, conversion in parts:
        bad = sorted(set(literal) - _NAME_CHARS)
        if bad:
            raise InvalidValue(
                f"name: {bad[0]!r} may not be in a name (letters, digits, '.', '-', '_' "
                f"and the fields {{comm}}, {{pid}}, {{n}}): {template!r}"
            )
        if field is not None and (field not in TEMPLATE_FIELDS or spec or conversion):
            raise InvalidValue(
                f"name: unknown field {{{field}}} (known: {{comm}}, {{pid}}, {{n}}): {template!r}"
            )
    if render(template, "x", 1, 1) is None:
        raise InvalidValue(
            f"name: the names it makes are not 1..64 characters with a non-digit: {template!r}"
        )
    return template


def render(template: str, comm: str, pid: int, n: int) -> str | None:
    """The name `template` gives the `n`-th process a rule adopts, or None when that is
    no valid name (all digits is none: it would read as an id).  Characters of `comm`
    a name may not hold become '_'."""
    safe = "".join(c if c in _NAME_CHARS else "_" for c in comm)
    name = template.format(comm=safe, pid=pid, n=n)
    return name if NAME_RE.fullmatch(name) and not name.isdigit() else None


def plan_adoption(
    registry: Registry,
    rule: AdoptRule,
    found: Sequence[tuple[ProcessFacts, str]],
    now: float,
) -> tuple[list[Proc], Change] | None:
    """The entries `rule` adds for the processes `found` (each with its `comm`, in the
    order found, each pid once) and the Change that adds them, or None when there are none: those
    tracked alive already are skipped, and those beyond the rule's `limit` of alive
    entries.  A name the template makes that is taken (or invalid) is left off."""
    fresh = [(f, comm) for f, comm in found if registry.live_entry(f.pid, f.started_at) is None]
    if rule.limit is not None:
        alive = sum(1 for p in registry.adopted(rule.id) if p.alive)
        fresh = fresh[: max(rule.limit - alive, 0)]
    if not fresh:
        return None
    names: list[str | None] = []
    taken: set[str] = set()
    for k, (f, comm) in enumerate(fresh):
        name = None
        if rule.name_template is not None:
            name = render(rule.name_template, comm, f.pid, rule.adopted + k + 1)
            if name is not None and (name in taken or registry.by_name(name) is not None):
                name = None
        if name is not None:
            taken.add(name)
        names.append(name)
    added, change = registry.plan_add(
        [f for f, _ in fresh],
        tags=rule.tags,
        groups=rule.groups,
        names=names,
        adopted_by=rule.id,
        now=now,
    )
    counted = attrs.evolve(rule, adopted=rule.adopted + len(added))
    return added, attrs.evolve(change, adopts_put=(counted,))


def plan_forget(registry: Registry, now: float) -> Change | None:
    """The Change that removes every rule's dead entries `forget_after` seconds after
    they exited, or None when there are none yet."""
    gone: list[int] = []
    for rule in registry.adopts:
        if rule.forget_after is None:
            continue
        for p in registry.adopted(rule.id):
            if not p.alive and p.exited_at is not None and now - p.exited_at >= rule.forget_after:
                gone.append(p.id)
    return registry.plan_remove(gone) if gone else None


def next_forget(registry: Registry) -> float | None:
    """When the next dead entry of a rule with `forget_after` is due (None: none)."""
    due = [
        p.exited_at + rule.forget_after
        for rule in registry.adopts
        if rule.forget_after is not None
        for p in registry.adopted(rule.id)
        if not p.alive and p.exited_at is not None
    ]
    return min(due, default=None)
