"""DynamicBatcher: announced items fill a batch; nothing announced, nothing waited for."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable

from imgsearch.serving.batching import DynamicBatcher


def _batcher(fill_wait_s: float, sizes: list[int]) -> DynamicBatcher[int, int]:
    def run(items: list[int], _key: Hashable) -> list[int]:
        sizes.append(len(items))
        return [i * 10 for i in items]

    return DynamicBatcher(
        run, max_batch_size=8, max_wait_s=0.001, max_queue=64, max_fill_wait_s=fill_wait_s
    )


async def _client(
    batcher: DynamicBatcher[int, int], i: int, decode_s: float, announce: bool
) -> list[int]:
    """One single-item request whose item takes `decode_s` to prepare."""
    incoming = batcher.expect(1) if announce else None
    try:
        await asyncio.sleep(decode_s)
        return await batcher.submit([i], incoming=incoming)
    finally:
        if incoming is not None:
            incoming.release()


async def _eight_clients(announce: bool) -> list[int]:
    sizes: list[int] = []
    batcher = _batcher(fill_wait_s=2.0, sizes=sizes)
    batcher.start()
    # Decodes finish over 80 ms, far beyond max_wait (1 ms).
    got = await asyncio.gather(*(_client(batcher, i, 0.01 * i, announce) for i in range(8)))
    assert [r[0] for r in got] == [i * 10 for i in range(8)]
    await batcher.close()
    return sizes


async def test_announced_items_fill_one_batch() -> None:
    assert await _eight_clients(announce=True) == [8]


async def test_without_announcing_the_batch_leaves_early() -> None:
    # The control for the test above: the same load without `expect` splits.
    assert len(await _eight_clients(announce=False)) > 1


async def test_dropped_announcement_stops_the_wait() -> None:
    sizes: list[int] = []
    batcher = _batcher(fill_wait_s=5.0, sizes=sizes)
    batcher.start()
    lost = batcher.expect(1)  # a request whose image will turn out bad
    started = time.perf_counter()
    pending = asyncio.ensure_future(batcher.submit([1], incoming=batcher.expect(1)))
    await asyncio.sleep(0.05)
    assert batcher.incoming == 1 and not pending.done()  # still waiting for the other
    lost.release()
    assert await pending == [10]
    assert time.perf_counter() - started < 2.0, "waited for the fill deadline, not the release"
    assert batcher.incoming == 0 and sizes == [1]
    await batcher.close()


async def test_full_batch_does_not_wait_for_more() -> None:
    sizes: list[int] = []
    batcher = _batcher(fill_wait_s=5.0, sizes=sizes)
    batcher.start()
    more = batcher.expect(4)  # announced, never sent
    started = time.perf_counter()
    assert await batcher.submit(list(range(8))) == [i * 10 for i in range(8)]
    assert time.perf_counter() - started < 2.0 and sizes == [8]
    more.release()
    await batcher.close()


async def test_fill_wait_follows_the_batch_run_time() -> None:
    """Slow batches (a loaded CPU, a big model) make waiting for decodes worth
    longer than the fixed minimum: half a recent batch's run time."""
    sizes: list[int] = []

    def slow(items: list[int], _key: Hashable) -> list[int]:
        time.sleep(0.4)
        sizes.append(len(items))
        return items

    batcher: DynamicBatcher[int, int] = DynamicBatcher(
        slow, max_batch_size=4, max_wait_s=0.001, max_queue=64, max_fill_wait_s=0.01
    )
    batcher.start()
    await batcher.submit([0, 1, 2, 3])  # one batch teaches it a run time of ~0.4 s
    got = await asyncio.gather(*(_client(batcher, i, 0.05 * i, True) for i in range(4)))
    assert got == [[0], [1], [2], [3]]
    assert sizes == [4, 4], "waited only the fixed 10 ms for images 0.15 s away"
    await batcher.close()


async def _closed_loop(fill_wait_s: float, rounds: int = 6) -> list[int]:
    """8 clients, each sending its next item 0-70 ms (its own network delay)
    after the last one was answered, announcing nothing."""
    sizes: list[int] = []

    def run(items: list[int], _key: Hashable) -> list[int]:
        time.sleep(0.05)
        sizes.append(len(items))
        return items

    batcher: DynamicBatcher[int, int] = DynamicBatcher(
        run, max_batch_size=8, max_wait_s=0.001, max_queue=64, max_fill_wait_s=fill_wait_s
    )
    batcher.start()

    async def client(i: int) -> None:
        for _ in range(rounds):
            await asyncio.sleep(0.01 * i)
            assert await batcher.submit([i]) == [i]

    await asyncio.gather(*(client(i) for i in range(8)))
    await batcher.close()
    return sizes


async def test_clients_of_the_last_batch_are_expected_back() -> None:
    with_fill = await _closed_loop(fill_wait_s=1.0)
    without = await _closed_loop(fill_wait_s=0.0)
    # After the first round the loop settles into full batches (the very end
    # is not steady state: the clients do not finish at once).
    assert sum(with_fill) == sum(without) == 48
    assert with_fill.count(8) >= 4, with_fill
    assert len(with_fill) < len(without), (with_fill, without)


async def test_one_sequential_client_after_a_big_batch_is_not_held() -> None:
    """A batch of 8 from one request must not make every later single-item
    call wait for 8 clients that never existed."""
    sizes: list[int] = []
    batcher = _batcher(fill_wait_s=0.5, sizes=sizes)
    batcher.start()
    await batcher.submit(list(range(8)))
    started = time.perf_counter()
    for i in range(5):
        assert await batcher.submit([i], incoming=batcher.expect(1)) == [i * 10]
    # At most one bounded wait (0.5 s), not one per call.
    assert time.perf_counter() - started < 1.5
    await batcher.close()


async def test_halves_merge_once_the_model_is_free() -> None:
    """Half the clients arrive while the other half's batch runs. Their head
    has waited the whole run, but the fill wait counts from when the model
    went idle, so the returning half joins them: full batches, not halves."""
    sizes: list[int] = []

    def run(items: list[int], _key: Hashable) -> list[int]:
        time.sleep(0.3)
        sizes.append(len(items))
        return items

    batcher: DynamicBatcher[int, int] = DynamicBatcher(
        run, max_batch_size=8, max_wait_s=0.001, max_queue=64, max_fill_wait_s=0.01
    )
    batcher.start()

    async def client(i: int) -> None:
        await asyncio.sleep(0.1 if i >= 4 else 0.0)
        for _ in range(4):
            assert await batcher.submit([i], incoming=batcher.expect(1)) == [i]

    await asyncio.gather(*(client(i) for i in range(8)))
    await batcher.close()
    assert sum(sizes) == 32 and sizes[1:-1] == [8, 8, 8], sizes  # the ends: start, drain
