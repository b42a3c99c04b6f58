"""The alert rules the registry keeps beside its entries: pure and synchronous.

No trio, no files.  Rules change as entries do: planned (`plan_add`, `plan_remove` ->
a `goproc.model.Change`), then applied by `Registry.apply`, journaled and snapshotted
with the entries.  Which samples fire a rule is `goproc.alerts.Crossing`'s business
and the daemon's (`goproc.daemon.alerting`): memory only, never stored.
"""

from __future__ import annotations

from collections.abc import Iterator

from goproc.alerts import Condition
from goproc.errors import InvalidValue, NameInUse, NoMatch, TooManyRules
from goproc.model import Change, Rule, Selector

MAX_RULES = 256  # each is checked against every sweep's entries: their number bounds it


class RuleBook:
    """Rules by id (in id order: ids only grow), and by name."""

    __slots__ = ("_by_name", "_rules", "next_id")

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._rules: dict[int, Rule] = {}
        self._by_name: dict[str, int] = {}
        self.next_id = 1

    def __len__(self) -> int:
        return len(self._rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules.values())

    def get(self, rule_id: int) -> Rule | None:
        return self._rules.get(rule_id)

    def find(self, ref: int | str) -> Rule:
        """The rule with this number or name; NoMatch when there is none."""
        if isinstance(ref, int):
            rule = self._rules.get(ref)
        else:
            rule_id = self._by_name.get(ref)
            rule = None if rule_id is None else self._rules[rule_id]
        if rule is None:
            what = f"number {ref}" if isinstance(ref, int) else f"name {ref!r}"
            raise NoMatch(f"no alert rule with {what}")
        return rule

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
        if name is not None and name in self._by_name:
            raise NameInUse(f"rule name {name!r} is already used by rule {self._by_name[name]}")
        if len(self._rules) >= MAX_RULES:
            raise TooManyRules(f"too many alert rules (limit {MAX_RULES}); remove one first")
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
        """The rule part of `change` (a reset has cleared the book already)."""
        for rule_id in change.rules_deleted:
            self._drop(rule_id)
        out_of_order = False
        last = next(reversed(self._rules), 0)
        for rule in change.rules_put:
            out_of_order = out_of_order or (rule.id < last and rule.id not in self._rules)
            self._drop(rule.id)
            self._rules[rule.id] = rule
            if rule.name is not None:
                self._by_name[rule.name] = rule.id
        if out_of_order:  # an undo brought back an old id: restore id order
            self._rules = dict(sorted(self._rules.items()))
        self.next_id = max(self.next_id, change.next_rule)

    def undo_for(self, change: Change) -> tuple[tuple[Rule, ...], tuple[int, ...]]:
        """What undoes the rule part of `change`: the rules as they are, and the ids it
        creates."""
        touched = sorted({r.id for r in change.rules_put} | set(change.rules_deleted))
        before = tuple(self._rules[i] for i in touched if i in self._rules)
        created = tuple(i for i in touched if i not in self._rules)
        return before, created

    def load(self, rules: tuple[Rule, ...], next_id: int) -> None:
        self.clear()
        self.apply(Change(next_id=0, rules_put=tuple(sorted(rules, key=lambda r: r.id))))
        self.next_id = max(next_id, max(self._rules, default=0) + 1)

    def _drop(self, rule_id: int) -> None:
        old = self._rules.pop(rule_id, None)
        if old is not None and old.name is not None and self._by_name.get(old.name) == rule_id:
            del self._by_name[old.name]
