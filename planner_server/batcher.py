"""Micro-batcher: coalesces concurrent decisions into one forward pass; its queue is bounded (L1). A backend
that schedules requests itself (the vLLM engine) takes several batches at once (`max_in_flight`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from service.errors import NotReady, Overloaded, UpstreamTimeout

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger("rsim.planner.batcher")


class MicroBatcher(Generic[T, R]):
    """`await submit(item)` → result of `run_batch([... item ...])`; waits at most `max_wait_ms`
    after the first item of a batch for more to arrive. A full queue raises `Overloaded` at once. At most
    `max_in_flight` batches run at a time; a batch is formed only once a slot is free, so with one slot the
    next batch takes everything that queued during the forward in flight."""

    def __init__(self, run_batch: Callable[[list[T]], Awaitable[list[R]]], *, max_batch: int, max_wait_ms: float,
                 queue_size: int, timeout_s: float = 30.0, max_in_flight: int = 1,
                 on_batch: Callable[[int, float], None] | None = None, on_reject: Callable[[], None] | None = None):
        self.run_batch, self.max_batch, self.max_wait_s = run_batch, max_batch, max_wait_ms / 1000
        self.timeout_s, self.on_batch, self.on_reject = timeout_s, on_batch, on_reject
        self.max_in_flight = max_in_flight
        self.queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._running: asyncio.Event = asyncio.Event()  # set while no batch is in flight
        self._running.set()

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="planner-batcher")

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def stop(self) -> None:
        for task in [self._task, *self._in_flight]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        while not self.queue.empty():
            _, fut = self.queue.get_nowait()
            if not fut.done():
                fut.set_exception(NotReady("planner is shutting down"))

    async def wait_idle(self) -> None:
        """Return once the batches in flight (if any) have finished."""
        await self._running.wait()

    async def submit(self, item: T) -> R:
        if self._task is None or self._task.done():
            raise NotReady("planner batcher is not running")
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait((item, fut))
        except asyncio.QueueFull:
            if self.on_reject is not None:
                self.on_reject()
            raise Overloaded(f"planner queue is full ({self.queue.maxsize} waiting)", retry_after_s=1) from None
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.timeout_s)
        except asyncio.TimeoutError:
            fut.cancel()
            raise UpstreamTimeout(f"planner decision took longer than {self.timeout_s:g} s") from None

    async def _loop(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                batch = await self._collect()
            except BaseException:
                self._slots.release()
                raise
            live = [(item, fut) for item, fut in batch if not fut.done()]
            if not live:
                self._slots.release()
                continue
            self._running.clear()
            task = asyncio.create_task(self._run(live), name="planner-batch")
            self._in_flight.add(task)
            task.add_done_callback(self._finished)

    async def _collect(self) -> list[tuple[T, asyncio.Future[R]]]:
        batch = [await self.queue.get()]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                while len(batch) < self.max_batch and not self.queue.empty():
                    batch.append(self.queue.get_nowait())
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return batch

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slots.release()
        if not self._in_flight:
            self._running.set()

    async def _run(self, live: list[tuple[T, asyncio.Future[R]]]) -> None:
        t0 = time.perf_counter()
        try:
            results = await self.run_batch([item for item, _ in live])
        except asyncio.CancelledError:
            for _, fut in live:
                if not fut.done():
                    fut.set_exception(NotReady("planner is shutting down"))
            raise
        except Exception as e:  # one failed forward fails its batch, not the loop
            log.exception("planner batch of %d failed", len(live))
            for _, fut in live:
                if not fut.done():
                    fut.set_exception(e)
            return
        if self.on_batch:
            self.on_batch(len(live), time.perf_counter() - t0)
        for (_, fut), res in zip(live, results, strict=True):
            if not fut.done():
                fut.set_result(res)
