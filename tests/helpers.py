"""Small helpers the test files share (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def wait_until(
    predicate: Callable[[], Any], timeout: float = 5.0, what: str = "", every: float = 0.02
) -> Any:
    """Poll `predicate` every `every` seconds until it returns something truthy; fail
    after `timeout`.  Tests never sleep blindly: they wait for a condition."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or predicate}")
        time.sleep(every)
