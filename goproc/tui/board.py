"""What `goproc top` shows, as plain state: the entries, the filter, the order, the
selection, the wait marks and the events seen, and how the columns fit a width.

Pure (no Textual, no I/O) so that it is tested on its own and the table widget only
draws it.  Entries are the daemon's decoded `proc` objects.  Filtering walks a list
kept in order, so a new filter costs one pass over the entries and no sort; the cells
of an entry are made once per change of that entry, every text in them `shown`
(`goproc.cli.escape`): nothing a process chose for its argv reaches the terminal raw.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from attrs import define, field, frozen

from goproc.cli.commands.listing import sorted_entries
from goproc.cli.escape import shown
from goproc.cli.tables import entry_age, metric, size
from goproc.model import Selector
from goproc.tui.filters import predicate

Entry = dict[str, Any]


@frozen
class Column:
    title: str
    sort: str | None  # the `list --sort` key it sorts by, None: not sortable
    cap: int  # the widest it grows


COLUMNS = (
    Column("ID", "id", 8),
    Column("NAME", "name", 24),
    Column("PID", "pid", 8),
    Column("ALIVE", None, 5),
    Column("CPU%", "cpu", 6),
    Column("MEM", "mem", 7),
    Column("AGE", "age", 7),
    Column("TAGS", None, 20),
    Column("GROUPS", None, 20),
    Column("CMD", None, 1 << 16),
)
TITLES = tuple(c.title for c in COLUMNS)
AGE, CMD = TITLES.index("AGE"), TITLES.index("CMD")
SORTS = tuple(c.sort for c in COLUMNS if c.sort is not None)
# Which columns go, in turn, once the command is cut to CMD_MIN and the rest do not fit.
DROP_ORDER = ("GROUPS", "TAGS", "AGE", "MEM", "CPU%", "PID", "CMD")
CMD_MIN = 12
GAP = 2
EVENTS_KEPT = 20  # per entry, for the detail pane


def cells_of(p: Mapping[str, Any]) -> tuple[str, ...]:
    """An entry's cells, AGE left empty (it changes with the clock: see `Board.cells`)."""
    cpu = metric(p, "cpu_percent")
    rss = metric(p, "rss_bytes")
    return (
        shown(p["id"]),
        shown(p["name"] or "-"),
        shown(p["pid"]),
        "yes" if p["alive"] else "no",
        "-" if not isinstance(cpu, int | float) else f"{cpu:.1f}",
        "-" if not isinstance(rss, int | float) else size(rss),
        "",
        shown(",".join(p["tags"]) or "-"),
        shown(",".join(p["groups"]) or "-"),
        shown(p["cmd"]),
    )


def _shown_metrics(metrics: Any) -> tuple[Any, Any]:
    """What the table shows of a sample: a new sample with the same is no change."""
    if not isinstance(metrics, dict):
        return None, None
    return metrics.get("cpu_percent"), metrics.get("rss_bytes")


def _title_widths() -> list[int]:
    """Room for each title and its sort arrow; AGE as wide as most ages get."""
    return [max(len(c.title) + 1, 6 if n == AGE else 0) for n, c in enumerate(COLUMNS)]


@define
class Layout:
    """The columns shown at a width (indexes into COLUMNS) and each one's width."""

    columns: tuple[int, ...]
    widths: tuple[int, ...]


