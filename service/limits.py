"""Per-client limits: a request rate (token bucket) and a concurrency cap, keyed by the hash of the
client's API key, or by its address when no keys are configured (an anonymous caller's made-up
`Authorization` never buys it a fresh bucket). Over a limit: 429 in the OpenAI
envelope with `Retry-After` and `x-ratelimit-*` headers, at once. Pure ASGI, so a streaming response
holds its concurrency slot until its last byte.

The state is bounded: an entry idle for a minute (its bucket full again, no request in flight) is
dropped, and when API keys are configured every key that is not one of them shares one entry (they are
refused with 401 anyway), so made-up keys cannot grow it. With `RSIM_REDIS_URL` the state lives in Redis
and every service replica holding that URL enforces one limit together: each decision is one Lua script
run atomically on the Redis server, on the Redis server's clock; entries expire there, and a request still
running renews its client's entry every third of the expiry, so a long episode's slot is never forgotten.
Every path is limited but the probes and the service's own pages (`UNLIMITED_PATHS`)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import NotReady, Overloaded

# every request is limited but the probes and the pages about the service (issue 29: the forwarded paths were not)
UNLIMITED_PATHS = frozenset({"/health", "/ready", "/metrics", "/docs", "/redoc", "/openapi.json",
                             "/docs/oauth2-redirect"})
IDLE_S = 60.0  # a bucket refills completely within a minute: an entry idle that long holds nothing
UNAUTHENTICATED = "unauthenticated"


class Limits(Protocol):
    async def acquire(self, key: str) -> dict[str, str]:
        """Take one request of `key`'s budget and a concurrency slot; the headers to send. Over a limit:
        raise Overloaded (with its headers)."""

    async def release(self, key: str) -> None:
        """Give the concurrency slot back (the response has ended)."""

    async def renew(self, key: str) -> None:
        """Keep `key`'s slots alive while a request holding one runs (a store whose entries expire)."""

    renew_every_s: float | None  # how often a running request renews (None: never needed)


def rate_headers(rpm: int, tokens: float) -> dict[str, str]:
    return {"x-ratelimit-limit-requests": str(rpm), "x-ratelimit-remaining-requests": str(int(tokens)),
            "x-ratelimit-reset-requests": f"{math.ceil((rpm - tokens) * 60 / rpm)}s"}


def refused_by_rate(rpm: int, tokens: float) -> Overloaded:
    wait = math.ceil((1 - tokens) * 60 / rpm)
    return overloaded(f"rate limit of {rpm} requests per minute reached", wait, "rate_limit_exceeded",
                      {"x-ratelimit-limit-requests": str(rpm), "x-ratelimit-remaining-requests": "0",
                       "x-ratelimit-reset-requests": f"{wait}s"})


def refused_by_concurrency(max_concurrent: int, headers: dict[str, str]) -> Overloaded:
    return overloaded(f"at most {max_concurrent} concurrent requests per client", 1, "concurrency_limit", headers)


@dataclass
class Bucket:
    tokens: float
    updated: float
    active: int = 0


@dataclass
class Limiter:
    """The limits of one process, in memory."""

    requests_per_minute: int | None
    max_concurrent: int | None
    buckets: dict[str, Bucket] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    swept: float = 0.0
    renew_every_s: float | None = None  # an entry holding a slot is never swept

    async def renew(self, key: str) -> None:
        pass

    def sweep(self, now: float) -> None:
        """Drop the entries idle for IDLE_S (their bucket is full again: dropping one changes nothing)."""
        self.swept = now
        for key in [k for k, b in self.buckets.items() if b.active == 0 and now - b.updated >= IDLE_S]:
            del self.buckets[key]

    async def acquire(self, key: str) -> dict[str, str]:
        now = self.clock()
        if now - self.swept >= IDLE_S / 4:
            self.sweep(now)
        rpm = self.requests_per_minute
        b = self.buckets.setdefault(key, Bucket(tokens=float(rpm or 0), updated=now))
        headers: dict[str, str] = {}
        if rpm:
            b.tokens = min(rpm, b.tokens + (now - b.updated) * rpm / 60)
            if b.tokens < 1:
                b.updated = now
                raise refused_by_rate(rpm, b.tokens)
        if self.max_concurrent and b.active >= self.max_concurrent:
            b.updated = now
            raise refused_by_concurrency(self.max_concurrent, rate_headers(rpm, b.tokens) if rpm else {})
        if rpm:
            b.tokens -= 1
            headers = rate_headers(rpm, b.tokens)
        b.updated = now
        b.active += 1
        return headers

    async def release(self, key: str) -> None:
        b = self.buckets.get(key)
        if b is not None and b.active > 0:
            b.active -= 1
            b.updated = self.clock()


