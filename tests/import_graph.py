"""The first-party import graph of the tree, read statically with `ast`.

Used by tests/test_import_rules.py (no cycles, no cross-service imports) and
tests/test_deploy_docker.py (what each image's entry point can reach). Every
`import` / `from ... import` of a first-party module counts, at module level
or inside a function ("lazy": it runs when the function does), except those
under `if TYPE_CHECKING:`, which never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The packages that make up the product (what the images are built from).
PRODUCT_PACKAGES = (
    "imgsearch",
    "embedder_service",
    "caption_service",
    "search_gateway",
    "offline_models",
)
# Generated gRPC/protobuf code: not ours to shape.
GENERATED = ("imgsearch.v1",)


@dataclass(frozen=True)
class Edge:
    """`source` imports `target` at `line`; `lazy` when inside a function body."""

    source: str
    target: str
    line: int
    lazy: bool


def first_party() -> set[str]:
    """Top-level packages of the repository (folders with an __init__.py)."""
    return {p.parent.name for p in ROOT.glob("*/__init__.py")}


def module_file(name: str) -> Path | None:
    """The file of a first-party module, or None when there is none."""
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def modules_of(package: str) -> list[str]:
    """Every module of a first-party package, the package itself first."""
    names = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, lazy: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _walk(other, lazy)
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, lazy
        inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        yield from _walk(child, inner)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


@cache
def edges_of(module: str) -> tuple[Edge, ...]:
    """The first-party imports written in `module` (targets are modules with a file)."""
    path = module_file(module)
    if path is None:
        return ()
    ours = first_party()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Edge] = []
    for node, lazy in _walk(tree, False):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = _resolve(module, path.name == "__init__.py", node)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                # `from pkg import mod` imports the submodule; `from mod import name` the module.
                targets.append(sub if module_file(sub) is not None else base)
        for target in targets:
            if target.split(".")[0] in ours and module_file(target) is not None:
                found.append(Edge(module, target, node.lineno, lazy))
    return tuple(found)


def parents(module: str) -> list[str]:
    """The packages Python imports before `module` ("a.b.c" -> ["a", "a.b"])."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def closure(
    start: Iterable[str], follow: Iterable[Edge] | None = None, skip: frozenset[str] = frozenset()
) -> tuple[set[str], list[Edge]]:
    """Every module reachable from `start` (with the packages above each), and
    the edges taken. An edge whose target's top-level package is in `skip` is
    not followed (returned in the second value instead)."""
    seen: set[str] = set()
    skipped: list[Edge] = []
    todo = list(start)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(parents(module))
        for edge in edges_of(module):
            if edge.target.split(".")[0] in skip:
                skipped.append(edge)
            else:
                todo.append(edge.target)
    return seen, skipped


def cycles(modules: Iterable[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), over
    the import edges among `modules` (module level and lazy alike)."""
    nodes = sorted(set(modules))
    graph = {m: sorted({e.target for e in edges_of(m) if e.target in nodes}) for m in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in nodes:
        if node not in index:
            visit(node)
    return found
