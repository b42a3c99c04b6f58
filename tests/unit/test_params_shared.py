"""`goproc.rpc.convert.structure_params` makes the value of `{}` once per params class
and gives that one value to every such request: sound only while every params class
is frozen and holds no mutable container.  This holds the contract to it."""

from __future__ import annotations

import typing
from typing import Any

import attrs
import pytest

from goproc.api import METHODS
from goproc.rpc.convert import structure_params

MUTABLE = (list, dict, set, bytearray)


def _mutable_in(tp: Any) -> bool:
    origin = typing.get_origin(tp) or tp
    if isinstance(origin, type) and issubclass(origin, MUTABLE):
        return True
    if attrs.has(origin) and origin is not tp:
        return False
    return any(_mutable_in(arg) for arg in typing.get_args(tp))


def _check(cls: type) -> None:
    assert attrs.has(cls), cls
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        inst = object.__new__(cls)
        setattr(inst, "x", 1)  # noqa: B010  # the frozen class refuses any attribute
    hints = typing.get_type_hints(cls)
    for f in attrs.fields(cls):
        tp = hints[f.name]
        assert not _mutable_in(tp), f"{cls.__name__}.{f.name}: {tp}"
        for member in typing.get_args(tp) or (tp,):
            if attrs.has(member):
                _check(member)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_params_are_frozen_and_immutable(name: str) -> None:
    _check(METHODS[name].params)


def test_empty_params_are_made_once_and_shared() -> None:
    cls = METHODS["list"].params
    assert structure_params({}, cls) is structure_params({}, cls)
    assert structure_params({}, cls) == cls()
