import asyncio

import pytest

from planner_server.batcher import MicroBatcher
from service.errors import Overloaded


async def test_concurrent_requests_share_one_batch():
    batches: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        batches.append(items)
        await asyncio.sleep(0.01)
        return [x * 10 for x in items]

    b = MicroBatcher(run, max_batch=8, max_wait_ms=50, queue_size=64)
    b.start()
    try:
        results = await asyncio.gather(*(b.submit(i) for i in range(8)))
    finally:
        await b.stop()
    assert results == [i * 10 for i in range(8)]
    assert len(batches) == 1 and sorted(batches[0]) == list(range(8))


async def test_max_batch_splits_and_full_queue_refuses_at_once():
    gate = asyncio.Event()
    sizes: list[int] = []

    async def run(items: list[int]) -> list[int]:
        sizes.append(len(items))
        await gate.wait()
        return items

    rejected = []
    b = MicroBatcher(run, max_batch=2, max_wait_ms=1, queue_size=3, on_reject=lambda: rejected.append(1))
    b.start()
    try:
        first = [asyncio.ensure_future(b.submit(i)) for i in range(2)]
        await asyncio.sleep(0.05)  # the first batch of 2 is now running and blocked
        queued = [asyncio.ensure_future(b.submit(i)) for i in range(2, 5)]
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded) as exc:
            await b.submit(99)
        assert exc.value.status_code == 429 and exc.value.headers["Retry-After"] == "1"
        assert rejected == [1]  # rsim_planner_rejected_total counts it (it was never incremented: issue 12)
        gate.set()
        assert await asyncio.gather(*first, *queued) == [0, 1, 2, 3, 4]
    finally:
        await b.stop()
    assert max(sizes) == 2


async def test_a_failed_batch_fails_its_callers_not_the_loop():
    calls = 0

    async def run(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return items

    b = MicroBatcher(run, max_batch=4, max_wait_ms=1, queue_size=8)
    b.start()
    try:
        with pytest.raises(RuntimeError, match="boom"):
            await b.submit(1)
        assert await b.submit(2) == 2
    finally:
        await b.stop()
