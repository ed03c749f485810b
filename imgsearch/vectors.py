"""The wire encoding of vectors: little-endian float32 bytes (see common.proto)."""

from __future__ import annotations

import numpy as np

_LE_F32 = np.dtype("<f4")


def encode(vector: np.ndarray) -> bytes:
    """One vector to its wire bytes."""
    return np.ascontiguousarray(vector, dtype=_LE_F32).tobytes()


def decode(data: bytes, dimension: int) -> np.ndarray:
    """Wire bytes to a float32 vector, checking the length."""
    if len(data) != dimension * 4:
        raise ValueError(f"vector has {len(data)} bytes, expected {dimension * 4}")
    return np.frombuffer(data, dtype=_LE_F32).astype(np.float32)


def decode_rows(rows: list[bytes], dimension: int) -> np.ndarray:
    """A list of wire vectors to an (n, dimension) float32 array."""
    if not rows:
        return np.zeros((0, dimension), dtype=np.float32)
    return np.stack([decode(r, dimension) for r in rows])


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows (or one vector) scaled to unit length, as float32: the form every
    stored and searched vector has. Zero rows stay zero. Tests and benchmarks
    make their synthetic vectors with it (one helper, not one per file)."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
