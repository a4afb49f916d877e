"""Limits shared by two real service processes through a real `redis-server` (Debian's package): one rate
and one concurrency cap for both replicas together (issue 12 §4). Without Redis each process kept its own,
so two replicas let twice the rate through."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import httpx
import pytest

from tests.support.procs import free_port, running

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed (scripts/install.sh installs Debian's)")


@pytest.fixture
def redis_url(work_dir):
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip() \
                    == "PONG":
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def replica(fault_reasoner, work_dir, name: str, **env: str):
    port = free_port()
    return port, running([sys.executable, "-m", "clients.cli", "serve", "service", "--host", "127.0.0.1", "--port",
                          str(port)], ready_url=f"http://127.0.0.1:{port}/health", log_path=work_dir / "logs" / name,
                         env={"RSIM_REASONER_URL": fault_reasoner.url, "RSIM_PLANNER_URL": f"http://127.0.0.1:{free_port()}",
                              "RSIM_TRACES": "false", "RSIM_API_KEYS": "key-a,key-b", **env})


def chat(port: int, key: str, model: str = "ok") -> httpx.Response:
    return httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=30,
                      headers={"Authorization": f"Bearer {key}"},
                      json={"model": model, "messages": [{"role": "user", "content": "hi"}]})


def test_two_replicas_hold_one_rate_limit(fault_reasoner, work_dir, redis_url):
    shared = {"RSIM_REDIS_URL": redis_url, "RSIM_RATE_LIMIT_RPM": "3"}
    (pa, a), (pb, b) = replica(fault_reasoner, work_dir, "limits-a.log", **shared), \
        replica(fault_reasoner, work_dir, "limits-b.log", **shared)
    with a, b:
        codes = [chat(port, "key-a").status_code for port in (pa, pb, pa, pb)]
        other_key = chat(pb, "key-b")
        made_up = [chat(port, f"made-up-{i}").status_code for i, port in enumerate((pa, pb, pa, pb, pa))]
        keys = subprocess.run(["redis-cli", "-u", redis_url, "--scan", "--pattern", "rsim:limits:*"],
                              capture_output=True, text=True).stdout.split()
    assert codes == [200, 200, 200, 429]  # per process, each replica would have let all four through
    assert other_key.status_code == 200  # the limit is per client key
    # keys the service refuses share one entry: 401 while it has budget, then 429, and Redis holds 3 entries
    assert made_up == [401, 401, 401, 429, 429]
    assert len(keys) == 3, keys
    ttl = int(subprocess.run(["redis-cli", "-u", redis_url, "ttl", keys[0]], capture_output=True, text=True).stdout)
    assert 0 < ttl <= 660  # every entry expires (request timeout + a minute)


def test_two_replicas_hold_one_concurrency_cap(fault_reasoner, work_dir, redis_url):
    shared = {"RSIM_REDIS_URL": redis_url, "RSIM_MAX_CONCURRENT_PER_CLIENT": "1"}
    (pa, a), (pb, b) = replica(fault_reasoner, work_dir, "conc-a.log", **shared), \
        replica(fault_reasoner, work_dir, "conc-b.log", **shared)
    body = {"model": "stall", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with a, b, httpx.Client(timeout=30) as client:
        with client.stream("POST", f"http://127.0.0.1:{pa}/v1/chat/completions", json=body,
                           headers={"Authorization": "Bearer key-a"}) as held:
            assert held.status_code == 200
            chunks = held.iter_raw()  # kept: a dropped iterator closes the stream
            next(chunks)  # the stream is open on replica A: its slot is taken
            on_b = chat(pb, "key-a")
        for _ in range(100):  # closed: the slot comes back
            after = chat(pb, "key-a")
            if after.status_code == 200:
                break
            time.sleep(0.05)
    assert on_b.status_code == 429 and on_b.json()["error"]["code"] == "concurrency_limit"
    assert after.status_code == 200


def test_redis_unreachable_is_503_never_unlimited(fault_reasoner, work_dir):
    port, proc = replica(fault_reasoner, work_dir, "limits-down.log", RSIM_RATE_LIMIT_RPM="1",
                         RSIM_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with proc:
        r = chat(port, "key-a")
    assert r.status_code == 503 and "rate-limit store unavailable" in r.json()["error"]["message"]


async def test_a_request_outliving_the_ttl_keeps_its_slot(redis_url):
    """Issue 29: the Redis entry holding a client's concurrency count expired `ttl` after its last acquire, so an
    episode running longer than that let the client take another slot past its cap. A running request now
    renews its entry every third of the TTL."""
    import asyncio
    from types import SimpleNamespace

    from service.limits import LimitsMiddleware, RedisLimiter

    limiter = RedisLimiter(redis_url, None, 1, ttl_s=2, min_ttl_s=1)
    started, finish = asyncio.Event(), asyncio.Event()

    async def episode(scope, receive, send):  # holds its slot until told to finish
        started.set()
        await finish.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    async def ignore(message):
        pass

    scope = {"type": "http", "path": "/solve", "headers": [], "client": ("10.0.0.1", 1),
             "app": SimpleNamespace(state=SimpleNamespace())}
    running = asyncio.create_task(LimitsMiddleware(episode, limiter)(scope, None, ignore))
    await started.wait()
    await asyncio.sleep(4.5)  # more than twice the TTL
    refused = []

    async def second(message):
        if message["type"] == "http.response.start":
            refused.append(message["status"])

    async def quick(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    await LimitsMiddleware(quick, limiter)(scope, None, second)
    finish.set()
    await running
    assert refused == [429]  # the first request still holds the client's one slot (without renewal: 200)
    await limiter.close()
