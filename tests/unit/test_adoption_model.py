"""Adoption rules in the registry against a plain model: a hypothesis state machine.

The machine keeps a registry and a model of what adoption means (`goproc.adoption`):
rules made and removed (names colliding on purpose, limits, name templates,
`forget_after`), processes appearing that a rule adopts (names from the template, a name
taken left off, the rule's `limit` of alive entries kept, processes tracked already
skipped, `{n}` counting on), processes dying, time passing and the rule's old dead
entries forgotten, `reset`, and the undo of each change.  Every change also goes to a
replica through its journal line, and after every step the replica, a snapshot round
trip and the model must agree with the registry.  Which processes a rule matches is
the daemon's (`goproc.daemon.adopting`, tested against real processes in
tests/e2e/test_adoption.py); here a rule is handed the processes it matched.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import event, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from goproc.adoption import check_template, plan_adoption, plan_forget, render
from goproc.errors import InvalidValue, NameInUse, TooManyRules
from goproc.model import AdoptRule, Change, ProcessFacts, Selector
from goproc.registry import Registry
from goproc.rulebook import MAX_RULES
from goproc.store.format import (
    RuleState,
    change_from_json,
    change_line,
    parse_snapshot,
    snapshot_bytes,
)

RULE_NAMES = ["jobs", "web", None]
TEMPLATES = [None, "w-{n}", "{comm}.{pid}", "fixed", "{comm}"]
COMMS = ["worker", "web srv", "a/b:c", "x" * 15]
PIDS = list(range(200, 208))


def blank_rule(**fields: Any) -> AdoptRule:
    base: dict[str, Any] = {
        "id": 0,
        "name": None,
        "pattern": "w",
        "full": False,
        "exact": False,
        "users": None,
        "parents": None,
        "cgroup": None,
        "children_of": None,
        "tags": (),
        "groups": (),
        "name_template": None,
        "forget_after": None,
        "limit": None,
        "created_at": 1_700_000_000.0,
    }
    return AdoptRule(**{**base, **fields})


class AdoptionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.registry = Registry()
        self.replica = Registry()  # fed only the journal lines of every change
        self.clock = 1_700_000_000.0
        self.running: dict[int, tuple[ProcessFacts, str]] = {}
        # the model: rules by id, entries by id
        self.model_rules: dict[int, dict[str, Any]] = {}
        self.next_rule = 1
        self.entries: dict[int, dict[str, Any]] = {}
        self.next_id = 1

    def tick(self, by: float = 1.5) -> float:
        self.clock += by
        return round(self.clock, 6)

    def commit(self, change: Change) -> None:
        self.registry.apply(change)
        self.replica.apply(change_from_json(json.loads(change_line(change))))

    # ---- rules ---------------------------------------------------------------------------

    @rule(
        name=st.sampled_from(RULE_NAMES),
        template=st.sampled_from(TEMPLATES),
        limit=st.none() | st.integers(1, 3),
        forget=st.none() | st.sampled_from([0.0, 2.0, 10.0]),
        tags=st.lists(st.sampled_from(["a", "b"]), max_size=2),
    )
    def add_rule(
        self,
        name: str | None,
        template: str | None,
        limit: int | None,
        forget: float | None,
        tags: list[str],
    ) -> None:
        taken = name is not None and any(r["name"] == name for r in self.model_rules.values())
        new = blank_rule(
            name=name,
            name_template=template,
            limit=limit,
            forget_after=forget,
            tags=tuple(sorted(set(tags))),
            created_at=self.tick(),
        )
        try:
            rule, change = self.registry.adopts.plan_add(new, self.registry.next_id)
        except NameInUse:
            assert taken
            event("adopt rule: name in use")
            return
        assert not taken
        assert rule.id == self.next_rule and rule.adopted == 0
        self.commit(change)
        self.model_rules[rule.id] = {"rule": rule, "name": name, "adopted": 0}
        self.next_rule += 1
        event("adopt rule: added")

    @precondition(lambda self: bool(self.model_rules))
    @rule(data=st.data(), by_name=st.booleans())
    def remove_rule(self, data: st.DataObject, by_name: bool) -> None:
        rule_id = data.draw(st.sampled_from(sorted(self.model_rules)))
        name = self.model_rules[rule_id]["name"]
        ref: int | str = name if by_name and name is not None else rule_id
        rule = self.registry.adopts.find(ref)
        assert rule.id == rule_id
        self.commit(self.registry.adopts.plan_remove(rule, self.registry.next_id))
        del self.model_rules[rule_id]  # its entries stay, still naming it
        event("adopt rule: removed")

    # ---- processes -----------------------------------------------------------------------

    @rule(pid=st.sampled_from(PIDS), comm=st.sampled_from(COMMS))
    def start_process(self, pid: int, comm: str) -> None:
        """A process starts on `pid` (one there before has ended: a reuse)."""
        facts = ProcessFacts(pid=pid, started_at=self.tick(), cmd=comm + " --x", pgid=None)
        for e in self.entries.values():
            if e["pid"] == pid and e["alive"]:
                self.registry.set_alive(e["id"], False, self.clock)
                self.replica.set_alive(e["id"], False, self.clock)
                e["alive"], e["exited_at"] = False, self.clock
        self.running[pid] = (facts, comm)

    @precondition(lambda self: bool(self.model_rules) and bool(self.running))
    @rule(data=st.data())
    def adopt(self, data: st.DataObject) -> None:
        """A rule is handed some running processes it matched (some tracked already)."""
        rule_id = data.draw(st.sampled_from(sorted(self.model_rules)))
        pids = data.draw(st.lists(st.sampled_from(sorted(self.running)), unique=True))
        found = [self.running[p] for p in pids]
        rule = self.registry.adopts.get(rule_id)
        assert rule is not None
        now = self.tick(0.5)
        expected = self.model_adoption(rule_id, found)
        planned = plan_adoption(self.registry, rule, found, now)
        if not expected:
            assert planned is None
            event("adopt: nothing to add")
            return
        assert planned is not None
        added, change = planned
        self.commit(change)
        assert [(p.pid, p.name) for p in added] == [(f.pid, n) for f, n in expected]
        for p in added:
            assert p.adopted_by == rule_id and p.tags == rule.tags
            self.entries[p.id] = {
                "id": p.id,
                "pid": p.pid,
                "started_at": p.started_at,
                "alive": True,
                "exited_at": None,
                "rule": rule_id,
                "name": p.name,
            }
        self.model_rules[rule_id]["adopted"] += len(added)
        self.next_id = max(self.next_id, max(p.id for p in added) + 1)
        event(f"adopt: {len(added)} added")

    def model_adoption(
        self, rule_id: int, found: list[tuple[ProcessFacts, str]]
    ) -> list[tuple[ProcessFacts, str | None]]:
        """What the rule should add: the untracked ones, up to its limit, each named
        by the template unless the name is taken (by an entry, or one before it)."""
        rule = self.model_rules[rule_id]["rule"]
        tracked = {(e["pid"], e["started_at"]) for e in self.entries.values() if e["alive"]}
        fresh = [(f, c) for f, c in found if (f.pid, f.started_at) not in tracked]
        if rule.limit is not None:
            alive = sum(1 for e in self.entries.values() if e["rule"] == rule_id and e["alive"])
            fresh = fresh[: max(rule.limit - alive, 0)]
        names = {e["name"] for e in self.entries.values() if e["name"] is not None}
        out: list[tuple[ProcessFacts, str | None]] = []
        n = self.model_rules[rule_id]["adopted"]
        for f, comm in fresh:
            n += 1
            name = None
            if rule.name_template is not None:
                safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in comm)
                name = rule.name_template.format(comm=safe, pid=f.pid, n=n)
                if name in names:
                    name = None
            if name is not None:
                names.add(name)
            out.append((f, name))
        return out

    @precondition(lambda self: any(e["alive"] for e in self.entries.values()))
    @rule(data=st.data())
    def die(self, data: st.DataObject) -> None:
        alive = sorted(i for i, e in self.entries.items() if e["alive"])
        proc_id = data.draw(st.sampled_from(alive))
        now = self.tick(0.5)
        self.registry.set_alive(proc_id, False, now)
        self.replica.set_alive(proc_id, False, now)
        self.entries[proc_id].update(alive=False, exited_at=now)
        self.running.pop(self.entries[proc_id]["pid"], None)

    @rule(seconds=st.sampled_from([0.0, 1.0, 5.0, 20.0]))
    def time_passes_and_forgets(self, seconds: float) -> None:
        now = self.tick(seconds)
        due = sorted(
            i
            for i, e in self.entries.items()
            if not e["alive"]
            and e["rule"] in self.model_rules
            and self.model_rules[e["rule"]]["rule"].forget_after is not None
            and now - e["exited_at"] >= self.model_rules[e["rule"]]["rule"].forget_after
        )
        change = plan_forget(self.registry, now)
        assert (change.deleted if change is not None else ()) == tuple(due)
        if change is not None:
            self.commit(change)
            for i in due:
                del self.entries[i]
            event(f"forget: {len(due)}")

    @precondition(lambda self: len(self.entries) >= 2)
    @rule()
    def reset(self) -> None:
        self.commit(self.registry.plan_reset())
        self.model_rules.clear()
        self.entries.clear()
        self.next_rule = self.next_id = 1

    @precondition(lambda self: bool(self.model_rules))
    @rule(data=st.data())
    def change_then_undo(self, data: st.DataObject) -> None:
        """The undo of a rule's removal, or of an adoption, restores the registry."""
        rule_id = data.draw(st.sampled_from(sorted(self.model_rules)))
        rule = self.registry.adopts.get(rule_id)
        assert rule is not None
        if data.draw(st.booleans()):
            change = self.registry.adopts.plan_remove(rule, self.registry.next_id)
        else:
            planned = plan_adoption(self.registry, rule, list(self.running.values()), self.clock)
            if planned is None:
                return
            change = planned[1]
        before = (list(self.registry), list(self.registry.adopts), self.registry.next_id)
        undo = self.registry.apply(change)
        self.registry.apply(undo)
        assert (list(self.registry), list(self.registry.adopts)) == (before[0], before[1])

    # ---- invariants ----------------------------------------------------------------------

    @invariant()
    def rules_agree_with_the_model(self) -> None:
        got = {r.id: (r.name, r.adopted) for r in self.registry.adopts}
        assert got == {i: (m["name"], m["adopted"]) for i, m in self.model_rules.items()}
        assert self.registry.adopts.next_id == self.next_rule

    @invariant()
    def entries_agree_with_the_model(self) -> None:
        got = {p.id: (p.pid, p.alive, p.adopted_by, p.name) for p in self.registry}
        want = {i: (e["pid"], e["alive"], e["rule"], e["name"]) for i, e in self.entries.items()}
        assert got == want
        for rule_id in {e["rule"] for e in self.entries.values()}:
            assert [p.id for p in self.registry.adopted(rule_id)] == sorted(
                i for i, e in self.entries.items() if e["rule"] == rule_id
            )

    @invariant()
    def limits_hold(self) -> None:
        for rule_id, m in self.model_rules.items():
            limit = m["rule"].limit
            alive = [p for p in self.registry.adopted(rule_id) if p.alive]
            assert limit is None or len(alive) <= limit

    @invariant()
    def journal_replay_agrees(self) -> None:
        assert list(self.replica.adopts) == list(self.registry.adopts)
        assert list(self.replica) == list(self.registry)

    @invariant()
    def snapshot_round_trip_agrees(self) -> None:
        reg = self.registry
        state = RuleState((), 1, tuple(reg.adopts), reg.adopts.next_id)
        procs, header = parse_snapshot(snapshot_bytes(list(reg), reg.next_id, 0, None, state))
        loaded = Registry()
        loaded.load(procs, header.next_id, (), 1, header.adopts, header.next_adopt)
        assert list(loaded.adopts) == list(reg.adopts)
        assert loaded.adopts.next_id == reg.adopts.next_id
        assert list(loaded) == list(reg)
        assert loaded.indexes() == reg.indexes()


AdoptionMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_adoption_rules_against_the_model = AdoptionMachine.TestCase


# ---- examples of the edges ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{comm", "not a name template"),
        ("w {n}", "' ' may not be in a name"),
        ("{name}", "unknown field {name}"),
        ("{n:03}", "unknown field {n}"),
        ("{n!r}", "unknown field {n}"),
        ("x" * 65, "not 1..64 characters"),
        ("", "not 1..64 characters"),
        ("{pid}", "with a non-digit"),
        ("{n}", "with a non-digit"),
    ],
)
def test_a_bad_name_template_is_refused_naming_name(template: str, problem: str) -> None:
    with pytest.raises(InvalidValue, match=r"^name: ") as e:
        check_template(template)
    assert problem in e.value.message


def test_a_template_renders_comm_pid_and_n_with_unfit_characters_replaced() -> None:
    assert check_template("{comm}-{pid}.{n}") == "{comm}-{pid}.{n}"
    assert render("{comm}-{pid}.{n}", "web srv/1", 42, 7) == "web_srv_1-42.7"
    assert render("{comm}", "x" * 70, 1, 1) is None  # too long: no name
    assert render("{comm}", "123", 1, 1) is None  # all digits would read as an id


def test_the_256th_rule_is_the_last() -> None:
    reg = Registry()
    for n in range(MAX_RULES):
        reg.apply(reg.adopts.plan_add(blank_rule(name=f"r{n}"), reg.next_id)[1])
    with pytest.raises(TooManyRules):
        reg.adopts.plan_add(blank_rule(), reg.next_id)


def test_an_adoption_counts_on_in_the_rule_and_journals_both() -> None:
    reg = Registry()
    rule, change = reg.adopts.plan_add(blank_rule(name_template="w-{n}"), reg.next_id)
    reg.apply(change)
    facts = [ProcessFacts(pid=p, started_at=1.0 + p, cmd="w", pgid=None) for p in (7, 8)]
    planned = plan_adoption(reg, rule, [(f, "w") for f in facts], 5.0)
    assert planned is not None
    added, change = planned
    assert [p.name for p in added] == ["w-1", "w-2"]
    assert change.adopts_put == (attrs.evolve(rule, adopted=2),)
    line = json.loads(change_line(change))
    assert line["adopts_put"][0]["adopted"] == 2
    assert [p["adopted_by"] for p in line["put"]] == [rule.id, rule.id]
    reg.apply(change)
    assert reg.select(Selector(names=("w-2",)))[0].pid == 8
