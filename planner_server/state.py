"""What the planner server's lifespan owns, and the `Annotated` dependency that hands it to routes (L2)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from planner_server.backends import PlanItem, PlannerBackend
from planner_server.batcher import MicroBatcher
from planner_server.metrics import PlannerMetrics
from planner_server.settings import PlannerSettings
from service.catalog import Catalog
from service.errors import NotReady


@dataclass
class PlannerState:
    settings: PlannerSettings
    catalog: Catalog
    metrics: PlannerMetrics
    backend: PlannerBackend | None = None
    batcher: MicroBatcher[PlanItem, list[float]] | None = None
    load_error: str | None = None
    loading: asyncio.Task | None = field(default=None, repr=False)
    watcher: asyncio.Task | None = field(default=None, repr=False)
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def label_logits(self, items: list[PlanItem]) -> list[list[float]]:
        """The batcher's forward: reads the current backend at each batch, so a reload swaps cleanly."""
        assert self.backend is not None
        return await self.backend.label_logits(items)

    def ready_batcher(self) -> MicroBatcher[PlanItem, list[float]]:
        if self.batcher is None or self.backend is None:
            raise NotReady(self.load_error or "planner model is still loading")
        return self.batcher


async def get_state(request: Request) -> PlannerState:
    return request.app.state.planner


State = Annotated[PlannerState, Depends(get_state)]
