"""The structure hooks of containers the converter makes (`goproc.rpc.convert`): a
nested params object, a homogeneous tuple, a selector, params with flat fields.  Each
raises `Invalid` or cattrs' own validation errors, which `structure_params` words.
Pure."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import ClassValidationError, IterableValidationError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn, override

from goproc.api import Pid, ProcId, flat_type, wire_names
from goproc.model import Selector
from goproc.rpc import values
from goproc.rpc.values import Invalid, show_value

T = TypeVar("T")


def object_hook(c: cattrs.Converter, cls: type[T]) -> Callable[[Any, Any], T]:
    """A nested params object: an object, its unknown members refused."""
    inner = make_dict_structure_fn(cls, c, _cattrs_forbid_extra_keys=True)

    def structure(value: Any, _: Any) -> T:
        if not isinstance(value, dict):
            raise Invalid(f"must be an object, got {show_value(value)}")
        return inner(value, cls)

    return structure


def is_homogeneous_tuple(tp: Any) -> bool:
    args: tuple[Any, ...] = getattr(tp, "__args__", ())
    return getattr(tp, "__origin__", None) is tuple and len(args) == 2 and args[1] is Ellipsis


def tuple_hook(c: cattrs.Converter, tp: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
    (item_type, _) = tp.__args__
    inner = c.get_structure_hook(item_type)
    plain_str = item_type is str  # a Label has rules of its own

    def structure(value: Any, _: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise Invalid(f"must be an array, got {show_value(value)}")
        if plain_str and all(type(item) is str for item in value):
            # The common case, checked at once.  Tags and groups repeat across
            # entries (a snapshot's): one string object each, not one per entry.
            return tuple(map(sys.intern, value))
        errors: list[Exception] = []
        out = []
        for i, item in enumerate(value):
            try:
                out.append(inner(item, item_type))
            except Exception as e:
                e.__notes__ = [
                    *getattr(e, "__notes__", []),
                    IterableValidationNote(f"Structuring {tp} @ index {i}", i, item_type),
                ]
                errors.append(e)
        if errors:
            raise IterableValidationError(f"While structuring {tp!r}", errors, tp)
        return tuple(out)

    return structure


def selector_hook(c: cattrs.Converter) -> Callable[[Any, Any], Selector]:
    """Selectors as the registry takes them, checked as values of their kind: ids and
    pids in range (an id 0 or a pid -2 is no match but a mistake), and no blank name,
    tag or group (one matches nothing, so `rm --name ok --name ' '` would act on `ok`)."""

    def optional(tp: Any) -> Any:
        return override(struct_hook=lambda v, _: None if v is None else c.structure(v, tp))

    needles = optional(tuple[values.Needle, ...])
    return make_dict_structure_fn(
        Selector,
        c,
        _cattrs_forbid_extra_keys=True,
        ids=optional(tuple[ProcId, ...]),
        pids=optional(tuple[Pid, ...]),
        names=needles,
        tags_any=needles,
        tags_all=needles,
        groups_any=needles,
        groups_all=needles,
    )


def has_flat_fields(cls: Any) -> bool:
    return attrs.has(cls) and any(flat_type(a) is not None for a in attrs.fields(cls))


def flat_hook(c: cattrs.Converter, cls: Any) -> Callable[[Any, Any], Any]:
    """Structure a params class whose flat fields read from the same object: each flat
    field gets the members its class names, the class itself the rest (unknown
    members are refused there).  Errors of every part are reported together."""
    flats = {a.name: t for a in attrs.fields(cls) if (t := flat_type(a)) is not None}
    names = {name: set(wire_names(t)) for name, t in flats.items()}
    omitted: dict[str, Any] = {n: override(omit=True) for n in flats}
    own = make_dict_structure_fn(cls, c, _cattrs_forbid_extra_keys=True, **omitted)

    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, dict):
            raise Invalid(f"must be an object, got {show_value(value)}")
        taken: set[str] = set()
        parts: dict[str, Any] = {}
        errors: list[Exception] = []
        for name, t in flats.items():
            part = {k: v for k, v in value.items() if k in names[name]}
            taken.update(part)
            try:
                parts[name] = c.structure(part, t)
            except ClassValidationError as e:
                errors.extend(e.exceptions)
        try:
            out = own({k: v for k, v in value.items() if k not in taken}, cls)
        except ClassValidationError as e:
            errors.extend(e.exceptions)
        if errors:
            raise ClassValidationError(f"While structuring {cls.__name__}", errors, cls)
        return attrs.evolve(out, **parts)

    return structure
