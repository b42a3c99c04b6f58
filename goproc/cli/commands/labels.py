"""`goproc tag ...` and `goproc group ...`: one set of commands, written once, over
tags or over groups (`goproc.api.TAG` or `goproc.api.GROUP`).

No `from __future__ import annotations` here: the commands' annotations name the
completer of their kind, a local of `label_app`, which cyclopts could not look up from
a string.
"""

from typing import Annotated

from cyclopts import App, Parameter

from goproc import api
from goproc.cli import completers, output
from goproc.cli.codes import ExitCode
from goproc.cli.flags import AllFlag, Common, Json, Select, call, label_tuple, targeted_of
from goproc.errors import UsageError
from goproc.model import Proc


def label_app(kind: str, methods: api.LabelMethods, complete: completers.Completer) -> App:
    """The `kind` command (tag or group): list counts, add, rm, rename; `complete`
    offers the labels in use."""
    sub = App(name=kind, help=f"List (bare, or 'list'), add, remove and rename {kind}s.")
    LabelArg = Annotated[str, Parameter(completer=complete)]

    def counts(*, json_: Json = False, common: Common | None = None) -> ExitCode:
        """Every label in use and its number of entries."""
        rows = call(common, methods.list, api.NoParams())
        output.emit(rows, json_, lambda r: output.label_count_lines(kind, r))
        return ExitCode.OK

    sub.default(counts)
    sub.command(counts, name="list")

    @sub.command(name="add")
    def add_labels(
        *labels: LabelArg,
        select: Select | None = None,
        all_: AllFlag = False,
        json_: Json = False,
        common: Common | None = None,
    ) -> ExitCode:
        """Add labels to the matching entries (more than one entry needs --all)."""
        return _change(kind, methods.add, labels, select, all_, json_, common)

    @sub.command(name="rm")
    def remove_labels(
        *labels: LabelArg,
        select: Select | None = None,
        all_: AllFlag = False,
        json_: Json = False,
        common: Common | None = None,
    ) -> ExitCode:
        """Remove labels from the matching entries (more than one entry needs --all)."""
        return _change(kind, methods.remove, labels, select, all_, json_, common)

    @sub.command(name="rename")
    def rename(
        old: LabelArg, new: str, /, *, json_: Json = False, common: Common | None = None
    ) -> ExitCode:
        """Rename a label on every entry, atomically."""
        params = api.RenameParams(old=api.Label(old), new=api.Label(new))
        result = call(common, methods.rename, params)
        output.emit(result, json_, lambda r: output.renamed_lines(kind, old, new, r))
        return ExitCode.OK

    return sub


def _change(
    kind: str,
    method: api.Method[api.LabelParams, list[Proc]],
    labels: tuple[str, ...],
    select: Select | None,
    all_: bool,
    json_: bool,
    common: Common | None,
) -> ExitCode:
    """`tag add|rm` (`group add|rm`): change the labels of the matching entries."""
    if not labels:
        raise UsageError(f"give at least one {kind}")
    params = api.LabelParams(labels=label_tuple(labels), target=targeted_of(select, None, all_))
    procs = call(common, method, params)
    output.emit(procs, json_, lambda p: output.labels_lines(f"{kind}s", p))
    return ExitCode.OK


tag_app = label_app("tag", api.TAG, completers.tags)
group_app = label_app("group", api.GROUP, completers.groups)
