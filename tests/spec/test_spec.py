"""The protocol's public contract, `spec/openrpc.json`, held against a real daemon.

- The document is OpenRPC 1.2.6 in shape, every schema in it is valid JSON Schema (2020-12,
  and draft-07, which OpenRPC 1.2.6 prescribes), every `$ref` resolves, every example fits.
- The daemon answers exactly the methods of the spec, and no other name.
- Real results (real daemon, real processes) validate against the result schemas, and so
  do the `event` notifications of `x-notifications`.
- Every error a method lists comes back for a request that provokes it, as a valid
  JSON-RPC error (with `data` exactly where `x-error-details` describes it); so does every
  other code of `components/errors`; so do the wire rules of `x-transport`.

The tests are driven by the spec: a method, parameter, error or event kind added to it is
exercised here, or a test fails naming the case or provocation that is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import Daemon, read_lines
from helpers import break_journal
from hypothesis import given, settings, strategies as st
from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from goproc import api, errors as goproc_errors

SPEC_PATH = Path(__file__).resolve().parents[2] / "spec" / "openrpc.json"
SPEC_URI = "urn:goproc:spec:openrpc"
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602


# ---- reading the spec ------------------------------------------------------------------


def load_spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


@cache
def spec() -> dict[str, Any]:
    """The spec, or an empty one when it does not load (test_spec_is_json says why), so
    that collection still works."""
    try:
        return load_spec()
    except (OSError, ValueError):
        return {"methods": [], "components": {}}


def pointer_get(doc: Any, pointer: str) -> Any:
    """The value at a JSON pointer (`/a/b`) in `doc`."""
    node = doc
    for part in pointer.lstrip("/").split("/") if pointer.strip("/") else []:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def locate(pointer: str) -> tuple[Any, str]:
    """The object at `pointer`, following OpenRPC reference objects; with its own pointer."""
    obj = pointer_get(spec(), pointer)
    while isinstance(obj, dict) and set(obj) == {"$ref"}:
        target = obj["$ref"]
        assert target.startswith("#/"), f"{pointer}: only local references are used: {target}"
        pointer = target[1:]
        obj = pointer_get(spec(), pointer)
    return obj, pointer


def spec_methods() -> dict[str, int]:
    """Method name -> its index in `methods`."""
    return {m["name"]: i for i, m in enumerate(spec()["methods"])}


@cache
def method_params(name: str) -> dict[str, tuple[dict[str, Any], str]]:
    """Param name -> (content descriptor, pointer to its schema), in spec order."""
    i = spec_methods()[name]
    out = {}
    for j in range(len(spec()["methods"][i]["params"])):
        cd, where = locate(f"/methods/{i}/params/{j}")
        out[cd["name"]] = (cd, f"{where}/schema")
    return out


def shared_param(method: str, param: str) -> bool:
    """Whether the param is a shared content descriptor (a selector filter, `all`)."""
    i = spec_methods()[method]
    for p in spec()["methods"][i]["params"]:
        if "$ref" in p and locate(p["$ref"][1:])[0]["name"] == param:
            return True
    return False


def result_schema_pointer(name: str) -> str:
    _, where = locate(f"/methods/{spec_methods()[name]}/result")
    return f"{where}/schema"


def method_errors(name: str) -> list[int]:
    i = spec_methods()[name]
    return [
        locate(f"/methods/{i}/errors/{j}")[0]["code"]
        for j in range(len(spec()["methods"][i].get("errors", [])))
    ]


def component_errors() -> dict[int, str]:
    """Code -> its key in components/errors."""
    return {e["code"]: key for key, e in spec()["components"].get("errors", {}).items()}


def schema_locations() -> list[str]:
    """Pointers to every JSON Schema in the spec."""
    doc = spec()
    out = [f"/components/schemas/{k}" for k in doc["components"].get("schemas", {})]
    out += [
        f"/components/contentDescriptors/{k}/schema"
        for k in doc["components"].get("contentDescriptors", {})
    ]
    for i, m in enumerate(doc["methods"]):
        out += [
            f"/methods/{i}/params/{j}/schema" for j, p in enumerate(m["params"]) if "$ref" not in p
        ]
        if "$ref" not in m["result"]:
            out.append(f"/methods/{i}/result/schema")
    out += [
        f"/x-error-details/{k}/data"
        for k, v in doc.get("x-error-details", {}).items()
        if "data" in v
    ]
    out += [f"/x-notifications/{k}/schema" for k in doc.get("x-notifications", {})]
    return out


# ---- validating against it -------------------------------------------------------------

RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _is_rfc3339(value: object) -> bool:
    """RFC 3339 date-time, checked without an extra dependency: the shape, then the ranges."""
    if not isinstance(value, str):
        return True
    if not RFC3339.fullmatch(value):
        return False
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    return True


@cache
def schema_registry() -> Registry:
    """The whole document as one resource, so `#/components/...` refs resolve in place."""
    return Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(spec()))


def _ecma_pattern(
    validator: Any, pattern: str, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    """`pattern` as JSON Schema means it (ECMA-262): its `$` is the very end, where
    Python's also matches before a final newline ("abc\\n" would fit `^[a-z]+$`)."""
    if isinstance(instance, str) and not re.search(_ecma_to_python(pattern), instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def _ecma_to_python(pattern: str) -> str:
    return re.sub(r"(?<!\\)\$", r"\\Z", pattern)


SpecValidator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})


@cache
def validator(pointer: str) -> Any:
    """A validator for the schema at `pointer` in the spec, its `$ref`s resolved there."""
    return SpecValidator(
        {"$ref": f"{SPEC_URI}#{pointer}"}, registry=schema_registry(), format_checker=FORMATS
    )


def is_valid(pointer: str, value: Any) -> bool:
    return not any(validator(pointer).iter_errors(value))


def assert_valid(pointer: str, value: Any) -> None:
    problems = [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator(pointer).iter_errors(value)
    ]
    assert not problems, f"{json.dumps(value)[:600]} does not fit {pointer}: {problems}"


def assert_response(reply: Any, request_id: Any) -> None:
    """A valid JSON-RPC response to the request with `request_id`."""
    assert_valid("/components/schemas/Response", reply)
    assert reply["id"] == request_id


def assert_error(reply: Any, request_id: Any, code: int) -> dict[str, Any]:
    """A valid JSON-RPC error reply with `code`; its `data` exactly as the spec says."""
    assert_response(reply, request_id)
    assert "error" in reply, f"expected error {code}, got {reply}"
    error = reply["error"]
    assert_valid("/components/schemas/Error", error)
    assert error["code"] == code, f"expected error {code}, got {error}"
    key = component_errors().get(code)
    detail = spec().get("x-error-details", {}).get(key, {})
    if "data" in detail:
        assert "data" in error, f"error {code} must carry data: {error}"
        assert_valid(f"/x-error-details/{key}/data", error["data"])
    else:
        assert "data" not in error, f"error {code} has data the spec does not describe: {error}"
    return error


# ---- talking to the daemon -------------------------------------------------------------

_ABSENT: Any = object()
_ids = iter(range(1, 1_000_000))


def message(method: str, params: Any = _ABSENT, request_id: Any = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not _ABSENT:
        msg["params"] = params
    return msg


def send(d: Daemon, method: str, params: Any = _ABSENT, request_id: Any = None) -> Any:
    """One request on a fresh connection; the whole reply, checked to be a valid response
    to it.  `params` may be anything (absent when not given); the id is fresh unless given."""
    request_id = next(_ids) if request_id is None else request_id
    lines = d.raw(json.dumps(message(method, params, request_id)).encode() + b"\n")
    assert len(lines) == 1, f"no reply to {method} {params}"
    reply = json.loads(lines[0])
    assert_response(reply, request_id)
    return reply


def result_of(d: Daemon, method: str, params: Any = _ABSENT) -> Any:
    reply = send(d, method, params)
    assert "result" in reply, f"{method} {params}: {reply}"
    return reply["result"]


class Conn:
    """One connection kept open: requests and replies, with event notifications set aside."""

    def __init__(self, d: Daemon) -> None:
        self.sock = d.connect()
        self.file = self.sock.makefile("rb")
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()
        self.sock.close()

    def line(self) -> Any:
        """The next line, parsed; None at EOF."""
        data = self.file.readline()
        return json.loads(data) if data else None

    def call(self, method: str, params: Any = _ABSENT) -> Any:
        request_id = next(_ids)
        self.sock.sendall(json.dumps(message(method, params, request_id)).encode() + b"\n")
        while (reply := self.line()) is not None:
            if "id" not in reply:
                self.events.append(reply)
                continue
            assert_response(reply, request_id)
            assert "result" in reply, reply
            return reply["result"]
        raise AssertionError(f"connection closed before the reply to {method}")

    def wait_events(self, done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
        while not done(self.events):
            line = self.line()
            assert line is not None, f"closed before the events came: {self.events}"
            self.events.append(line)
        return self.events


def command_line(pid: int) -> list[str]:
    """The process's argv as the kernel shows it ([] while an exec is under way)."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class World:
    """A daemon with a few known entries: `a` and `b` alive, `dead` exited.  Labels are
    prefixed `spec-` and unique per use, so one test's entries never match another's."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.children: list[subprocess.Popen[bytes]] = []
        self._n = iter(range(1_000_000))
        self.matched: list[int] = []  # the pids the last `add` with a match case made
        self.spawned: list[int] = []  # process groups the daemon started for us

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{next(self._n)}"

    def spawn(
        self, *cmd: str, own_group: bool = False, lasting: bool = True
    ) -> subprocess.Popen[bytes]:
        """A child process; a `lasting` one is returned once its exec has finished (its
        command line readable), which Popen returning does not guarantee."""
        argv = list(cmd) or ["sleep", "300"]
        p = subprocess.Popen(argv, start_new_session=own_group)
        self.children.append(p)
        if lasting:
            wait_for(lambda: command_line(p.pid) == argv, f"{argv} to be exec'd")
        return p

    def started(self, *argv: str, **params: Any) -> dict[str, Any]:
        """An entry the daemon spawned (`sleep 300` by default), killed at cleanup."""
        entry = result_of(
            self.daemon, "spawn", {"argv": list(argv) or ["sleep", "300"], "cwd": "/", **params}
        )
        self.spawned.append(entry["pid"])
        return entry

    def started_dead(self, *argv: str, **params: Any) -> dict[str, Any]:
        """A spawned entry whose process has exited (`true` by default), reaped."""
        entry = self.started(*(argv or ("true",)), **params)
        return wait_for(
            lambda: next(
                (
                    p
                    for p in result_of(self.daemon, "list", {"ids": [entry["id"]]})
                    if not p["alive"]
                ),
                None,
            ),
            "the spawned process to be reaped",
        )

    def add(self, *, own_group: bool = False, **params: Any) -> dict[str, Any]:
        """A fresh `sleep` process, tracked with `params`."""
        pid = self.spawn(own_group=own_group).pid
        return result_of(self.daemon, "add", {"pid": pid, **params})

    def ignoring_term(self) -> dict[str, Any]:
        """A process that ignores SIGTERM (from before it is tracked)."""
        p = self.spawn("sh", "-c", "trap '' TERM; exec sleep 300", lasting=False)

        def ignores() -> bool:
            status = Path(f"/proc/{p.pid}/status").read_text()
            mask = int(re.search(r"^SigIgn:\s*([0-9a-f]+)", status, re.M).group(1), 16)  # type: ignore[union-attr]
            return bool(mask & (1 << 14)) and command_line(p.pid) == ["sleep", "300"]

        wait_for(ignores, "the shell to ignore TERM and exec sleep")
        return result_of(self.daemon, "add", {"pid": p.pid})

    def end(self, proc: dict[str, Any]) -> None:
        """Kill a tracked process and wait until the daemon has it dead."""
        child = next(c for c in self.children if c.pid == proc["pid"])
        child.kill()
        child.wait()
        wait_for(
            lambda: not result_of(self.daemon, "list", {"ids": [proc["id"]]})[0]["alive"],
            "the daemon to see the killed process dead",
        )

    def setup(self) -> None:
        self.a = self.add(tags=["spec-a", "spec-common"], groups=["spec-g1"], name="spec-a")
        self.b = self.add(tags=["spec-common"], groups=["spec-g1", "spec-g2"], name="spec-b")
        self.dead = self.add(tags=["spec-dead"], name="spec-dead")
        self.end(self.dead)

    def cleanup(self) -> None:
        for p in self.children:
            if p.poll() is None:
                p.kill()
            p.wait(10)
        for entry in result_of(self.daemon, "list", {"alive": True}):
            if entry["spawned"] is not None:  # restarted ones included
                self.spawned.append(entry["pid"])
        for pgid in self.spawned:  # the daemon's children outlive it: never leave them
            with contextlib.suppress(OSError):
                os.killpg(pgid, 9)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # Sampling on (fast): real results carry metrics for the schemas to check.
    d = Daemon(
        tmp_path_factory.mktemp("spec"),
        config={"liveness_interval": "100ms", "metrics_interval": "100ms"},
    )
    d.start()
    w = World(d)
    try:
        w.setup()
        yield w
    finally:
        w.cleanup()
        d.stop()


class Broken(World):
    """A daemon whose journal cannot be written (a real write failure, even as root: see
    `helpers.break_journal`): every change fails, none may apply."""

    def setup(self) -> None:
        self.e1 = self.add(tags=["s"], groups=["s"], name="s1")
        rule = {"condition": "cpu > 99", "ids": [self.e1["id"]], "rule": "s-rule"}
        self.rule = result_of(self.daemon, "alert.add", rule)
        adopt = {"match": {"pattern": "^s-nothing-runs-as-this$"}, "rule": "s-adopt"}
        self.adopt = result_of(self.daemon, "adopt.add", adopt)
        self.e2 = self.add(tags=["s"], groups=["s"])
        self.running = self.started("sleep", "300", name="s-running")
        self.ended = self.started_dead("true", name="s-ended")
        break_journal(self.daemon.state_dir, entries=4)


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broken]:
    d = Daemon(tmp_path_factory.mktemp("broken"), config={"last_seen_interval": "1h"})
    d.start()
    w = Broken(d)
    try:
        w.setup()
        yield w
    finally:
        w.cleanup()
        d.kill9()


class Ctx:
    """What a case or a provocation may use."""

    def __init__(self, world: World, broken: Broken, spawn_daemon: Callable[..., Daemon]):
        self.world = world
        self.daemon = world.daemon
        self.broken = broken
        self.spawn_daemon = spawn_daemon


@pytest.fixture
def ctx(world: World, broken: Broken, spawn_daemon: Callable[..., Daemon]) -> Ctx:
    return Ctx(world, broken, spawn_daemon)


# ---- (a) the document ------------------------------------------------------------------


def test_spec_is_json() -> None:
    doc = load_spec()
    assert isinstance(doc, dict)
    assert doc["openrpc"] == "1.2.6"


# The object rules of the OpenRPC 1.2.6 meta-schema, and goproc's x- parts (a JSON Schema).
OPENRPC_SHAPE = json.loads((Path(__file__).parent / "openrpc-shape.schema.json").read_text())


def test_spec_has_the_openrpc_shape() -> None:
    problems = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
        for e in Draft7Validator(OPENRPC_SHAPE).iter_errors(load_spec())
    ]
    assert not problems


