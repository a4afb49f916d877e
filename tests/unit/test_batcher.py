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


@pytest.mark.parametrize("max_in_flight", [1, 3])
async def test_batches_in_flight_are_bounded_and_the_next_batch_forms_when_a_slot_frees(max_in_flight):
    """Issue 12 §3: the vllm backend takes several batches at once (its engine schedules them); the hf
    backend keeps one forward at a time. A batch forms only once a slot is free, so with one slot the next
    batch takes everything that queued meanwhile (not just what arrived in its wait window)."""
    gate = asyncio.Event()
    running, batches = 0, []
    peak = 0

    async def run(items: list[int]) -> list[int]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        batches.append(sorted(items))
        await gate.wait()
        running -= 1
        return items

    b = MicroBatcher(run, max_batch=2, max_wait_ms=1, queue_size=64, max_in_flight=max_in_flight)
    b.start()
    try:
        futs = []
        for i in range(8):
            futs.append(asyncio.ensure_future(b.submit(i)))
            await asyncio.sleep(0.02)  # one at a time: each would be a batch of its own if a slot were free
        assert running == peak == max_in_flight and b.in_flight == max_in_flight
        idle = asyncio.ensure_future(b.wait_idle())
        await asyncio.sleep(0.01)
        assert not idle.done()  # a reload waits for every batch in flight
        gate.set()
        assert await asyncio.gather(*futs) == list(range(8))
        await asyncio.wait_for(idle, 1)
    finally:
        await b.stop()
    assert peak == max_in_flight
    assert batches[:max_in_flight] == [[i] for i in range(max_in_flight)]
    assert batches[max_in_flight] == [max_in_flight, max_in_flight + 1]  # queued meanwhile: a full batch


async def test_stop_fails_the_batches_in_flight_instead_of_leaving_callers_waiting():
    async def run(items: list[int]) -> list[int]:
        await asyncio.sleep(60)
        return items

    b = MicroBatcher(run, max_batch=1, max_wait_ms=0, queue_size=8, max_in_flight=2, timeout_s=30)
    b.start()
    futs = [asyncio.ensure_future(b.submit(i)) for i in range(3)]
    await asyncio.sleep(0.05)
    assert b.in_flight == 2
    await asyncio.wait_for(b.stop(), 2)
    for f in futs:
        with pytest.raises(Exception, match="shutting down"):
            await asyncio.wait_for(f, 1)
