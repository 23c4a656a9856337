"""The layout's promises: no import cycle, small modules, a complete public API."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import ledbelly

PACKAGE = Path(ledbelly.__file__).resolve().parent
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """ledbelly modules ``name`` imports at module level (not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` blocks are not imports at run time
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import mod` needs mod; `from pkg import name` needs pkg itself
            subs = [f"{node.module}.{a.name}" for a in node.names]
            targets = [s for s in subs if s in known] or [node.module]
        out.update(t for t in targets if t in known and t != name)
    return out


def test_no_import_cycle_inside_the_package() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        if node in done:
            return
        assert node not in visiting, "import cycle: " + " -> ".join(
            [*visiting[visiting.index(node) :], node]
        )
        visiting.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        visiting.pop()
        done.add(node)

    for name in sorted(graph):
        visit(name)


def test_no_module_is_over_600_lines() -> None:
    long = {
        name: n
        for name, path in _modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_top_level_holds_a_handful_of_modules() -> None:
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert len(top) <= 8, top


def test_all_names_what_the_package_exports() -> None:
    public = {
        n
        for n, v in vars(ledbelly).items()
        if not n.startswith("_") and not isinstance(v, type(ledbelly))
    }
    assert sorted(ledbelly.__all__) == sorted(public | {"__version__"})
    for name in ledbelly.__all__:
        assert hasattr(ledbelly, name)


def test_every_module_imports() -> None:
    for info in pkgutil.walk_packages(ledbelly.__path__, "ledbelly."):
        if info.name.startswith(("ledbelly.sources.https", "ledbelly.extensions.geoip")):
            continue  # their extras may not be installed
        importlib.import_module(info.name)
