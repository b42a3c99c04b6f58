"""`goproc --install-completion`: write the shell completion script of the app.

cyclopts writes the scripts; goproc offers the shells they are tested with (bash, zsh,
fish: tests/e2e/test_completion.py drives each).  The scripts complete commands and
flags from what they hold, and values (ids, names, tags, groups, signals) by running
`goproc __complete` (see `goproc.cli.completers`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, get_args

from cyclopts import App, Parameter

from goproc.cli import output as printing
from goproc.cli.codes import ExitCode
from goproc.errors import UsageError

Shell = Literal["bash", "zsh", "fish"]
SHELLS: tuple[Shell, ...] = get_args(Shell)


def install_completion(
    *,
    shell: Shell | None = None,
    output: Path | None = None,
    add_to_startup: bool = True,
    app: Annotated[App | None, Parameter(parse=False)] = None,
) -> ExitCode:
    """Install shell completion for goproc (bash, zsh or fish; detected when not given).

    Parameters
    ----------
    shell
        The shell; detected (from the shell goproc runs in, or $SHELL) when not given.
    output
        Where to write the completion script (a per-shell default otherwise).
    add_to_startup
        Add a line to the shell's rc file that loads it.
    """
    if app is None:  # `goproc.cli.app.run` passes the app the completion is of
        raise TypeError("install_completion needs the app")
    if shell is None:
        shell = detected_shell()
    path = app.install_completion(shell=shell, output=output, add_to_startup=add_to_startup)
    printing.say([f"Completion installed in {path}; start a new shell to use it"])
    return ExitCode.OK


def detected_shell() -> Shell:
    """The shell goproc runs in, as cyclopts detects it; a usage error when that is
    none of `SHELLS`."""
    from cyclopts.completion.detect import ShellDetectionError, detect_shell

    choices = ", ".join(SHELLS[:-1]) + " or " + SHELLS[-1]
    try:
        found: str = detect_shell()
    except ShellDetectionError:
        raise UsageError(f"cannot tell which shell this is: give --shell {choices}") from None
    for shell in SHELLS:
        if found == shell:
            return shell
    raise UsageError(f"no completion for {found}: give --shell {choices}")
