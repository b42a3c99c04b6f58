"""What the protocol fuzz tests share: request strategies, an independent JSON-RPC 2.0
oracle (`check_reply`), and an in-process handler context over fakes."""

from __future__ import annotations

import json
import math
from typing import Any

import attrs
import trio
import trio.testing
from fakes import MemoryJournal, Parts, TableProbe, make_parts
from hypothesis import strategies as st

from goproc import errors
from goproc.api import METHODS
from goproc.daemon.handlers import Ctx, make_dispatch
from goproc.model import LogFiles, Proc, ProcessFacts
from goproc.registry import Registry
from goproc.rpc import jsonrpc
from goproc.rpc.entries import entry_dict

# Every code the daemon documents, except -32603: an internal error is a bug.
DOCUMENTED_CODES = {v for k, v in vars(errors).items() if k.isupper() and type(v) is int} - {
    errors.INTERNAL_ERROR
}
REQUEST_KEYS = {"jsonrpc", "method", "params", "id"}
# Methods the live fuzz may call: they change nothing and answer at once (`wait` blocks,
# `subscribe` turns the connection into an event stream).
READ_ONLY_METHODS = {"ping", "status", "list", "show", "tags.list", "groups.list"}

# ---- strategies ------------------------------------------------------------------------

# Lone surrogates are legal in JSON text as escapes ("\ud800"), so a request can carry them.
SURROGATES = ["\ud800", "\udcff", "\udfff"]
texts = st.text(st.characters() | st.sampled_from(SURROGATES), max_size=12)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**300), 10**300),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(texts, kids, max_size=4),
    max_leaves=15,
)
valid_ids = st.none() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | texts
invalid_ids = (
    st.booleans()
    | st.lists(json_scalars, max_size=2)
    | st.dictionaries(texts, json_scalars, max_size=2)
)

PARAM_NAMES = ["pid", "tags", "groups", "name", "ids", "pids", "names", "tags_any", "tags_all"]
PARAM_NAMES += ["groups_any", "groups_all", "alive", "search", "bogus", ""]
typical_values = st.sampled_from(
    [4242, 4343, 1, 999_999, 0, -5, 2**31, 2**63, "abc", 1.5, True, None, "db", "", "x" * 70]
)
param_values = st.one_of(
    typical_values,
    st.lists(st.sampled_from(["db", " web", "", "prod"]) | typical_values, max_size=3),
    json_values,
)
params_objects = st.dictionaries(st.sampled_from(PARAM_NAMES) | texts, param_values, max_size=4)
_pids = st.sampled_from([4242, 4343, 1, 999_999])
_labels = st.lists(st.sampled_from(["db", " web", "", "prod"]), max_size=3)
# Values as a client that gets things right sends them, by parameter name: well typed,
# so that requests reach the handlers (which may still refuse them: no such process...).
PLAUSIBLE_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "pid": _pids,
    "pids": st.lists(_pids, min_size=1, max_size=3),
    "ids": st.lists(st.sampled_from([1, 2, 3]), max_size=3),
    "names": st.lists(st.sampled_from(["pg", "web"]), max_size=2),
    "name": st.sampled_from(["web", "pg", None]),
    "tags": _labels,
    "groups": _labels,
    "labels": _labels,
    "tags_any": _labels,
    "tags_all": _labels,
    "groups_any": _labels,
    "groups_all": _labels,
    "alive": st.booleans(),
    "search": st.sampled_from(["sleep", "", "postgres"]),
    "all": st.booleans(),
    "old": st.sampled_from(["db", "prod"]),
    "new": st.sampled_from(["database", "web"]),
    "signal": st.sampled_from([0, 9, 15]),
    "timeout": st.sampled_from([0, 0.05, 5]),
    "any": st.booleans(),
    "confirm": st.sampled_from(["RESET", "yes"]),
    "subscription": st.sampled_from([1, 2]),
}


def plausible_params(method: str) -> st.SearchStrategy[dict[str, Any]]:
    """Some of the method's own parameters (all of PLAUSIBLE_VALUES for an unknown one)."""
    known = METHODS.get(method)
    names = [f.name for f in attrs.fields(known.params)] if known else sorted(PLAUSIBLE_VALUES)
    optional = {n: PLAUSIBLE_VALUES.get(n, json_values) for n in names}
    return st.fixed_dictionaries({}, optional=optional)


method_names = st.sampled_from([*sorted(METHODS), "", "PING", "rpc.discover", "list ", "nope"])


def _often(draw: st.DrawFn) -> bool:
    """True about nine times in ten (hypothesis favours the ends of a range: 0 and 99
    both land on the usual side)."""
    return not 40 <= draw(st.integers(0, 99)) < 50


def _rarely(draw: st.DrawFn) -> bool:
    return 60 <= draw(st.integers(0, 99)) < 65


