"""Decoding a request's images in a thread pool, keeping the bad ones apart.

Every image path (embedder, captioner, the gateway's in-process embedder)
decodes a list of untrusted files concurrently and must report which ones
failed without losing the rest; that logic lives here once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from imgsearch.errors import InvalidInput
from imgsearch.images import ImageDecodeError

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Decoded(Generic[T]):
    """Pre-processed items by request index, and the reason per failed index."""

    good: list[tuple[int, T]] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)

    def raise_first_error(self) -> None:
        """INVALID_ARGUMENT naming the first bad image, as the protos document."""
        if self.errors:
            index = min(self.errors)
            reason = self.errors[index]
            more = f" (and {len(self.errors) - 1} more bad images)" if len(self.errors) > 1 else ""
            raise InvalidInput(f"image[{index}]: {reason}{more}")


async def decode_all(
    pool: Executor, preprocess: Callable[[bytes], T], images: Sequence[bytes]
) -> Decoded[T]:
    """Runs `preprocess` over every image in `pool` (never on the event loop).

    ImageDecodeError marks that image bad; any other exception is a fault
    and propagates.
    """
    loop = asyncio.get_running_loop()
    results = await asyncio.gather(
        *(loop.run_in_executor(pool, preprocess, data) for data in images),
        return_exceptions=True,
    )
    out: Decoded[T] = Decoded()
    for i, item in enumerate(results):
        if isinstance(item, ImageDecodeError):
            out.errors[i] = str(item)
        elif isinstance(item, BaseException):
            raise item
        else:
            out.good.append((i, item))
    return out


def decode_each(preprocess: Callable[[bytes], T], images: Sequence[bytes]) -> Decoded[T]:
    """decode_all's synchronous sibling, for the models' in-process conveniences."""
    out: Decoded[T] = Decoded()
    for i, data in enumerate(images):
        try:
            out.good.append((i, preprocess(data)))
        except ImageDecodeError as exc:
            out.errors[i] = str(exc)
    return out


def in_batches(
    good: Sequence[tuple[int, T]], run: Callable[[list[T]], Iterable[R]], batch_size: int
) -> Iterator[tuple[int, R]]:
    """(request index, result) for every decoded item, `run` taking `batch_size` at a time."""
    for start in range(0, len(good), batch_size):
        chunk = good[start : start + batch_size]
        yield from zip((i for i, _ in chunk), run([t for _, t in chunk]), strict=True)
