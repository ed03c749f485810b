"""CLIP embedder: the in-process model wrapper (`ClipEmbedder`) and the gRPC
service around it (`python -m embedder_service`)."""

from embedder_service.model import ClipEmbedder, EmbedderModelInfo

__all__ = ["ClipEmbedder", "EmbedderModelInfo"]