@st.composite
def near_valid_requests(draw: st.DrawFn) -> dict[str, Any]:
    """Request objects that are mostly right: each member usually present and well typed."""
    obj: dict[str, Any] = {}
    if _often(draw):
        obj["jsonrpc"] = "2.0"
    elif draw(st.booleans()):
        obj["jsonrpc"] = draw(json_values)
    if _often(draw):
        obj["method"] = draw(method_names) if _often(draw) else draw(texts)
    elif draw(st.booleans()):
        obj["method"] = draw(json_values)
    params = draw(
        st.sampled_from(["plausible"] * 4 + ["any names"] * 2 + ["array", "junk"] + ["none"] * 2)
    )
    if params == "plausible":
        method = obj.get("method")
        obj["params"] = draw(plausible_params(method if isinstance(method, str) else ""))
    elif params == "any names":
        obj["params"] = draw(params_objects)
    elif params == "array":
        obj["params"] = draw(st.lists(param_values, max_size=2))
    elif params == "junk":
        obj["params"] = draw(json_values)
    request_id = draw(st.sampled_from(["valid"] * 6 + ["invalid"] + ["none"] * 3))
    if request_id == "valid":
        obj["id"] = draw(valid_ids)
    elif request_id == "invalid":
        obj["id"] = draw(invalid_ids)
    if _rarely(draw):
        obj[draw(texts)] = draw(json_values)
    return obj


def _to_line(value: Any, ascii_only: bool) -> bytes:
    text = json.dumps(value, ensure_ascii=ascii_only)
    # A lone surrogate written raw (not escaped) is not UTF-8: that is a line too.
    return text.encode("utf-8", "surrogatepass")


# Numbers and strings spelled as JSON text only: they do not come back as Python floats.
RAW_ID_TOKENS = ["1e400", "-1e999", "1E+309", "123456789012345678901234567890", "-0", "0.0"]
RAW_ID_TOKENS += ['"\\ud800"', '"a\\u0000b"', '"\\udfff\\ud800"']

lines = st.one_of(
    st.binary(max_size=120).map(lambda b: b.replace(b"\n", b"")),
    st.builds(_to_line, json_values, st.booleans()),
    st.builds(_to_line, near_valid_requests(), st.booleans()),
    st.builds(
        _to_line,
        st.lists(near_valid_requests() | json_values, max_size=5),
        st.booleans(),
    ),
    st.builds(
        lambda tok, method, with_id: (
            '{"jsonrpc":"2.0",' + (f'"id":{tok},' if with_id else "") + f'"method":"{method}"}}'
        ).encode(),
        st.sampled_from(RAW_ID_TOKENS),
        st.sampled_from(["ping", "list", "nope"]),
        st.booleans(),
    ),
)

# ---- the oracle ------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(text: bytes) -> Any:
    """Parse as JSON, refusing what is not JSON (NaN, Infinity); raises ValueError."""
    return json.loads(text.decode("utf-8"), parse_constant=_reject_constant)


def _decode(line: bytes) -> tuple[bool, Any]:
    try:
        return True, strict_json(line)
    except (ValueError, RecursionError):
        return False, None


def _valid_id(value: Any) -> bool:
    return value is None or type(value) in (int, float, str)


def _well_formed(obj: Any) -> bool:
    """A Request object as JSON-RPC 2.0 defines it (params by name or by position)."""
    return (
        isinstance(obj, dict)
        and set(obj) <= REQUEST_KEYS
        and obj.get("jsonrpc") == "2.0"
        and isinstance(obj.get("method"), str)
        and ("params" not in obj or isinstance(obj["params"], dict | list))
        and ("id" not in obj or _valid_id(obj["id"]))
    )


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@attrs.frozen
class Reply:
    """What one request must get: an id among `ids`, and an error code among `codes`
    (None: a result or any documented error)."""

    ids: frozenset[str]
    codes: frozenset[int] | None = None

    def accepts(self, r: dict[str, Any]) -> bool:
        if _key(r["id"]) not in self.ids:
            return False
        return self.codes is None or ("error" in r and r["error"]["code"] in self.codes)


NULL_ID = frozenset({_key(None)})


def _expect_item(obj: Any) -> Reply | None:
    if _well_formed(obj):
        if "id" not in obj:
            return None
        request_id = obj["id"]
        if isinstance(request_id, float) and not math.isfinite(request_id):
            # A number beyond a double (1e400): echoed, or refused as unreadable (null).
            return Reply(NULL_ID | {_key(request_id)})
        return Reply(frozenset({_key(request_id)}))
    # An invalid request: -32600; its id is null, or echoed when it could be read.
    ids = NULL_ID
    if isinstance(obj, dict) and "id" in obj and _valid_id(obj["id"]):
        ids = ids | {_key(obj["id"])}
    return Reply(ids, frozenset({errors.INVALID_REQUEST}))


def expected(line: bytes) -> Reply | list[Reply] | None:
    """The reply JSON-RPC 2.0 requires for a line: one response, a batch of them, or none."""
    ok, value = _decode(line)
    if not ok:
        return Reply(NULL_ID, frozenset({errors.PARSE_ERROR}))
    if isinstance(value, list):
        if not value:
            return Reply(NULL_ID, frozenset({errors.INVALID_REQUEST}))
        items = [e for e in map(_expect_item, value) if e is not None]
        return items or None
    return _expect_item(value)