def test_names_are_unique() -> None:
    """Method names in the document, param names in a method, codes in components/errors;
    and `x-error-details` explains exactly the errors of components/errors."""
    names = [m["name"] for m in spec()["methods"]]
    assert len(names) == len(set(names))
    for name, i in spec_methods().items():
        count = len(spec()["methods"][i]["params"])
        params = [locate(f"/methods/{i}/params/{j}")[0]["name"] for j in range(count)]
        assert len(params) == len(set(params)), name
    codes = [e["code"] for e in spec()["components"]["errors"].values()]
    assert len(codes) == len(set(codes))
    assert set(spec().get("x-error-details", {})) == set(spec()["components"]["errors"])


@pytest.mark.parametrize("pointer", schema_locations())
def test_schema_is_valid_json_schema(pointer: str) -> None:
    schema = pointer_get(load_spec(), pointer)
    Draft202012Validator.check_schema(schema)
    Draft7Validator.check_schema(schema)  # what OpenRPC 1.2.6 prescribes for schemas


def test_every_ref_resolves() -> None:
    resolver = schema_registry().resolver(SPEC_URI)

    def refs(node: Any, where: str) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield where, node["$ref"]
            for k, v in node.items():
                yield from refs(v, f"{where}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from refs(v, f"{where}/{i}")

    found = list(refs(load_spec(), ""))
    assert found
    for where, ref in found:
        assert ref.startswith("#/"), f"{where}: {ref}"
        resolver.lookup(ref)  # raises when it does not resolve


@pytest.mark.parametrize("method", list(spec_methods()))
def test_examples_fit_the_schemas(method: str) -> None:
    m = spec()["methods"][spec_methods()[method]]
    params = method_params(method)
    assert m.get("examples"), f"{method} has no example"
    for example in m["examples"]:
        given = {p["name"]: p["value"] for p in example["params"]}
        assert set(given) <= set(params), f"{method}: unknown params in {example['name']}"
        missing = {n for n, (cd, _) in params.items() if cd.get("required")} - set(given)
        assert not missing, f"{method}: {example['name']} lacks {missing}"
        for n, value in given.items():
            assert_valid(params[n][1], value)
        assert_valid(result_schema_pointer(method), example["result"]["value"])


def test_spec_has_every_error_code_of_goproc() -> None:
    """Every code goproc defines is in components/errors, and the spec invents none."""
    constants = {v for k, v in vars(goproc_errors).items() if k.isupper() and isinstance(v, int)}
    classes = {
        cls.code
        for cls in vars(goproc_errors).values()
        if isinstance(cls, type) and issubclass(cls, goproc_errors.GoprocError)
    }
    assert set(component_errors()) == constants | classes


# ---- (b) the method set ----------------------------------------------------------------


def test_server_methods_are_the_spec_methods() -> None:
    assert set(api.METHODS) == set(spec_methods())


@pytest.mark.parametrize("method", list(spec_methods()))
def test_spec_method_is_answered(world: World, method: str) -> None:
    """Not -32601; params that cannot be right keep it from doing anything."""
    reply = send(world.daemon, method, {"spec_no_such_param": 1})
    assert reply.get("error", {}).get("code") == INVALID_PARAMS, reply


@pytest.mark.parametrize(
    "name", ["nope", "PING", "ping ", " list", "Add", "tag", "tag.", "rpc.discover", ""]
)
def test_name_not_in_spec_is_method_not_found(world: World, name: str) -> None:
    assert name not in spec_methods()
    request_id = next(_ids)
    assert_error(send(world.daemon, name, request_id=request_id), request_id, METHOD_NOT_FOUND)


# ---- (c) real results against the result schemas ---------------------------------------

# (ctx, params sent, result); what it returns is not used
Check = Callable[[Ctx, Any, Any], object]


@dataclass(frozen=True)
class Case:
    """A call whose result must fit the spec: `params` builds what is sent (it may start
    processes or add entries), `check` says more about the result, `run` replaces the
    plain one-request call (it returns the result)."""

    method: str
    params: Callable[[Ctx], Any] = lambda ctx: _ABSENT
    check: Check | None = None
    run: Callable[[Ctx, Any], Any] | None = None


def without_metrics(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry but its metrics, which the world daemon's sampler keeps changing."""
    return {k: v for k, v in entry.items() if k != "metrics"}


def that(predicate: Callable[[Ctx, Any, Any], bool]) -> Check:
    def check(ctx: Ctx, params: Any, result: Any) -> None:
        assert predicate(ctx, params, result), f"{params} -> {result}"

    return check


def ids_are(*keys: str) -> Check:
    def check(ctx: Ctx, params: Any, result: Any) -> None:
        assert [p["id"] for p in result] == [getattr(ctx.world, k)["id"] for k in keys]

    return check


def includes(*keys: str) -> Check:
    def check(ctx: Ctx, params: Any, result: Any) -> None:
        got = [p["id"] for p in result]
        assert {getattr(ctx.world, k)["id"] for k in keys} <= set(got)
        assert got == sorted(got)

    return check


def added(tags: list[str], groups: list[str]) -> Check:
    def check(ctx: Ctx, params: Any, result: Any) -> None:
        assert result["alive"] is True and result["exited_at"] is None
        assert result["tags"] == tags and result["groups"] == groups
        assert result["pid"] == params["pid"] and result["cmd"] == "sleep 300"

    return check


def outcomes(*expected: str) -> Check:
    def check(ctx: Ctx, params: Any, result: Any) -> None:
        assert [o["outcome"] for o in result] == list(expected), result

    return check


def gone(ctx: Ctx, params: Any, result: Any) -> None:
    """The entries of the result are no longer in the registry."""
    ids = [p["id"] for p in result]
    assert ids and result_of(ctx.daemon, "list", {"ids": ids}) == []


def _fresh(**params: Any) -> Callable[[Ctx], dict[str, Any]]:
    return lambda ctx: ctx.world.add(**params)


def _tagged(n: int, **params: Any) -> Callable[[Ctx], tuple[str, list[dict[str, Any]]]]:
    def make(ctx: Ctx) -> tuple[str, list[dict[str, Any]]]:
        tag = ctx.world.unique("spec-t")
        return tag, [ctx.world.add(tags=[tag], **params) for _ in range(n)]

    return make


def _label_cases(kind: str, prefix: str) -> dict[str, Case]:
    any_key = f"{kind}_any"

    def labelled(*labels: str) -> dict[str, Any]:
        """`{kind: [*labels]}` for `**params`: as `dict[str, Any]`, not taken for `own_group`."""
        return {kind: list(labels)}

    def renamed(ctx: Ctx) -> Any:
        old = ctx.world.unique(f"spec-old-{prefix}")
        ctx.world.add(**labelled(old))
        return {"old": f" {old} ", "new": ctx.world.unique(f"spec-new-{prefix}")}

    def has(labels: list[str], lacks: tuple[str, ...] = ()) -> Check:
        def check(ctx: Ctx, params: Any, result: Any) -> None:
            assert result
            for p in result:
                assert set(labels) <= set(p[kind]) and not set(lacks) & set(p[kind]), p

        return check

    def renamed_one(ctx: Ctx, params: Any, result: Any) -> None:
        assert result == {"changed": 1}
        assert len(result_of(ctx.daemon, "list", {any_key: [params["new"].strip()]})) == 1

    def counted(ctx: Ctx, params: Any, result: Any) -> None:
        table = {c["name"]: c["count"] for c in result}
        assert [c["name"] for c in result] == sorted(table)
        assert table["spec-g1" if kind == "groups" else "spec-common"] == 2

    return {
        f"{prefix}.add to one entry": Case(
            f"{prefix}.add",
            lambda ctx: {"ids": [ctx.world.add()["id"]], "labels": ["spec-x", " spec-y ", ""]},
            has(["spec-x", "spec-y"]),
        ),
        f"{prefix}.add to all matching": Case(
            f"{prefix}.add",
            lambda ctx: {
                "ids": [ctx.world.add()["id"], ctx.world.add()["id"]],
                "all": True,
                "labels": ["spec-z"],
            },
            has(["spec-z"]),
        ),
        f"{prefix}.remove": Case(
            f"{prefix}.remove",
            lambda ctx: {
                "ids": [ctx.world.add(**labelled("spec-r", "spec-k"))["id"]],
                "labels": ["spec-r"],
            },
            has(["spec-k"], lacks=("spec-r",)),
        ),
        f"{prefix}.rename": Case(f"{prefix}.rename", renamed, renamed_one),
        f"{prefix}.list": Case(f"{prefix}.list", check=counted),
    }


def _spawn_case(ctx: Ctx) -> dict[str, Any]:
    out = ctx.daemon.root / f"{ctx.world.unique('spawn')}.log"
    return {
        "argv": ["sh", "-c", "echo spec-out; exec sleep 300"],
        "cwd": str(ctx.daemon.root),
        "env": ["PATH=/usr/bin:/bin", "SPEC=1"],
        "tags": ["spec-spawned"],
        "groups": ["spec-g9"],
        "name": ctx.world.unique("spec-sp"),
        "log": {"out": str(out), "err": str(out)},
        "attach": False,
        "restart": "on-failure",
        "max_restarts": 3,
        "restart_window": 30,
        "backoff_min": 0.5,
        "backoff_max": 2,
        "log_max_bytes": 65536,
    }


def _spawned_as_asked(ctx: Ctx, params: Any, result: Any) -> None:
    assert result["alive"] is True and result["pgid"] == result["pid"]
    assert (result["name"], result["tags"], result["groups"]) == (
        params["name"],
        params["tags"],
        params["groups"],
    )
    assert result["log"] == params["log"]
    assert result["spawned"] == {
        "argv": params["argv"],
        "cwd": params["cwd"],
        "env": params["env"],
        "restart": "on-failure",
        "max_restarts": 3,
        "restart_window": 30.0,
        "backoff_min": 0.5,
        "backoff_max": 2.0,
        "log_max_bytes": 65536,
    }
    assert (result["exit_code"], result["exit_signal"], result["restarts"]) == (None, None, 0)
    wait_for(lambda: Path(params["log"]["out"]).read_text() == "spec-out\n", "its output")


def _exited_once(ctx: Ctx) -> dict[str, Any]:
    """A spawned entry whose first run exited 7; a second one runs on."""
    mark = ctx.daemon.root / ctx.world.unique("spec-ran")
    script = f"test -e {mark} && exec sleep 300; touch {mark}; exit 7"
    entry = ctx.world.started_dead("sh", "-c", script)
    assert entry["exit_code"] == 7, entry
    return entry


def _spawn_run(ctx: Ctx, params: Any) -> Any:
    """`spawn`, its process killed at cleanup."""
    result = result_of(ctx.daemon, "spawn", params)
    ctx.world.spawned.append(result["pid"])
    return result


def _track_run(ctx: Ctx, method: str, params: Any) -> Any:
    result = result_of(ctx.daemon, method, params)
    ctx.world.spawned.extend(p["pid"] for p in result if p["alive"])
    return result


def _spawn_attached(ctx: Ctx, params: Any) -> Any:
    """`spawn` with two descriptors sent along (SCM_RIGHTS): the ends of a pipe."""
    read_end, write_end = os.pipe()
    try:
        with ctx.daemon.connect() as s:
            line = json.dumps(message("spawn", params, next(_ids))).encode() + b"\n"
            sent = socket.send_fds(s, [line], [write_end, write_end])
            s.sendall(line[sent:])
            reply = json.loads(read_lines(s, 1)[0])
        os.close(write_end)
        write_end = -1
        assert os.read(read_end, 10) == b"", "true writes nothing; EOF once it exited"
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
    assert "result" in reply, reply
    return reply["result"]


def _named_sleeper(ctx: Ctx, name: str) -> int:
    """A `sleep` whose command line starts with `name` (`exec -a`); its pid."""
    p = ctx.world.spawn("bash", "-c", f"exec -a {name} sleep 300", lasting=False)
    wait_for(lambda: command_line(p.pid)[:1] == [name], f"{name} to be exec'd")
    return p.pid


def _match_case(dry_run: bool) -> Callable[[Ctx], Any]:
    def make(ctx: Ctx) -> Any:
        name = ctx.world.unique("spec-match")
        pids = [_named_sleeper(ctx, name) for _ in range(2)]
        ctx.world.matched = pids
        match = {"pattern": f"^{name} ", "full": True, "pick": "all", "user": None}
        return {"match": match, "dry_run": dry_run, "tags": ["spec-m"]}

    return make


def _matched(outcome: str) -> Check:
    def check(ctx: Ctx, params: Any, result: Any) -> None:
        pids = ctx.world.matched
        assert [m["pid"] for m in result["matched"]] == pids
        assert {m["outcome"] for m in result["matched"]} == {outcome}
        assert [p["pid"] for p in result["added"]] == ([] if outcome == "would add" else pids)

    return check


def _reset(ctx: Ctx, params: Any) -> Any:
    """On a daemon of its own: reset forgets everything and ids start at 1 again."""
    d = ctx.spawn_daemon()
    result_of(d, "add", {"pid": ctx.world.spawn().pid})
    result = result_of(d, "reset", params)
    assert result_of(d, "list") == []
    assert result_of(d, "status")["next_id"] == 1
    return result


def _wait_for_exit(ctx: Ctx, params: Any) -> Any:
    """The reply comes when the process exits, not before."""
    proc = ctx.world.add()
    with Conn(ctx.daemon) as conn:
        conn.sock.sendall(
            json.dumps(message("wait", {"ids": [proc["id"]], **params}, 1)).encode() + b"\n"
        )
        conn.sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            conn.sock.recv(1, socket.MSG_PEEK)
        conn.sock.settimeout(10)
        next(c for c in ctx.world.children if c.pid == proc["pid"]).kill()
        reply = conn.line()
    assert_response(reply, 1)
    assert [p["id"] for p in reply["result"]["exited"]] == [proc["id"]]
    return reply["result"]


def _adopt_case(ctx: Ctx) -> Any:
    """A rule for a `sleep` named like nothing else (`exec -a`), with every parameter."""
    name = ctx.world.unique("spec-adopt")
    return {
        "match": {"pattern": f"^{name} ", "full": True, "exact": False, "pick": "all"},
        "tags": [" spec-adopted ", ""],
        "groups": ["spec-ag"],
        "name": name + "-{n}",
        "rule": f" {name} ",
        "forget_after": 600,
        "limit": 2,
    }


def _adopts(ctx: Ctx, params: Any, result: Any) -> None:
    """The rule as given, and a matching process started after it is adopted."""
    name = params["rule"].strip()
    assert (result["name"], result["match"], result["tags"], result["groups"]) == (
        name,
        {"pattern": params["match"]["pattern"], "full": True},
        ["spec-adopted"],
        ["spec-ag"],
    ), result
    assert (result["name_template"], result["forget_after"], result["limit"]) == (
        params["name"],
        600.0,
        2,
    )
    assert (result["adopted"], result["alive"]) == (0, 0)
    pid = _named_sleeper(ctx, name)
    entry = wait_for(
        lambda: result_of(ctx.daemon, "list", {"pids": [pid]}), "the rule to adopt the process"
    )[0]
    assert_valid("/components/schemas/Proc", entry)
    assert (entry["adopted_by"], entry["name"], entry["tags"]) == (
        result["id"],
        f"{name}-1",
        ["spec-adopted"],
    ), entry
    listed = next(r for r in result_of(ctx.daemon, "adopt.list") if r["id"] == result["id"])
    assert (listed["adopted"], listed["alive"]) == (1, 1), listed


def _unsubscribe(ctx: Ctx, params: Any) -> Any:
    with Conn(ctx.daemon) as conn:
        sub = conn.call("subscribe", {"ids": []})["subscription"]
        return conn.call("unsubscribe", {**params, "subscription": sub})


RESULT_CASES: dict[str, Case] = {
    "ping": Case("ping", check=lambda ctx, p, r: None),
    "ping with empty params": Case("ping", lambda ctx: {}),
    "status": Case("status"),
    "add with tags, groups and a name": Case(
        "add",
        lambda ctx: {
            "pid": ctx.world.spawn().pid,
            "tags": [" x ", "x", "", "b"],
            "groups": ["g"],
            "name": ctx.world.unique("spec-n"),
        },
        added(["b", "x"], ["g"]),
    ),
    "add with a pid only": Case("add", lambda ctx: {"pid": ctx.world.spawn().pid}, added([], [])),
    "add with nulls": Case(
        "add", lambda ctx: {"pid": ctx.world.spawn().pid, "pids": None, "name": None}
    ),
    "add with pids": Case(
        "add",
        lambda ctx: {"pids": [ctx.world.spawn().pid, ctx.world.spawn().pid], "groups": ["m"]},
        that(lambda ctx, params, result: [p["pid"] for p in result] == params["pids"]),
    ),
    "add with log true: the daemon's files": Case(
        "add",
        lambda ctx: {"pid": ctx.world.spawn().pid, "log": True},
        that(
            lambda ctx, params, result: (
                result["log"]
                == {
                    "out": f"{ctx.daemon.state_dir}/logs/{result['id']}.out",
                    "err": f"{ctx.daemon.state_dir}/logs/{result['id']}.err",
                }
            )
        ),
    ),
    "add with log paths": Case(
        "add",
        lambda ctx: {"pid": ctx.world.spawn().pid, "log": {"out": "/x/o y", "err": "/x/e"}},
        that(lambda ctx, params, result: result["log"] == params["log"]),
    ),
    "add with a match": Case("add", _match_case(False), _matched("added")),
    "add with a match, dry run": Case("add", _match_case(True), _matched("would add")),
    "add with log false": Case(
        "add",
        lambda ctx: {"pid": ctx.world.spawn().pid, "log": False},
        that(lambda ctx, params, result: result["log"] is None),
    ),
    "list everything": Case("list", check=includes("a", "b", "dead")),
    "list with every filter null": Case(
        "list", lambda ctx: dict.fromkeys(method_params("list")), includes("a", "b", "dead")
    ),
    "list by ids": Case(
        "list",
        lambda ctx: {"ids": [ctx.world.b["id"], ctx.world.a["id"], NO_ID]},
        ids_are("a", "b"),
    ),
    "list by pids": Case("list", lambda ctx: {"pids": [ctx.world.b["pid"]]}, ids_are("b")),
    "list by names": Case("list", lambda ctx: {"names": ["spec-a", "nope", "x y"]}, ids_are("a")),
    "list by tags_any": Case("list", lambda ctx: {"tags_any": ["spec-a", "nope"]}, ids_are("a")),
    "list by tags_all": Case(
        "list", lambda ctx: {"tags_all": ["spec-common", "spec-a"]}, ids_are("a")
    ),
    "list by groups_any": Case("list", lambda ctx: {"groups_any": ["spec-g2"]}, ids_are("b")),
    "list by groups_all": Case(
        "list", lambda ctx: {"groups_all": ["spec-g1", "spec-g2"]}, ids_are("b")
    ),
    "list alive": Case(
        "list",
        lambda ctx: {"alive": True, "tags_any": ["spec-common", "spec-dead"]},
        ids_are("a", "b"),
    ),
    "list dead": Case(
        "list",
        lambda ctx: {"alive": False, "tags_any": ["spec-common", "spec-dead"]},
        ids_are("dead"),
    ),
    "list by search": Case(
        "list", lambda ctx: {"search": "sleep 3", "groups_any": ["spec-g1"]}, ids_are("a", "b")
    ),
    "list matching nothing": Case("list", lambda ctx: {"search": "no such command"}, ids_are()),
    "show by name": Case(
        "show",
        lambda ctx: {"names": ["spec-a"]},
        that(lambda ctx, p, r: without_metrics(r) == without_metrics(ctx.world.a)),
    ),
    "show a dead entry": Case(
        "show",
        lambda ctx: {"ids": [ctx.world.dead["id"]], "alive": False},
        that(lambda ctx, p, r: r["exited_at"] is not None),
    ),
    "remove one": Case("remove", lambda ctx: {"ids": [ctx.world.add()["id"]]}, gone),
    "remove all matching": Case(
        "remove", lambda ctx: {"tags_any": [_tagged(2)(ctx)[0]], "all": True}, gone
    ),
    "kill with TERM: exited": Case(
        "kill", lambda ctx: {"ids": [_fresh()(ctx)["id"]]}, outcomes("exited")
    ),
    "kill with KILL: signalled": Case(
        "kill", lambda ctx: {"ids": [_fresh()(ctx)["id"]], "signal": "kill"}, outcomes("signalled")
    ),
    "kill with TERM and timeout 0: signalled": Case(
        "kill",
        lambda ctx: {"ids": [_fresh()(ctx)["id"]], "signal": 15, "timeout": 0},
        outcomes("signalled"),
    ),
    "kill a process that ignores TERM: killed": Case(
        "kill",
        lambda ctx: {"ids": [ctx.world.ignoring_term()["id"]], "timeout": 0.2},
        outcomes("killed"),
    ),
    "kill a dead entry: not alive": Case(
        "kill", lambda ctx: {"ids": [ctx.world.dead["id"]]}, outcomes("not alive")
    ),
    "kill process groups, all, rm": Case(
        "kill",
        lambda ctx: {
            "tags_any": [_tagged(2, own_group=True)(ctx)[0]],
            "all": True,
            "group": True,
            "rm": True,
            "signal": "SIGKILL",
        },
        lambda ctx, params, result: [
            check(ctx, params, result) for check in (outcomes("signalled", "signalled"), gone)
        ],
    ),
    **_label_cases("tags", "tag"),
    **_label_cases("groups", "group"),
    "name.set": Case(
        "name.set",
        lambda ctx: {"ids": [ctx.world.add()["id"]], "name": ctx.world.unique("spec-name")},
        that(lambda ctx, params, result: result["name"] == params["name"]),
    ),
    "name.set to null clears": Case(
        "name.set",
        lambda ctx: {"ids": [ctx.world.add(name=ctx.world.unique("spec-c"))["id"]], "name": None},
        that(lambda ctx, params, result: result["name"] is None),
    ),
    "reset": Case(
        "reset",
        lambda ctx: {"confirm": "RESET"},
        that(lambda ctx, p, r: r == {"removed": 1}),
        run=_reset,
    ),
    "wait for a dead entry": Case(
        "wait",
        lambda ctx: {"ids": [ctx.world.dead["id"]]},
        that(lambda ctx, p, r: (r["timed_out"], len(r["exited"]), r["alive"]) == (False, 1, [])),
    ),
    "wait until the timeout": Case(
        "wait",
        lambda ctx: {"ids": [ctx.world.a["id"]], "timeout": 0.05},
        that(lambda ctx, p, r: (r["timed_out"], r["exited"], len(r["alive"])) == (True, [], 1)),
    ),
    "wait for any": Case(
        "wait",
        lambda ctx: {"ids": [ctx.world.a["id"], ctx.world.dead["id"]], "any": True},
        that(
            lambda ctx, p, r: (r["timed_out"], len(r["exited"]), len(r["alive"])) == (False, 1, 1)
        ),
    ),
    "wait for an exit": Case("wait", lambda ctx: {"timeout": 10}, run=_wait_for_exit),
    "subscribe": Case("subscribe", lambda ctx: {"tags_any": ["spec-a"]}),
    "metrics.history of one entry": Case(
        "metrics.history",
        lambda ctx: {"ids": [ctx.world.a["id"]]},
        that(lambda ctx, p, r: [h["id"] for h in r] == [ctx.world.a["id"]]),
    ),
    "metrics.history since a time, of a dead entry too": Case(
        "metrics.history",
        lambda ctx: {
            "ids": [ctx.world.a["id"], ctx.world.dead["id"]],
            "since": "2020-01-01T00:00:00+02:00",
        },
        that(lambda ctx, p, r: len(r) == 2 and r[1]["samples"] == []),
    ),
    "alert.add for a tag, with every parameter": Case(
        "alert.add",
        lambda ctx: {
            "tags_any": [ctx.world.unique("spec-alert")],
            "condition": "mem>1.5GiB for 2m",
            "action": " signal:sigusr1 ",
            "rule": f" {ctx.world.unique('spec-rule')} ",
        },
        that(
            lambda ctx, p, r: (
                (r["condition"], r["action"], r["name"], r["select"], r["all"])
                == (
                    "mem > 1.5GiB for 2m",
                    "signal:USR1",
                    p["rule"].strip(),
                    {"tags_any": p["tags_any"]},
                    False,
                )
            )
        ),
    ),
    "alert.add for every entry": Case(
        "alert.add",
        lambda ctx: {"condition": "age > 1000h", "all": True, "action": "kill", "rule": None},
        that(lambda ctx, p, r: r["select"] == {} and r["all"] is True and r["action"] == "kill"),
    ),
    "alert.list": Case(
        "alert.list",
        check=that(lambda ctx, p, r: [x["id"] for x in r] == sorted(x["id"] for x in r)),
    ),
    "alert.remove by number": Case(
        "alert.remove",
        lambda ctx: {
            "rule": result_of(ctx.daemon, "alert.add", {"condition": "fds > 100000", "all": True})[
                "id"
            ]
        },
        that(lambda ctx, p, r: r["id"] == p["rule"] and r["condition"] == "fds > 100000"),
    ),
    "adopt.add with every parameter": Case("adopt.add", _adopt_case, _adopts),
    "adopt.add with nulls": Case(
        "adopt.add",
        lambda ctx: {
            "match": {"pattern": "^spec-nothing-runs-as-this$", "exact": True},
            "name": None,
            "rule": None,
            "forget_after": None,
            "limit": None,
        },
        that(
            lambda ctx, p, r: (
                (r["name"], r["name_template"], r["forget_after"], r["limit"], r["tags"])
                == (None, None, None, None, [])
                and r["match"] == p["match"]
            )
        ),
    ),
    "adopt.list": Case(
        "adopt.list",
        check=that(lambda ctx, p, r: [x["id"] for x in r] == sorted(x["id"] for x in r)),
    ),
    "adopt.remove by number": Case(
        "adopt.remove",
        lambda ctx: {
            "rule": result_of(ctx.daemon, "adopt.add", {"match": {"pattern": "^spec-none$"}})["id"]
        },
        that(
            lambda ctx, p, r: (
                r["id"] == p["rule"]
                and all(x["id"] != p["rule"] for x in result_of(ctx.daemon, "adopt.list"))
            )
        ),
    ),
    "unsubscribe": Case(
        "unsubscribe",
        lambda ctx: {"subscription": 0},
        that(lambda ctx, p, r: r == {"unsubscribed": True}),
        run=_unsubscribe,
    ),
    "spawn with every parameter": Case("spawn", _spawn_case, _spawned_as_asked, run=_spawn_run),
    "spawn with the daemon's log files": Case(
        "spawn",
        lambda ctx: {"argv": ["sleep", "300"], "cwd": "/", "log": True},
        that(
            lambda ctx, params, result: (
                result["log"]
                == {
                    "out": f"{ctx.daemon.state_dir}/logs/{result['id']}.out",
                    "err": f"{ctx.daemon.state_dir}/logs/{result['id']}.err",
                }
            )
        ),
        run=_spawn_run,
    ),
    "spawn attached": Case(
        "spawn",
        lambda ctx: {"argv": ["true"], "cwd": "/", "attach": True, "log": False},
        that(lambda ctx, p, r: r["log"] is None and r["spawned"]["argv"] == ["true"]),
        run=_spawn_attached,
    ),
    "stop": Case(
        "stop",
        lambda ctx: {"ids": [ctx.world.started()["id"]], "timeout": 2},
        that(
            lambda ctx, p, r: (
                (r[0]["alive"], r[0]["stopped"], r[0]["exit_signal"], r[0]["exit_code"])
                == (False, True, 15, None)
            )
        ),
    ),
    "start a dead one": Case(
        "start",
        lambda ctx: {"ids": [_exited_once(ctx)["id"]]},
        that(
            lambda ctx, p, r: (
                (r[0]["alive"], r[0]["restarts"], r[0]["exit_code"], r[0]["stopped"])
                == (True, 1, None, False)
            )
        ),
        run=lambda ctx, params: _track_run(ctx, "start", params),
    ),
    "restart": Case(
        "restart",
        lambda ctx: {"ids": [ctx.world.started()["id"]], "timeout": 2},
        that(lambda ctx, p, r: r[0]["alive"] and r[0]["restarts"] == 1),
        run=lambda ctx, params: _track_run(ctx, "restart", params),
    ),
}


@pytest.mark.parametrize("case", list(RESULT_CASES))
def test_result_fits_the_spec(ctx: Ctx, case: str) -> None:
    c = RESULT_CASES[case]
    params = c.params(ctx)
    result = c.run(ctx, params) if c.run else result_of(ctx.daemon, c.method, params)
    assert_valid(result_schema_pointer(c.method), result)
    if c.check is not None:
        c.check(ctx, params, result)


def test_result_cases_cover_every_method_and_param(ctx: Ctx) -> None:
    """A method or parameter added to the spec needs a case above; a shared parameter
    (a selector filter) is covered by a case of any method."""
    used: dict[str, set[str]] = {}
    for c in RESULT_CASES.values():
        given = c.params(ctx)
        used.setdefault(c.method, set()).update(given if isinstance(given, dict) else ())
    assert set(used) == set(spec_methods())
    anywhere = set().union(*used.values())
    for method in spec_methods():
        for param in method_params(method):
            where = anywhere if shared_param(method, param) else used[method]
            assert param in where, f"no case of {method} gives {param}"


def test_status_describes_this_daemon(world: World) -> None:
    status = result_of(world.daemon, "status")
    assert status["socket"] == str(world.daemon.socket)
    assert status["state_dir"] == str(world.daemon.state_dir)
    assert status["pid"] == world.daemon.proc.pid  # type: ignore[union-attr]
    everything = result_of(world.daemon, "list")
    assert status["entries"] == len(everything)
    assert status["alive"] == sum(p["alive"] for p in everything)


def _empty_list_params() -> list[str]:
    if "list" not in spec_methods():
        return []
    return [n for n, (_, where) in method_params("list").items() if is_valid(where, [])]


@pytest.mark.parametrize("param", _empty_list_params())
def test_empty_list_filter_means_what_the_spec_says(world: World, param: str) -> None:
    """Empty `*_all` lists constrain nothing; any other empty list matches nothing."""
    everything = result_of(world.daemon, "list")
    got = result_of(world.daemon, "list", {param: []})
    # By id: a metrics sweep may come between the two lists.
    assert [e["id"] for e in got] == (
        [e["id"] for e in everything] if param.endswith("_all") else []
    )


# ---- event notifications ----------------------------------------------------------------


def event_kinds() -> set[str]:
    schema = pointer_get(spec(), "/components/schemas/Event/properties/kind")
    overflow = pointer_get(spec(), "/components/schemas/OverflowEvent/properties/kind")
    alert = pointer_get(spec(), "/components/schemas/AlertEvent/properties/kind")
    return {*schema["enum"], overflow["const"], alert["const"]}


# Kinds no request can bring about in a correct daemon, and why.
UNPROVOKABLE_EVENTS = {"revived": "a dead verdict is final; only a probe that erred would revive"}


def test_event_kinds_are_all_provoked() -> None:
    provoked = {"added", "updated", "exited", "removed", "restarted"} | {"overflow", "alert"}
    assert event_kinds() == provoked | set(UNPROVOKABLE_EVENTS)


def test_event_notifications_fit_the_spec(world: World) -> None:
    tag = world.unique("spec-ev")
    with Conn(world.daemon) as conn:
        sub = conn.call("subscribe", {"tags_any": [tag]})["subscription"]
        world.add(tags=["spec-other"])  # matches not: no event
        proc = world.add(tags=[tag])
        result_of(world.daemon, "tag.add", {"ids": [proc["id"]], "labels": ["spec-more"]})
        result_of(world.daemon, "name.set", {"ids": [proc["id"]], "name": world.unique("ev")})
        # TERM: the reply ("exited") comes once the daemon has the entry dead.
        assert result_of(world.daemon, "kill", {"ids": [proc["id"]]})[0]["outcome"] == "exited"
        result_of(world.daemon, "remove", {"ids": [proc["id"]]})
        events = conn.wait_events(lambda evs: any(e["params"]["kind"] == "removed" for e in evs))
        assert conn.call("unsubscribe", {"subscription": sub}) == {"unsubscribed": True}
    for e in events:
        assert_valid("/x-notifications/event/schema", e)
        assert e["params"]["subscription"] == sub and e["params"]["id"] == proc["id"]
    kinds = [e["params"]["kind"] for e in events]
    assert kinds == ["added", "updated", "updated", "exited", "removed"]


def test_spawned_entry_events_fit_the_spec(world: World) -> None:
    """A spawned process that exits 3, restarted by its policy: `exited` carries the
    status, `restarted` the new process in the same entry."""
    tag = world.unique("spec-sp-ev")
    with Conn(world.daemon) as conn:
        sub = conn.call("subscribe", {"tags_any": [tag]})["subscription"]
        entry = world.started(
            "sh", "-c", "exit 3", tags=[tag], restart="on-failure", max_restarts=1, backoff_min=0
        )
        events = conn.wait_events(
            lambda evs: [e["params"]["kind"] for e in evs].count("exited") == 2
        )
        assert conn.call("unsubscribe", {"subscription": sub}) == {"unsubscribed": True}
    for e in events:
        assert_valid("/x-notifications/event/schema", e)
        assert e["params"]["id"] == entry["id"]
    kinds = [e["params"]["kind"] for e in events]
    assert kinds == ["added", "exited", "restarted", "exited"], kinds
    exited, restarted = events[1]["params"]["proc"], events[2]["params"]["proc"]
    assert (exited["exit_code"], exited["exit_signal"], exited["alive"]) == (3, None, False)
    assert restarted["alive"] and restarted["restarts"] == 1
    assert restarted["pid"] != entry["pid"] and events[3]["params"]["proc"]["exit_code"] == 3


def test_alert_event_fits_the_spec(world: World) -> None:
    """A rule that holds for a sleeping process (`threads >= 1`) fires at its next
    sample: one `alert` event per rule and entry, then no more while it holds."""
    tag = world.unique("spec-al")
    with Conn(world.daemon) as conn:
        sub = conn.call("subscribe", {"tags_any": [tag]})["subscription"]
        rule = result_of(
            world.daemon,
            "alert.add",
            {"tags_any": [tag], "condition": "threads >= 1", "rule": world.unique("spec-r")},
        )
        proc = world.add(tags=[tag])
        conn.wait_events(lambda evs: any(e["params"].get("rule") == rule["id"] for e in evs))
        time.sleep(0.5)  # five more sweeps: the rule still holds, and fires no more
        conn.call("ping")  # what came before its reply is in `events`
        events = conn.events
    # Only this rule's: rules of other tests (for every entry) may fire for it too.
    alerts = [
        e for e in events if e["params"]["kind"] == "alert" and e["params"]["rule"] == rule["id"]
    ]
    assert len(alerts) == 1, alerts
    for e in events:
        assert_valid("/x-notifications/event/schema", e)
    params = alerts[0]["params"]
    assert (params["subscription"], params["id"], params["rule"]) == (sub, proc["id"], rule["id"])
    assert (params["rule_name"], params["condition"], params["value"]) == (
        rule["name"],
        "threads >= 1",
        1,
    )
    assert params["proc"]["metrics"]["threads"] == 1
    listed = next(r for r in result_of(world.daemon, "alert.list") if r["id"] == rule["id"])
    assert listed["firing"] == [proc["id"]]
    result_of(world.daemon, "alert.remove", {"rule": rule["id"]})


def test_overflow_event_fits_the_spec(world: World, spawn_daemon: Callable[..., Daemon]) -> None:
    """A subscriber whose queue (1 here) overflows gets `overflow`, then is closed."""
    d = spawn_daemon(config={"event_queue": 1})
    ids = [result_of(d, "add", {"pid": world.spawn().pid})["id"] for _ in range(3)]
    with Conn(d) as conn:
        conn.call("subscribe")
        result_of(d, "tag.add", {"ids": ids, "all": True, "labels": ["x"]})  # 3 events at once
        lines = []
        while (line := conn.line()) is not None:
            lines.append(line)
    for line in lines:
        assert_valid("/x-notifications/event/schema", line)
    assert [x["params"]["kind"] for x in lines] == ["updated", "overflow"]
    assert lines[1]["params"]["dropped_after"] == 1


# ---- (d) every listed error, provoked ---------------------------------------------------

# A provocation returns the params to send to the method under test, or a Reply it got
# itself (when it needs its own connection or daemon).
Provocation = Callable[[Ctx], Any]


class Reply(dict[str, Any]):
    """A reply a provocation got itself (so it is not params to send)."""


class BadParams:
    """Params with one parameter at fault: the -32602 message must name `param`."""

    def __init__(self, param: str, params: Callable[[Ctx], Any] | Any) -> None:
        self.param = param
        self.params = params

    def __call__(self, ctx: Ctx) -> Any:
        return self.params(ctx) if callable(self.params) else self.params


NO_ID = 2**63 - 1  # a valid id no entry has

# Values for required parameters, so that a request is wrong in one way only.
FILLERS: dict[str, Any] = {
    "labels": ["spec-x"],
    "name": None,
    "old": "spec-old",
    "new": "spec-new",
    "confirm": "RESET",
    "subscription": 1,
    "condition": "cpu > 90",
    "rule": 2**62,  # alert.remove's and adopt.remove's: a rule number no rule has
    "match": {"pattern": "^spec-nothing-runs-as-this$"},  # adopt.add's
    "argv": ["true"],  # spawn's
    "cwd": "/",
}
WRONG_VALUES: list[Any] = [{"an": "object"}, "a string", 12345, [12345], True, 1.5]


def fillers(method: str, but: str | None = None) -> dict[str, Any]:
    return {
        n: FILLERS[n]
        for n, (cd, _) in method_params(method).items()
        if cd.get("required") and n != but
    }


def generated_bad_params(method: str) -> dict[str, Provocation]:
    """For each parameter: two values of a wrong type, and its absence when required."""
    out: dict[str, Provocation] = {}
    for n, (cd, where) in method_params(method).items():
        wrong = [v for v in WRONG_VALUES if not is_valid(where, v)]
        for v in [*wrong[:1], *[w for w in wrong[1:] if not isinstance(w, dict)][:1]]:
            out[f"{n}={json.dumps(v)}"] = BadParams(n, {**fillers(method, but=n), n: v})
        if cd.get("required"):
            out[f"{n} missing"] = BadParams(n, fillers(method, but=n))
    return out


def _reaped_pid(ctx: Ctx) -> Any:
    p = ctx.world.spawn("true", lasting=False)
    p.wait()
    return {"pid": p.pid}


def _zombie_pid(ctx: Ctx) -> Any:
    p = ctx.world.spawn("true", lasting=False)  # exits at once; reaped only at cleanup
    wait_for(lambda: psutil.Process(p.pid).status() == psutil.STATUS_ZOMBIE, "a zombie")
    return {"pid": p.pid}


def _foreign_pid(ctx: Ctx) -> Any:
    if os.geteuid() == 0:
        pytest.skip("as root every process may be signalled: -32002 cannot happen")
    uid = os.getuid()
    for p in psutil.process_iter(["uids"]):
        if p.info["uids"] and p.info["uids"].real != uid:
            return {"pid": p.pid}
    pytest.skip("no process of another user to add")


def _added_twice(ctx: Ctx) -> Any:
    first = ctx.world.add()
    reply = send(ctx.daemon, "add", {"pid": first["pid"], "tags": ["other"]})
    assert reply.get("error", {}).get("data") == {"id": first["id"]}, reply
    return Reply(reply)


def _unchanged(ctx: Ctx, method: str, params: Callable[[Broken], Any]) -> Any:
    """The request fails to be saved, and the registry is as it was before it."""
    b = ctx.broken

    def state() -> Any:
        return [result_of(b.daemon, m) for m in ("list", "alert.list", "adopt.list")]

    before = state()
    reply = send(b.daemon, method, params(b))
    after = state()
    assert after == before, "a change that was not saved was applied"
    return Reply(reply)


# What each method that changes the registry is asked on the broken daemon.
STORAGE_PARAMS: dict[str, Callable[[Broken], Any]] = {
    "add": lambda b: {"pid": b.spawn().pid},
    "remove": lambda b: {"ids": [b.e1["id"]]},
    "tag.add": lambda b: {"ids": [b.e1["id"]], "labels": ["new"]},
    "tag.remove": lambda b: {"ids": [b.e1["id"]], "labels": ["s"]},
    "tag.rename": lambda b: {"old": "s", "new": "t"},
    "group.add": lambda b: {"ids": [b.e1["id"]], "labels": ["new"]},
    "group.remove": lambda b: {"ids": [b.e1["id"]], "labels": ["s"]},
    "group.rename": lambda b: {"old": "s", "new": "t"},
    "name.set": lambda b: {"ids": [b.e1["id"]], "name": "s9"},
    "reset": lambda b: {"confirm": "RESET"},
    "alert.add": lambda b: {"condition": "mem > 1GB", "all": True},
    "alert.remove": lambda b: {"rule": "s-rule"},
    "adopt.add": lambda b: {"match": {"pattern": "^s-other$"}, "tags": ["s"]},
    "adopt.remove": lambda b: {"rule": "s-adopt"},
    "spawn": lambda b: {"argv": ["sleep", "300"], "cwd": "/"},
    "stop": lambda b: {"ids": [b.running["id"]]},
    "start": lambda b: {"ids": [b.ended["id"]]},
    "restart": lambda b: {"ids": [b.running["id"]]},
}


def _no_match(method: str) -> dict[str, Provocation]:
    if "ids" not in method_params(method):
        return {}
    return {"ids matching nothing": lambda ctx: {**fillers(method), "ids": [NO_ID]}}


def _ambiguous(method: str) -> dict[str, Provocation]:
    if "tags_any" not in method_params(method):
        return {}

    def provoke(ctx: Ctx) -> Any:
        reply = send(ctx.daemon, method, {**fillers(method), "tags_any": ["spec-common"]})
        data = reply.get("error", {}).get("data")
        assert data == {"count": 2, "ids": [ctx.world.a["id"], ctx.world.b["id"]]}, reply
        return Reply(reply)

    return {"a selector matching two": provoke}


def _storage(method: str) -> dict[str, Provocation]:
    if method not in STORAGE_PARAMS:
        return {}
    return {
        "journal cannot be written": lambda ctx: _unchanged(ctx, method, STORAGE_PARAMS[method])
    }


def _stranger_subscription(ctx: Ctx) -> Any:
    with Conn(ctx.daemon) as other:
        sub = other.call("subscribe", {"ids": []})["subscription"]
        return Reply(send(ctx.daemon, "unsubscribe", {"subscription": sub}))


def _rule_name_taken(ctx: Ctx) -> Any:
    name = ctx.world.unique("spec-rule")
    result_of(ctx.daemon, "alert.add", {"condition": "cpu > 99", "all": True, "rule": name})
    return {"condition": "mem > 1GB", "all": True, "rule": name}


def _rules_beyond_the_limit(ctx: Ctx) -> Any:
    """On a daemon of its own: 256 rules are kept, the 257th is refused."""
    d = ctx.spawn_daemon()
    with Conn(d) as conn:
        for n in range(256):
            conn.call("alert.add", {"condition": f"cpu > {n}", "all": True})
    reply = send(d, "alert.add", {"condition": "cpu > 1", "all": True})
    assert len(result_of(d, "alert.list")) == 256
    return Reply(reply)


def _adopt_name_taken(ctx: Ctx) -> Any:
    name = ctx.world.unique("spec-adopt-rule")
    result_of(ctx.daemon, "adopt.add", {"match": {"pattern": "^spec-none$"}, "rule": name})
    return {"match": {"pattern": "^spec-other$"}, "rule": name}


def _adopt_rules_beyond_the_limit(ctx: Ctx) -> Any:
    """On a daemon of its own: 256 adoption rules are kept, the 257th is refused."""
    d = ctx.spawn_daemon()
    with Conn(d) as conn:
        for n in range(256):
            conn.call("adopt.add", {"match": {"pattern": f"^spec-none-{n}$"}})
    reply = send(d, "adopt.add", {"match": {"pattern": "^spec-none$"}})
    assert len(result_of(d, "adopt.list")) == 256
    return Reply(reply)


def _foreign_user(ctx: Ctx) -> Any:
    if os.geteuid() == 0:
        pytest.skip("as root every user's processes may be adopted: -32002 cannot happen")
    return {"match": {"pattern": "x", "user": ["0"]}}


def _symlinked_log(ctx: Ctx) -> Any:
    link = ctx.daemon.root / f"{ctx.world.unique('spec-link')}.log"
    link.symlink_to(ctx.daemon.root / "spec-target.log")
    return {"argv": ["true"], "cwd": "/", "log": {"out": str(link), "err": str(link)}}


def _program_removed(ctx: Ctx) -> Any:
    """A spawned entry, dead, whose program is gone."""
    program = ctx.daemon.root / ctx.world.unique("spec-prog")
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o700)
    entry = ctx.world.started_dead(str(program))
    program.unlink()
    return {"ids": [entry["id"]]}


def _log_now_a_symlink(ctx: Ctx) -> Any:
    """A spawned entry, dead, whose log file was replaced by a symlink."""
    log = ctx.daemon.root / f"{ctx.world.unique('spec-log')}.log"
    entry = ctx.world.started_dead("true", log={"out": str(log), "err": str(log)})
    log.unlink()
    log.symlink_to(ctx.daemon.root / "spec-elsewhere.log")
    return {"ids": [entry["id"]]}


def _attached_dead(ctx: Ctx) -> Any:
    entry = _spawn_attached(ctx, {"argv": ["true"], "cwd": "/", "attach": True, "log": False})
    return wait_for(
        lambda: next(
            (p for p in result_of(ctx.daemon, "list", {"ids": [entry["id"]]}) if not p["alive"]),
            None,
        ),
        "the attached process to be reaped",
    )


def _signals(*values: Any) -> dict[str, Provocation]:
    return {f"signal {v!r}": BadParams("signal", {"ids": [NO_ID], "signal": v}) for v in values}


# (method, code) -> named provocations, beyond the generated ones (see variants_for).
PROVOCATIONS: dict[tuple[str, int], dict[str, Provocation]] = {
    ("add", INVALID_PARAMS): {
        "neither pid nor pids": BadParams("pid", {"tags": ["x"]}),
        "pid and pids": BadParams("pid", {"pid": 1, "pids": [1]}),
        "pid 0": BadParams("pid", {"pid": 0}),
        "pid -5": BadParams("pid", {"pid": -5}),
        "pid 2**31": BadParams("pid", {"pid": 2**31}),
        "pid 2**63": BadParams("pid", {"pid": 2**63}),
        "pid 1.0": BadParams("pid", {"pid": 1.0}),
        "pid true": BadParams("pid", {"pid": True}),
        "pids empty": BadParams("pids", {"pids": []}),
        "pids with a bad one": BadParams("pids", {"pids": [1, 0]}),
        "pids twice the same": BadParams("pids", lambda ctx: {"pids": [ctx.world.a["pid"]] * 2}),
        "name for two pids": BadParams(
            "name",
            lambda ctx: {"pids": [ctx.world.a["pid"], ctx.world.b["pid"]], "name": "spec-two"},
        ),
        "name with a space": BadParams("name", {"pid": 1, "name": "a b"}),
        "name of 65 characters": BadParams("name", {"pid": 1, "name": "n" * 65}),
        "name empty": BadParams("name", {"pid": 1, "name": ""}),
        "match pattern not an ERE": BadParams("match.pattern", {"match": {"pattern": "("}}),
        "match pick unknown": BadParams("match.pick", {"match": {"pattern": "x", "pick": "best"}}),
        "match user unknown": BadParams(
            "match.user", {"match": {"pattern": "x", "user": ["no-such-user-here"]}}
        ),
        "match cgroup not one": BadParams(
            "match.cgroup", {"match": {"pattern": "x", "cgroup": "/nonexistent"}}
        ),
        "match children_of 0": BadParams("match.children_of", {"match": {"children_of": 0}}),
        "match and pid": BadParams("match", {"match": {"pattern": "x"}, "pid": 1}),
        "dry_run without match": BadParams("dry_run", {"pid": 1, "dry_run": True}),
    },
    ("add", -32001): {
        "pid of a reaped process": _reaped_pid,
        "largest pid": lambda ctx: {"pid": 2**31 - 1},
        "pid of a zombie": _zombie_pid,
        "one of pids missing": lambda ctx: {"pids": [ctx.world.spawn().pid, 2**31 - 1]},
    },
    ("add", -32002): {"pid of another user": _foreign_pid},
    ("add", -32006): {
        "a match finding nothing": lambda ctx: {"match": {"pattern": "^nothing-runs-as-this$"}},
    },
    ("add", -32003): {"the same process twice": _added_twice},
    ("add", -32004): {
        "name of an alive entry": lambda ctx: {"pid": ctx.world.spawn().pid, "name": "spec-a"},
        "name of a dead entry": lambda ctx: {"pid": ctx.world.spawn().pid, "name": "spec-dead"},
    },
    ("list", INVALID_PARAMS): {
        "ids beyond int64": BadParams("ids", {"ids": [2**63]}),
        "tags_all of null": BadParams("tags_all", {"tags_all": [None]}),
        "ids 0": BadParams("ids", {"ids": [0]}),
        "pids -2": BadParams("pids", {"pids": [-2]}),
        "names blank": BadParams("names", {"names": ["ok", " "]}),
        "tags_all empty": BadParams("tags_all", {"tags_all": [""]}),
        "groups_any blank": BadParams("groups_any", {"groups_any": ["\t"]}),
        "alive 1": BadParams("alive", {"alive": 1}),
    },
    ("kill", INVALID_PARAMS): {
        **_signals("NOPE", "", 0, -1, 1.5, 65, "SIG_DFL"),
        "timeout -1": BadParams("timeout", {"ids": [NO_ID], "timeout": -1}),
        "timeout over a day": BadParams("timeout", {"ids": [NO_ID], "timeout": 86401}),
        "timeout a duration string": BadParams("timeout", {"ids": [NO_ID], "timeout": "5s"}),
    },
    ("wait", INVALID_PARAMS): {
        "timeout -0.5": BadParams("timeout", {"ids": [NO_ID], "timeout": -0.5}),
    },
    ("reset", INVALID_PARAMS): {
        "confirm another word": BadParams("confirm", {"confirm": "reset"}),
    },
    ("tag.rename", INVALID_PARAMS): {
        "old blank": BadParams("old", {"old": " ", "new": "x"}),
    },
    ("group.rename", INVALID_PARAMS): {
        "new empty": BadParams("new", {"old": "x", "new": ""}),
    },
    ("name.set", INVALID_PARAMS): {
        "name with a slash": BadParams("name", {"ids": [NO_ID], "name": "a/b"}),
        "name of digits only": BadParams("name", {"ids": [NO_ID], "name": "123"}),
    },
    ("name.set", -32004): {
        "name of another entry": lambda ctx: {"ids": [ctx.world.b["id"]], "name": "spec-a"},
    },
    ("alert.add", INVALID_PARAMS): {
        "condition with a bad value": BadParams(
            "condition", {"condition": "cpu > lots", "all": True}
        ),
        "condition of an unknown metric": BadParams(
            "condition", {"condition": "load > 3", "all": True}
        ),
        "condition with a bad window": BadParams(
            "condition", {"condition": "cpu > 5 for ever", "all": True}
        ),
        "action unknown": BadParams(
            "action", {"condition": "cpu > 5", "all": True, "action": "reboot"}
        ),
        "action of a bad signal": BadParams(
            "action", {"condition": "cpu > 5", "all": True, "action": "signal:NOPE"}
        ),
        "no selector and no all": BadParams("all", {"condition": "cpu > 5"}),
        "rule of digits only": BadParams(
            "rule", {"condition": "cpu > 5", "all": True, "rule": "7"}
        ),
    },
    ("alert.add", -32004): {"rule of another rule": _rule_name_taken},
    ("alert.add", -32008): {"one rule beyond the limit": _rules_beyond_the_limit},
    ("alert.remove", INVALID_PARAMS): {
        "rule 0": BadParams("rule", {"rule": 0}),
        "rule a bad name": BadParams("rule", {"rule": "a b"}),
    },
    ("alert.remove", -32006): {
        "no rule with the number": lambda ctx: {"rule": 2**62},
        "no rule with the name": lambda ctx: {"rule": "spec-no-such-rule"},
    },
    ("adopt.add", INVALID_PARAMS): {
        "match empty": BadParams("match", {"match": {}}),
        "match pick newest": BadParams("match.pick", {"match": {"pattern": "x", "pick": "newest"}}),
        "match pattern not an ERE": BadParams("match.pattern", {"match": {"pattern": "("}}),
        "match user unknown": BadParams("match.user", {"match": {"user": ["no-such-user-here"]}}),
        "match cgroup not one": BadParams("match.cgroup", {"match": {"cgroup": "/nonexistent"}}),
        "match children_of a dead entry": BadParams(
            "match.children_of", lambda ctx: {"match": {"children_of": ctx.world.dead["id"]}}
        ),
        "name with a space": BadParams("name", {"match": {"pattern": "x"}, "name": "w {n}"}),
        "name of an unknown field": BadParams("name", {"match": {"pattern": "x"}, "name": "{cmd}"}),
        "name of 65 characters": BadParams("name", {"match": {"pattern": "x"}, "name": "n" * 65}),
        "rule of digits only": BadParams("rule", {"match": {"pattern": "x"}, "rule": "7"}),
        "forget_after -1": BadParams(
            "forget_after", {"match": {"pattern": "x"}, "forget_after": -1}
        ),
        "forget_after over ten years": BadParams(
            "forget_after", {"match": {"pattern": "x"}, "forget_after": 316224001}
        ),
        "limit 0": BadParams("limit", {"match": {"pattern": "x"}, "limit": 0}),
        "limit 2**31": BadParams("limit", {"match": {"pattern": "x"}, "limit": 2**31}),
    },
    ("adopt.add", -32002): {"a user of another": _foreign_user},
    ("adopt.add", -32004): {"rule of another rule": _adopt_name_taken},
    ("adopt.add", -32006): {
        "children_of no entry": lambda ctx: {"match": {"children_of": NO_ID}},
        "children_of no name": lambda ctx: {"match": {"children_of": "spec-no-such-entry"}},
    },
    ("adopt.add", -32008): {"one rule beyond the limit": _adopt_rules_beyond_the_limit},
    ("adopt.remove", INVALID_PARAMS): {
        "rule 0": BadParams("rule", {"rule": 0}),
        "rule a bad name": BadParams("rule", {"rule": "a b"}),
    },
    ("adopt.remove", -32006): {
        "no rule with the number": lambda ctx: {"rule": 2**62},
        "no rule with the name": lambda ctx: {"rule": "spec-no-such-rule"},
    },
    ("spawn", INVALID_PARAMS): {
        "argv empty": BadParams("argv", {"argv": [], "cwd": "/"}),
        "argv of an empty program": BadParams("argv", {"argv": [""], "cwd": "/"}),
        "argv with a NUL": BadParams("argv", {"argv": ["true", "a\0b"], "cwd": "/"}),
        "cwd relative": BadParams("cwd", {"argv": ["true"], "cwd": "tmp"}),
        "env without =": BadParams("env.0", {"argv": ["true"], "cwd": "/", "env": ["X"]}),
        "restart unknown": BadParams("restart", {"argv": ["true"], "cwd": "/", "restart": "often"}),
        "max_restarts 0": BadParams(
            "max_restarts", {"argv": ["true"], "cwd": "/", "max_restarts": 0}
        ),
        "backoff_min above backoff_max": BadParams(
            "backoff_min", {"argv": ["true"], "cwd": "/", "backoff_min": 5, "backoff_max": 1}
        ),
        "attach without descriptors": BadParams(
            "attach", {"argv": ["true"], "cwd": "/", "attach": True, "log": False}
        ),
        "attach with log paths": BadParams(
            "attach",
            {"argv": ["true"], "cwd": "/", "attach": True, "log": {"out": "/x", "err": "/x"}},
        ),
        "attach with a restart policy": BadParams(
            "restart", {"argv": ["true"], "cwd": "/", "attach": True, "restart": "always"}
        ),
        "log false without attach": BadParams("log", {"argv": ["true"], "cwd": "/", "log": False}),
    },
    ("spawn", -32004): {
        "name of an entry": lambda ctx: {"argv": ["true"], "cwd": "/", "name": "spec-a"},
    },
    ("spawn", -32010): {
        "no such program": lambda ctx: {"argv": ["spec-no-such-program"], "cwd": "/"},
        "no such cwd": lambda ctx: {"argv": ["true"], "cwd": "/spec-no-such-dir"},
    },
    ("spawn", -32002): {"a log file that is a symlink": _symlinked_log},
    ("stop", INVALID_PARAMS): {
        "timeout -1": BadParams("timeout", {"ids": [NO_ID], "timeout": -1}),
    },
    ("restart", INVALID_PARAMS): {
        "timeout over a day": BadParams("timeout", {"ids": [NO_ID], "timeout": 86401}),
    },
    ("stop", -32011): {"an entry added by pid": lambda ctx: {"ids": [ctx.world.a["id"]]}},
    ("restart", -32011): {"an entry added by pid": lambda ctx: {"ids": [ctx.world.a["id"]]}},
    ("start", -32011): {
        "an entry added by pid": lambda ctx: {"ids": [ctx.world.a["id"]]},
        "an attached entry": lambda ctx: {"ids": [_attached_dead(ctx)["id"]]},
    },
    **{
        (method, -32010): {"its program removed": _program_removed}
        for method in ("start", "restart")
    },
    **{
        (method, -32002): {"its log file now a symlink": _log_now_a_symlink}
        for method in ("start", "restart")
    },
    ("unsubscribe", INVALID_PARAMS): {
        "subscription 0": BadParams("subscription", {"subscription": 0}),
    },
    ("unsubscribe", -32006): {
        "no such subscription": lambda ctx: {"subscription": 2**62},
        "a subscription of another connection": _stranger_subscription,
    },
}


def _unknown_params(ctx: Ctx) -> Any:
    return {"no_such_param": 1, "other_unknown": 2}


def variants_for(method: str, code: int) -> dict[str, Provocation]:
    generated: dict[str, Provocation] = {}
    if code == INVALID_PARAMS:
        generated = {
            "unknown parameters": _unknown_params,
            "params an array": lambda ctx: [1],
            **generated_bad_params(method),
        }
    elif code == -32006:
        generated = _no_match(method)
    elif code == -32007:
        generated = _ambiguous(method)
    elif code == -32005:
        generated = _storage(method)
    return {**generated, **PROVOCATIONS.get((method, code), {})}


def provocations() -> list[Any]:
    """Every (method, code) the spec lists, with each of its provocations; a pair
    without one is collected with `None`, so that its test fails naming it."""
    out = []
    for method in spec_methods():
        for code in method_errors(method):
            variants = variants_for(method, code)
            if not variants:
                out.append(pytest.param(method, code, None, id=f"{method}-{code}-MISSING"))
            for name in variants:
                out.append(pytest.param(method, code, name, id=f"{method}-{code}-{name}"))
    return out


@pytest.mark.parametrize(("method", "code", "variant"), provocations())
def test_listed_error_is_provoked(ctx: Ctx, method: str, code: int, variant: str | None) -> None:
    assert variant is not None, f"no provocation for error {code} of {method}: add one"
    provoke = variants_for(method, code)[variant]
    got = provoke(ctx)
    reply = got if isinstance(got, Reply) else send(ctx.daemon, method, got)
    error = assert_error(reply, reply["id"], code)  # `send` checked the id already
    message = error["message"]
    if isinstance(provoke, BadParams):
        named = re.search(rf"(^|: |; |, ){re.escape(provoke.param)}(\[\d+\])?[:,] ", message)
        assert named, f"{message!r} must name {provoke.param!r}"
    elif provoke is _unknown_params:
        assert "'no_such_param'" in message and "'other_unknown'" in message, message


def test_every_changing_method_is_asked_to_fail_storage() -> None:
    """STORAGE_PARAMS holds exactly the methods that list -32005."""
    listing = {m for m in spec_methods() if -32005 in method_errors(m)}
    assert listing == set(STORAGE_PARAMS)


# Errors of components/errors that no method lists: the protocol's own.  Each variant is
# the bytes sent (followed by a ping, to show that exactly one reply came) and the id the
# error must carry; or a function that returns the reply lines itself.
PING = b'{"jsonrpc":"2.0","id":"after","method":"ping"}\n'


def _too_large(ctx: Ctx) -> list[bytes]:
    """One byte over the documented limit, without a newline: one error, then EOF."""
    limit = spec()["x-transport"]["maxRequestBytes"]
    with ctx.daemon.connect() as s:
        s.sendall(b"x" * (limit + 1))
        return read_lines(s, 2)


def _one_connection_too_many(ctx: Ctx) -> list[bytes]:
    d = ctx.spawn_daemon(config={"max_connections": 1})

    def first_connection() -> Conn | None:
        """The only one, once the daemon has seen the readiness probes' connections end."""
        conn = Conn(d)
        # Subscribed, so not idle: an idle one would be closed to make room instead.
        conn.sock.sendall(b'{"jsonrpc":"2.0","id":1,"method":"subscribe"}\n')
        if conn.line() == {"jsonrpc": "2.0", "id": 1, "result": {"subscription": 1}}:
            return conn
        conn.__exit__()
        return None

    with wait_for(first_connection, "a first connection to be served"), d.connect() as second:
        return read_lines(second, 2)  # the error, then EOF


def _wait_at_sigterm(ctx: Ctx) -> list[bytes]:
    d = ctx.spawn_daemon()
    entry = d.call("add", {"pid": os.getpid()})  # this test: alive until the reply
    with d.connect() as s:
        s.sendall(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "wait",
                    "params": {"ids": [entry["id"]], "timeout": 60},
                }
            ).encode()
            + b"\n"
        )
        wait_for(lambda: d.call("status")["connections"] == 2, "the wait to be in flight")
        assert d.proc is not None
        d.proc.send_signal(15)
        return read_lines(s, 2)  # the error, then EOF


