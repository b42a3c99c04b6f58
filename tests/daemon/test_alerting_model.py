"""Alert rules against a plain model: a hypothesis state machine over the registry's rule
book, the journal's and snapshot's encoding of rules, and the alerter's firing.

The machine adds and removes rules (selectors by tag, id and name, or every entry; names
that collide on purpose), adds, retags and kills entries, resets, undoes rule changes,
and runs sweeps in which each alive entry gets a memory and thread reading.  The model
keeps the rules as plain dicts and, per rule and entry, the run of samples in which the
condition held: a rule fires at the first sample at which its window is covered, once
per run; a run ends at a sample that does not hold, or when the entry or the rule is not
evaluated (dead, removed, reset).  After every step the rules, their journal replay on a
second registry and their snapshot round trip must agree with the model, and the
`alert` events and actions of the sweep must be exactly the model's firings.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import trio
from hypothesis import settings, strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from goproc.alerts import parse_condition
from goproc.daemon.alerting import Act, Alerter
from goproc.daemon.events import Event, EventBus
from goproc.errors import InvalidValue, NameInUse, NoMatch
from goproc.metrics import MetricsStore, Reading
from goproc.model import Change, ProcessFacts, Selector
from goproc.registry import Registry
from goproc.rpc.entries import metrics_text
from goproc.store.format import (
    RuleState,
    change_from_json,
    change_line,
    parse_snapshot,
    snapshot_bytes,
)

TAGS = ["db", "web", "cache"]
NAMES = ["hot", "big", "hot2"]
CONDITIONS = ["mem > 100MB", "mem >= 100MB for 2s", "threads > 2", "mem < 100MB for 1s"]
ACTIONS = ["event", "signal:HUP", "kill"]
MEMS = [50_000_000, 100_000_000, 150_000_000]
T0 = 1_700_000_000.0


def holds(condition: str, mem: int, threads: int) -> bool:
    """The four conditions, written out plainly."""
    return {
        "mem > 100MB": mem > 100_000_000,
        "mem >= 100MB for 2s": mem >= 100_000_000,
        "threads > 2": threads > 2,
        "mem < 100MB for 1s": mem < 100_000_000,
    }[condition]


WINDOWS = {"mem > 100MB": 0.0, "mem >= 100MB for 2s": 2.0, "threads > 2": 0.0}
WINDOWS["mem < 100MB for 1s"] = 1.0


class AlertMachine(RuleBasedStateMachine):
    entries = Bundle("entries")

    def __init__(self) -> None:
        super().__init__()
        self.registry = Registry()
        self.replica = Registry()  # fed only the journal lines of every change
        self.metrics = MetricsStore(10, metrics_text)
        self.bus = EventBus()
        self.sub = self.bus.subscribe(Selector())
        self.send, self.receive = trio.open_memory_channel[Act](1000)
        self.alerter = Alerter(self.registry, self.metrics, self.bus, self.send, self.clock)
        self.t = T0
        self.next_pid = 100
        self.model_rules: dict[int, dict[str, Any]] = {}
        self.model_next_rule = 1
        self.alive: dict[int, bool] = {}
        self.tags: dict[int, set[str]] = {}
        self.names: dict[int, str | None] = {}
        self.runs: dict[tuple[int, int], tuple[float, bool]] = {}  # since, fired

    def clock(self) -> float:
        return self.t

    def commit(self, change: Change) -> None:
        self.registry.apply(change)
        self.replica.apply(change_from_json(json.loads(change_line(change))))

    # ---- entries ---------------------------------------------------------------------

    @rule(target=entries, tags=st.sets(st.sampled_from(TAGS)), named=st.booleans())
    def add_entry(self, tags: set[str], named: bool) -> int:
        self.next_pid += 1
        self.t = round(self.t + 0.01, 6)  # as the daemon's clock keeps it
        name = f"e{self.next_pid}" if named else None
        facts = ProcessFacts(pid=self.next_pid, started_at=T0 - 10, cmd="sleep", pgid=None)
        added, change = self.registry.plan_add([facts], tags=tags, name=name, now=self.t)
        self.commit(change)
        proc_id = added[0].id
        self.alive[proc_id], self.tags[proc_id], self.names[proc_id] = True, set(tags), name
        return proc_id

    @rule(proc_id=entries, tag=st.sampled_from(TAGS), adding=st.booleans())
    def retag(self, proc_id: int, tag: str, adding: bool) -> None:
        if self.registry.get(proc_id) is None:
            return
        _, change = self.registry.plan_labels(
            [proc_id], "tags", add=[tag] if adding else [], remove=[] if adding else [tag]
        )
        self.commit(change)
        (self.tags[proc_id].add if adding else self.tags[proc_id].discard)(tag)

    @rule(proc_id=entries)
    def die(self, proc_id: int) -> None:
        if self.registry.get(proc_id) is not None:
            self.registry.set_alive(proc_id, False, self.t)
            self.alive[proc_id] = False

    # ---- rules -----------------------------------------------------------------------

    @rule(
        data=st.data(),
        condition=st.sampled_from(CONDITIONS),
        action=st.sampled_from(ACTIONS),
        name=st.none() | st.sampled_from(NAMES),
        how=st.sampled_from(["tag", "id", "name", "all", "nothing"]),
    )
    def add_rule(
        self, data: st.DataObject, condition: str, action: str, name: str | None, how: str
    ) -> None:
        select, every = Selector(), False
        if how == "tag":
            select = Selector(tags_any=(data.draw(st.sampled_from(TAGS)),))
        elif how == "id" and self.alive:
            select = Selector(ids=(data.draw(st.sampled_from(sorted(self.alive))),))
        elif how == "name" and any(self.names.values()):
            named = sorted(n for n in self.names.values() if n)
            select = Selector(names=(data.draw(st.sampled_from(named)),))
        elif how == "all":
            every = True
        self.t = round(self.t + 0.01, 6)  # as the daemon's clock keeps it
        taken = name is not None and any(r["name"] == name for r in self.model_rules.values())
        try:
            made, change = self.registry.rules.plan_add(
                name=name,
                select=select,
                all=every,
                condition=parse_condition(condition),
                action=action,
                now=self.t,
                next_entry_id=self.registry.next_id,
            )
        except InvalidValue:
            assert select == Selector() and not every
            return
        except NameInUse:
            assert taken
            return
        assert not taken and not (select == Selector() and not every)
        assert made.id == self.model_next_rule
        self.commit(change)
        self.model_rules[made.id] = {
            "name": name,
            "select": select,
            "all": every,
            "condition": condition,
            "action": action,
        }
        self.model_next_rule += 1

    @rule(data=st.data(), by_name=st.booleans())
    def remove_rule(self, data: st.DataObject, by_name: bool) -> None:
        numbers = [*self.model_rules, 999]
        number = data.draw(st.sampled_from(numbers))
        ref: int | str = number
        if by_name:
            ref = data.draw(st.sampled_from(NAMES))
            number = next((i for i, r in self.model_rules.items() if r["name"] == ref), 999)
        try:
            gone = self.registry.rules.find(ref)
        except NoMatch:
            assert number not in self.model_rules
            return
        assert gone.id == number
        self.commit(self.registry.rules.plan_remove(gone, self.registry.next_id))
        del self.model_rules[number]

    @rule()
    def rule_change_then_undo(self) -> None:
        """Adding a rule and applying the undo leaves the book as it was (ids are
        never given back)."""
        before = list(self.registry.rules)
        _, change = self.registry.rules.plan_add(
            name=None,
            select=Selector(),
            all=True,
            condition=parse_condition("fds > 1"),
            action="event",
            now=self.t,
            next_entry_id=self.registry.next_id,
        )
        undo = self.registry.apply(change)
        self.registry.apply(undo)
        assert list(self.registry.rules) == before
        self.model_next_rule += 1  # the counter moved on, as ids do
        self.replica.apply(change_from_json(json.loads(change_line(change))))
        self.replica.apply(change_from_json(json.loads(change_line(undo))))

    @rule()
    def reset(self) -> None:
        self.commit(self.registry.plan_reset())
        self.model_rules.clear()
        self.model_next_rule = 1
        self.alive.clear()
        self.tags.clear()
        self.names.clear()
        self.runs.clear()  # numbers and ids start at 1 again: no run carries over

    # ---- sweeps ----------------------------------------------------------------------

    def matches(self, r: dict[str, Any], proc_id: int) -> bool:
        sel: Selector = r["select"]
        if sel.tags_any is not None:
            return bool(set(sel.tags_any) & self.tags[proc_id])
        if sel.ids is not None:
            return proc_id in sel.ids
        if sel.names is not None:
            return self.names[proc_id] in sel.names
        return bool(r["all"])

    @rule(data=st.data())
    def sweep(self, data: st.DataObject) -> None:
        self.t = float(int(self.t) + 1)
        sampled, readings = [], {}
        for proc_id, alive in self.alive.items():
            if not alive:
                continue
            mem = data.draw(st.sampled_from(MEMS), label=f"mem of {proc_id}")
            threads = data.draw(st.integers(1, 4), label=f"threads of {proc_id}")
            p = self.registry.get(proc_id)
            assert p is not None
            self.metrics.record(p, Reading(1.0, mem, mem * 2, threads), self.t, self.t)
            sampled.append(p)
            readings[proc_id] = (mem, threads)
        self.metrics.retain({p.id for p in sampled})
        expected = []
        runs: dict[tuple[int, int], tuple[float, bool]] = {}
        for number, r in self.model_rules.items():
            for proc_id, (mem, threads) in readings.items():
                if not self.matches(r, proc_id):
                    continue
                if not holds(r["condition"], mem, threads):
                    continue
                since, fired = self.runs.get((number, proc_id), (self.t, False))
                fire = not fired and self.t - since >= WINDOWS[r["condition"]]
                runs[number, proc_id] = (since, fired or fire)
                if fire:
                    value = mem if r["condition"].startswith("mem") else threads
                    expected.append((number, proc_id, value, r["action"]))
        self.runs = runs
        self.alerter.on_sweep(sampled)
        got = []
        while self.sub.queue:
            e = self.sub.queue.popleft()
            assert isinstance(e, Event)  # the queue never overflows here
            if e.kind == "alert":
                assert e.extra is not None
                extra = e.extra
                got.append((extra["rule"], e.proc.id, extra["value"], extra["action"]))
        assert sorted(got) == sorted(expected)
        acted = []
        while True:
            try:
                made, p = self.receive.receive_nowait()
            except trio.WouldBlock:
                break
            acted.append((made.id, p.id))
        assert sorted(acted) == sorted((n, i) for n, i, _, a in expected if a != "event")
        firing = {made.id: set(self.alerter.firing(made)) for made in self.registry.rules}
        for number in self.model_rules:
            want = {i for (n, i), (_, fired) in self.runs.items() if n == number and fired}
            assert firing[number] == want

    # ---- what must always hold -----------------------------------------------------

    @invariant()
    def rules_agree_with_model(self) -> None:
        got = {
            r.id: {
                "name": r.name,
                "select": r.select,
                "all": r.all,
                "condition": r.condition.text(),
                "action": r.action,
            }
            for r in self.registry.rules
        }
        assert got == self.model_rules
        assert self.registry.rules.next_id == self.model_next_rule

    @invariant()
    def journal_replay_agrees(self) -> None:
        assert list(self.replica.rules) == list(self.registry.rules)
        assert self.replica.rules.next_id == self.registry.rules.next_id

    @invariant()
    def snapshot_round_trip_agrees(self) -> None:
        state = RuleState(tuple(self.registry.rules), self.registry.rules.next_id)
        data = snapshot_bytes(list(self.registry), self.registry.next_id, 0, None, state)
        _, header = parse_snapshot(data)
        loaded = Registry()
        loaded.load([], header.next_id, header.rules, header.next_rule)
        assert list(loaded.rules) == list(self.registry.rules)
        assert loaded.rules.next_id == self.registry.rules.next_id
        for r in self.registry.rules:  # `find` by name works after a load as before
            if r.name is not None:
                assert loaded.rules.find(r.name) == r
        assert all(attrs.has(type(r)) for r in loaded.rules)


AlertMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_alert_rules_against_the_model = AlertMachine.TestCase
