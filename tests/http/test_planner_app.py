"""The planner app in-process with its lifespan running and a real hf backend on the tiny model."""

from __future__ import annotations

import asyncio
import json
import math

import httpx
import pytest
from asgi_lifespan import LifespanManager

from planner_server.app import create_app
from planner_server.backends import PlanItem
from planner_server.backends.hf import HFBackend
from planner_server.protocol import PlanStep
from planner_server.settings import PlannerSettings
from service.catalog import load_catalog


@pytest.fixture(scope="module")
def hf_backend(tiny_model):
    return HFBackend.from_settings(PlannerSettings(model=str(tiny_model), threads=1), load_catalog())


async def ready_client(app) -> httpx.AsyncClient:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://planner")
    for _ in range(200):
        if (await client.get("/ready")).status_code == 200:
            return client
        await asyncio.sleep(0.05)
    raise AssertionError("planner never became ready")


async def test_plan_returns_a_full_distribution(tiny_model, hf_backend):
    settings = PlannerSettings(model=str(tiny_model))
    async with LifespanManager(create_app(settings, backend=hf_backend)) as mgr:
        client = await ready_client(mgr.app)
        r = await client.post("/v1/plan", json={"question": "What is 2+2?",
                                                "steps": [{"strategy": "decomposition", "text": "2+2"}]})
        assert r.status_code == 200
        body = r.json()
        assert list(body["probabilities"]) == load_catalog().ids
        assert sum(body["probabilities"].values()) == pytest.approx(1.0)
        assert body["strategy"] == max(body["probabilities"], key=body["probabilities"].get)
        assert body["entropy"] == pytest.approx(-sum(p * math.log(p) for p in body["probabilities"].values()
                                                    if p > 0))
        assert body["planner_version"] == f"untrained:{tiny_model.name}"
        assert body["tokens"] == len(hf_backend.encode(PlanItem("What is 2+2?", [PlanStep(strategy="decomposition",
                                                                                          text="2+2")])))
        assert body["catalog_version"] == load_catalog().version

        unguided = await client.post("/v1/plan", json={"question": "What is 2+2?",  # the reasoner's own first step
                                                       "steps": [{"strategy": "unguided", "text": "2+2 = 4"}]})
        assert unguided.status_code == 200 and unguided.json()["strategy"] in load_catalog().ids
        forbid = await client.post("/v1/plan", json={"question": "q", "forbid": [body["strategy"]]})
        assert forbid.json()["probabilities"][body["strategy"]] == 0.0

        batch = await client.post("/v1/plan/batch", json={"requests": [{"question": "a"}, {"question": "b",
                                                                                           "temperature": 1.0,
                                                                                           "seed": 3}]})
        assert batch.status_code == 200 and len(batch.json()["responses"]) == 2
        metrics = (await client.get("/metrics")).text
        assert "rsim_planner_batch_size_bucket" in metrics and "rsim_planner_decisions_total" in metrics
        assert (await client.get("/v1/strategies")).json()["version"] == load_catalog().version


async def test_batched_decisions_equal_single_ones(hf_backend):
    items = [PlanItem("short?", []), PlanItem("a much longer question about numbers " * 5, [])]
    together = await hf_backend.label_logits(items)
    alone = [(await hf_backend.label_logits([it]))[0] for it in items]
    for a, b in zip(together, alone, strict=True):
        assert a == pytest.approx(b, abs=1e-4)  # left padding changes nothing


