"""Issue 29, a trace store no client can poison: the service app in-process with its lifespan, in front of
the fault reasoner process, writing a real SQLite trace store. A resent `X-Request-Id` never replaces
another request's trace, and `/v1/feedback` labels only the caller's own traces (an admin key any)."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from service.app import create_app
from service.settings import ServiceSettings
from tests.support.procs import free_port

SOLVE = {"model": "ok", "max_steps": 2}  # the shadow default with the planner down: quiet steps, no planner needed


@asynccontextmanager
async def service(fault_reasoner, store: Path, **settings: object) -> AsyncIterator[httpx.AsyncClient]:
    s = ServiceSettings(reasoner_url=fault_reasoner.url, planner_url=f"http://127.0.0.1:{free_port()}",
                        trace_store=store, **settings)
    async with LifespanManager(create_app(s)) as mgr:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://rsim") as c:
            yield c


def traces(store: Path) -> list[dict]:
    conn = sqlite3.connect(store)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM traces ORDER BY created")]
    finally:
        conn.close()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_a_resent_request_id_never_replaces_the_first_trace(fault_reasoner, tmp_path):
    """The old store keyed traces by the client's X-Request-Id with INSERT OR REPLACE: a resent id wiped
    the first request's trace (and its label)."""
    store = tmp_path / "traces.db"
    async with service(fault_reasoner, store) as c:
        first = await c.post("/solve", json={**SOLVE, "question": "first"}, headers={"X-Request-Id": "same"})
        labelled = await c.post("/v1/feedback", json={"request_id": "same", "correct": True})
        second = await c.post("/solve", json={**SOLVE, "question": "second"}, headers={"X-Request-Id": "same"})
    assert first.status_code == second.status_code == labelled.status_code == 200, (first.text, second.text)
    assert first.headers["x-request-id"] == second.headers["x-request-id"] == "same"  # echoed, as before
    assert first.json()["id"] == second.json()["id"] == "same"
    got = traces(store)
    assert [(t["request_id"], t["question"], t["correct"]) for t in got] == [("same", "first", 1),
                                                                           ("same", "second", None)]
    assert len({t["trace_id"] for t in got}) == 2


async def test_feedback_is_taken_from_the_key_that_made_the_request_or_an_admin_key(fault_reasoner, tmp_path):
    store = tmp_path / "traces.db"
    async with service(fault_reasoner, store, api_keys="key-a,key-b", admin_keys="key-admin") as c:
        made = await c.post("/solve", json={**SOLVE, "question": "a's"},
                            headers={"X-Request-Id": "a-1", **bearer("key-a")})
        assert made.status_code == 200, made.text
        other = await c.post("/v1/feedback", json={"request_id": "a-1", "reward": -100.0}, headers=bearer("key-b"))
        missing = await c.post("/v1/feedback", json={"request_id": "nope", "reward": 1.0}, headers=bearer("key-b"))
        owner = await c.post("/v1/feedback", json={"request_id": "a-1", "reward": 1.0}, headers=bearer("key-a"))
        after_owner = traces(store)[0]["reward"]
        admin = await c.post("/v1/feedback", json={"request_id": "a-1", "correct": True, "answer": "42"},
                             headers=bearer("key-admin"))
        no_key = await c.post("/v1/feedback", json={"request_id": "a-1", "reward": 1.0})
    # another key's trace reads exactly as no trace: the 404 does not tell that it exists
    assert other.status_code == missing.status_code == 404
    assert other.json()["error"]["code"] == "not_found" and other.json()["error"]["param"] == "request_id"
    assert other.json()["error"]["message"] == missing.json()["error"]["message"].replace("nope", "a-1")
    assert owner.status_code == admin.status_code == 200 and after_owner == 1.0
    assert no_key.status_code == 401
    [trace] = traces(store)
    assert trace["correct"] == 1 and trace["reference_answer"] == "42"
    assert trace["owner"] == hashlib.sha256(b"key-a").hexdigest()  # the key's hash, never the key
    assert not any("key-a" in str(v) for v in trace.values())


async def test_two_keys_sending_one_request_id_each_label_their_own(fault_reasoner, tmp_path):
    store = tmp_path / "traces.db"
    async with service(fault_reasoner, store, api_keys="key-a,key-b") as c:
        for key in ("key-a", "key-b"):
            r = await c.post("/solve", json={**SOLVE, "question": key}, headers={"X-Request-Id": "dup", **bearer(key)})
            assert r.status_code == 200, r.text
        chat = await c.post("/v1/chat/completions", headers={"X-Request-Id": "chat-1", **bearer("key-b")},
                            json={"model": "rsim/ok", "messages": [{"role": "user", "content": "b's chat"}]})
        assert chat.status_code == 200, chat.text
        b_labels = await c.post("/v1/feedback", json={"request_id": "dup", "reward": 5.0}, headers=bearer("key-b"))
        a_on_chat = await c.post("/v1/feedback", json={"request_id": "chat-1", "reward": 5.0}, headers=bearer("key-a"))
        b_on_chat = await c.post("/v1/feedback", json={"request_id": "chat-1", "reward": 2.0}, headers=bearer("key-b"))
    assert b_labels.status_code == b_on_chat.status_code == 200 and a_on_chat.status_code == 404
    assert [(t["request_id"], t["question"], t["reward"]) for t in traces(store)] == [
        ("dup", "key-a", None), ("dup", "key-b", 5.0), ("chat-1", "b's chat", 2.0)]


async def test_with_no_keys_configured_anyone_labels_any_trace(fault_reasoner, tmp_path):
    """Anonymous mode (no client keys, loopback or RSIM_ALLOW_ANONYMOUS) keeps the old rule: there is no
    caller to tell apart, so a trace has no owner and any caller may label it."""
    store = tmp_path / "traces.db"
    async with service(fault_reasoner, store) as c:
        await c.post("/solve", json={**SOLVE, "question": "q"}, headers={"X-Request-Id": "anon-1"})
        r = await c.post("/v1/feedback", json={"request_id": "anon-1", "reward": 1.0}, headers=bearer("anything"))
        metrics = (await c.get("/metrics")).text
    assert r.status_code == 200
    assert [(t["owner"], t["reward"]) for t in traces(store)] == [(None, 1.0)]
    assert 'rsim_trace_write_failures_total{kind="trace"} 0.0' in metrics


async def test_shutdown_applies_the_traces_still_queued(fault_reasoner, tmp_path):
    """The lifespan closes the store off the event loop, after every queued trace is written: here the
    traces pile up behind another connection's write lock until the service is being stopped."""
    store = tmp_path / "traces.db"
    async with service(fault_reasoner, store) as c:
        lock = sqlite3.connect(store, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        for i in range(20):
            r = await c.post("/solve", json={**SOLVE, "question": f"q{i}"}, headers={"X-Request-Id": f"r{i}"})
            assert r.status_code == 200, r.text
        lock.execute("ROLLBACK")
        lock.close()
    assert [t["request_id"] for t in traces(store)] == [f"r{i}" for i in range(20)]
