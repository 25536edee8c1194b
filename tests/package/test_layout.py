"""The package's shape: one import root, layers that import downwards only, no circles.

The imports are read from the source (every `import` and `from … import`, including those
inside functions and under TYPE_CHECKING), so a lazy import cannot hide a circle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "asof"
#: Lower layers first; a module may import its own layer and the layers before it.
LAYERS = ("eventlog", "projections", "clone", "queryapi", "pgwire")


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        if package:
            parts.pop()
        out[".".join(parts)] = (path, package)
    return out


def _imports() -> dict[str, set[str]]:
    mods = _modules()

    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, (path, package) in mods.items():
        here = mod if package else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                targets = [
                    f"{origin}.{a.name}" if f"{origin}.{a.name}" in mods else origin
                    for a in node.names
                ]
            for target in targets:
                found = known(target)
                if found is not None and found != mod:
                    edges[mod].add(found)
    return edges


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_belongs_to_a_layer() -> None:
    stray = [m for m in _modules() if _layer(m) is None and m not in ("asof", "asof.__main__")]
    assert stray == []


def test_imports_point_down_only() -> None:
    upward = [
        f"{mod} imports {dep}"
        for mod, deps in _imports().items()
        for dep in deps
        if _layer(mod) is not None and _layer(dep) is not None and _layer(dep) > _layer(mod)
    ]
    assert upward == []


def test_lower_layers_do_not_import_the_root_package() -> None:
    # `asof/__init__` resolves the public names lazily; a layer importing it would load
    # every layer above it.
    offenders = [m for m, deps in _imports().items() if "asof" in deps and m != "asof.__main__"]
    assert offenders == []


def test_no_import_circles() -> None:
    edges = _imports()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert circles == []


def test_the_graph_reader_sees_imports() -> None:
    """Guard the reader itself: known edges of each kind must show up."""
    edges = _imports()
    assert "asof.eventlog.events" in edges["asof.projections.apply"]  # from-import
    assert "asof.projections.kinds" in edges["asof.projections.apply"]  # from pkg import mod
    assert "asof.queryapi.cli.forensics" in edges["asof.queryapi.cli"]


def test_importing_a_lower_layer_loads_no_upper_one() -> None:
    code = (
        "import sys, asof.eventlog.ipc, asof.projections.live; "
        "print(sorted(m for m in sys.modules if m.startswith(('asof.queryapi', 'asof.clone'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["Cluster", "Database", "AsOf", "Result", "ProgrammingError"])
def test_public_names_come_from_the_root(name: str) -> None:
    import asof
    import asof.queryapi

    assert getattr(asof, name) is getattr(asof.queryapi, name)
    assert name in asof.__all__