PROTOCOL_PROVOCATIONS: dict[int, dict[str, tuple[bytes | Callable[[Ctx], list[bytes]], Any]]] = {
    -32700: {
        "not JSON": (b'{"jsonrpc":"2.0","id":1,"method":\n', None),
        "invalid UTF-8": (b'{"jsonrpc":"2.0","id":1,"method":"\xff"}\n', None),
        "NaN": (b'{"jsonrpc":"2.0","id":NaN,"method":"ping"}\n', None),
        "too deep": (b"[" * 100_000 + b"]" * 100_000 + b"\n", None),
    },
    INVALID_REQUEST: {
        "not an object": (b'"ping"\n', None),
        "jsonrpc missing": (b'{"id":1,"method":"ping"}\n', 1),
        "jsonrpc 1.0": (b'{"jsonrpc":"1.0","id":1,"method":"ping"}\n', 1),
        "method missing": (b'{"jsonrpc":"2.0","id":1}\n', 1),
        "method a number": (b'{"jsonrpc":"2.0","id":1,"method":1}\n', 1),
        "id an object": (b'{"jsonrpc":"2.0","id":{},"method":"ping"}\n', None),
        "id a boolean": (b'{"jsonrpc":"2.0","id":true,"method":"ping"}\n', None),
        "params null": (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":null}\n', 1),
        "params a string": (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}\n', 1),
        "unknown member": (b'{"jsonrpc":"2.0","id":1,"method":"ping","x":1}\n', 1),
        "invalid, without id": (b'{"jsonrpc":"2.0","method":1}\n', None),
        "empty batch": (b"[]\n", None),
        "request too large": (_too_large, None),
    },
    METHOD_NOT_FOUND: {"unknown method": (b'{"jsonrpc":"2.0","id":1,"method":"x"}\n', 1)},
    -32008: {"one connection too many": (_one_connection_too_many, None)},
    -32009: {"a wait in flight at SIGTERM": (_wait_at_sigterm, 1)},
}
# Codes that no request can provoke from a correct daemon, and why.
UNPROVOKABLE = {-32603: "internal error: only a bug in the daemon sends it"}


def protocol_provocations() -> list[Any]:
    listed = {code for method in spec_methods() for code in method_errors(method)}
    out = []
    for code in sorted(set(component_errors()) - listed - set(UNPROVOKABLE)):
        variants = PROTOCOL_PROVOCATIONS.get(code, {})
        if not variants:
            out.append(pytest.param(code, None, id=f"{code}-MISSING"))
        out += [pytest.param(code, name, id=f"{code}-{name}") for name in variants]
    return out


@pytest.mark.parametrize(("code", "variant"), protocol_provocations())
def test_protocol_error_is_provoked(ctx: Ctx, code: int, variant: str | None) -> None:
    """Exactly one reply, one error object (not a batch), for each bad line."""
    assert variant is not None, f"no provocation for error {code}: add one"
    provoke, request_id = PROTOCOL_PROVOCATIONS[code][variant]
    if callable(provoke):
        lines = provoke(ctx)
        assert len(lines) == 1, f"one error, then the connection is closed: {lines}"
    else:
        lines = ctx.daemon.raw(provoke + PING, expect=2)
        assert json.loads(lines[1])["id"] == "after", lines
    assert_error(json.loads(lines[0]), request_id, code)


# ---- x-transport: the rules of the wire ------------------------------------------------


def _ping(request_id: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "ping"}).encode()


