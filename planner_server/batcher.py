"""Micro-batcher: coalesces concurrent decisions into one forward pass; its queue is bounded (L1)."""

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
    after the first item of a batch for more to arrive. A full queue raises `Overloaded` at once."""

    def __init__(self, run_batch: Callable[[list[T]], Awaitable[list[R]]], *, max_batch: int, max_wait_ms: float,
                 queue_size: int, timeout_s: float = 30.0,
                 on_batch: Callable[[int, float], None] | None = None, on_reject: Callable[[], None] | None = None):
        self.run_batch, self.max_batch, self.max_wait_s = run_batch, max_batch, max_wait_ms / 1000
        self.timeout_s, self.on_batch, self.on_reject = timeout_s, on_batch, on_reject
        self.queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self._running: asyncio.Event = asyncio.Event()  # set while no batch is in flight
        self._running.set()

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="planner-batcher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self.queue.empty():
            _, fut = self.queue.get_nowait()
            if not fut.done():
                fut.set_exception(NotReady("planner is shutting down"))

    async def wait_idle(self) -> None:
        """Return once the batch in flight (if any) has finished."""
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
            live = [(item, fut) for item, fut in batch if not fut.done()]
            if not live:
                continue
            t0 = time.perf_counter()
            self._running.clear()
            try:
                results = await self.run_batch([item for item, _ in live])
            except Exception as e:  # one failed forward fails its batch, not the loop
                log.exception("planner batch of %d failed", len(live))
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            finally:
                self._running.set()
            if self.on_batch:
                self.on_batch(len(live), time.perf_counter() - t0)
            for (_, fut), res in zip(live, results, strict=True):
                if not fut.done():
                    fut.set_result(res)
