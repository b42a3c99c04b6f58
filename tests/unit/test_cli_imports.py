"""The CLI stays light at run time: a fresh interpreter that imports the app, or every
module of `goproc/cli/`, has loaded none of trio, cattrs, psutil, textual,
prometheus_client, hypercorn, nor the daemon's code (goproc.daemon with its HTTP app,
goproc.rpc, goproc.store), and the app alone loads no command module (they are
registered lazily).

The static side of the same contract (no such import statement anywhere in cli/, not
even inside a function) is tests/unit/test_import_contract.py; `goproc ping` without a
daemon exiting 3, and the imports of real command runs, are in tests/test_cli.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLI = Path(__file__).resolve().parents[2] / "goproc" / "cli"
FORBIDDEN = (
    "trio",
    "cattrs",
    "psutil",
    "textual",
    "prometheus_client",
    "hypercorn",
    "goproc.daemon",
    "goproc.rpc",
    "goproc.store",
)
MODULES = sorted(
    ".".join(path.relative_to(CLI.parent.parent).with_suffix("").parts).removesuffix(".__init__")
    for path in CLI.rglob("*.py")
)


def forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f"{f}.") for f in FORBIDDEN)


def loaded_after(imports: list[str]) -> list[str]:
    """The modules a fresh interpreter has loaded after importing `imports`."""
    code = f"import sys\nfor m in {imports!r}: __import__(m)\nprint(*sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_modules_are_found() -> None:
    assert {"goproc.cli", "goproc.cli.app", "goproc.cli.commands.basic"} <= set(MODULES)


def test_importing_the_app_loads_nothing_heavy_and_no_command() -> None:
    loaded = loaded_after(["goproc.cli.app"])
    assert "goproc.cli.app" in loaded and "cyclopts" in loaded  # the measure works
    assert [m for m in loaded if forbidden(m)] == []
    assert not [m for m in loaded if m.startswith("goproc.cli.commands.")], "not lazy"


def test_importing_every_cli_module_loads_nothing_heavy() -> None:
    loaded = loaded_after(MODULES)
    assert set(MODULES) <= set(loaded)
    assert [m for m in loaded if forbidden(m)] == []
