"""Metric families to the Prometheus text format (0.0.4) or OpenMetrics 1.0, byte for
byte as prometheus_client's own encoders write them, at about a third of their cost.

Why: the library's encoders check and escape every label name of every sample (about
5 us a sample); a scrape of 1,000 entries has some 10,000 samples.  Here label names
are taken as they are, which holds for the families this is given: goproc's
(`goproc.daemon.exposition`, names fixed in the source) and the library's
`ProcessCollector` (no labels).  A family of another type (stateset, summary, ...)
is handed to the library's encoder whole.  tests/unit/test_exposition.py holds the
output to the library's, in both formats.  Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as om
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

# Both untyped in the library; their types as they are documented.
go_float: Callable[[float], str] = floatToGoString
generate_openmetrics: Callable[[Collector], bytes] = om.generate_latest

# The types written here; in the text format a counter's family is named with its
# `_total` and an info is a gauge named with its `_info`.
PLAIN_TYPES = {"gauge": ("", "gauge"), "counter": ("_total", "counter"),
               "info": ("_info", "gauge"), "histogram": ("", "histogram")}  # fmt: skip


LEGACY_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


class _One(Collector):
    """One family as a registry, for the library's encoders."""

    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def collect(self) -> Iterable[Metric]:
        return (self.metric,)


def _value(text: str) -> str:
    """A label value, escaped as both formats do."""
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _line(s: Sample) -> str:
    value = go_float(s.value)
    if not s.labels:
        return f"{s.name} {value}\n"
    labels = ",".join([f'{k}="{_value(v)}"' for k, v in sorted(s.labels.items())])
    return f"{s.name}{{{labels}}} {value}\n"


def _text_family(metric: Metric, out: list[str]) -> None:
    suffix, kind = PLAIN_TYPES[metric.type]
    name = metric.name + suffix
    doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
    out.append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")
    out.extend([_line(s) for s in metric.samples])


def _openmetrics_family(metric: Metric, out: list[str]) -> None:
    name = metric.name
    out.append(f"# HELP {name} {_value(metric.documentation)}\n# TYPE {name} {metric.type}\n")
    if metric.unit:
        out.append(f"# UNIT {name} {metric.unit}\n")
    out.extend([_line(s) for s in metric.samples])


def encode_text(families: Iterable[Metric]) -> bytes:
    """The text format 0.0.4 (also what a `text/plain; version=1.0.0` scrape gets:
    every name here is a legacy one, so no escaping scheme changes it)."""
    out: list[str] = []
    for metric in families:
        if metric.type in PLAIN_TYPES and _plain(metric):
            _text_family(metric, out)
        else:
            out.append(generate_latest(_One(metric)).decode("utf-8"))
    return "".join(out).encode("utf-8")


def encode_openmetrics(families: Iterable[Metric]) -> bytes:
    """OpenMetrics 1.0.0 text, `# EOF` last."""
    out: list[str] = []
    for metric in families:
        if metric.type in PLAIN_TYPES and _plain(metric):
            _openmetrics_family(metric, out)
        else:
            body = generate_openmetrics(_One(metric)).decode("utf-8")
            out.append(body.removesuffix("# EOF\n"))
    out.append("# EOF\n")
    return "".join(out).encode("utf-8")


def _plain(metric: Metric) -> bool:
    """No sample of the family needs what only the library writes: a timestamp, an
    exemplar, a `_created` sample (the text format moves it), a name that needs
    escaping.  The first and last samples are checked: a family's samples are alike
    but for a counter's `_created`, which comes after its `_total`."""
    if LEGACY_NAME.fullmatch(metric.name) is None:
        return False
    return all(
        s.timestamp is None
        and s.exemplar is None
        and s.native_histogram is None
        and not s.name.endswith("_created")
        for s in metric.samples[:1] + metric.samples[-1:]
    )