def test_request_too_large_says_so(ctx: Ctx) -> None:
    (line,) = _too_large(ctx)
    limit = spec()["x-transport"]["maxRequestBytes"]
    assert json.loads(line)["error"]["message"] == (
        f"request too large (limit {limit} bytes); closing"
    )


def test_line_of_exactly_the_limit_is_read(world: World) -> None:
    limit = spec()["x-transport"]["maxRequestBytes"]
    start = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"big":"'
    line = start + b"x" * (limit - len(start) - 3) + b'"}}'
    assert len(line) == limit
    (reply,) = world.daemon.raw(line + b"\n")
    assert_error(json.loads(reply), 1, INVALID_PARAMS)  # read whole: `big` is unknown


def test_crlf_is_accepted(world: World) -> None:
    (line,) = world.daemon.raw(_ping(7) + b"\r\n")
    assert json.loads(line) == {"jsonrpc": "2.0", "id": 7, "result": "pong"}


def test_replies_come_in_request_order(world: World) -> None:
    requests = [_ping("a"), b'{"jsonrpc":"2.0","id":"b","method":"status"}', b"", _ping("c")]
    lines = world.daemon.raw(b"\n".join(requests) + b"\n", expect=3)  # blank line skipped
    assert [json.loads(x)["id"] for x in lines] == ["a", "b", "c"]


