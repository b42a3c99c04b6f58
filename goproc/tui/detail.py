"""The detail pane of `goproc top` (`enter`): one entry in full.

Every field (as `goproc show` lays them out), CPU and RSS over time as sparklines of
its `metrics.history`, the alert rules whose selector takes it in, the last events
the app saw for it, and the tail of its log for an entry `goproc run` started.  What it
shows is gathered first (`gather`, blocking, in a thread worker) and handed over whole,
so the screen itself does no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from attrs import frozen
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Sparkline, Static

from goproc import api
from goproc.cli.escape import shown
from goproc.cli.tables import show_lines, size
from goproc.model import Selector
from goproc.tui.filters import matches
from goproc.tui.source import Source

LOG_LINES = 20
Entry = Mapping[str, Any]


@frozen
class Detail:
    proc: dict[str, Any]
    history: list[dict[str, Any]]
    rules: list[dict[str, Any]]  # the alert rules that apply to it
    events: list[dict[str, Any]]
    log: list[str]
    now: float


def gather(
    source: Source, proc: dict[str, Any], events: Iterable[dict[str, Any]], now: float
) -> Detail:
    """What the pane shows of `proc`, asked of the daemon now."""
    select = Selector(ids=(api.ProcId(proc["id"]),))
    found = source.call(api.METRICS_HISTORY, api.HistoryParams(select=select))
    history = list(found[0]["samples"]) if found else []
    rules = [r for r in source.call(api.ALERT_LIST, api.NoParams()) if rule_applies(r, proc)]
    return Detail(proc, history, rules, list(events), source.log_tail(proc, LOG_LINES), now)


def rule_applies(rule: Mapping[str, Any], proc: Entry) -> bool:
    """Whether an alert rule (as `alert.list` answers it) takes in the entry."""
    if rule.get("all"):
        return True
    select = rule.get("select") or {}
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in select.items()}
    try:
        return matches(Selector(**fields), proc)
    except TypeError:  # a selector field this version does not know
        return False


def event_lines(events: Sequence[Mapping[str, Any]]) -> list[str]:
    out = []
    for e in events:
        line = f"{shown(e.get('time', '?'))}  {shown(e.get('kind', '?'))}"
        if e.get("kind") == "alert":
            rule = e.get("rule_name") or e.get("rule")
            line += (
                f"  rule {shown(rule)}: {shown(e.get('condition'))} (value {shown(e.get('value'))})"
            )
        out.append(line)
    return out or ["none seen since goproc top started"]


def rule_lines(rules: Sequence[Mapping[str, Any]], entry_id: int) -> list[str]:
    """`#1 hot: cpu > 90% -> event`, and `(firing)` while it holds for this entry."""
    lines = []
    for r in rules:
        line = f"#{r['id']} {shown(r.get('name') or '-')}: {shown(r['condition'])}"
        line += f" -> {shown(r['action'])}"
        if entry_id in (r.get("firing") or ()):
            line += "  (firing)"
        lines.append(line)
    return lines or ["none"]


class DetailScreen(Screen[str | None]):
    """Dismissed with "reload" to be gathered and shown again (`r`), else None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,enter", "close", "Back"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self, detail: Detail) -> None:
        super().__init__()
        self.detail = detail

    def compose(self) -> ComposeResult:
        d = self.detail
        cpu = [s.get("cpu_percent") or 0.0 for s in d.history]
        rss = [float(s.get("rss_bytes") or 0) for s in d.history]
        title = f"entry {d.proc['id']}: {shown(d.proc['name'] or d.proc['cmd'])}"
        with VerticalScroll(id="detail"):
            yield Static(Text(title), classes="title")
            with Vertical(classes="history"):
                yield Static(Text(self._spark_label("CPU%", cpu, f"{max(cpu, default=0):.1f}%")))
                yield Sparkline(cpu, id="cpu")
                yield Static(Text(self._spark_label("RSS", rss, size(max(rss, default=0)))))
                yield Sparkline(rss, id="rss")
            yield Static("alert rules", classes="heading")
            yield Static(Text("\n".join(rule_lines(d.rules, d.proc["id"]))), id="rules")
            yield Static("events", classes="heading")
            yield Static(Text("\n".join(event_lines(d.events))), id="events")
            if d.proc.get("log") is not None:
                yield Static("log", classes="heading")
                yield Static(Text("\n".join(map(shown, d.log)) or "(empty)"), id="log")
            yield Static("fields", classes="heading")
            yield Static(Text("\n".join(show_lines(d.proc, d.now))), id="fields")
        yield Footer()

    def _spark_label(self, name: str, values: Sequence[float], top: str) -> str:
        if not values:
            return f"{name}: no samples (sampling off, just added, or dead)"
        return f"{name}: the last {len(values)} samples, up to {top}"

    def action_close(self) -> None:
        self.dismiss(None)

    def action_reload(self) -> None:
        self.dismiss("reload")
