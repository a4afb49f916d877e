"""The in-process limiter's state is bounded (issue 12 §4): an idle entry expires, and keys the service
does not accept share one entry, so made-up keys cannot grow it."""

from __future__ import annotations

import hashlib

import pytest

from service.errors import Overloaded
from service.limits import UNAUTHENTICATED, Limiter, client_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_idle_entries_expire_and_expiry_changes_no_decision():
    clock = Clock()
    limiter = Limiter(requests_per_minute=2, max_concurrent=None, clock=clock)
    for i in range(500):  # 500 clients, one request each
        await limiter.acquire(f"client-{i}")
        await limiter.release(f"client-{i}")
    assert len(limiter.buckets) == 500
    await limiter.acquire("client-0")
    with pytest.raises(Overloaded):  # its budget of 2 per minute is spent
        await limiter.acquire("client-0")
    await limiter.release("client-0")
    clock.now += 61  # a minute idle: every bucket is full again
    headers = await limiter.acquire("late")
    assert set(limiter.buckets) == {"late"}  # the 500 idle entries are gone
    assert headers["x-ratelimit-remaining-requests"] == "1"
    await limiter.acquire("client-0")  # as if it had been kept: a full bucket


async def test_a_slot_in_flight_keeps_its_entry():
    clock = Clock()
    limiter = Limiter(requests_per_minute=None, max_concurrent=1, clock=clock)
    await limiter.acquire("streaming")
    clock.now += 3600  # an hour-long stream
    await limiter.acquire("other")
    assert "streaming" in limiter.buckets
    with pytest.raises(Overloaded) as e:
        await limiter.acquire("streaming")
    assert e.value.code == "concurrency_limit"
    await limiter.release("streaming")
    await limiter.acquire("streaming")


def test_keys_the_service_refuses_share_one_entry():
    allowed = {"good"}.__contains__

    def scope(auth: bytes | None) -> dict:
        return {"headers": [(b"authorization", auth)] if auth is not None else [], "client": ("10.0.0.1", 1)}

    def key_allowed(header: str) -> bool:
        return allowed(header.removeprefix("Bearer ").strip())

    assert client_key(scope(b"Bearer good"), key_allowed) == hashlib.sha256(b"good").hexdigest()
    assert {client_key(scope(f"Bearer made-up-{i}".encode()), key_allowed) for i in range(100)} == {UNAUTHENTICATED}
    assert client_key(scope(b""), key_allowed) == UNAUTHENTICATED
    assert client_key(scope(None), key_allowed) == "addr:10.0.0.1"  # no header: 401 later, keyed by address
    # no keys configured: the address, whatever bearer comes (issue 29: a made-up one was a fresh bucket)
    assert {client_key(scope(f"Bearer made-up-{i}".encode())) for i in range(100)} == {"addr:10.0.0.1"}
