"""The service app in-process with its lifespan (pooled session, orchestrator), in front of the
fault reasoner process; bad input is refused before any upstream work."""

from __future__ import annotations

import json

import httpx
import pytest
from asgi_lifespan import LifespanManager

from service.app import create_app
from service.catalog import load_catalog
from service.settings import ServiceSettings
from tests.support.procs import free_port


@pytest.fixture
async def client(fault_reasoner):
    settings = ServiceSettings(reasoner_url=fault_reasoner.url, planner_url=f"http://127.0.0.1:{free_port()}")
    async with LifespanManager(create_app(settings)) as mgr:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://rsim") as c:
            yield c


@pytest.mark.parametrize(("body", "status", "param"), [
    ({}, 400, "question"),
    ({"question": "q", "max_steps": 0}, 400, "max_steps"),
    ({"question": "q", "unknown": 1}, 400, "unknown"),
    ({"question": "q", "force": "nope"}, 400, "force"),
    ({"question": "q", "forbid": ["termination"]}, 400, "forbid"),
    ({"question": "q", "forbid": ["x", "y"]}, 400, "forbid.0"),
    ({"question": "q", "model": "no-such-model"}, 404, "model"),
])
async def test_solve_bad_input(client, body, status, param):
    r = await client.post("/solve", json=body)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["param"] == param and set(err) == {"message", "type", "param", "code"}
    if status == 404:
        assert err["code"] == "model_not_found"


@pytest.mark.parametrize(("raw", "param"), [
    (b"[1, 2]", None),
    (b"{not json", None),
    (b'{"messages": []}', "model"),
    (b'{"model": "", "messages": []}', "model"),
    (b'{"model": 3, "messages": []}', "model"),
    (b'{"model": "rsim/ok", "messages": []}', "messages"),
    (b'{"model": "rsim/ok", "messages": [{"role": "user", "content": "q"}], "rsim": {"force": 3}}', "rsim.force"),
    (b'{"model": "rsim/ok", "messages": [{"role": "assistant", "content": "only me"}]}', "messages"),
])
async def test_chat_bad_input(client, raw, param):
    r = await client.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param and r.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("path", ["/solve", "/v1/chat/completions", "/v1/feedback"])
@pytest.mark.parametrize("chunked", [False, True])
async def test_body_over_the_limit_is_413_on_every_route(fault_reasoner, path, chunked):
    settings = ServiceSettings(reasoner_url=fault_reasoner.url, max_body_bytes=4096)
    big = json.dumps({"model": "ok", "question": "q" * 5000, "messages": [{"role": "user", "content": "x"}]}).encode()

    async def pieces():
        for i in range(0, len(big), 1000):
            yield big[i:i + 1000]

    async with LifespanManager(create_app(settings)) as mgr:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://rsim") as c:
            r = await c.post(path, content=pieces() if chunked else big, headers={"content-type": "application/json"})
            small = await c.post("/solve", json={"question": "q", "max_steps": 0})
    assert r.status_code == 413, r.text
    assert r.json()["error"] == {"message": "request body over 4096 bytes", "type": "invalid_request_error",
                                 "param": None, "code": "payload_too_large"}
    assert small.status_code == 400  # under the limit, validation as usual