# One decision, atomically on the Redis server and on its clock: refill the bucket, refuse over the rate
# (1 = over the rate, 2 = over the concurrency cap, 0 = taken), take a token and a slot; the entry expires
# `ttl` seconds after its last use. Numbers travel as strings (Lua numbers would be cut to integers).
_ACQUIRE = """
local rpm, maxc, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local h = redis.call('HMGET', KEYS[1], 'tokens', 'updated', 'active')
local tokens, updated, active = tonumber(h[1]) or rpm, tonumber(h[2]) or now, tonumber(h[3]) or 0
local verdict = 0
if rpm > 0 then tokens = math.min(rpm, tokens + (now - updated) * rpm / 60) end
if rpm > 0 and tokens < 1 then verdict = 1
elseif maxc > 0 and active >= maxc then verdict = 2
else
  if rpm > 0 then tokens = tokens - 1 end
  active = active + 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now), 'active', active)
redis.call('EXPIRE', KEYS[1], ttl)
return {verdict, tostring(tokens)}
"""
_RENEW = """
if redis.call('HGET', KEYS[1], 'active') then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1])) end
return 0
"""
_RELEASE = """
local active = tonumber(redis.call('HGET', KEYS[1], 'active') or '0')
if active > 0 then redis.call('HINCRBY', KEYS[1], 'active', -1) end
return 0
"""


class RedisLimiter:
    """The limits of every replica that holds the same `RSIM_REDIS_URL`, kept in Redis. An entry lives
    `ttl_s` past its last use (at least a minute, and longer than the longest request, so a slot held by a
    long stream is not forgotten while it runs; a replica that died holding slots frees them at expiry).
    Redis unreachable: 503, never an unlimited request."""

    def __init__(self, url: str, requests_per_minute: int | None, max_concurrent: int | None, *,
                 ttl_s: float = 600.0, prefix: str = "rsim:limits:", min_ttl_s: float = IDLE_S):
        import redis.asyncio as aioredis

        self.redis = aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.rpm, self.max_concurrent = requests_per_minute or 0, max_concurrent or 0
        self.ttl_s, self.prefix = int(max(min_ttl_s, ttl_s)), prefix
        self._acquire = self.redis.register_script(_ACQUIRE)
        self._release = self.redis.register_script(_RELEASE)
        self._renew = self.redis.register_script(_RENEW)
        self.renew_every_s = self.ttl_s / 3  # a request outliving the TTL keeps its slot counted

    async def renew(self, key: str) -> None:
        from redis.exceptions import RedisError

        try:
            await self._renew(keys=[self.prefix + key], args=[self.ttl_s])
        except RedisError:  # tried again at the next renewal; at worst the slot is forgotten at expiry
            pass

    async def acquire(self, key: str) -> dict[str, str]:
        from redis.exceptions import RedisError

        try:
            verdict, tokens = await self._acquire(keys=[self.prefix + key], args=[self.rpm, self.max_concurrent,
                                                                                 self.ttl_s])
        except RedisError as e:
            raise NotReady(f"rate-limit store unavailable: {type(e).__name__}") from None
        tokens = float(tokens)
        if int(verdict) == 1:
            raise refused_by_rate(self.rpm, tokens)
        headers = rate_headers(self.rpm, tokens) if self.rpm else {}
        if int(verdict) == 2:
            raise refused_by_concurrency(self.max_concurrent, headers)
        return headers

    async def release(self, key: str) -> None:
        from redis.exceptions import RedisError

        try:
            await self._release(keys=[self.prefix + key])
        except RedisError:  # the entry expires on its own
            pass

    async def close(self) -> None:
        await self.redis.aclose()


def overloaded(message: str, retry_after_s: int, code: str, headers: dict[str, str]) -> Overloaded:
    e = Overloaded(message, retry_after_s=retry_after_s, code=code)
    e.headers |= headers
    return e


def client_key(scope: Scope, key_allowed: Callable[[str], bool] | None = None) -> str:
    """With keys configured (`key_allowed`): the hash of the client's key, and every key the service
    would refuse shares one entry. Without keys, or without an `Authorization` header: the client's
    address (a bearer nobody checks names no one)."""
    if key_allowed is not None:
        for k, v in scope.get("headers", ()):
            if k == b"authorization":
                if not key_allowed(v.decode("latin-1")):
                    return UNAUTHENTICATED
                return hashlib.sha256(v.removeprefix(b"Bearer ").strip()).hexdigest()
    client = scope.get("client")
    return f"addr:{client[0] if client else '?'}"


class LimitsMiddleware:
    def __init__(self, app: ASGIApp, limiter: Limits):
        self.app, self.limiter = app, limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        state = getattr(scope["app"].state, "rsim", None)
        key = client_key(scope, state.key_allowed if state is not None and state.api_key_hashes else None)
        try:
            headers = await self.limiter.acquire(key)
        except (Overloaded, NotReady) as e:
            body = json.dumps(e.envelope()).encode()
            await send({"type": "http.response.start", "status": e.status_code,
                        "headers": [(b"content-type", b"application/json"),
                                    *((k.lower().encode(), v.encode()) for k, v in e.headers.items())]})
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      *((k.encode(), v.encode()) for k, v in headers.items())]
            await send(message)

        renewing = None
        if self.limiter.renew_every_s:
            renewing = asyncio.create_task(self.renewal(key, self.limiter.renew_every_s))
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            if renewing is not None:
                renewing.cancel()
            await self.limiter.release(key)

    async def renewal(self, key: str, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            await self.limiter.renew(key)