def test_notification_gets_no_reply(world: World) -> None:
    notes = b'{"jsonrpc":"2.0","method":"ping"}\n{"jsonrpc":"2.0","method":"nope"}\n'
    notes += b'{"jsonrpc":"2.0","method":"add","params":{"pid":0}}\n'
    (line,) = world.daemon.raw(notes + _ping(2) + b"\n")
    assert json.loads(line)["id"] == 2


def test_batch_replies_in_order_without_notifications(world: World) -> None:
    batch = b'[%s,{"jsonrpc":"2.0","method":"ping"},%s,5]' % (_ping(1), _ping(2))
    (line,) = world.daemon.raw(batch + b"\n")
    replies = json.loads(line)
    assert [r["id"] for r in replies] == [1, 2, None]
    for r in replies:
        assert_valid("/components/schemas/Response", r)
    assert replies[2]["error"]["code"] == INVALID_REQUEST


def test_batch_of_notifications_gets_no_line(world: World) -> None:
    batch = b'[{"jsonrpc":"2.0","method":"ping"},{"jsonrpc":"2.0","method":"status"}]\n'
    (line,) = world.daemon.raw(batch + _ping(3) + b"\n")
    assert json.loads(line)["id"] == 3


def test_request_schema_accepts_requests_the_daemon_answers(world: World) -> None:
    for request in (
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": "x", "method": "list", "params": {}},
        {"jsonrpc": "2.0", "id": None, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1.5, "method": "status", "params": {}},
    ):
        assert_valid("/components/schemas/Request", request)
        request_id = request["id"]
        (line,) = world.daemon.raw(json.dumps(request).encode() + b"\n")
        reply = json.loads(line)
        assert_response(reply, request_id)
        assert "result" in reply, reply


