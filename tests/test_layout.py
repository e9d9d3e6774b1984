"""The package's shape: layers that only look down, no import circles, a handful of modules at the top.

Every import counts, at module level or inside a function, and so does every ``"edgekd.x"`` string (the
lazy tables that load a module on first use): an import hidden in a function is still a dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from edgekd.catalog import KINDS, catalog

PACKAGE = Path(__file__).resolve().parents[1] / "edgekd"

# Bottom to top: a module may import from its own layer or the ones before it, never after.
LAYERS = (
    ("errors", "utils"),
    ("catalog", "inputs", "outputs", "cache", "targets"),
    ("tasks",),
    ("data",),
    ("models",),
    ("train", "stage"),
    ("distill",),
    ("prune", "quantize", "search"),
    ("formats",),
    ("export",),
    ("bench", "teachers"),
    ("report",),
    ("run",),
    ("recipe",),
    ("cli",),
    ("", "__main__"),  # the package itself: the public names, loaded lazily
)
RANK = {room: rank for rank, rooms in enumerate(LAYERS) for room in rooms}
MAX_TOP_LEVEL_MODULES = 8  # __init__, __main__ and a handful of one-concept modules


def module_files() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("edgekd", *path.relative_to(PACKAGE).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = module_files()


def _owner(name: str) -> str | None:
    """The module a dotted name lives in (``edgekd.data.sources.DataBundle`` -> ``edgekd.data.sources``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """Every edgekd module ``module`` imports, anywhere in its body, or names in a lazy table."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES]
            targets = submodules if len(submodules) == len(node.names) else [base, *submodules]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("edgekd."):
            name = node.value.partition(":")[0]
            if " " not in name and _owner(name) not in (None, "edgekd"):  # "edgekd.json" is a file name
                targets = [name]
        for target in targets:
            owner = _owner(target) if target.startswith("edgekd") else None
            if owner and owner != module:
                found.add(owner)
    # importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first: those are dependencies too
    # (but not the importer's own packages, which are already running)
    own = {module.rsplit(".", depth)[0] for depth in range(module.count(".") + 1)}
    for target in list(found):
        parts = target.split(".")
        found.update(p for p in (".".join(parts[:i]) for i in range(2, len(parts))) if p not in own)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_and_package_has_a_layer() -> None:
    assert sorted({room(m) for m in MODULES} - set(RANK)) == []


def test_no_layer_imports_from_a_layer_above_it() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if RANK[room(target)] > RANK[room(module)]
    ]
    assert upward == []


def _cycles() -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return groups


def test_no_import_circles() -> None:
    assert _cycles() == []


def test_the_check_sees_imports_inside_functions_and_lazy_tables() -> None:
    """The checks above would pass vacuously if hidden imports went unseen: two known ones must be found."""
    assert "edgekd.bench.worker" in GRAPH["edgekd.bench.harness"]  # a module name in a subprocess command
    assert "edgekd.run.pipeline" in GRAPH["edgekd"]  # the lazy table of public names


def test_a_handful_of_modules_at_the_top() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_declared_catalog_entry_loads(kind: str) -> None:
    """Each built-in entry point names an object that exists (a typo in pyproject.toml fails here)."""
    declared = entry_points(group=f"edgekd.{kind}")
    assert declared, f"no entry points in edgekd.{kind}: is the package installed (pip install -e .)?"
    for point in declared:
        assert catalog(kind).get(point.name) is not None


HEAVY = ("torchao", "litert_torch", "onnx", "onnxruntime", "transformers", "torch_pruning", "matplotlib")


@pytest.mark.parametrize("module", ["edgekd.recipe.schema", "edgekd.train", "edgekd.export", "edgekd.bench.worker"])
def test_light_modules_import_no_converter_or_runtime(module: str) -> None:
    """Validating a recipe or starting a training loop must not pay seconds for converters it does not use
    (the bench worker imports only the runtime it measures, once it knows which)."""
    probe = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [], f"{module} imports {done.stdout.strip()}"
