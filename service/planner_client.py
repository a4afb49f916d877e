"""Client of the planner server over HTTP (L1). Any failure to get a decision is `PlannerUnavailable` —
`PlannerLate` when it is only late (a timeout, the planner's own 504) — except the planner's own 4xx (bad
ids) and 429 (its queue is full), which keep their meaning."""

from __future__ import annotations

import asyncio
from typing import Protocol

import aiohttp

from service.plan_protocol import PlanRequest, PlanResponse
from service.errors import InvalidRequest, Overloaded, PlannerLate, PlannerUnavailable


class Planner(Protocol):
    async def plan(self, req: PlanRequest, *, request_id: str | None = None) -> PlanResponse: ...


class NoPlanner:
    """The planner of episodes that never ask one: a forced strategy (`fixed:<strategy>`), a prompt baseline,
    GRPO on the reasoner alone."""

    async def plan(self, req: PlanRequest, *, request_id: str | None = None) -> PlanResponse:
        raise AssertionError("an episode without a planner asked the planner")  # pragma: no cover


class HttpPlanner:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, *, timeout_s: float = 30.0):
        self.session, self.base_url = session, base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def plan(self, req: PlanRequest, *, request_id: str | None = None) -> PlanResponse:
        headers = {"X-Request-Id": request_id} if request_id else None
        try:
            async with self.session.post(f"{self.base_url}/v1/plan", data=req.model_dump_json(exclude_defaults=True),
                                         headers={"Content-Type": "application/json", **(headers or {})},
                                         timeout=self.timeout) as resp:
                body = await resp.read()
                status = resp.status
        except asyncio.TimeoutError as e:
            raise PlannerLate(f"no decision from the planner at {self.base_url} in {self.timeout.total:g} s") from e
        except aiohttp.ClientError as e:
            raise PlannerUnavailable(f"planner unreachable at {self.base_url}: {e.__class__.__name__}") from e
        if status == 200:
            return PlanResponse.model_validate_json(body)
        message = f"planner answered {status}: {body[:300].decode('utf-8', 'replace')}"
        if status == 429:
            raise Overloaded(message)
        if 400 <= status < 500:
            raise InvalidRequest(message)
        if status == 504:
            raise PlannerLate(message)
        raise PlannerUnavailable(message)

    async def ready(self) -> bool:
        try:
            async with self.session.get(f"{self.base_url}/ready", timeout=aiohttp.ClientTimeout(total=2)) as r:
                return r.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False
