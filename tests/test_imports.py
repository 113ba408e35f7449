"""The import rules of the house, read from the source (no module is imported):

- a service's ``service_layer`` never reaches for the speed tricks that live in adapters: the
  consumers' write buffer (``rx_messaging.buffer``), the raw statement runner
  (``rx_messaging.fastsql``), a database driver (sqlite3, psycopg…) or raw SQL (``text()``, the
  driver's own connection); handlers get those through a repository or the unit of work;
- no two modules of the project import each other, directly or round a longer loop — at any
  depth (module top, a function's body, ``TYPE_CHECKING`` blocks alike), since each of those is
  a knot a reader has to untie.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE_ROOTS = sorted(
    p
    for pattern in ("contracts/src", "libs/*/src", "tools/*/src", "services/*/src")
    for p in ROOT.glob(pattern)
)

FORBIDDEN_MODULES = {
    "rx_messaging.buffer": "the consumers' write buffer",
    "rx_messaging.fastsql": "raw driver calls",
    "sqlite3": "a database driver",
    "psycopg": "a database driver",
    "psycopg2": "a database driver",
    "asyncpg": "a database driver",
}
FORBIDDEN_NAMES = {
    # name imported from any module → why it is an adapter's business
    "text": "raw SQL",
    "write_buffer": "the consumers' write buffer",
    "queue_outbox": "the consumers' write buffer",
    "WriteBuffer": "the consumers' write buffer",
}
FORBIDDEN_ATTRIBUTES = {
    "exec_driver_sql": "raw SQL",
    "dbapi_connection": "the driver's own connection",
    "driver_connection": "the driver's own connection",
}


@dataclass(frozen=True)
class Import:
    line: int
    module: str
    """The absolute module named (``a.b`` for ``from a.b import c``)."""
    names: tuple[str, ...]
    """The names taken from it (empty for ``import a.b``)."""


def module_name(path: Path) -> str:
    root = next(r for r in SOURCE_ROOTS if path.is_relative_to(r))
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> Iterator[Import]:
    """Every import statement in the file, wherever it stands, with relative ones resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(node.lineno, alias.name, ())
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield Import(node.lineno, base, tuple(alias.name for alias in node.names))


def project_files() -> list[Path]:
    return sorted(f for root in SOURCE_ROOTS for f in root.rglob("*.py"))


SERVICE_LAYER_FILES = sorted(ROOT.glob("services/*/src/*/service_layer/**/*.py"))


def test_every_service_has_a_service_layer() -> None:
    """The rule below must have something to look at in each service with domain logic."""
    services = {f.relative_to(ROOT).parts[1] for f in SERVICE_LAYER_FILES}
    assert {"referrals", "routing", "audit"} <= services


@pytest.mark.parametrize(
    "path", SERVICE_LAYER_FILES, ids=lambda p: str(p.relative_to(ROOT / "services"))
)
def test_service_layer_uses_no_write_buffer_or_raw_driver(path: Path) -> None:
    found = []
    for imp in imports(path):
        for module, why in FORBIDDEN_MODULES.items():
            named = {imp.module, *(f"{imp.module}.{n}" for n in imp.names)}
            if any(m == module or m.startswith(module + ".") for m in named):
                found.append(f"line {imp.line}: imports {module} ({why})")
        for name in imp.names:
            if name in FORBIDDEN_NAMES:
                found.append(
                    f"line {imp.line}: imports {name} from {imp.module} ({FORBIDDEN_NAMES[name]})"
                )
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
            found.append(f"line {node.lineno}: .{node.attr} ({FORBIDDEN_ATTRIBUTES[node.attr]})")
    assert not found, "the service layer reaches past its adapters:\n" + "\n".join(found)


def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports. ``from package import name`` counts as an
    import of ``package.name`` when that is a module, else of ``package`` itself."""
    files = project_files()
    modules = {module_name(f) for f in files}
    graph: dict[str, set[str]] = {}
    for path in files:
        source = module_name(path)
        targets: set[str] = set()
        for imp in imports(path):
            candidates = [f"{imp.module}.{n}" for n in imp.names] or [imp.module]
            for candidate in candidates:
                # The module itself, or the nearest enclosing module of the project.
                while candidate and candidate not in modules:
                    candidate = candidate.rpartition(".")[0]
                if candidate and candidate != source:
                    targets.add(candidate)
        graph[source] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_import_cycle_finder_finds_a_cycle() -> None:
    """The finder itself: a loop of three is found, a chain is not."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_graph_sees_relative_and_package_imports() -> None:
    """A few imports known to exist, read the way the cycle check reads them."""
    graph = import_graph()
    assert "referrals.domain.model" in graph["referrals.service_layer.handlers"]
    assert "rx_messaging.buffer" in graph["rx_messaging.outbox"]


def test_no_import_cycles() -> None:
    knots = cycles(import_graph())
    assert not knots, "modules that import each other:\n" + "\n".join(
        " ↔ ".join(knot) for knot in knots
    )


def test_no_import_cycles_between_packages() -> None:
    """The same at the level of packages (rx_contracts, rx_web, rx_messaging, referrals, …):
    a loop there would tie two installable packages together even with no module-level loop."""
    packages: dict[str, set[str]] = {}
    for module, targets in import_graph().items():
        top = module.partition(".")[0]
        packages.setdefault(top, set()).update(t.partition(".")[0] for t in targets)
        packages[top].discard(top)
    knots = cycles(packages)
    assert not knots, "packages that import each other:\n" + "\n".join(
        " ↔ ".join(knot) for knot in knots
    )


def test_services_never_import_each_other() -> None:
    """Services talk through Kafka events and HTTP; what they share lives in contracts/ and
    libs/."""
    services = {p.name for p in (ROOT / "services").iterdir() if (p / "src").is_dir()}
    found = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in targets
        if module.partition(".")[0] in services
        and target.partition(".")[0] in services - {module.partition(".")[0]}
    ]
    assert not found, "\n".join(found)
