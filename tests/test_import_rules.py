"""Imports go one way (issue 11): no import cycle between first-party files,
no service imports another service's package, product code never imports
training or evaluation code.

Checked statically over every `import` in the files (tests/import_graph.py:
module level and inside functions alike, only `if TYPE_CHECKING:` blocks left
out), so a lazy import cannot hide a dependency.
"""

from __future__ import annotations

import pytest

from tests import import_graph as g

# What each package may import besides itself.
ALLOWED: dict[str, set[str]] = {
    "imgsearch": set(),
    "offline_models": {"imgsearch"},
    "embedder_service": {"imgsearch", "offline_models"},
    "caption_service": {"imgsearch", "offline_models"},
    "search_gateway": {"imgsearch"},
}
# The few imports across those lines, each from inside a function only (so
# an image without the target still imports the module), and why.
EXCEPTIONS: dict[tuple[str, str], str] = {
    # Embedded mode runs the models in the gateway's process: the composition
    # root and the in-process clients construct the model classes.
    ("search_gateway.assemble", "embedder_service"): "in-process CLIP (embedded mode)",
    ("search_gateway.assemble", "caption_service"): "in-process BLIP (embedded mode)",
    ("search_gateway.model_clients", "caption_service"): "in-process BLIP (embedded mode)",
    # `imgsearch demo` draws its sample images with the scene generator.
    ("search_gateway.cli.demo", "offline_training"): "the demo's sample scenes",
}


def _product_modules() -> list[str]:
    return [
        m
        for package in g.PRODUCT_PACKAGES
        for m in g.modules_of(package)
        if not m.startswith(g.GENERATED)
    ]


def _exception_for(edge: g.Edge) -> str | None:
    target = edge.target.split(".")[0]
    for (source, package), reason in EXCEPTIONS.items():
        if target == package and (edge.source == source or edge.source.startswith(source + ".")):
            return reason
    return None


def test_the_graph_sees_lazy_imports_and_skips_type_checking_ones() -> None:
    edges = {(e.source, e.target): e for e in g.edges_of("search_gateway.assemble")}
    assert edges[("search_gateway.assemble", "embedder_service.model")].lazy
    local = {e.target for e in g.edges_of("search_gateway.model_clients.local")}
    assert "embedder_service.model" not in local  # only under TYPE_CHECKING there


def test_no_import_cycle_between_files() -> None:
    modules = _product_modules()
    modules += g.modules_of("offline_training") + g.modules_of("eval")
    assert g.cycles(modules) == []


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_cross_service_or_training_imports(package: str) -> None:
    allowed = ALLOWED[package] | {package}
    wrong = []
    for module in g.modules_of(package):
        if module.startswith(g.GENERATED):
            continue
        for edge in g.edges_of(module):
            if edge.target.split(".")[0] in allowed:
                continue
            if _exception_for(edge) is not None and edge.lazy:
                continue
            wrong.append(f"{edge.source}:{edge.line} imports {edge.target}")
    assert wrong == []


def test_every_exception_is_still_needed() -> None:
    used = set()
    for module in _product_modules():
        for edge in g.edges_of(module):
            for source, package in EXCEPTIONS:
                in_source = edge.source == source or edge.source.startswith(source + ".")
                if in_source and edge.target.split(".")[0] == package:
                    used.add((source, package))
    assert set(EXCEPTIONS) - used == set()
