"""The `/` filter of `goproc top`: words that mean what the CLI's selector flags mean.

`tag:web group:prod name:api alive search:nginx` is `--tag web --group prod --name api
--alive --search nginx`: words become a `goproc.model.Selector` (the `list` params),
and `matches` applies one to an entry as the daemon encodes it, with the daemon's
semantics (AND between words, OR within `tag:`/`group:`/`name:`/`id:`/`pid:` words
given more than once; `search:` is a case-sensitive substring of the command line).
Pure: no Textual, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from goproc.model import Selector

# word -> the Selector field it adds to (lists) or sets (alive, search)
LISTS = {
    "id": "ids",
    "pid": "pids",
    "name": "names",
    "tag": "tags_any",
    "tag-all": "tags_all",
    "group": "groups_any",
    "group-all": "groups_all",
}
WORDS_HELP = (
    "filter words: tag:T group:G name:N id:N pid:N tag-all:T group-all:G search:TEXT alive dead"
)


class FilterError(ValueError):
    """A filter that is not made of the words above; the message says which word."""


def parse_filter(text: str) -> Selector:
    """The selector of a filter line; FilterError names the first word that is wrong."""
    lists: dict[str, list[Any]] = {}
    alive: bool | None = None
    search: str | None = None
    for word in text.split():
        key, colon, value = word.partition(":")
        if not colon:
            if word not in ("alive", "dead"):
                raise FilterError(f"unknown word {word!r}; {WORDS_HELP}")
            alive = word == "alive"
        elif key == "search":
            search = _value(word, value)
        elif key in LISTS:
            lists.setdefault(LISTS[key], []).append(_typed(key, word, _value(word, value)))
        else:
            raise FilterError(f"unknown word {key + ':'!r}; {WORDS_HELP}")
    return Selector(
        **{field: tuple(values) for field, values in lists.items()}, alive=alive, search=search
    )


def _value(word: str, value: str) -> str:
    if not value:
        raise FilterError(f"{word!r} needs a value after the colon")
    return value


def _typed(key: str, word: str, value: str) -> Any:
    if key not in ("id", "pid"):
        return value
    if not (value.isascii() and value.isdigit()) or len(value) > 20:
        raise FilterError(f"{word!r}: {key} must be a number in ASCII digits")
    return int(value)


def matches(s: Selector, p: Mapping[str, Any]) -> bool:
    """`Selector.matches` over an entry as the daemon sends it (a decoded `proc`)."""
    tags, groups = p["tags"], p["groups"]
    return (
        (s.ids is None or p["id"] in s.ids)
        and (s.pids is None or p["pid"] in s.pids)
        and (s.names is None or p["name"] in s.names)
        and (s.tags_any is None or any(t in tags for t in s.tags_any))
        and (s.tags_all is None or all(t in tags for t in s.tags_all))
        and (s.groups_any is None or any(g in groups for g in s.groups_any))
        and (s.groups_all is None or all(g in groups for g in s.groups_all))
        and (s.alive is None or p["alive"] == s.alive)
        and (s.search is None or s.search in p["cmd"])
    )


Predicate = Callable[[Mapping[str, Any]], bool]


def predicate(s: Selector) -> Predicate | None:
    """`matches(s, _)` as one function made once, checking only what `s` gives (None:
    `s` selects everything): a filter over 10,000 entries is one quick pass."""
    checks: list[Predicate] = []
    for key, values in (("id", s.ids), ("pid", s.pids), ("name", s.names)):
        if values is not None:
            checks.append(_one_of(key, frozenset(values)))
    for key, values, every in (
        ("tags", s.tags_any, False),
        ("tags", s.tags_all, True),
        ("groups", s.groups_any, False),
        ("groups", s.groups_all, True),
    ):
        if values is not None:
            checks.append(_labels(key, values, every))
    if s.alive is not None:
        checks.append(_one_of("alive", frozenset((s.alive,))))
    if s.search is not None:
        checks.append(_holds("cmd", s.search))
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    return lambda p: all(check(p) for check in checks)


def _labels(key: str, values: tuple[str, ...], every: bool) -> Predicate:
    if len(values) == 1:
        (one,) = values
        return lambda p: one in p[key]
    if every:
        return lambda p: all(v in p[key] for v in values)
    return lambda p: any(v in p[key] for v in values)


def _one_of(key: str, wanted: frozenset[Any]) -> Predicate:
    return lambda p: p[key] in wanted


def _holds(key: str, text: str) -> Predicate:
    return lambda p: text in p[key]
