"""Vector stores behind one interface, so handlers never see an engine's client."""

from search_gateway.store.base import ScrollPage, VectorStore, iter_points

__all__ = ["ScrollPage", "VectorStore", "iter_points"]