@define
class Board:
    """Everything the main view shows; `now` is the clock AGE counts from."""

    now: Callable[[], float]
    entries: dict[int, Entry] = field(factory=dict)
    filter: Selector = field(factory=Selector)
    sort: str = "id"
    reverse: bool = False
    selected: set[int] = field(factory=set)
    waiting: set[int] = field(factory=set)  # `w`: marked when they exit
    exited_waiting: set[int] = field(factory=set)
    events: dict[int, deque[dict[str, Any]]] = field(factory=dict)
    _cells: dict[int, tuple[str, ...]] = field(factory=dict)
    _ordered: list[int] = field(factory=list)
    _shown: list[int] = field(factory=list)
    _natural: list[int] = field(factory=lambda: _title_widths())
    _stale: bool = False  # the order is to be made again (at the next read)
    _totals: tuple[int, int, float, int] | None = None  # made again after a change

    # ---- changes -------------------------------------------------------------------------

    def load(self, procs: Iterable[Entry]) -> None:
        """Every entry anew (a `list` answer): what was there and is not is gone.  The
        board keeps the dicts it is given, and changes their metrics in place."""
        old, self.entries = self.entries, {p["id"]: p for p in procs}
        for i in list(self.events):  # an id given again after a `reset` is another entry
            known, now = old.get(i), self.entries.get(i)
            if now is None or (known is not None and known["added_at"] != now["added_at"]):
                del self.events[i]
        self._cells = {i: cells_of(p) for i, p in self.entries.items()}
        self._natural = _title_widths()
        for cells in self._cells.values():
            self._widen(cells)
        self.selected &= self.entries.keys()
        self.waiting &= self.entries.keys()
        self.exited_waiting &= self.entries.keys()
        self._totals = None
        self._resort()

    def apply(self, event: Mapping[str, Any]) -> bool:
        """One `event` notification; whether it changed what is shown."""
        kind, proc = event.get("kind"), event.get("proc")
        if not isinstance(proc, dict) or not isinstance(event.get("id"), int):
            return False  # `overflow`: the connection ends, and a reload follows
        i = proc["id"]
        self.events.setdefault(i, deque(maxlen=EVENTS_KEPT)).append(dict(event))
        if kind == "removed":
            self.entries.pop(i, None)
            self._cells.pop(i, None)
            self.selected.discard(i)
            self.waiting.discard(i)
            self.exited_waiting.discard(i)
        else:
            self.entries[i] = proc
            self._cells[i] = cells = cells_of(proc)
            self._widen(cells)
            if kind == "exited" and i in self.waiting:
                self.exited_waiting.add(i)
        self._stale = True  # a burst of events is sorted once, when it is drawn
        self._totals = None
        return True

    def merge_metrics(self, procs: Iterable[Entry]) -> bool:
        """The metrics of a `list` answer, into the entries they are of: only those,
        since an event may have come after the answer was made (an exit, a removal).
        Whether a row reads differently now."""
        changed = False
        for p in procs:
            known = self.entries.get(p["id"])
            if known is None or known["added_at"] != p["added_at"] or not known["alive"]:
                continue
            old, new = known.get("metrics"), p.get("metrics")
            known["metrics"] = new  # the detail pane shows every field of it
            if _shown_metrics(old) != _shown_metrics(new):
                self._cells[p["id"]] = cells = cells_of(known)
                self._widen(cells)
                self._stale = self._stale or self.sort in ("cpu", "mem")
                self._totals = None
                changed = True
        return changed

    def set_filter(self, selector: Selector) -> None:
        self.filter = selector
        self._refilter()

    def set_sort(self, key: str) -> None:
        """Sort by `key`; the same key again turns the order round."""
        self.reverse = not self.reverse if key == self.sort else False
        self.sort = key
        self._resort()

    def cycle_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.reverse = False
        self._resort()

    def toggle(self, i: int) -> None:
        self.selected ^= {i}

    def select_shown(self) -> None:
        self.selected |= set(self.shown)

    def toggle_wait(self, i: int) -> None:
        if i in self.waiting:
            self.waiting.discard(i)
            self.exited_waiting.discard(i)
        else:
            self.waiting.add(i)

    # ---- reading -------------------------------------------------------------------------

    @property
    def shown(self) -> Sequence[int]:
        """The ids shown, in order."""
        if self._stale:
            self._resort()
        return self._shown

    def cells(self, i: int) -> tuple[str, ...]:
        cells = self._cells[i]
        return (*cells[:AGE], self.age(i), *cells[AGE + 1 :])

    def age(self, i: int) -> str:
        return entry_age(self.entries[i], self.now())

    def targets(self, cursor: int | None) -> list[int]:
        """What an action acts on: the selection, else the entry under the cursor."""
        if self.selected:
            return sorted(self.selected)
        return [] if cursor is None else [cursor]

    def totals(self) -> tuple[int, int, float, int]:
        """Alive, dead, CPU% summed and resident bytes summed over the entries."""
        if self._totals is None:
            self._totals = self._sum()
        return self._totals

    def _sum(self) -> tuple[int, int, float, int]:
        alive = sum(1 for p in self.entries.values() if p["alive"])
        cpu = sum(metric(p, "cpu_percent") or 0.0 for p in self.entries.values())
        rss = sum(metric(p, "rss_bytes") or 0 for p in self.entries.values())
        return alive, len(self.entries) - alive, cpu, rss

    def layout(self, width: int) -> Layout:
        """The columns that fit `width`: each as wide as its widest cell (up to its
        cap), the command cut first, then columns dropped in DROP_ORDER."""
        natural = [min(w, c.cap) for w, c in zip(self._natural, COLUMNS, strict=True)]
        shown = list(range(len(COLUMNS)))
        for title in (None, *DROP_ORDER):
            if title is not None:
                shown.remove(TITLES.index(title))
            fixed = [natural[c] for c in shown if c != CMD]
            room = width - sum(fixed) - GAP * (len(shown) - 1)
            if CMD not in shown or room >= min(CMD_MIN, natural[CMD]):
                break
        widths = [natural[c] if c != CMD else max(room, 0) for c in shown]
        return Layout(tuple(shown), tuple(widths))

    # ---- keeping order -------------------------------------------------------------------

    def _resort(self) -> None:
        procs = sorted_entries(list(self.entries.values()), self.sort, self.reverse)
        self._ordered = [p["id"] for p in procs]
        self._stale = False
        self._refilter()

    def _widen(self, cells: tuple[str, ...]) -> None:
        """Columns grow to fit new cells and never shrink until the next `load`, so
        they stay put while the entries change."""
        natural = self._natural
        for n, cell in enumerate(cells):
            if len(cell) > natural[n]:
                natural[n] = len(cell)

    def _refilter(self) -> None:
        test, entries = predicate(self.filter), self.entries
        if test is None:
            self._shown = list(self._ordered)
        else:
            self._shown = [i for i in self._ordered if test(entries[i])]