def test_idle_connection_is_closed(world: World, spawn_daemon: Callable[..., Daemon]) -> None:
    """`idle_timeout`: a connection with nothing in flight and no subscription is closed;
    one with a subscription is not."""
    d = spawn_daemon(config={"idle_timeout": "300ms"})
    started = time.monotonic()
    with Conn(d) as idle, Conn(d) as subscribed:
        subscribed.call("subscribe")
        assert idle.line() is None  # EOF
        assert 0.25 < time.monotonic() - started < 5
        result_of(d, "add", {"pid": world.spawn().pid})
        subscribed.wait_events(lambda events: len(events) == 1)


def test_wait_is_cancelled_when_the_client_hangs_up(world: World) -> None:
    """Nobody would read the reply: the daemon lets the request and connection go."""

    def connections() -> int:
        return int(result_of(world.daemon, "status")["connections"]) - 1  # not status's own

    wait_for(lambda: connections() == 0, "earlier connections to end")
    s = world.daemon.connect()
    s.sendall(json.dumps(message("wait", {"ids": [world.a["id"]], "timeout": 60}, 1)).encode())
    s.sendall(b"\n")
    wait_for(lambda: connections() == 1, "the wait to be under way")
    s.close()
    wait_for(lambda: connections() == 0, "the daemon to drop the wait", timeout=5)


