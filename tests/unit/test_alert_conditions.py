"""Alert conditions (`goproc.alerts`): what `cpu > 90% for 30s` parses to, the errors
that name the wrong part, and when a condition fires for one entry, against a model:
once per run of samples that hold, at the first whose time is the window past the run's
start; a sample the OS could not give neither holds nor clears."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

from goproc.alerts import METRICS, OPS, Condition, Crossing, parse_condition
from goproc.errors import InvalidValue


@pytest.mark.parametrize(
    ("text", "condition"),
    [
        ("cpu > 90% for 30s", Condition("cpu", ">", 90.0, 30.0)),
        ("cpu>90", Condition("cpu", ">", 90.0)),
        ("  cpu >= 12.5%  ", Condition("cpu", ">=", 12.5)),
        ("mem > 500MB", Condition("mem", ">", 500e6)),
        ("mem >= 1.5GiB for 1m", Condition("mem", ">=", 1.5 * 2**30, 60.0)),
        ("mem < 100M", Condition("mem", "<", 100 * 2**20)),
        ("mem <= 4096", Condition("mem", "<=", 4096.0)),
        ("write_rate > 10MB/s for 0s", Condition("write_rate", ">", 10e6)),
        ("read_rate > 1KiB", Condition("read_rate", ">", 1024.0)),
        ("threads > 100", Condition("threads", ">", 100.0)),
        ("fds >= 1000 for 5s", Condition("fds", ">=", 1000.0, 5.0)),
        ("age > 2h", Condition("age", ">", 7200.0)),
        ("cpu > 0.00001", Condition("cpu", ">", 1e-05)),  # `repr` writes 1e-05
        ("mem > 0.000015", Condition("mem", ">", 1.5e-05)),
        ("age > 1us", Condition("age", ">", 1e-06)),
        ("cpu > 1 for 3ns", Condition("cpu", ">", 1.0, 3 * 1e-9)),
        ("mem > 1" + "0" * 300 + "B", Condition("mem", ">", 1e300)),
    ],
)
def test_conditions_parse(text: str, condition: Condition) -> None:
    assert parse_condition(text) == condition
    assert parse_condition(condition.text()) == condition, "the canonical text reads back"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "cpu > lots",
            "condition: cpu must be compared with a percent of one core, like 90 or 90%,"
            " got 'lots'",
        ),
        ("mem > 5 parsecs", "condition: must be METRIC OP VALUE [for DURATION]"),
        (
            "mem > 5XB",
            "condition: mem must be compared with bytes, like 500MB or 1.5GiB, got '5XB'",
        ),
        ("cpu > 90% for ever", "condition: the window: invalid duration 'ever'"),
        ("cpu > 90% for -1s", "condition: the window must not be negative, got '-1s'"),
        ("load > 3", "condition: unknown metric 'load': one of cpu, mem, read_rate"),
        ("cpu = 90", "condition: must be METRIC OP VALUE [for DURATION]"),
        ("threads > 1.5k", "condition: threads must be compared with a whole number, got '1.5k'"),
        ("age > 10", "condition: the age: invalid duration '10'"),
        ("", "condition: must be METRIC OP VALUE [for DURATION]"),
        ("cpu > ٩٠", "condition: cpu must be compared with a percent"),
        ("cpu > 1" + "0" * 400, "condition: cpu is too large, got '1000"),
        ("mem > 1" + "0" * 300 + "TB", "condition: mem is too large"),
        ("age > 1" + "0" * 400 + "h", "condition: the age is too large"),
        ("fds > 1 for 1" + "0" * 400 + "s", "condition: the window is too large"),
    ],
)
def test_a_bad_condition_names_the_part_that_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidValue) as raised:
        parse_condition(text)
    assert str(raised.value).startswith(message)


@given(
    metric=st.sampled_from(METRICS),
    op=st.sampled_from(list(OPS)),
    value=st.floats(0, 1e300),
    window=st.just(0.0) | st.floats(0, 1e300),
)
def test_every_condition_reads_back_from_its_text(
    metric: str, op: str, value: float, window: float
) -> None:
    """What a rule keeps on disk is its text: any condition must read back from it
    (threads and fds are counted in whole numbers)."""
    if metric in ("threads", "fds"):
        value = float(math.floor(value))
    condition = Condition(metric, op, value, window)
    assert parse_condition(condition.text()) == condition, condition.text()


samples = st.lists(
    st.tuples(st.floats(0, 5, allow_nan=False), st.none() | st.floats(0, 100)), max_size=40
)


def fired_by_model(condition: Condition, steps: list[tuple[float, float | None]]) -> list[int]:
    """The indices of the samples the condition fires at, from runs of holding samples."""
    fired, run_start, fired_in_run, t = [], None, False, 0.0
    for i, (dt, value) in enumerate(steps):
        t += dt
        if value is None:
            continue
        if not condition.holds(value):
            run_start, fired_in_run = None, False
            continue
        run_start = t if run_start is None else run_start
        if not fired_in_run and t - run_start >= condition.window:
            fired.append(i)
            fired_in_run = True
    return fired


@given(
    steps=samples,
    threshold=st.floats(0, 100),
    op=st.sampled_from([">", ">=", "<", "<="]),
    window=st.sampled_from([0.0, 0.5, 2.0, 10.0]),
)
def test_a_condition_fires_once_per_crossing(
    steps: list[tuple[float, float | None]], threshold: float, op: str, window: float
) -> None:
    condition = Condition("cpu", op, threshold, window)
    state, t, fired = Crossing(), 0.0, []
    for i, (dt, value) in enumerate(steps):
        t += dt
        state, fire = state.step(condition, t, value)
        if fire:
            fired.append(i)
    assert fired == fired_by_model(condition, steps)


def test_fires_after_the_window_and_again_only_after_clearing() -> None:
    condition = parse_condition("mem > 100MB for 2s")
    state, out = Crossing(), []
    for t, value in [
        (0, 200e6),
        (1, 200e6),
        (2, 200e6),
        (3, 200e6),
        (4, 1.0),
        (5, 200e6),
        (7, 300e6),
    ]:
        state, fire = state.step(condition, float(t), value)
        out.append(fire)
    assert out == [False, False, True, False, False, False, True]
