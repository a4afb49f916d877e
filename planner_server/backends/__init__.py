"""Planner backends: each turns (question, steps) items into logits over the catalog's labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from planner_server.protocol import PlanStep
from planner_server.settings import PlannerSettings
from service.catalog import Catalog


@dataclass(frozen=True)
class PlanItem:
    question: str
    steps: Sequence[PlanStep]
    tokens: dict[str, int] = field(default_factory=dict, compare=False)  # the backend's count: prompt, completion


class PlannerBackend(Protocol):
    version: str
    # a checkpoint trained on step values (its manifest's serving.gate): τ turns its probabilities into gains
    # over quiet, and the margin its gate was calibrated with; None for any other planner
    value_scale: float | None
    gate_margin: float | None

    async def label_logits(self, items: list[PlanItem]) -> list[list[float]]:
        """One list of len(catalog) logits per item (−inf allowed), in one batched call."""
        ...

    async def close(self) -> None: ...


async def start_backend(settings: PlannerSettings, catalog: Catalog) -> PlannerBackend:
    """Build the configured backend off the event loop, then, for a backend whose first request is slow
    (vllm), send that request before it serves; a backend that fails to warm up is closed."""
    import asyncio

    backend = await asyncio.to_thread(build_backend, settings, catalog)
    try:
        if hasattr(backend, "warm_up"):
            await backend.warm_up()
    except BaseException:
        await backend.close()
        raise
    return backend


def build_backend(settings: PlannerSettings, catalog: Catalog) -> PlannerBackend:
    """Construct the configured backend (blocking: loads the model). Heavy imports happen here only."""
    if settings.backend == "hf":
        from planner_server.backends.hf import HFBackend

        return HFBackend.from_settings(settings, catalog)
    if settings.backend == "vllm":
        from planner_server.backends.vllm import VLLMBackend

        return VLLMBackend.from_settings(settings, catalog)
    from planner_server.backends.prompted import PromptedBackend

    return PromptedBackend.from_settings(settings, catalog)


class BackendPlanner:
    """A backend used in-process as the orchestrator's planner (evaluation: no server in between)."""

    def __init__(self, backend: PlannerBackend, catalog: Catalog):
        self.backend, self.catalog = backend, catalog

    async def plan(self, req, *, request_id: str | None = None):
        from planner_server.decision import decide
        from planner_server.protocol import PlanResponse

        item = PlanItem(req.question, req.steps)
        logits = (await self.backend.label_logits([item]))[0]
        d = decide(logits, temperature=req.temperature, forbidden=[self.catalog.index(s) for s in req.forbid])
        return PlanResponse.of(d, self.catalog.ids, planner_version=self.backend.version,
                               catalog_version=self.catalog.version, latency_ms=0.0,
                               tokens=sum(item.tokens.values()) if item.tokens else None,
                               value_scale=getattr(self.backend, "value_scale", None),
                               margin=getattr(self.backend, "gate_margin", None))