@pytest.mark.parametrize(("body", "param"), [
    ({"question": ""}, "question"),
    ({"question": "q", "steps": [{"strategy": "nope", "text": ""}]}, "steps.0.strategy"),
    ({"question": "q", "forbid": ["nope"]}, "forbid.0"),
    ({"question": "q", "forbid": ["unguided"]}, "forbid.0"),  # not a strategy the planner can choose
    ({"question": "q", "forbid": load_catalog().ids}, "forbid"),
    ({"question": "q", "temperature": -1}, "temperature"),
    ({"question": "q", "surprise": 1}, "surprise"),
])
async def test_bad_input_is_400_with_param(tiny_model, hf_backend, body, param):
    async with LifespanManager(create_app(PlannerSettings(model=str(tiny_model)), backend=hf_backend)) as mgr:
        client = await ready_client(mgr.app)
        r = await client.post("/v1/plan", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param and r.json()["error"]["type"] == "invalid_request_error"


class SlowBackend:
    """Fault injection: a backend whose forward pass takes a while, to fill the queue."""

    version = "slow"

    async def label_logits(self, items):
        await asyncio.sleep(0.3)
        return [[0.0] * 9 for _ in items]

    async def close(self):
        pass


async def test_full_queue_is_429_with_retry_after(tiny_model):
    settings = PlannerSettings(model=str(tiny_model), max_batch=1, queue_size=2)
    async with LifespanManager(create_app(settings, backend=SlowBackend())) as mgr:
        client = await ready_client(mgr.app)
        rs = await asyncio.gather(*(client.post("/v1/plan", json={"question": "q"}) for _ in range(8)))
        bad = await client.post("/v1/plan", json={})
        metrics = (await client.get("/metrics")).text
    codes = sorted(r.status_code for r in rs)
    assert codes.count(200) >= 2 and 429 in codes and bad.status_code == 400
    # the queue refusals and every answered status are counted (rsim_planner_rejected_total stayed 0 before)
    assert f"rsim_planner_rejected_total {float(codes.count(429))}" in metrics
    assert f'rsim_planner_requests_total{{endpoint="plan",status="429"}} {float(codes.count(429))}' in metrics
    assert 'rsim_planner_requests_total{endpoint="plan",status="400"} 1.0' in metrics
    refused = next(r for r in rs if r.status_code == 429)
    assert refused.headers["retry-after"] == "1" and refused.json()["error"]["code"] == "overloaded"


async def test_not_ready_and_load_errors_are_503(tmp_path):
    app = create_app(PlannerSettings(model=str(tmp_path / "missing-model")))
    async with LifespanManager(app) as mgr:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://planner")
        assert (await client.get("/health")).status_code == 200
        for _ in range(100):
            r = await client.get("/ready")
            if "failed to load" in r.json()["error"]["message"]:
                break
            await asyncio.sleep(0.05)
        assert r.status_code == 503
        plan = await client.post("/v1/plan", json={"question": "q"})
        assert plan.status_code == 503 and "failed to load" in plan.json()["error"]["message"]


def test_checkpoint_with_another_catalog_is_refused(tmp_path, tiny_model):
    from planner_server.checkpoint import CheckpointError, resolve_planner

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "manifest.json").write_text(json.dumps({"step": 3, "catalog_version": "deadbeef0000"}))
    with pytest.raises(CheckpointError, match="trained with catalog 'deadbeef0000'"):
        resolve_planner(str(tiny_model), ckpt, load_catalog())
    (ckpt / "manifest.json").write_text(json.dumps({"step": 3, "catalog_version": load_catalog().version}))
    (tmp_path / "latest").write_text("ckpt")
    resolved = resolve_planner(None, tmp_path, load_catalog())
    assert resolved.version == "ckpt@step3" and resolved.model == str(ckpt)


def test_a_checkpoint_is_served_as_it_was_trained(tmp_path, tiny_model, caplog):
    """Issue 14 §6: a planner trained on 512 tokens of reasoning was served with 1024. The manifest's
    `serving` block now sets the server's context tokens unless RSIM_PLANNER_CONTEXT_TOKENS says otherwise
    (then a warning), and a different prompt template is warned about."""
    import logging
    import shutil

    from planner_server.prompt import prompt_digest

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_model, ckpt)
    catalog = load_catalog()
    serving = {"context_tokens": 96, "prompt_digest": prompt_digest(catalog), "catalog_version": catalog.version,
               "temperature": 1.0}
    (ckpt / "manifest.json").write_text(json.dumps({"step": 1, "catalog_version": catalog.version,
                                                    "serving": serving}))
    assert HFBackend.from_settings(PlannerSettings(checkpoint=ckpt), catalog).context_tokens == 96
    caplog.set_level(logging.WARNING, logger="rsim.planner")
    explicit = HFBackend.from_settings(PlannerSettings(checkpoint=ckpt, context_tokens=256), catalog)
    assert explicit.context_tokens == 256 and "trained on 96 tokens of reasoning" in caplog.text
    caplog.clear()
    (ckpt / "manifest.json").write_text(json.dumps({"step": 1, "catalog_version": catalog.version,
                                                    "serving": {**serving, "prompt_digest": "0123456789abcdef"}}))
    HFBackend.from_settings(PlannerSettings(checkpoint=ckpt), catalog)
    assert "another prompt template" in caplog.text
    assert HFBackend.from_settings(PlannerSettings(model=str(tiny_model)), catalog).context_tokens == 1024  # untrained
