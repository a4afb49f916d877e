"""Python SDK: `Client` and `AsyncClient` for the rsim service (and the planner server's `plan`).

httpx is right here (one client per SDK object, reused); errors become exception classes by status.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from clients.errors import APIError, error_for
from planner_server.protocol import PlanResponse
from service.protocol import SolveResponse

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_PLANNER_URL = "http://127.0.0.1:8001"


def _raise_for(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    try:
        payload = resp.json()
    except ValueError:
        payload = resp.text
    raise error_for(resp.status_code, payload, resp.headers.get("x-request-id"))


def _solve_body(question: str, kw: dict[str, Any], stream: bool) -> dict[str, Any]:
    return {"question": question, **{k: v for k, v in kw.items() if v is not None}, "stream": stream}


def parse_sse_lines(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    event = "message"
    for line in lines:
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data = line[5:].strip()
            if data == "[DONE]":
                return
            yield event, json.loads(data)
        elif not line:
            event = "message"


def _check_event(event: str, data: dict[str, Any]) -> None:
    if event == "error":
        err = data.get("error", {})
        raise APIError(500, str(err.get("message")), type=err.get("type"), code=err.get("code"), body=data)


class Client:
    """Synchronous client. `Client(url, planner_url=..., timeout_s=...)`; use as a context manager."""

    def __init__(self, base_url: str = DEFAULT_URL, *, planner_url: str = DEFAULT_PLANNER_URL,
                 timeout_s: float = 600.0, api_key: str | None = None):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url, timeout=httpx.Timeout(timeout_s, connect=10.0), headers=headers)
        self.planner_url = planner_url.rstrip("/")

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def solve(self, question: str, **kw: Any) -> SolveResponse:
        resp = self.http.post("/solve", json=_solve_body(question, kw, False))
        _raise_for(resp)
        return SolveResponse.model_validate(resp.json())

    def solve_stream(self, question: str, **kw: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield (event, data) as they happen: strategy, delta, step_end, answer, usage, done."""
        with self.http.stream("POST", "/solve", json=_solve_body(question, kw, True)) as resp:
            if resp.status_code >= 400:
                resp.read()
                _raise_for(resp)
            for event, data in parse_sse_lines(resp.iter_lines()):
                _check_event(event, data)
                yield event, data

    def plan(self, question: str, steps: list[dict[str, str]] | None = None, **kw: Any) -> PlanResponse:
        resp = self.http.post(f"{self.planner_url}/v1/plan", json={"question": question, "steps": steps or [], **kw})
        _raise_for(resp)
        return PlanResponse.model_validate(resp.json())

    def strategies(self) -> dict[str, Any]:
        resp = self.http.get("/v1/strategies")
        _raise_for(resp)
        return resp.json()


class AsyncClient:
    """Asynchronous twin of `Client`."""

    def __init__(self, base_url: str = DEFAULT_URL, *, planner_url: str = DEFAULT_PLANNER_URL,
                 timeout_s: float = 600.0, api_key: str | None = None):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(timeout_s, connect=10.0),
                                      headers=headers)
        self.planner_url = planner_url.rstrip("/")

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    async def solve(self, question: str, **kw: Any) -> SolveResponse:
        resp = await self.http.post("/solve", json=_solve_body(question, kw, False))
        _raise_for(resp)
        return SolveResponse.model_validate(resp.json())

    async def solve_stream(self, question: str, **kw: Any) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        async with self.http.stream("POST", "/solve", json=_solve_body(question, kw, True)) as resp:
            if resp.status_code >= 400:
                await resp.aread()
                _raise_for(resp)
            event = "message"
            async for line in resp.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data = json.loads(line[5:].strip())
                    _check_event(event, data)
                    yield event, data
                elif not line:
                    event = "message"

    async def plan(self, question: str, steps: list[dict[str, str]] | None = None, **kw: Any) -> PlanResponse:
        resp = await self.http.post(f"{self.planner_url}/v1/plan",
                                    json={"question": question, "steps": steps or [], **kw})
        _raise_for(resp)
        return PlanResponse.model_validate(resp.json())

    async def strategies(self) -> dict[str, Any]:
        resp = await self.http.get("/v1/strategies")
        _raise_for(resp)
        return resp.json()
