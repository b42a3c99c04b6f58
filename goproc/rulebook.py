"""The rules the registry keeps beside its entries (alert rules here, adoption rules in
`goproc.adoption`): pure and synchronous.

No trio, no files.  Rules change as entries do: planned (`plan_add`, `plan_remove` ->
a `goproc.model.Change`), then applied by `Registry.apply`, journaled and snapshotted
with the entries.  Which samples fire a rule is `goproc.alerts.Crossing`'s business
and the daemon's (`goproc.daemon.alerting`): memory only, never stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

from goproc.alerts import Condition
from goproc.errors import InvalidValue, NameInUse, NoMatch, TooManyRules
from goproc.model import Change, Rule, Selector

MAX_RULES = 256  # of each kind: every sweep (or new process) is checked against them


class Numbered(Protocol):
    """What a book keeps rules by."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str | None: ...


R = TypeVar("R", bound=Numbered)


class Book(Generic[R]):
    """Rules of one kind by id (in id order: ids only grow), and by name; `what` names
    the kind in messages ("alert rule")."""

    __slots__ = ("_by_name", "_rules", "next_id", "what")

    def __init__(self, what: str) -> None:
        self.what = what
        self.clear()

    def clear(self) -> None:
        self._rules: dict[int, R] = {}
        self._by_name: dict[str, int] = {}
        self.next_id = 1

    def __len__(self) -> int:
        return len(self._rules)

    def __iter__(self) -> Iterator[R]:
        return iter(self._rules.values())

    def get(self, rule_id: int) -> R | None:
        return self._rules.get(rule_id)

    def find(self, ref: int | str) -> R:
        """The rule with this number or name; NoMatch when there is none."""
        if isinstance(ref, int):
            rule = self._rules.get(ref)
        else:
            rule_id = self._by_name.get(ref)
            rule = None if rule_id is None else self._rules[rule_id]
        if rule is None:
            what = f"number {ref}" if isinstance(ref, int) else f"name {ref!r}"
            raise NoMatch(f"no {self.what} with {what}")
        return rule

    def check_new(self, name: str | None) -> None:
        """NameInUse when `name` is another rule's, TooManyRules at MAX_RULES."""
        if name is not None and name in self._by_name:
            raise NameInUse(f"rule name {name!r} is already used by rule {self._by_name[name]}")
        if len(self._rules) >= MAX_RULES:
            raise TooManyRules(f"too many {self.what}s (limit {MAX_RULES}); remove one first")

    def apply_parts(self, put: tuple[R, ...], deleted: tuple[int, ...], next_id: int) -> None:
        """Forget the `deleted` ids, write the `put` rules, move the counter to
        `next_id` (0: leave it); a reset has cleared the book already."""
        for rule_id in deleted:
            self._drop(rule_id)
        out_of_order = False
        last = next(reversed(self._rules), 0)
        for rule in put:
            old = self._rules.get(rule.id)
            if old is None:
                out_of_order = out_of_order or rule.id < last
            elif old.name is not None and self._by_name.get(old.name) == rule.id:
                del self._by_name[old.name]
            self._rules[rule.id] = rule  # a rule written again keeps its place
            if rule.name is not None:
                self._by_name[rule.name] = rule.id
        if out_of_order:  # an undo brought back an old id: restore id order
            self._rules = dict(sorted(self._rules.items()))
        self.next_id = max(self.next_id, next_id)

    def undo_parts(
        self, put: tuple[R, ...], deleted: tuple[int, ...]
    ) -> tuple[tuple[R, ...], tuple[int, ...]]:
        """What undoes writing `put` and forgetting `deleted`: the rules as they are,
        and the ids it creates."""
        touched = sorted({r.id for r in put} | set(deleted))
        before = tuple(self._rules[i] for i in touched if i in self._rules)
        created = tuple(i for i in touched if i not in self._rules)
        return before, created

    def load(self, rules: tuple[R, ...], next_id: int) -> None:
        self.clear()
        self.apply_parts(tuple(sorted(rules, key=lambda r: r.id)), (), 0)
        self.next_id = max(next_id, max(self._rules, default=0) + 1)

    def _drop(self, rule_id: int) -> None:
        old = self._rules.pop(rule_id, None)
        if old is not None and old.name is not None and self._by_name.get(old.name) == rule_id:
            del self._by_name[old.name]


class RuleBook(Book[Rule]):
    """The alert rules."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("alert rule")

    def plan_add(
        self,
        *,
        name: str | None,
        select: Selector,
        all: bool,
        condition: Condition,
        action: str,
        now: float,
        next_entry_id: int,
    ) -> tuple[Rule, Change]:
        """A new rule and the Change that makes it.  Raises InvalidValue when it selects
        nothing in particular and `all` is not given, NameInUse when `name` is another
        rule's, TooManyRules at MAX_RULES."""
        if select == Selector() and not all:
            raise InvalidValue(
                "all: a rule for every entry needs all: true (or give selectors, like tags_any)"
            )
        self.check_new(name)
        rule = Rule(
            id=self.next_id,
            name=name,
            select=select,
            all=all,
            condition=condition,
            action=action,
            created_at=now,
        )
        return rule, Change(next_id=next_entry_id, rules_put=(rule,), next_rule=rule.id + 1)

    def plan_remove(self, rule: Rule, next_entry_id: int) -> Change:
        return Change(next_id=next_entry_id, rules_deleted=(rule.id,))

    def apply(self, change: Change) -> None:
        """The alert rule part of `change` (a reset has cleared the book already)."""
        self.apply_parts(change.rules_put, change.rules_deleted, change.next_rule)

    def undo_for(self, change: Change) -> tuple[tuple[Rule, ...], tuple[int, ...]]:
        return self.undo_parts(change.rules_put, change.rules_deleted)