def check_response(r: Any) -> None:
    """A valid JSON-RPC 2.0 response object, with a documented, non-internal code."""
    assert isinstance(r, dict), r
    assert set(r) <= {"jsonrpc", "id", "result", "error"}, r
    assert r.get("jsonrpc") == "2.0", r
    assert "id" in r and _valid_id(r["id"]), r
    assert ("result" in r) != ("error" in r), r
    if "error" in r:
        err = r["error"]
        assert isinstance(err, dict) and set(err) <= {"code", "message", "data"}, r
        assert type(err.get("code")) is int and isinstance(err.get("message"), str), r
        assert err["code"] in DOCUMENTED_CODES, r


def _match(replies: list[dict[str, Any]], wanted: list[Reply]) -> bool:
    """Whether each reply answers a distinct request (a batch may come back in any order)."""
    if not replies:
        return True
    first, rest = replies[0], replies[1:]
    return any(
        w.accepts(first) and _match(rest, wanted[:i] + wanted[i + 1 :])
        for i, w in enumerate(wanted)
    )


def check_reply(line: bytes, reply: bytes | None) -> None:
    """The reply to `line` is what `expected` says, each line valid JSON-RPC."""
    want = expected(line)
    if want is None:
        assert reply is None, f"a notification got a reply: {reply!r}"
        return
    assert reply is not None, f"no reply; expected {want}"
    assert reply.endswith(b"\n") and reply.count(b"\n") == 1, reply
    value = strict_json(reply)  # ValueError: the reply is not JSON
    if isinstance(want, Reply):
        check_response(value)
        assert want.accepts(value), (want, value)
    else:
        assert isinstance(value, list) and len(value) == len(want), (want, value)
        for r in value:
            check_response(r)
        assert _match(value, want), (want, value)


# ---- in-process context -----------------------------------------------------------

LIVE = {
    4242: ProcessFacts(pid=4242, started_at=1_700_000_000.0, cmd="sleep 300", pgid=4242),
    4343: ProcessFacts(pid=4343, started_at=1_700_000_100.0, cmd="postgres -D /db", pgid=1),
}


def initial_registry() -> Registry:
    """One entry already tracked (pid 4343, tagged), so `list` has something to say."""
    reg = Registry()
    _, change = reg.plan_add([LIVE[4343]], tags=["db"], name="pg", now=1_700_000_200.0)
    reg.apply(change)
    return reg


def wire(reg: Registry) -> tuple[list[Any], int]:
    return [entry_dict(p) for p in reg], reg.next_id


def respond(line: bytes, ctx: Ctx) -> bytes | None:
    """One line through the real method table.  Trio's clock jumps ahead whenever all
    tasks wait, so a `wait` or `kill` that waits for a timeout does not take it."""
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(jsonrpc.respond_line, line, make_dispatch(ctx), clock=clock)


def new_parts(procs: dict[int, ProcessFacts] = LIVE, probe: TableProbe | None = None) -> Parts:
    probe = TableProbe(dict(procs)) if probe is None else probe
    return make_parts(initial_registry(), probe)


def new_context(procs: dict[int, ProcessFacts] = LIVE) -> tuple[Ctx, MemoryJournal]:
    parts = new_parts(procs)
    return parts.ctx, parts.journal


# ---- entries -------------------------------------------------------------------------

entry_texts = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12) | st.sampled_from(
    ["a\nb", 'q"uote', "back\\slash", "\u2028", "tab\t"]
)
stamps = st.floats(1e9, 2e9).map(lambda x: round(x, 6))
log_paths = entry_texts.map(lambda t: "/" + t.replace("\0", ""))


@st.composite
def registries(draw: st.DrawFn) -> list[Proc]:
    """Entries sorted by id as a registry holds them: any text in commands and tags
    (newlines, quotes, backslashes included), any times to the microsecond."""
    ids = draw(st.lists(st.integers(1, 400), unique=True, max_size=300).map(sorted))
    return [
        Proc(
            id=i,
            pid=draw(st.integers(1, 2**31 - 1)),
            pgid=draw(st.none() | st.integers(0, 2**31 - 1)),
            cmd=draw(entry_texts),
            name=draw(st.none() | st.just(f"n{i}")),
            alive=draw(st.booleans()),
            tags=tuple(sorted(set(draw(st.lists(entry_texts, max_size=3))))),
            groups=tuple(sorted(set(draw(st.lists(st.sampled_from(["g", "h"]), max_size=2))))),
            started_at=draw(stamps),
            added_at=draw(stamps),
            last_seen=draw(stamps),
            exited_at=draw(st.none() | stamps),
            log=draw(st.none() | st.builds(LogFiles, out=log_paths, err=log_paths)),
        )
        for i in ids
    ]
