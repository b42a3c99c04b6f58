"""The alert rules at work: after each metrics sweep, every rule is checked against the
sampled entries it matches (`Alerter.on_sweep`, told by the sampler), and a rule that
fires is told to subscribers (an `alert` event), logged, and acted on.

A rule fires once per crossing (`goproc.alerts.Crossing`): per rule and entry, kept in
memory only and keyed by both's identity (number and creation time; id and when the
entry was added), so a rule or an entry that got the number of a gone one after a
`reset` starts afresh.  After a restart every crossing starts afresh too: a condition
that still holds fires once more.

Actions (`signal:NAME`, `kill`) go through a bounded channel to `run_actions`, which
signals through the very path `goproc kill` takes (`goproc.daemon.handlers.kill`:
the entry's pidfd, or an identity check before each signal): one slow kill never holds
up the sweep, and a burst beyond the channel's room is logged and dropped, never queued
without bound.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from goproc.alerts import Crossing, action_signal
from goproc.api import KillOutcome, KillParams, Seconds, Signal
from goproc.daemon.events import EventBus
from goproc.metrics import Metrics, MetricsStore
from goproc.model import Proc, Rule, Selector
from goproc.registry import Registry

log = logging.getLogger("goproc.alerts")

ACTION_QUEUE = 1024  # actions waiting to be run; beyond it they are dropped (and logged)
KILL_TIMEOUT = 5.0  # `kill`: TERM, then KILL after this, as `goproc kill` does by default
NO_SELECTOR = Selector()

Key = tuple[int, float, int, float]  # rule number, its creation; entry id, when added
Act = tuple[Rule, Proc]


def metric_value(metric: str, m: Metrics, p: Proc) -> float | None:
    """The value a condition on `metric` compares: None where the OS did not tell."""
    if metric == "cpu":
        return m.cpu_percent
    if metric == "mem":
        return m.rss_bytes
    if metric == "age":
        return m.sampled_at - p.started_at
    value: float | None = getattr(m, metric)  # read_rate, write_rate, threads, fds
    return value


class Alerter:
    """The crossings of every rule and entry, stepped once per sweep."""

    def __init__(
        self,
        registry: Registry,
        metrics: MetricsStore,
        bus: EventBus,
        actions: trio.MemorySendChannel[Act],
        clock: Callable[[], float],
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.bus = bus
        self.actions = actions
        self.clock = clock
        self.fired = 0  # how many times a rule has fired since the daemon started
        # The same by rule (number, name): kept when a rule is removed, as counts are.
        self.fired_by_rule: dict[tuple[int, str | None], int] = {}
        self._crossings: dict[Key, Crossing] = {}

    def firing(self, rule: Rule) -> tuple[int, ...]:
        """The ids of the entries `rule` has fired for and that have not cleared since."""
        return tuple(
            sorted(
                k[2]
                for k, c in self._crossings.items()
                if c.fired and k[0] == rule.id and k[1] == rule.created_at
            )
        )

    def on_sweep(self, sampled: list[Proc]) -> None:
        """Step every rule's crossings with the sweep's samples; fire those that cross.
        Crossings of entries not sampled (dead, gone) and of rules removed are dropped:
        a later sample starts them afresh."""
        rules = list(self.registry.rules)
        if not rules:
            self._crossings.clear()
            return
        by_id = {p.id: p for p in sampled}
        kept: dict[Key, Crossing] = {}
        for rule in rules:
            for p in self._matched(rule, sampled, by_id):
                m = self.metrics.latest(p)
                if m is None:
                    continue
                key = (rule.id, rule.created_at, p.id, p.added_at)
                value = metric_value(rule.condition.metric, m, p)
                state, fire = self._crossings.get(key, _CLEAR).step(
                    rule.condition, m.sampled_at, value
                )
                if state != _CLEAR:
                    kept[key] = state
                if fire and value is not None:
                    self._fire(rule, p, value)
        self._crossings = kept

    def _matched(self, rule: Rule, sampled: list[Proc], by_id: dict[int, Proc]) -> list[Proc]:
        if rule.select == NO_SELECTOR:
            return sampled
        # The registry's indexes narrow a tag or a name to its few entries.
        return [by_id[p.id] for p in self.registry.select(rule.select) if p.id in by_id]

    def _fire(self, rule: Rule, p: Proc, value: float) -> None:
        self.fired += 1
        key = (rule.id, rule.name)
        self.fired_by_rule[key] = self.fired_by_rule.get(key, 0) + 1
        shown = round(value, 2) if isinstance(value, float) else value
        log.warning(
            "alert: rule %s (%s) fired for id %d (pid %d): %s = %s; then %s",
            rule.id if rule.name is None else f"{rule.id} {rule.name!r}",
            rule.condition.text(),
            p.id,
            p.pid,
            rule.condition.metric,
            shown,
            rule.action,
        )
        extra: dict[str, Any] = {
            "rule": rule.id,
            "rule_name": rule.name,
            "condition": rule.condition.text(),
            "action": rule.action,
            "value": shown,
        }
        self.bus.publish("alert", p, self.clock(), extra=extra)
        if rule.action == "event":
            return
        try:
            self.actions.send_nowait((rule, p))
        except trio.WouldBlock:
            log.error("alert: rule %s: too many actions waiting; %s not run", rule.id, rule.action)


_CLEAR = Crossing()


def action_params(action: str) -> KillParams:
    """What `goproc kill` would be given for a rule's action: `signal:NAME` sends that
    signal only; `kill` is TERM, then KILL after KILL_TIMEOUT."""
    sig = action_signal(action)
    if sig is None:  # kill
        return KillParams(signal=Signal(signal.SIGTERM), timeout=Seconds(KILL_TIMEOUT))
    return KillParams(signal=Signal(sig), timeout=Seconds(0.0))


async def run_actions(
    receive: trio.MemoryReceiveChannel[Act],
    kill_one: Callable[[Proc, KillParams], Awaitable[KillOutcome]],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run each action as it comes, each in a task of its own (a `kill` waits for its
    timeout), and log its outcome."""

    async def act(rule: Rule, p: Proc) -> None:
        outcome = await kill_one(p, action_params(rule.action))
        level = logging.ERROR if outcome.outcome == "failed" else logging.INFO
        log.log(
            level,
            "alert: rule %d: %s of id %d (pid %d): %s%s",
            rule.id,
            rule.action,
            p.id,
            p.pid,
            outcome.outcome,
            f" ({outcome.error})" if outcome.error else "",
        )

    async with trio.open_nursery() as nursery:
        task_status.started()
        async for rule, p in receive:
            nursery.start_soon(act, rule, p)
