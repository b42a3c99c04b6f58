"""What shell completion offers for a value: ids, names, pids, tags and groups of the
running daemon's entries, and the signal names goproc takes.

cyclopts' generated scripts run `goproc __complete WORDS...` when the word under the
cursor is a value whose parameter has one of these completers (`Parameter(completer=)`,
attached in `goproc.cli.flags`); cyclopts prints what they return, one candidate a
line, and the script quotes each for its shell before offering it.  Completion must
never get in the way of typing: without a daemon (or with one that does not answer
within `TIMEOUT`) a completer offers nothing and says nothing.  Whatever the daemon
sends is data: a value the terminal could not show as it is (a control character, a
line break) is not offered, and a description is escaped (`goproc.cli.escape.shown`).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable
from typing import Any

from goproc import api, paths
from goproc.cli.client import Client
from goproc.cli.escape import shown
from goproc.model import Selector

Candidates = list[tuple[str, str]]  # (value, description)
Completer = Callable[[Any], Candidates]  # called with cyclopts' CompletionContext

TIMEOUT = 0.3  # seconds for each of connect, send and read: TAB must stay quick
DESCRIPTION_MAX = 60


def entries() -> list[dict[str, Any]]:
    """Every entry of the running daemon (one `list` request); [] when there is none
    to ask, or it fails to answer in time, or answers an error."""
    try:
        with Client(paths.socket_path(), timeout=TIMEOUT) as client:
            result = client.call(api.LIST, Selector())
    except Exception:  # completion offers nothing rather than fail in the shell
        return []
    return [e for e in result if isinstance(e, dict)] if isinstance(result, list) else []


def ids(_: Any = None) -> Candidates:
    return _unique((_number(e.get("id")), _about(e, name=True)) for e in entries())


def names(_: Any = None) -> Candidates:
    return _unique((e.get("name"), _about(e)) for e in entries())


def targets(_: Any = None) -> Candidates:
    """An ID|NAME argument: the ids and the names."""
    found = entries()
    by_id = ((_number(e.get("id")), _about(e, name=True)) for e in found)
    return _unique([*by_id, *((e.get("name"), _about(e)) for e in found)])


def pids(_: Any = None) -> Candidates:
    return _unique((_number(e.get("pid")), _about(e, name=True)) for e in entries())


def tags(_: Any = None) -> Candidates:
    return _labels("tags")


def groups(_: Any = None) -> Candidates:
    return _labels("groups")


def rules(_: Any = None) -> Candidates:
    """An alert rule's number or name (`alert rm`)."""
    return _rules(api.ALERT_LIST, lambda r: f"{r.get('condition')} then {r.get('action')}")


def adopt_rules(_: Any = None) -> Candidates:
    """An adoption rule's number or name (`adopt rm`)."""
    return _rules(api.ADOPT_LIST, lambda r: f"adopts {r.get('match')}")


def _rules(
    method: api.Method[api.NoParams, Any], about: Callable[[dict[str, Any]], str]
) -> Candidates:
    try:
        with Client(paths.socket_path(), timeout=TIMEOUT) as client:
            found = client.call(method, api.NoParams())
    except Exception:  # as `entries`: nothing rather than a failure in the shell
        return []
    found = [r for r in found if isinstance(r, dict)] if isinstance(found, list) else []
    texts = [shown(about(r))[:DESCRIPTION_MAX] for r in found]
    return _unique(
        [
            *((_number(r.get("id")), a) for r, a in zip(found, texts, strict=True)),
            *((r.get("name"), a) for r, a in zip(found, texts, strict=True)),
        ]
    )


def signals(_: Any = None) -> Candidates:
    """The signal names (without SIG), in number order; the daemon takes these, as it
    takes SIGTERM, term and numbers."""
    return [(s.name.removeprefix("SIG"), str(s.value)) for s in sorted(signal.Signals)]


def _labels(field: str) -> Candidates:
    counts: dict[str, int] = {}
    for e in entries():
        labels = e.get(field)
        for label in labels if isinstance(labels, list) else ():
            if isinstance(label, str):
                counts[label] = counts.get(label, 0) + 1
    return _unique((label, _entries_count(n)) for label, n in sorted(counts.items()))


def _entries_count(n: int) -> str:
    return "1 entry" if n == 1 else f"{n} entries"


def _about(entry: dict[str, Any], name: bool = False) -> str:
    """An entry in a few words: `[name ]id N pid N cmd` (the name, when `name`)."""
    words = [str(entry["name"])] if name and entry.get("name") else []
    words += [f"id {entry.get('id')}", f"pid {entry.get('pid')}", str(entry.get("cmd", ""))]
    text = shown(" ".join(words))
    return text if len(text) <= DESCRIPTION_MAX else text[: DESCRIPTION_MAX - 3] + "..."


def _number(value: object) -> str | None:
    return str(value) if type(value) is int else None


def _unique(candidates: Iterable[tuple[object, str]]) -> Candidates:
    """The candidates in order, each value once; only values a shell line can hold as
    typed (printable, no tab or line break, not empty)."""
    seen: set[str] = set()
    out: Candidates = []
    for value, description in candidates:
        if isinstance(value, str) and value.isprintable() and value not in seen:
            seen.add(value)
            out.append((value, description))
    return out
