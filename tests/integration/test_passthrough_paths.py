"""The `/v1/` paths on the passthrough allowlist are forwarded to the reasoner (issue 15 §4; the allowlist: issue 29): tried with the
official `openai` SDK in front of the tiny real vLLM (they answered 404 before). The answer is the
reasoner's own — the same bytes, status and streaming — and API keys hold for those paths exactly as for
chat: no key, an empty key or a wrong key is a 401 that never reaches the reasoner."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.integration.test_faults import start_service

pytestmark = pytest.mark.slow
KEY = "sk-forwarded-paths-0123456789"
TINY_NAME = "tiny-qwen2"  # the tiny vLLM reasoner's served name (tests/conftest.py)


@pytest.fixture(scope="module")
def service(tiny_reasoner, tiny_planner, work_dir):
    port, ctx = start_service(work_dir, tiny_reasoner.url, tiny_planner.url, "service-paths", RSIM_API_KEYS=KEY,
                              RSIM_READ_TIMEOUT_S="60",  # the default allowlist, and a GET to try a query string on
                              RSIM_PASSTHROUGH_ALLOW="POST /v1/completions,POST /v1/embeddings,POST /v1/responses,"
                                                     "GET /v1/nosuch")
    with ctx:
        yield f"http://127.0.0.1:{port}"


def test_completions_are_forwarded_plain_and_streamed(service):
    client = openai.OpenAI(base_url=f"{service}/v1", api_key=KEY, max_retries=0)
    r = client.completions.create(model=TINY_NAME, prompt="Question: 2 + 3?\nAnswer:", max_tokens=5, temperature=0)
    assert r.object == "text_completion" and r.model == TINY_NAME and r.usage.completion_tokens <= 5
    again = client.completions.create(model=TINY_NAME, prompt="Question: 2 + 3?\nAnswer:", max_tokens=5,
                                      temperature=0)
    assert again.choices[0].text == r.choices[0].text  # the reasoner's own text, not rsim's
    chunks = list(client.completions.create(model=TINY_NAME, prompt="Question: 2 + 3?\nAnswer:", max_tokens=5,
                                            temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == r.choices[0].text


def test_bytes_status_and_query_are_the_reasoners(service, tiny_reasoner):
    """An error the reasoner gives comes back as it gave it (an embeddings request to a generation model);
    a GET with a query string reaches the same resource."""
    body = {"model": TINY_NAME, "input": "hello"}
    direct = httpx.post(f"{tiny_reasoner.url}/embeddings", json=body, timeout=60)
    via = httpx.post(f"{service}/v1/embeddings", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    assert via.status_code == direct.status_code and via.content == direct.content
    assert via.headers["content-type"] == direct.headers["content-type"]
    ver = httpx.get(f"{service}/v1/nosuch?x=1", headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    direct_get = httpx.get(f"{tiny_reasoner.url}/nosuch?x=1", timeout=30)
    assert ver.status_code == direct_get.status_code and ver.content == direct_get.content  # the reasoner's own
    off_list = httpx.get(f"{service}/v1/files", headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert off_list.status_code == 404 and off_list.json()["error"]["code"] == "not_forwarded"  # issue 29


@pytest.mark.parametrize("auth", [None, "", "Bearer", "Bearer wrong-key-0123456789"])
def test_keys_hold_on_forwarded_paths(service, auth):
    headers = {} if auth is None else {"Authorization": auth}
    for method, path, body in [("POST", "/v1/completions", {"model": TINY_NAME, "prompt": "x", "max_tokens": 1}),
                               ("POST", "/v1/embeddings", {"model": TINY_NAME, "input": "x"}),
                               ("GET", "/v1/anything/else", None)]:
        r = httpx.request(method, f"{service}{path}", json=body, headers=headers, timeout=30)
        assert r.status_code == 401, (method, path, r.text)
        assert r.json()["error"]["code"] == "invalid_api_key" or "API key" in r.json()["error"]["message"]


def test_an_rsim_model_on_another_path_is_refused_by_name(service):
    client = openai.OpenAI(base_url=f"{service}/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=f"rsim/{TINY_NAME}", prompt="x", max_tokens=1)
    assert e.value.body["param"] == "model" and e.value.body["code"] == "unsupported_path"
    assert "/v1/chat/completions" in e.value.body["message"]


def test_rsims_own_paths_stay_its_own(service):
    h = {"Authorization": f"Bearer {KEY}"}
    ids = [m["id"] for m in httpx.get(f"{service}/v1/models", headers=h, timeout=30).json()["data"]]
    assert f"rsim/{TINY_NAME}" in ids  # listed by rsim, not the reasoner's list
    strategies = httpx.get(f"{service}/v1/strategies", headers=h, timeout=30).json()
    assert "strategies" in json.dumps(strategies)
