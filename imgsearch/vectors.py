"""The wire encoding of vectors: little-endian float32 bytes (see common.proto)."""

from __future__ import annotations

import numpy as np

_LE_F32 = np.dtype("<f4")


def encode(vector: np.ndarray) -> bytes:
    """One vector to its wire bytes."""
    return np.ascontiguousarray(vector, dtype=_LE_F32).tobytes()


def encode_rows(matrix: np.ndarray) -> list[bytes]:
    """Each row of a 2-D array to wire bytes."""
    m = np.ascontiguousarray(matrix, dtype=_LE_F32)
    return [row.tobytes() for row in m]


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


def l2_normalise(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)