# ---- what the schemas allow, the daemon takes --------------------------------------------


@pytest.mark.parametrize("signal", [10, "usr1", 34, "SIGRTMIN", 35, 50, 64])
def test_kill_sends_every_signal_the_spec_allows(world: World, signal: Any) -> None:
    """`Signal` admits any number the OS has (1-31, 34-64 on Linux) and any name."""
    proc = world.add()
    params = {"ids": [proc["id"]], "signal": signal}
    assert is_valid(method_params("kill")["signal"][1], signal)
    reply = send(world.daemon, "kill", params)
    assert "result" in reply, f"kill with signal {signal!r}: {reply}"
    assert_valid(result_schema_pointer("kill"), reply["result"])
    assert [o["outcome"] for o in reply["result"]] == ["signalled"]


# What a parameter schema allows, the daemon takes, and what it refuses, the schema
# refuses: drawn from the schemas' own patterns and from nearby text (commas, controls,
# blanks, signal-like words and numbers).
NEAR_TEXT = st.text(
    alphabet=st.sampled_from(
        [
            *"aZ09 ,-_",
            "\t",
            "\n",
            "\x00",
            "\x1f",
            "\x7f",
            "\x85",
            "\x9f",
            "\u3000",
            "\u202e",
            "é",
            *"SIGTERMkilrtmnusUSR+",
        ]
    ),
    max_size=70,
)


