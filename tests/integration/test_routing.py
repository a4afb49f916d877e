"""Several reasoners behind one service (issue 15 §5): a routing file puts the tiny real vLLM and the fault
reasoner behind one rsim; each model id goes to the upstream serving it — passthrough and strategy
injection alike —, `/v1/models` lists every upstream's models and their `rsim/` twins, `/ready` and the
metrics speak per upstream, and a model's episode defaults come from its upstream."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.integration.test_faults import start_service
from tests.support.procs import REPO

pytestmark = pytest.mark.slow
TINY = "tiny-qwen2"


@pytest.fixture(scope="module")
def routed(tiny_reasoner, fault_reasoner, tiny_planner, work_dir):
    routes = work_dir / "routes.yaml"
    routes.write_text(f"""reasoners:
  - name: tiny
    url: {tiny_reasoner.url}
  - name: fake
    url: {fault_reasoner.url}
    models: [ok, slow]
    episode: {{max_steps: 2, min_step_tokens: 0, min_step_chars: 0}}
""")
    port, ctx = start_service(work_dir, "", tiny_planner.url, "service-routed", RSIM_ROUTES_FILE=str(routes),
                              RSIM_READ_TIMEOUT_S="60", RSIM_MAX_STEPS="3")
    with ctx:
        yield f"http://127.0.0.1:{port}"


def fake_calls(fault_reasoner, rid):
    log = httpx.get(f"http://127.0.0.1:{fault_reasoner.port}/_log").json()
    return [json.loads(e["raw"]) for e in log if e["headers"].get("x-request-id", "").startswith(rid)]


def test_models_of_every_upstream_are_listed(routed):
    client = openai.OpenAI(base_url=f"{routed}/v1", api_key="x", max_retries=0)
    ids = {m.id for m in client.models.list()}
    assert {TINY, f"rsim/{TINY}", "ok", "rsim/ok", "slow", "rsim/slow"} <= ids
    assert "fail-500" not in ids  # the fake serves more, but its route lists these two
    ready = httpx.get(f"{routed}/ready", timeout=30).json()
    assert set(ready["upstreams"]) == {"tiny", "fake"} and ready["upstreams"]["fake"]["models"] == ["ok", "slow"]


def test_each_model_goes_to_its_upstream(routed, fault_reasoner):
    client = openai.OpenAI(base_url=f"{routed}/v1", api_key="x", max_retries=0)
    tiny = client.chat.completions.create(model=TINY, messages=[{"role": "user", "content": "hi"}], max_tokens=3,
                                          extra_headers={"X-Request-Id": "route-tiny"})
    assert tiny.model == TINY and not fake_calls(fault_reasoner, "route-tiny")
    fake = client.chat.completions.create(model="ok", messages=[{"role": "user", "content": "hi"}],
                                          extra_headers={"X-Request-Id": "route-fake"})
    assert fake.choices[0].message.content == "ok" and len(fake_calls(fault_reasoner, "route-fake")) == 1
    done = client.completions.create(model=TINY, prompt="2 + 3 =", max_tokens=2)  # other paths route too
    assert done.model == TINY
    r = client.chat.completions.create(model="rsim/ok", messages=[{"role": "user", "content": "2 + 3?"}],
                                       extra_headers={"X-Request-Id": "route-rsim"},
                                       extra_body={"rsim": {"return_trace": True}})
    steps = r.model_extra["rsim"]["steps"]
    assert len(steps) <= 2  # the fake's episode default (max_steps 2), not the service's 3
    assert len(fake_calls(fault_reasoner, "route-rsim")) == len(steps)
    rt = client.chat.completions.create(model=f"rsim/{TINY}", messages=[{"role": "user", "content": "2 + 3?"}],
                                        extra_body={"rsim": {"return_trace": True}})
    assert len(rt.model_extra["rsim"]["steps"]) == 3  # the service's default on the other upstream
    metrics = httpx.get(f"{routed}/metrics").text
    assert 'rsim_upstream_requests_total{status="200",upstream="fake"}' in metrics
    assert 'rsim_upstream_requests_total{status="200",upstream="tiny"}' in metrics
    assert 'rsim_upstream_up{upstream="tiny"} 1.0' in metrics


def test_a_bad_routing_file_stops_the_service_with_a_message(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "routes.yaml"
    bad.write_text("reasoners:\n  - name: a\n    url: http://x/v1\n    models: [m]\n  - name: b\n    url: ftp://y\n")
    env = {"RSIM_ROUTES_FILE": str(bad), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", "from service.app import create_app; create_app()"], cwd=REPO,
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode != 0 and "http(s) URL" in done.stderr
    none = subprocess.run([sys.executable, "-c", "from service.settings import ServiceSettings; ServiceSettings()"],
                          cwd=REPO, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=120)
    assert none.returncode != 0 and "RSIM_REASONER_URL" in none.stderr and "RSIM_ROUTES_FILE" in none.stderr


def test_one_upstream_down_leaves_the_others_serving(fault_reasoner, tiny_planner, work_dir):
    from tests.support.procs import free_port

    routes = work_dir / "routes-down.yaml"
    routes.write_text(f"""reasoners:
  - name: dead
    url: http://127.0.0.1:{free_port()}/v1
  - name: fake
    url: {fault_reasoner.url}
    models: [ok]
""")
    port, ctx = start_service(work_dir, "", tiny_planner.url, "service-routed-down", RSIM_ROUTES_FILE=str(routes),
                              RSIM_RETRIES="0")
    with ctx:
        url = f"http://127.0.0.1:{port}"
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        assert {m.id for m in client.models.list()} == {"ok", "rsim/ok"}
        r = client.chat.completions.create(model="rsim/ok", messages=[{"role": "user", "content": "2 + 3?"}])
        assert r.choices[0].message.content
        ready = httpx.get(f"{url}/ready", timeout=30)
        assert ready.status_code == 503 and "dead" in ready.json()["error"]["message"]


def test_a_bad_episode_value_stops_the_start_up(tmp_path):
    from service.routing import RoutesFile

    with pytest.raises(ValueError, match="first_step"):
        RoutesFile.model_validate({"reasoners": [{"name": "a", "url": "http://x/v1",
                                                  "episode": {"first_step": "Reasoner"}}]})
    ok = RoutesFile.model_validate({"reasoners": [{"name": "a", "url": "http://x/v1", "episode": {"max_steps": "6"}}]})
    assert ok.reasoners[0].episode == {"max_steps": 6}
