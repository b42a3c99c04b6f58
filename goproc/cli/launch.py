"""The `goproc` program's entry point: `goproc daemon` straight to the daemon program,
everything else to the cyclopts app (`goproc.cli.app.main`).

`goproc daemon` is how the daemon is started, so its start-up counts: its usual forms
(`[--config FILE] daemon [--force|-f] [--fresh] [--config FILE]`) exec `python -m goproc.daemon`
at once, without loading the command-line app.  Any other form (help, an unknown flag)
goes through the app, which words its errors; the exec is the same either way.  The
app is imported with the garbage collector paused (see `main`).
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence


def main() -> None:
    argv = daemon_argv(sys.argv[1:])
    if argv is not None:
        os.execv(sys.executable, [sys.executable, "-m", "goproc.daemon", *argv])
    # Importing the app makes tens of thousands of objects and frees almost none: the
    # collections they would trigger cost about a tenth of a short command's run.
    # Collect none while importing, and keep what was imported out of later ones.
    gc.disable()
    from goproc.cli.app import main as app_main

    gc.freeze()
    gc.enable()
    app_main()


def daemon_argv(args: Sequence[str]) -> list[str] | None:
    """The daemon program's arguments when `args` are a plain `daemon` command line;
    None for anything else."""
    config: str | None = None
    force = fresh = False
    rest = list(args)
    seen_command = False
    while rest:
        arg = rest.pop(0)
        if arg == "--config" and rest:
            config = rest.pop(0)
        elif arg.startswith("--config=") and len(arg) > len("--config="):
            config = arg.partition("=")[2]
        elif arg == "daemon" and not seen_command:
            seen_command = True
        elif arg in ("--force", "-f") and seen_command:
            force = True
        elif arg == "--fresh" and seen_command:
            fresh = True
        else:
            return None
    if not seen_command:
        return None
    flags = (["--force"] if force else []) + (["--fresh"] if fresh else [])
    return flags + ([f"--config={config}"] if config is not None else [])