def _schema_string(pointer: str) -> st.SearchStrategy[str]:
    schema = resolved(pointer)
    regex = _ecma_to_python(schema["pattern"])
    return st.one_of(NEAR_TEXT, st.from_regex(regex).filter(lambda s: len(s) < 100))


def resolved(pointer: str) -> dict[str, Any]:
    """The schema at `pointer`, its one `$ref` followed."""
    node: Any = spec()
    for part in pointer.strip("/").split("/"):
        node = node[int(part)] if isinstance(node, list) else node[part]
    ref = node.get("$ref")
    return resolved(ref.removeprefix("#")) if ref else node


@settings(max_examples=250, deadline=None)
@given(
    value=st.one_of(
        _schema_string("/components/schemas/Signal/anyOf/0"),
        st.integers(-2, 70),
        st.sampled_from(["x", " ", "", " TERM\t", "SIGRTMIN", "sigrtmax", "IOT", "CLD"]),
    )
)
def test_a_signal_is_taken_exactly_when_the_schema_allows_it(world: World, value: Any) -> None:
    reply = send(world.daemon, "kill", {"ids": [world.dead["id"]], "signal": value})
    allowed = is_valid(method_params("kill")["signal"][1], value)
    assert ("result" in reply) == allowed, (value, reply)


@settings(max_examples=250, deadline=None)
@given(value=_schema_string("/components/schemas/LabelName"), field=st.sampled_from(["old", "new"]))
def test_a_rename_is_taken_exactly_when_the_schema_allows_it(
    world: World, value: str, field: str
) -> None:
    """A label no entry has is renamed to, or from: valid or not, nothing changes."""
    params = {"old": "spec-nowhere", "new": "spec-nowhere-2", field: value}
    reply = send(world.daemon, "tag.rename", params)
    allowed = is_valid(method_params("tag.rename")[field][1], value)
    assert ("result" in reply) == allowed, (params, reply)


@settings(max_examples=250, deadline=None)
@given(value=_schema_string("/components/schemas/LabelsIn/items"))
def test_a_label_is_taken_exactly_when_the_schema_allows_it(world: World, value: str) -> None:
    """Removing a label the entry does not have: valid or not, nothing changes."""
    params = {"ids": [world.dead["id"]], "labels": [value]}
    reply = send(world.daemon, "tag.remove", params)
    allowed = is_valid(method_params("tag.remove")["labels"][1], [value])
    assert ("result" in reply) == allowed, (params, reply)


@pytest.mark.parametrize("word", ["reset", "RESET ", " RESET", "", "RESET\n", "Reset"])
def test_reset_confirm_the_schema_refuses_is_refused(world: World, word: str) -> None:
    """Only the exact word resets (which this module's world must not see)."""
    assert is_valid(method_params("reset")["confirm"][1], "RESET")
    assert not is_valid(method_params("reset")["confirm"][1], word)
    reply = send(world.daemon, "reset", {"confirm": word})
    assert reply["error"]["code"] == -32602, reply


# ---- spec/protocol.md: every example is what the daemon says ------------------------------

PROTOCOL_MD = SPEC_PATH.with_name("protocol.md")
DOC_PIDS = (4242, 4243, 4244, 4245)  # the `sleep 3000` processes the examples assume
TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


def doc_blocks() -> list[tuple[str, list[str]]]:
    """The fenced blocks of protocol.md: (info string, lines)."""
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    return [
        (m.group(1), m.group(2).splitlines())
        for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S)
    ]


def doc_exchanges() -> list[tuple[str, list[str]]]:
    """Every `-->` line of protocol.md with the `<--` lines that follow it, in the order
    of the run they come from: by request id (lines without one first)."""
    out: list[tuple[str, list[str]]] = []
    for _, lines in doc_blocks():
        for line in lines:
            if line.startswith("--> "):
                out.append((line[4:], []))
            elif line.startswith("<-- ") and out and any(x.startswith("--> ") for x in lines):
                out[-1][1].append(line[4:])

    def request_id(exchange: tuple[str, list[str]]) -> int:
        found = re.search(r'"id":(\d+)', exchange[0])
        return int(found.group(1)) if found else 0

    return sorted(out, key=request_id)


def normalized(line: str, pids: dict[int, int]) -> Any:
    """A reply with real pids put back as the examples' and every time blanked; of a
    status result only the fields are kept (the values are the machine's)."""
    for real, doc in pids.items():
        line = re.sub(rf"\b{real}\b", str(doc), line)
    value = _blank_metrics(json.loads(TIME.sub("<time>", line)))
    result = value.get("result") if isinstance(value, dict) else None
    if isinstance(result, dict) and "fd_limit" in result:
        value["result"] = sorted(result)
    return value


def _blank_metrics(value: Any) -> Any:
    """Metrics and metrics history depend on when the sampler ran: kept as present only."""
    if isinstance(value, list):
        return [_blank_metrics(v) for v in value]
    if isinstance(value, dict):
        return {
            k: "<sampled>" if k in ("metrics", "samples") else _blank_metrics(v)
            for k, v in value.items()
        }
    return value


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_protocol_md_lines_fit_the_spec() -> None:
    """Every JSON-RPC line shown in protocol.md fits the spec: replies and events their
    schemas, requests the Request schema exactly when the daemon takes them as requests."""
    reply_lines = 0
    for _, lines in doc_blocks():
        for line in lines:
            text = line.removeprefix("<-- ")
            if line.startswith("--> ") or not text.startswith(('{"jsonrpc"', '[{"jsonrpc"')):
                continue
            value = json.loads(text)
            reply_lines += 1
            if isinstance(value, list):  # a batch's replies
                for item in value:
                    assert_response(item, item["id"])
            elif value.get("method") == "event":
                assert_valid("/x-notifications/event/schema", value)
            elif "result" in value or "error" in value:
                assert_response(value, value["id"])
                if "error" in value:
                    assert_error(value, value["id"], value["error"]["code"])
            else:
                assert_valid("/components/schemas/Request", value)  # typed in a console
    assert reply_lines > 30
    for sent, expected in doc_exchanges():
        replies = [r for x in expected for r in _as_list(json.loads(x))]
        codes = {r.get("error", {}).get("code") for r in replies}
        try:
            request = json.loads(sent)
        except ValueError:
            assert codes == {-32700}, sent
            continue
        for item in _as_list(request):
            assert is_valid("/components/schemas/Request", item) == (
                INVALID_REQUEST not in codes
            ), sent


def test_protocol_md_examples_are_what_the_daemon_says(
    world: World, spawn_daemon: Callable[..., Daemon]
) -> None:
    """Replayed in order on a fresh daemon, with `sleep 3000` processes (each leading its
    own process group) standing in for the examples' pids, on the default config."""
    d = spawn_daemon(config={"metrics_interval": "2s"})  # the default: tests' daemons sample not
    sleepers = [world.spawn("sleep", "3000", own_group=True) for _ in DOC_PIDS]
    pids = {p.pid: doc for p, doc in zip(sleepers, DOC_PIDS, strict=True)}
    exchanges = doc_exchanges()
    assert len(exchanges) > 30
    for sent, expected in exchanges:
        request = sent
        for real, doc in pids.items():
            request = re.sub(rf"\b{doc}\b", str(real), request)
        lines = d.raw(request.encode() + b"\n" + PING, expect=len(expected) + 1)
        assert json.loads(lines[-1])["id"] == "after", f"{sent}: more replies than shown"
        got = [normalized(x.decode(), pids) for x in lines[:-1]]
        assert got == [normalized(x, {}) for x in expected], sent


def console_commands() -> list[tuple[str, list[str]]]:
    """`$ echo ... | socat/nc ...` commands of protocol.md and the lines they print."""
    out = []
    for info, lines in doc_blocks():
        if info != "console":
            continue
        for n, line in enumerate(lines):
            if line.startswith("$ echo ") and re.search(r"\| (socat|nc) ", line):
                shown = []
                for following in lines[n + 1 :]:
                    if following.startswith("$ "):
                        break
                    shown.append(following)
                out.append((line[2:], shown))
    return out


@pytest.mark.parametrize(("command", "shown"), console_commands())
def test_protocol_md_command_works(world: World, command: str, shown: list[str]) -> None:
    """The socat and nc one-liners, run as written with the tools themselves."""
    tool = command.split("| ", 1)[1].split()[0]
    if subprocess.run(["which", tool], capture_output=True).returncode != 0:
        pytest.skip(f"{tool} is not installed")
    env = {**os.environ, "SOCK": str(world.daemon.socket)}
    out = subprocess.run(
        ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=10
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == shown
