"""`goproc --install-completion`: write the shell completion script of the app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from cyclopts import App, Parameter

from goproc.cli import output as printing
from goproc.cli.codes import ExitCode


def install_completion(
    *,
    shell: Literal["bash", "zsh", "fish"] | None = None,
    output: Path | None = None,
    add_to_startup: bool = True,
    app: Annotated[App | None, Parameter(parse=False)] = None,
) -> ExitCode:
    """Install shell completion for goproc (bash, zsh or fish; detected when not given).

    Parameters
    ----------
    shell
        The shell; detected from $SHELL when not given.
    output
        Where to write the completion script (a per-shell default otherwise).
    add_to_startup
        Add a line to the shell's rc file that loads it.
    """
    if app is None:  # `goproc.cli.app.run` passes the app the completion is of
        raise TypeError("install_completion needs the app")
    path = app.install_completion(shell=shell, output=output, add_to_startup=add_to_startup)
    printing.say([f"Completion installed in {path}; start a new shell to use it"])
    return ExitCode.OK
