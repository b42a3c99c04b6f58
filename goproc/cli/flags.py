"""The flag groups the commands share, and how they become the contract's params.

`Common` (`--config`) is on every command and opens the connection; `Labels` is what
`add` and `run` give a new entry; `Select` is the selector flags.  Each turns into
`goproc.api` params objects here, so no command spells a wire name.  What the daemon
validates (labels, names, signals) is passed on as the user typed it: a signal, a name
or a number on the wire, is cast to `api.Signal`.

Every repeatable flag (and `tag add|rm`'s labels) takes comma-separated lists too,
as the upstream goproc does: no label may hold a comma.

A number (an id, a pid, a signal) is ASCII digits and nothing else: `int` also reads
U+0661 (an Arabic-Indic one), "1_0" and " 1", and cyclopts' own int conversion "0x1" and "1.6",
none of which anyone means as id 1.  A positional ID|NAME that is not ASCII digits is a
name, so "²" asks the daemon for the name "²", which no entry can have.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

from attrs import define
from cyclopts import Parameter, Token
from cyclopts.exceptions import CoercionError

from goproc import api, paths
from goproc.cli import completers
from goproc.cli.client import Client
from goproc.config import load_config
from goproc.durations import parse_duration
from goproc.errors import UsageError
from goproc.model import Selector

P = TypeVar("P")

DIGITS_MAX = 20  # more digits than any id or pid: refused here, not converted


def ascii_int(text: str) -> int:
    """A whole number written in ASCII digits; ValueError otherwise."""
    if not _is_number(text):
        raise ValueError(f"must be a number in ASCII digits 0-9, got {text!r}")
    if len(text) > DIGITS_MAX:
        raise ValueError(f"must be a number of at most {DIGITS_MAX} digits, got {len(text)}")
    return int(text)


def ascii_ints(label: str) -> Callable[[Any, Sequence[Token]], Any]:
    """A cyclopts converter of `ascii_int`s (a list of them, or one for an element of
    `*args`); `label` names a positional argument in its error, as cyclopts would."""

    def convert(type_: Any, tokens: Sequence[Token]) -> Any:
        values: list[int] = []
        for token in tokens:
            try:
                values.extend(map(ascii_int, split_commas([token.value])))
            except ValueError as e:  # a keyword gets "Invalid value for --id: " from cyclopts
                msg = str(e) if token.keyword else f"Invalid value for {label}: {e}"
                raise CoercionError(msg=msg, token=token, target_type=int) from None
        return values if getattr(type_, "__origin__", None) is list else values[0]

    return convert


Repeat = Annotated[list[str] | None, Parameter(negative=(), consume_multiple=False)]
RepeatInt = Annotated[
    list[int] | None,
    Parameter(negative=(), consume_multiple=False, converter=ascii_ints("the value")),
]
PidArgs = Annotated[int, Parameter(converter=ascii_ints("PIDS"))]
# What shell completion offers for a value (`goproc.cli.completers`).
Ids = Annotated[RepeatInt, Parameter(completer=completers.ids)]
Pids = Annotated[RepeatInt, Parameter(completer=completers.pids)]
Names = Annotated[Repeat, Parameter(completer=completers.names)]
Tags = Annotated[Repeat, Parameter(completer=completers.tags)]
Groups = Annotated[Repeat, Parameter(completer=completers.groups)]
Target = Annotated[str, Parameter(completer=completers.targets)]  # ID|NAME
OptionalTarget = Annotated[str | None, Parameter(completer=completers.targets)]
TagArgs = Annotated[str, Parameter(completer=completers.tags)]
GroupArgs = Annotated[str, Parameter(completer=completers.groups)]
SignalName = Annotated[str, Parameter(completer=completers.signals)]
Flag = Annotated[bool, Parameter(negative=())]
AllFlag = Annotated[
    bool, Parameter(name="--all", negative=(), help="Allow acting on more than one entry.")
]
Json = Annotated[bool, Parameter(name="--json", negative=(), help="Print the result as JSON.")]


@Parameter(name="*")
@define
class Common:
    config: Path | None = None
    "JSON config file (see config.example.json); every command accepts it."


def connect(common: Common | None, timeout: float | None = None) -> Client:
    """A connection to the daemon; a bad --config is a usage error for every command."""
    load_config(common.config if common is not None else None)
    return Client(paths.socket_path(), timeout=timeout)


def call(common: Common | None, method: api.Method[P, Any], params: P) -> Any:
    """One request on a connection of its own; the decoded result."""
    with connect(common) as client:
        return client.call(method, params)


@Parameter(name="*")
@define
class Labels:
    """What `add` and `run` give a new entry."""

    tag: Tags = None
    "A tag (repeatable; or a comma-separated list)."
    group: Groups = None
    "A group (repeatable; or a comma-separated list)."
    name: str | None = None
    "A unique name: at most 64 of letters, digits, '.', '-', '_'."

    def add_params(self, pids: Sequence[int]) -> api.AddParams:
        """`pid` for one process, `pids` (all or nothing) for several."""
        one = len(pids) == 1
        return api.AddParams(
            pid=api.Pid(pids[0]) if one else None,
            pids=None if one else tuple(api.Pid(p) for p in pids),
            tags=label_tuple(self.tag or ()),
            groups=label_tuple(self.group or ()),
            name=None if self.name is None else api.Name(self.name),
        )


@Parameter(name="*")
@define
class Select:
    """The selector flags shared by list, show, rm, kill, tag, group and name."""

    id: Ids = None
    "Has this id (repeatable; or a comma-separated list)."
    pid: Pids = None
    "Has this PID (repeatable; or a comma-separated list)."
    name: Names = None
    "Has this name (repeatable; or a comma-separated list)."
    tag: Tags = None
    "Has any of these tags (repeatable; or a comma-separated list)."
    tag_all: Tags = None
    "Has all of these tags (repeatable; or a comma-separated list)."
    group: Groups = None
    "In any of these groups (repeatable; or a comma-separated list)."
    group_all: Groups = None
    "In all of these groups (repeatable; or a comma-separated list)."
    # n_tokens=0: a flag, no value (cyclopts takes `bool | None` for one that needs a
    # value when it writes the completion scripts, though it parses it as a flag).
    alive: Annotated[bool | None, Parameter(negative="--dead", n_tokens=0)] = None
    "Only alive (--alive) or only dead (--dead) entries."
    search: str | None = None
    "The command line contains this text."

    def selector(self, target: str | None = None) -> Selector:
        """The selector of these flags (only the given ones); `target` is an ID or a
        NAME given as a positional argument."""
        ids, names = list(self.id or []), split_commas(self.name or [])
        if target is not None and _is_number(target):
            try:
                ids.append(ascii_int(target))
            except ValueError as e:
                raise UsageError(f"ID|NAME: {e}") from None
        elif target is not None:
            names.append(target)
        return Selector(
            ids=_given(ids),
            pids=_given(self.pid),
            names=_given(names),
            tags_any=_given(split_commas(self.tag or [])),
            tags_all=_given(split_commas(self.tag_all or [])),
            groups_any=_given(split_commas(self.group or [])),
            groups_all=_given(split_commas(self.group_all or [])),
            alive=self.alive,
            search=self.search,
        )

    def targeted(self, target: str | None = None, all_: bool = False) -> api.Targeted:
        """The entries a changing command acts on; more than one needs `all_`.  With
        neither a target, a selector nor `all_` it is a usage error: a bare `goproc
        kill` must not act on the one entry there happens to be."""
        select = self.selector(target)
        if select == Selector() and not all_:
            raise UsageError("give an ID or NAME, a selector (--id, --tag, ...) or --all")
        return api.Targeted(select=select, all=all_)


def selector_of(select: Select | None, target: str | None = None) -> Selector:
    return (select if select is not None else Select()).selector(target)


def targeted_of(select: Select | None, target: str | None, all_: bool) -> api.Targeted:
    return (select if select is not None else Select()).targeted(target, all_)


def split_commas(values: Iterable[str]) -> list[str]:
    """The values of a repeatable flag, each of which may be a comma-separated list
    (`--tag web,prod` is `--tag web --tag prod`).  An empty piece is kept: for the
    daemon to drop (a new label) or refuse (a blank selector), never to make a
    selector that filters nothing."""
    return [piece for value in values for piece in value.split(",")]


def label_tuple(labels: Iterable[str]) -> tuple[api.Label, ...]:
    return tuple(api.Label(label) for label in split_commas(labels))


def signal_of(text: str) -> api.Signal:
    """A signal as typed: a number, or a name the daemon resolves (TERM, SIGUSR1)."""
    if not _is_number(text):
        return cast(api.Signal, text)
    try:
        return api.Signal(ascii_int(text))
    except ValueError as e:
        raise UsageError(f"--signal: {e}") from None


_BARE_SECONDS = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")
PING_TIMEOUT_MAX = 86400.0


def seconds_of(flag: str, text: str) -> api.Seconds:
    """A duration given to `flag`, in seconds: a Go duration (`500ms`, `1m30s`) or a bare
    number of seconds (`2`, `0.5`), as the upstream goproc takes `ping --timeout`, and
    so every `--timeout` here; a bad or negative one is a usage error."""
    if _BARE_SECONDS.fullmatch(text):
        return api.Seconds(float(text))
    try:
        seconds = parse_duration(text)
    except ValueError as e:
        raise UsageError(f"{flag}: {e}") from None
    if seconds < 0:
        raise UsageError(f"{flag}: must not be negative, got {text!r}")
    return api.Seconds(seconds)


def timeout_of(flag: str, text: str) -> float:
    """`ping --timeout`: a duration as `seconds_of` reads it, more than 0 and at most a
    day, else a usage error."""
    seconds = seconds_of(flag, text)
    if not 0 < seconds <= PING_TIMEOUT_MAX:
        raise UsageError(f"{flag}: must be more than 0 and at most 24h, got {text!r}")
    return seconds


T = TypeVar("T")


def _is_number(text: str) -> bool:
    """Plain ASCII digits: what `int` reads (`str.isdigit` also takes "²")."""
    return text.isascii() and text.isdigit()


def _given(values: Sequence[T] | None) -> tuple[T, ...] | None:
    """A repeatable flag's values; None (not filtered) when none were given."""
    return tuple(values) if values else None