async def test_request_id_generated_and_planner_down_is_503(client):
    r = await client.post("/solve", json={"question": "q", "model": "ok", "gate": "open"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "planner_unavailable"
    assert len(r.headers["x-request-id"]) == 32
    # the shadow default needs no planner to answer: its planned steps are quiet, marked `down`
    shadow = await client.post("/solve", json={"question": "q", "model": "ok", "max_steps": 3})
    assert shadow.status_code == 200, shadow.text
    steps = shadow.json()["steps"]
    assert [s["gate"] for s in steps] == ["down", "down", None] and all(s["injected"] == "" for s in steps[:2])
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/v1/strategies")).json()["version"] == load_catalog().version


async def test_user_catalog_file(fault_reasoner, tmp_path):
    data = load_catalog().describe()
    data["strategies"] = [s for s in data["strategies"] if s["id"] in ("decomposition", "termination")]
    path = tmp_path / "two.json"
    path.write_text(json.dumps({"name": "two", "strategies": data["strategies"]}))
    settings = ServiceSettings(reasoner_url=fault_reasoner.url, catalog_path=path)
    async with LifespanManager(create_app(settings)) as mgr:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://rsim") as c:
            cat = (await c.get("/v1/strategies")).json()
            bad = await c.post("/solve", json={"question": "q", "force": "verification"})
    assert cat["name"] == "two" and [s["id"] for s in cat["strategies"]] == ["decomposition", "termination"]
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "force"


def test_missing_required_setting_fails_fast(monkeypatch):
    monkeypatch.delenv("RSIM_REASONER_URL", raising=False)
    with pytest.raises(ValueError, match="RSIM_REASONER_URL"):
        create_app()


async def test_api_keys_are_required_when_configured(fault_reasoner, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("key-from-file\n\n")
    settings = ServiceSettings(reasoner_url=fault_reasoner.url, api_keys="k1,k2", api_keys_file=keys)
    async with LifespanManager(create_app(settings)) as mgr:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://rsim") as c:
            missing = await c.get("/v1/models")
            wrong = await c.get("/v1/models", headers={"Authorization": "Bearer nope"})
            ok = [await c.get("/v1/models", headers={"Authorization": f"Bearer {k}"})
                  for k in ("k1", "k2", "key-from-file")]
            solve = await c.post("/solve", json={"question": "q"})
            chat = {"model": "ok", "messages": [{"role": "user", "content": "hi"}]}  # passthrough
            chat_missing = await c.post("/v1/chat/completions", json=chat)
            chat_wrong = await c.post("/v1/chat/completions", json=chat, headers={"Authorization": "Bearer k"})
            chat_ok = await c.post("/v1/chat/completions", json=chat, headers={"Authorization": "Bearer k2"})
            open_routes = [(await c.get(p)).status_code for p in ("/health", "/metrics", "/v1/strategies")]
    assert missing.status_code == wrong.status_code == solve.status_code == 401
    assert chat_missing.status_code == chat_wrong.status_code == 401 and chat_ok.status_code == 200
    assert chat_wrong.json()["error"]["code"] == "invalid_api_key" and chat_ok.json()["choices"][0]["message"]
    assert missing.json()["error"]["code"] == "invalid_api_key"
    assert "nope" not in wrong.text and "k1" not in missing.text  # secrets never echoed
    assert [r.status_code for r in ok] == [200, 200, 200]
    assert open_routes == [200, 200, 200]
    with pytest.raises(ValueError, match="RSIM_API_KEYS_FILE not found"):
        create_app(ServiceSettings(reasoner_url=fault_reasoner.url, api_keys_file=tmp_path / "none.txt"))


async def test_per_client_rate_and_concurrency_limits(fault_reasoner):
    import asyncio

    settings = ServiceSettings(reasoner_url=fault_reasoner.url, rate_limit_rpm=2, read_timeout_s=1.0, api_keys="A,B")
    async with LifespanManager(create_app(settings)) as mgr:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://rsim") as c:
            body = {"model": "ok", "messages": [{"role": "user", "content": "hi"}]}
            a = [await c.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer A"})
                 for _ in range(3)]
            b = await c.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer B"})
            health = await c.get("/health")
    assert [r.status_code for r in a] == [200, 200, 429] and b.status_code == 200 and health.status_code == 200
    assert a[0].headers["x-ratelimit-limit-requests"] == "2" and a[0].headers["x-ratelimit-remaining-requests"] == "1"
    refused = a[2]
    assert refused.json()["error"]["code"] == "rate_limit_exceeded" and int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"

    settings = ServiceSettings(reasoner_url=fault_reasoner.url, max_concurrent_per_client=1, read_timeout_s=1.0,
                               planner_url="http://127.0.0.1:9")
    async with LifespanManager(create_app(settings)) as mgr:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://rsim") as c:
            stalled = {"model": "rsim/stall", "messages": [{"role": "user", "content": "hi"}], "rsim": {"force":
                                                                                                      "verification"}}
            first = asyncio.ensure_future(c.post("/v1/chat/completions", json=stalled))
            await asyncio.sleep(0.3)
            second = await c.post("/v1/chat/completions", json=stalled)
            first = await first
            third = await c.post("/v1/chat/completions", json={"model": "ok", "messages": [
                {"role": "user", "content": "hi"}]})
    assert first.status_code == 504 and second.status_code == 429 and third.status_code == 200
    assert second.json()["error"]["code"] == "concurrency_limit"


async def test_passthrough_to_an_unreachable_reasoner_is_502_in_the_envelope():
    settings = ServiceSettings(reasoner_url=f"http://127.0.0.1:{free_port()}/v1", retries=0)
    async with LifespanManager(create_app(settings)) as mgr:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://rsim") as c:
            r = await c.post("/v1/chat/completions", json={"model": "m", "messages": []},
                             headers={"X-Request-Id": "gone-1"})
    assert r.status_code == 502 and r.headers["x-request-id"] == "gone-1"
    err = r.json()["error"]
    assert err["code"] == "upstream_error" and "unreachable" in err["message"]


async def test_passthrough_never_replays_an_upstream_cookie(fault_reasoner):
    # by host name: aiohttp's default cookie jar would keep this cookie (it ignores cookies from bare IPs)
    settings = ServiceSettings(reasoner_url=f"http://localhost:{fault_reasoner.port}/v1")
    async with LifespanManager(create_app(settings)) as mgr:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://rsim") as c:
            for rid in ("cookie-1", "cookie-2"):
                r = await c.post("/v1/chat/completions", json={"model": "ok", "messages": []},
                                 headers={"X-Request-Id": rid})
                assert r.status_code == 200 and "upstream-session" in r.headers["set-cookie"]  # its client's
    seen = httpx.get(f"http://127.0.0.1:{fault_reasoner.port}/_log").json()
    second = [e for e in seen if e["headers"].get("x-request-id") == "cookie-2"]
    assert len(second) == 1 and "cookie" not in second[0]["headers"]


async def test_passthrough_relays_a_compressed_body_with_its_encoding(client, fault_reasoner):
    r = await client.post("/v1/chat/completions", json={"model": "gzip", "messages": []},
                          headers={"X-Request-Id": "gz-1"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip" and r.json()["echo"]["model"] == "gzip"
    seen = httpx.get(f"http://127.0.0.1:{fault_reasoner.port}/_log").json()
    mine = [e for e in seen if e["headers"].get("x-request-id") == "gz-1"]
    assert len(mine) == 1 and "accept-encoding" not in mine[0]["headers"]  # rsim asks for none itself


async def test_openapi_documents_the_chat_body(client):
    doc = (await client.get("/openapi.json")).json()
    body = doc["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    chat = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert set(chat["required"]) == {"model", "messages"}
    assert chat["properties"]["rsim"]["anyOf"][0]["$ref"] == "#/components/schemas/RsimOptions"
    assert "RsimOptions" in doc["components"]["schemas"] and "ChatMessage" in doc["components"]["schemas"]


async def test_every_status_is_counted_once_by_endpoint(fault_reasoner, tmp_path):
    """Issue 12: 400, 401, 404, 413 and 429 were counted only where a route remembered to (the limits,
    body-limit and auth refusals never were, nor passthrough errors). One middleware now sees every answer."""
    keys = tmp_path / "keys"
    keys.write_text("good-key\n")
    settings = ServiceSettings(reasoner_url=fault_reasoner.url, planner_url=f"http://127.0.0.1:{free_port()}",
                               api_keys_file=keys, rate_limit_rpm=3, max_body_bytes=2048)
    good = {"Authorization": "Bearer good-key"}
    async with LifespanManager(create_app(settings)) as mgr:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://rsim") as c:
            chat = {"model": "ok", "messages": [{"role": "user", "content": "hi"}]}
            statuses = [
                (await c.post("/v1/chat/completions", json=chat)).status_code,  # no key: 401
                (await c.post("/solve", json={"question": "q", "max_steps": 0}, headers=good)).status_code,  # 400
                (await c.post("/solve", content=b"x" * 4096, headers=good)).status_code,  # 413
                (await c.get("/no/such/path", headers=good)).status_code,  # 404
                (await c.post("/v1/chat/completions", json=chat, headers=good)).status_code,  # passthrough 200
                (await c.post("/v1/chat/completions", json=chat, headers=good)).status_code,  # 429 (the key's 4th limited request of 3/min: every path counts, issue 29)
            ]
            metrics = (await c.get("/metrics")).text
    assert statuses == [401, 400, 413, 404, 200, 429]
    counted = {line.split(" ")[0]: float(line.split(" ")[1]) for line in metrics.splitlines()
               if line.startswith("rsim_requests_total{")}
    assert counted == {
        'rsim_requests_total{endpoint="chat",status="401"}': 1.0,
        'rsim_requests_total{endpoint="solve",status="400"}': 1.0,
        'rsim_requests_total{endpoint="solve",status="413"}': 1.0,
        'rsim_requests_total{endpoint="other",status="404"}': 1.0,
        'rsim_requests_total{endpoint="chat_passthrough",status="200"}': 1.0,
        'rsim_requests_total{endpoint="chat",status="429"}': 1.0,
    }, counted


async def test_the_answer_step_gets_the_requested_answer_budget(client, fault_reasoner):
    """Issue 13 §4: through the service the answer step had the service's budget whatever the caller (rsim
    eval's --service-url path) asked, so methods got different answer budgets. `final_max_tokens` is a
    /solve field now; unset, the service's setting holds."""
    for final, rid in ((5, "budget-asked"), (None, "budget-default")):
        body = {"question": "What is 2 + 3?", "model": "ok", "force": "verification", "max_steps": 2,
                "max_tokens_per_step": 7, **({"final_max_tokens": final} if final else {})}
        r = await client.post("/solve", json=body, headers={"X-Request-Id": rid})
        assert r.status_code == 200, r.text
        assert [s["strategy"] for s in r.json()["steps"]][-1] == "termination"
    log = httpx.get(f"http://127.0.0.1:{fault_reasoner.port}/_log").json()
    budgets = {rid: [json.loads(e["raw"])["max_tokens"] for e in log if e["headers"].get("x-request-id") == rid]
               for rid in ("budget-asked", "budget-default")}
    assert budgets["budget-asked"][0] <= 7 and budgets["budget-asked"][-1] == 5
    assert budgets["budget-default"][-1] == ServiceSettings(reasoner_url="http://x", planner_url="http://y").final_max_tokens


def nested(levels: int) -> str:
    """`levels` arrays inside one another, as JSON text."""
    return "[" * levels + "]" * levels


DEEP_PATHS = {  # path → a body of that path's shape with `metadata` nested to the given depth (the body is 1)
    "/solve": lambda d: f'{{"question": "q", "metadata": {nested(d - 1)}}}',
    "/v1/chat/completions": lambda d: f'{{"model": "ok", "messages": [], "metadata": {nested(d - 1)}}}',  # passthrough
    "/v1/chat/completions#rsim": lambda d: f'{{"model": "rsim/ok", "messages": [{{"role": "user", "content": "q"}}], '
                                           f'"metadata": {nested(d - 1)}}}',
    "/v1/completions": lambda d: f'{{"model": "ok", "prompt": "x", "metadata": {nested(d - 1)}}}',
    "/v1/responses": lambda d: f'{{"model": "ok", "input": "x", "metadata": {nested(d - 1)}}}',
    "/v1/embeddings": lambda d: f'{{"model": "ok", "input": "x", "metadata": {nested(d - 1)}}}',
    "/v1/feedback": lambda d: f'{{"request_id": "r", "metadata": {nested(d - 1)}}}',
}


@pytest.fixture
async def keyed(fault_reasoner):
    settings = ServiceSettings(reasoner_url=fault_reasoner.url, planner_url=f"http://127.0.0.1:{free_port()}",
                               api_keys="good-key")
    async with LifespanManager(create_app(settings)) as mgr:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://rsim") as c:
            yield c


@pytest.mark.parametrize("path", list(DEEP_PATHS))
async def test_a_deep_body_is_400_with_a_key_and_401_without_on_every_path(keyed, path):
    """Issue 29: 1,000+ nested arrays were a 500 (RecursionError) on chat and completions, parsed before the
    key was checked; on /solve FastAPI parsed them before the key check too. Now the key comes first, and
    every body is parsed under RSIM_MAX_JSON_DEPTH (64): a 400 in the envelope above it."""
    url, body = path.split("#")[0], DEEP_PATHS[path]
    json_headers = {"content-type": "application/json"}
    deep = body(2000).encode()
    for auth in ({}, {"Authorization": "Bearer wrong"}):
        r = await keyed.post(url, content=deep, headers={**json_headers, **auth})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", (auth, r.status_code, r.text)
    good = {**json_headers, "Authorization": "Bearer good-key"}
    for depth in (2000, 65):
        r = await keyed.post(url, content=body(depth).encode(), headers=good)
        assert r.status_code == 400, (depth, r.status_code, r.text)
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["code"] == "json_too_deep"
        assert err["type"] == "invalid_request_error" and "64 levels" in err["message"]
    at_bound = await keyed.post(url, content=body(64).encode(), headers=good)
    expected = {"/solve": 400, "/v1/feedback": 400, "/v1/chat/completions#rsim": 400,  # parsed: a bad `metadata`
                "/v1/chat/completions": 200,  # forwarded, answered by the reasoner
                "/v1/completions": 404, "/v1/responses": 404, "/v1/embeddings": 404}  # forwarded: the fault reasoner's 404
    assert at_bound.status_code == expected[path], at_bound.text
    if expected[path] == 400:
        assert at_bound.json()["error"]["param"] == "metadata"


async def test_deep_bodies_without_keys_configured_are_400_not_500(client):
    for path, body in DEEP_PATHS.items():
        r = await client.post(path.split("#")[0], content=body(2000).encode(), headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "json_too_deep", (path, r.status_code, r.text)


async def test_a_multipart_upload_is_forwarded_unparsed(fault_reasoner):
    """Only JSON-looking bodies are parsed: an upload full of brackets reaches the reasoner as it came (once the
    operator forwards the path)."""
    settings = ServiceSettings(reasoner_url=fault_reasoner.url, planner_url=f"http://127.0.0.1:{free_port()}",
                               passthrough_allow="POST /v1/audio/transcriptions")
    async with LifespanManager(create_app(settings)) as mgr:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://rsim") as c:
            r = await c.post("/v1/audio/transcriptions", files={"file": ("a.wav", b"[" * 5000)}, data={"model": "ok"},
                             headers={"X-Request-Id": "upload-1"})
    assert r.status_code == 404 and "no such path" in r.text  # the fault reasoner's: forwarded, not refused
    seen = [e for e in httpx.get(f"http://127.0.0.1:{fault_reasoner.port}/_log").json()
            if e["headers"].get("x-request-id") == "upload-1"]
    assert [e["elsewhere"] for e in seen] == ["POST /v1/audio/transcriptions"] and "[[[[" in seen[0]["raw"]


ACCOUNT_PATHS = [("GET", "/v1/files"), ("DELETE", "/v1/files/file-abc"), ("POST", "/v1/fine_tuning/jobs"),
                 ("GET", "/v1/batches"), ("POST", "/v1/batches/b1/cancel"), ("GET", "/v1/completions")]


async def test_only_the_allowlist_is_forwarded_with_the_reasoners_key(fault_reasoner, tmp_path):
    """Issue 29: every /v1 path and method went to the reasoner with the operator's key, so any caller could
    list or DELETE the account's files, batches and fine-tunes. By default only POST completions, embeddings and
    responses are forwarded; the rest is rsim's 404 and never reaches the reasoner; a wrong key is still a 401."""
    keys = tmp_path / "keys"
    keys.write_text("good-key\n")
    settings = ServiceSettings(reasoner_url=fault_reasoner.url, planner_url=f"http://127.0.0.1:{free_port()}",
                               api_keys_file=keys)
    good = {"Authorization": "Bearer good-key"}
    async with LifespanManager(create_app(settings)) as mgr:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://rsim") as c:
            for i, (method, path) in enumerate(ACCOUNT_PATHS):
                r = await c.request(method, path, headers={**good, "X-Request-Id": f"acct-{i}"},
                                    json={"model": "ok"} if method == "POST" else None)
                assert r.status_code == 404 and r.json()["error"]["code"] == "not_forwarded", (method, path, r.text)
                assert "RSIM_PASSTHROUGH_ALLOW" in r.json()["error"]["message"]
                anonymous = await c.request(method, path, headers={"Authorization": "Bearer made-up"})
                assert anonymous.status_code == 401, (method, path)  # the key first: nothing said of the path
            fwd = await c.post("/v1/completions", json={"model": "ok", "prompt": "x"},
                               headers={**good, "X-Request-Id": "acct-fwd"})
            assert fwd.status_code == 404 and "no such path" in fwd.text  # the reasoner's answer: forwarded
    seen = [e.get("elsewhere") for e in httpx.get(f"http://127.0.0.1:{fault_reasoner.port}/_log").json()
            if e["headers"].get("x-request-id", "").startswith("acct-")]
    assert seen == ["POST /v1/completions"], seen


async def test_the_operator_widens_the_allowlist(fault_reasoner):
    settings = ServiceSettings(reasoner_url=fault_reasoner.url, planner_url=f"http://127.0.0.1:{free_port()}",
                               passthrough_allow="* /v1/files*, GET /v1/batches")
    async with LifespanManager(create_app(settings)) as mgr:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://rsim") as c:
            codes = {f"{m} {p}": (await c.request(m, p, headers={"X-Request-Id": f"wide-{m}-{p}"})).json()["error"]
                     .get("code") for m, p in ACCOUNT_PATHS if m != "POST"}
    assert codes == {"GET /v1/files": None, "DELETE /v1/files/file-abc": None, "GET /v1/batches": None,
                     "GET /v1/completions": "not_forwarded"}, codes  # None: the fault reasoner's own 404
    seen = sorted(e["elsewhere"] for e in httpx.get(f"http://127.0.0.1:{fault_reasoner.port}/_log").json()
                  if e["headers"].get("x-request-id", "").startswith("wide-"))
    assert seen == ["DELETE /v1/files/file-abc", "GET /v1/batches", "GET /v1/files"]


@pytest.mark.parametrize("allow", ["POST /v2/x", "FETCH /v1/files", "GET /v1/../metrics", "POST /v1/*/x", "/v1/files"])
def test_a_malformed_allowlist_is_a_start_up_error(allow):
    with pytest.raises(ValueError, match="RSIM_PASSTHROUGH_ALLOW entry"):
        ServiceSettings(reasoner_url="http://x", passthrough_allow=allow)


async def test_anonymous_callers_share_their_address_bucket_whatever_bearer_they_send(fault_reasoner):
    """Issue 29: without keys each made-up `Authorization` got its own bucket, so a random bearer reset the
    limit. Anonymous callers are keyed by address."""
    settings = ServiceSettings(reasoner_url=fault_reasoner.url, rate_limit_rpm=3)
    async with LifespanManager(create_app(settings)) as mgr:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://rsim") as c:
            body = {"model": "ok", "messages": [{"role": "user", "content": "hi"}]}
            codes = [(await c.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer made-up-{i}"}))
                     .status_code for i in range(4)]
    assert codes == [200, 200, 200, 429]


async def test_ready_probes_once_per_window_and_names_no_urls(fault_reasoner):
    """Issue 29: each /ready hit called every upstream and the planner, and its errors printed internal URLs.
    Now one probe per RSIM_READY_CACHE_S serves every caller in the window, and a refusal names no URL."""
    import asyncio

    calls = lambda: httpx.get(f"http://127.0.0.1:{fault_reasoner.port}/_models_calls").json()  # noqa: E731
    settings = ServiceSettings(reasoner_url=fault_reasoner.url, planner_url=f"http://127.0.0.1:{free_port()}",
                               ready_cache_s=30)
    async with LifespanManager(create_app(settings)) as mgr:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://rsim") as c:
            before = calls()
            answers = await asyncio.gather(*(c.get("/ready") for _ in range(20)))
            answers += [await c.get("/ready") for _ in range(5)]
            assert {r.status_code for r in answers} == {200} and calls() - before == 1
    planner = f"http://127.0.0.1:{free_port()}"
    down = ServiceSettings(reasoner_url=f"http://127.0.0.1:{free_port()}/v1", planner_url=planner, ready_cache_s=0)
    closed = ServiceSettings(reasoner_url=fault_reasoner.url, planner_url=planner, gate="open", ready_cache_s=0)
    for settings, says in ((down, "reasoner not ready: reasoner ("), (closed, "planner not ready")):
        async with LifespanManager(create_app(settings)) as mgr:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://rsim") as c:
                first, again = await c.get("/ready"), await c.get("/ready")
        for r in (first, again):
            assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready", r.text
            assert says in r.json()["error"]["message"] and "127.0.0.1" not in r.text and "http" not in r.text


async def test_every_path_is_limited_but_the_probes(fault_reasoner, tmp_path):
    """Issue 29: rate and concurrency limits covered /solve and chat only; /v1/completions, /v1/responses,
    /v1/embeddings passed unlimited. Every path now spends the client's budget but /health, /ready, /metrics."""
    keys = tmp_path / "keys"
    keys.write_text("key-0\nkey-1\nkey-2\n")
    settings = ServiceSettings(reasoner_url=fault_reasoner.url, planner_url=f"http://127.0.0.1:{free_port()}",
                               api_keys_file=keys, rate_limit_rpm=3)
    async with LifespanManager(create_app(settings)) as mgr:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://rsim") as c:
            for i, path in enumerate(("/v1/completions", "/v1/embeddings", "/v1/responses")):
                key = {"Authorization": f"Bearer key-{i}"}
                for _ in range(3):
                    assert (await c.get("/ready", headers=key)).status_code == 200
                    assert (await c.get("/metrics", headers=key)).status_code == 200
                codes = [(await c.post(path, json={"model": "ok", "input": "x"}, headers=key)).status_code
                         for _ in range(4)]
                assert codes == [404, 404, 404, 429], (path, codes)  # 404: the fault reasoner's, forwarded


async def test_a_request_past_the_token_budget_is_refused_before_any_work(fault_reasoner):
    """Issue 29: one request could ask for n=16 × 64 steps × 8,192 tokens (≈ 8M reasoner tokens) and count as one
    request. Above RSIM_MAX_REQUEST_TOKENS it is a 400 that says the sum; at the budget it runs."""
    settings = ServiceSettings(reasoner_url=fault_reasoner.url, planner_url=f"http://127.0.0.1:{free_port()}",
                               max_request_tokens=1000)
    chat = {"model": "rsim/ok", "messages": [{"role": "user", "content": "2 + 3?"}],
            "rsim": {"max_steps": 4, "max_tokens_per_step": 200, "force": "verification"}}
    async with LifespanManager(create_app(settings)) as mgr:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://rsim") as c:
            huge = await c.post("/v1/chat/completions", json={**chat, "n": 16, "max_tokens": 8192},
                                headers={"X-Request-Id": "budget-huge"})
            solve = await c.post("/solve", json={"question": "q", "model": "ok", "max_steps": 64,
                                                 "max_tokens_per_step": 8192}, headers={"X-Request-Id": "budget-solve"})
            capped = await c.post("/v1/chat/completions", json={**chat, "n": 2, "max_tokens": 100},
                                  headers={"X-Request-Id": "budget-capped"})  # 2 × min(4 × 200 + 512, 100)
    for r in (huge, solve):
        assert r.status_code == 400 and r.json()["error"]["code"] == "request_budget_exceeded", r.text
        assert "RSIM_MAX_REQUEST_TOKENS" in r.json()["error"]["message"]
    assert "16 × 1312" in huge.json()["error"]["message"]  # 4 × 200 + the 512-token answer, per choice
    assert capped.status_code == 200, capped.text
    seen = {e["headers"].get("x-request-id", "").split(":")[0] for e in
            httpx.get(f"http://127.0.0.1:{fault_reasoner.port}/_log").json()}
    assert not {"budget-huge", "budget-solve"} & seen  # refused before any upstream call


async def test_docs_and_metrics_can_leave_the_api_port(fault_reasoner):
    """Issue 29: /metrics, /docs and /openapi.json were open on the API port. RSIM_DOCS=false takes the pages
    away; RSIM_METRICS_PORT serves the metrics on a port of their own (the API's /metrics is then a 404)."""
    port = free_port()
    settings = ServiceSettings(reasoner_url=fault_reasoner.url, planner_url=f"http://127.0.0.1:{free_port()}",
                               docs=False, metrics_port=port)
    async with LifespanManager(create_app(settings)) as mgr:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://rsim") as c:
            assert (await c.post("/solve", json={"question": "q", "model": "ok", "max_steps": 2})).status_code == 200
            codes = {p: (await c.get(p)).status_code for p in ("/docs", "/redoc", "/openapi.json", "/metrics")}
            assert codes == dict.fromkeys(codes, 404), codes
            apart = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
            assert apart.status_code == 200 and 'rsim_requests_total{endpoint="solve",status="200"} 1.0' in apart.text
    with pytest.raises(httpx.ConnectError):  # closed with the service
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
