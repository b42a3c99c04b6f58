"""The package's import contract: dependencies point one way (shared/design.md).

    root modules (model, registry, errors, config, durations, paths, api)
        ^            ^             ^             ^
       cli/         rpc/   <-   store/   <-   daemon/

- root modules import no subpackage (`goproc/__main__.py`, the entry point, apart);
- `cli/` never imports rpc/, store/, daemon/ (so neither the HTTP app), trio, cattrs,
  psutil, textual, prometheus_client or hypercorn; only `goproc top`
  (goproc/cli/commands/top.py) imports tui/, and only inside its function;
- `tui/` (the Textual app) never imports rpc/, store/, daemon/, trio, cattrs, psutil,
  prometheus_client or hypercorn: it talks to the daemon through the CLI's client;
- `rpc/` and `store/format.py` never import trio; `rpc/` never imports store/ or daemon/;
- `store/` never imports daemon/ or cli/; `daemon/` never imports cli/;
- hypercorn is imported only in daemon/ (the HTTP listener, `goproc.daemon.http`).
Every import statement counts, also one inside a function: the check is over the source
(AST), plus one run-time check that the pure layers really load without trio.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "goproc"
SUBPACKAGES = ("cli", "rpc", "store", "daemon", "tui")
HEAVY = ("trio", "cattrs", "psutil", "textual", "prometheus_client", "hypercorn")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path) -> set[str]:
    """Every module an import statement in `path` names (`from goproc import x` names
    goproc.x too), wherever the statement stands."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            assert not node.level, f"{path}: relative import"
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def layer(module: str) -> str:
    """`root`, a subpackage's name, or `entry` for goproc/__main__.py."""
    parts = module.split(".")
    if module == "goproc.__main__":
        return "entry"
    if len(parts) > 1 and parts[1] in SUBPACKAGES:
        return parts[1]
    return "root"


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def pkg(*names: str) -> tuple[str, ...]:
    return tuple(f"goproc.{n}" for n in names)


FORBIDDEN: dict[str, tuple[str, ...]] = {
    "root": pkg(*SUBPACKAGES),
    "cli": (*pkg("rpc", "store", "daemon", "tui"), *HEAVY),
    "rpc": (*pkg("store", "daemon", "cli", "tui"), "trio", "psutil", "textual", "hypercorn"),
    "store": (*pkg("daemon", "cli", "tui"), "psutil", "textual", "hypercorn"),
    "daemon": (*pkg("cli", "tui"), "textual"),
    "tui": (
        *pkg("rpc", "store", "daemon"),
        "trio",
        "cattrs",
        "psutil",
        "prometheus_client",
        "hypercorn",
    ),
    "entry": (*pkg("rpc", "store", "daemon", "tui"), *HEAVY),
}


TOP = "goproc.cli.commands.top"  # `goproc top`: the one way into tui/


def module_level_imports(path: Path) -> set[str]:
    """The modules the import statements at the top level of `path` name."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.add(node.module)
    return names


def violations() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for module, path in MODULES.items():
        banned = FORBIDDEN.get(layer(module), ())
        if module == TOP:  # tui/ inside the command only: checked in the test below
            banned = tuple(b for b in banned if b != "goproc.tui")
        if module == "goproc.store.format":
            banned = (*banned, "trio")
        if module == "goproc.api":  # the contract: stdlib and attrs besides root modules
            banned = (*banned, *HEAVY)
        bad = sorted(n for n in imports_of(path) if within(n, banned))
        if bad:
            found[module] = bad
    return found


def test_the_check_sees_every_kind_of_import(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "import os\nfrom goproc import api, daemon\n"
        "def f():\n    import trio\n    from goproc.store.files import x\n"
    )
    assert imports_of(source) >= {"goproc.daemon", "trio", "goproc.store.files.x"}
    assert layer("goproc.cli.commands.procs") == "cli" and layer("goproc.model") == "root"


def test_every_layer_has_modules() -> None:
    layers = {layer(m) for m in MODULES}
    assert {"root", "cli", "rpc", "store", "daemon", "tui", "entry"} <= layers
    assert {"goproc.daemon.http.app", "goproc.daemon.http.serving"} <= MODULES.keys()


def test_dependencies_point_one_way() -> None:
    assert violations() == {}


def test_only_top_imports_the_tui_and_only_inside_its_command() -> None:
    into_tui = sorted(
        m
        for m, path in MODULES.items()
        if layer(m) != "tui" and any(within(n, ("goproc.tui", "textual")) for n in imports_of(path))
    )
    assert into_tui == [TOP]
    at_top_level = module_level_imports(MODULES[TOP])
    assert not [n for n in at_top_level if within(n, ("goproc.tui", "textual"))]


@pytest.mark.parametrize(
    "module", ["goproc.rpc.jsonrpc", "goproc.rpc.convert", "goproc.store.format"]
)
def test_pure_layers_load_without_trio(module: str) -> None:
    code = f"import sys, {module}; print('trio' in sys.modules, 'psutil' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
