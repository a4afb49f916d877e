"""Checkpoints written by the training worker hot-reload into a running planner server under
concurrent requests with zero failures: by `POST /admin/reload` and by watching `latest`."""

from __future__ import annotations

import asyncio
import json
import shutil
import time

import httpx
import pytest
import torch

from planner_server.training.checkpoints import save_checkpoint
from planner_server.training.config import TrainConfig
from planner_server.training.train import build_policy
from service.catalog import load_catalog
from tests.support.procs import free_port, running, serve_cmd

pytestmark = pytest.mark.slow
TOKEN = "s3cret-admin-token-for-tests"


def write_checkpoint(run, tiny_model, step: int) -> None:
    cfg = TrainConfig(run_dir=run, planner_model=str(tiny_model), reasoner={"url": "http://unused"},
                      lora={"target_modules": ["q_proj", "v_proj"]})
    torch.manual_seed(step)
    model, tok = build_policy(cfg)
    for name, p in model.named_parameters():  # make each version score differently
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    save_checkpoint(run, step=step, model=model, tokenizer=tok, optimizer=opt, data_position=0,
                    base_model=str(tiny_model), catalog_version=load_catalog().version, config={}, metrics={})


async def hammer(url: str, stop: asyncio.Event, versions: list[str], failures: list[str]) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        while not stop.is_set():
            r = await client.post(f"{url}/v1/plan", json={"question": "What is 3 * 4?",
                                                          "steps": [{"strategy": "decomposition", "text": "3*4"}]})
            if r.status_code == 200:
                versions.append(r.json()["planner_version"])
            else:
                failures.append(f"{r.status_code} {r.text[:200]}")


async def test_reload_under_load(tiny_model, work_dir):
    run = work_dir / "reload-run"
    shutil.rmtree(run, ignore_errors=True)
    write_checkpoint(run, tiny_model, 1)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"RSIM_PLANNER_CHECKPOINT": str(run / "checkpoints"), "RSIM_PLANNER_ADMIN_TOKEN": TOKEN,
           "RSIM_PLANNER_WATCH_S": "0.3", "RSIM_PLANNER_THREADS": "1"}
    with running(serve_cmd("planner", port), ready_url=f"{url}/ready", log_path=work_dir / "logs" / "reload.log",
                 env=env):
        stop, versions, failures = asyncio.Event(), [], []
        workers = [asyncio.create_task(hammer(url, stop, versions, failures)) for _ in range(8)]
        async with httpx.AsyncClient(timeout=60) as admin:
            await asyncio.sleep(0.5)
            assert (await admin.post(f"{url}/admin/reload")).status_code == 401
            bad = await admin.post(f"{url}/admin/reload", headers={"Authorization": "Bearer nope"})
            assert bad.status_code == 401 and bad.json()["error"]["type"] == "authentication_error"

            await asyncio.to_thread(write_checkpoint, run, tiny_model, 2)  # moves `latest`
            r = await admin.post(f"{url}/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 200, r.text
            assert r.json()["previous_version"] == "step-000001@step1"
            assert r.json()["planner_version"] == "step-000002@step2"

            outside = await admin.post(f"{url}/admin/reload", json={"checkpoint": str(run)},
                                       headers={"Authorization": f"Bearer {TOKEN}"})
            assert outside.status_code == 400 and outside.json()["error"]["code"] == "checkpoint_outside"
            sneaky = await admin.post(f"{url}/admin/reload", json={"checkpoint": str(run / "checkpoints" / "..")},
                                      headers={"Authorization": f"Bearer {TOKEN}"})
            assert sneaky.status_code == 400 and sneaky.json()["error"]["code"] == "checkpoint_outside"

            foreign = run / "checkpoints" / "step-000002"
            other = run / "checkpoints" / "foreign"
            shutil.copytree(foreign, other)
            manifest = json.loads((other / "manifest.json").read_text())
            (other / "manifest.json").write_text(json.dumps({**manifest, "catalog_version": "0123456789ab"}))
            refused = await admin.post(f"{url}/admin/reload", json={"checkpoint": str(other)},
                                       headers={"Authorization": f"Bearer {TOKEN}"})
            assert refused.status_code == 400 and refused.json()["error"]["code"] == "checkpoint_refused"
            assert "0123456789ab" in refused.json()["error"]["message"]

            await asyncio.to_thread(write_checkpoint, run, tiny_model, 3)  # the watcher picks this one up
            deadline = time.monotonic() + 60
            while not versions or versions[-1] != "step-000003@step3":
                assert time.monotonic() < deadline, versions[-3:]
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*workers)
    assert failures == []
    seen = list(dict.fromkeys(versions))
    assert seen == ["step-000001@step1", "step-000002@step2", "step-000003@step3"]  # in order, never back
    assert len(versions) > 50
