"""Per-client limits: a request rate (token bucket) and a concurrency cap, keyed by the hash of the
client's API key (or its address when no keys are configured). Over a limit: 429 in the OpenAI
envelope with `Retry-After` and `x-ratelimit-*` headers, at once. Pure ASGI, so a streaming response
holds its concurrency slot until its last byte."""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import Overloaded

LIMITED_PREFIXES = ("/solve", "/v1/chat/completions")


@dataclass
class Bucket:
    tokens: float
    updated: float
    active: int = 0


@dataclass
class Limiter:
    requests_per_minute: int | None
    max_concurrent: int | None
    buckets: dict[str, Bucket] = field(default_factory=dict)

    def acquire(self, key: str, now: float) -> tuple[Bucket, dict[str, str]]:
        """Take one request of `key`'s budget, or raise Overloaded with the headers to send."""
        rpm = self.requests_per_minute
        b = self.buckets.setdefault(key, Bucket(tokens=float(rpm or 0), updated=now))
        headers: dict[str, str] = {}
        if rpm:
            b.tokens = min(rpm, b.tokens + (now - b.updated) * rpm / 60)
            b.updated = now
            headers = {"x-ratelimit-limit-requests": str(rpm)}
            if b.tokens < 1:
                wait = math.ceil((1 - b.tokens) * 60 / rpm)
                headers |= {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": f"{wait}s"}
                raise overloaded(f"rate limit of {rpm} requests per minute reached", wait, "rate_limit_exceeded",
                                 headers)
            b.tokens -= 1
            headers |= {"x-ratelimit-remaining-requests": str(int(b.tokens)),
                        "x-ratelimit-reset-requests": f"{math.ceil((rpm - b.tokens) * 60 / rpm)}s"}
        if self.max_concurrent and b.active >= self.max_concurrent:
            if rpm:
                b.tokens += 1  # a refused request does not spend the budget
            raise overloaded(f"at most {self.max_concurrent} concurrent requests per client", 1, "concurrency_limit",
                             headers)
        b.active += 1
        return b, headers


def overloaded(message: str, retry_after_s: int, code: str, headers: dict[str, str]) -> Overloaded:
    e = Overloaded(message, retry_after_s=retry_after_s, code=code)
    e.headers |= headers
    return e


def client_key(scope: Scope) -> str:
    for k, v in scope.get("headers", ()):
        if k == b"authorization":
            return hashlib.sha256(v.removeprefix(b"Bearer ").strip()).hexdigest()
    client = scope.get("client")
    return f"addr:{client[0] if client else '?'}"


class LimitsMiddleware:
    def __init__(self, app: ASGIApp, limiter: Limiter):
        self.app, self.limiter = app, limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(LIMITED_PREFIXES):
            await self.app(scope, receive, send)
            return
        try:
            bucket, headers = self.limiter.acquire(client_key(scope), time.monotonic())
        except Overloaded as e:
            body = json.dumps(e.envelope()).encode()
            await send({"type": "http.response.start", "status": 429,
                        "headers": [(b"content-type", b"application/json"),
                                    *((k.lower().encode(), v.encode()) for k, v in e.headers.items())]})
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      *((k.encode(), v.encode()) for k, v in headers.items())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            bucket.active -= 1
