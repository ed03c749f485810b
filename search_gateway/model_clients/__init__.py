"""How the gateway reaches its models: one interface (base.py), two
implementations: in-process wrappers (local.py, the embedded mode) and gRPC
stubs to the model services (remote.py)."""

from search_gateway.model_clients.base import (
    Captioner,
    Embedder,
    ImageCaptions,
    ImageVectors,
    ScoreBatch,
    Scorer,
)

__all__ = ["Captioner", "Embedder", "ImageCaptions", "ImageVectors", "ScoreBatch", "Scorer"]
