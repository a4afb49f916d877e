"""Secrets never reach a log or a response: client API keys, the reasoner's API key and the planner's
admin token, right or wrong, with both servers logging at debug level."""

from __future__ import annotations

import httpx

from tests.support.procs import free_port, running, serve_cmd

SECRETS = {"client": "sk-client-3f9a1c77e2", "client2": "sk-client-b81d5e0c44", "upstream": "sk-upstream-7c2e91ab05",
           "wrong": "sk-wrong-54aa0d9e13", "admin": "adm-token-e6f01b2c93", "admin_wrong": "adm-wrong-0d7c4e1a58"}


def debug_cmd(what: str, port: int) -> list[str]:
    cmd = serve_cmd(what, port)
    cmd[cmd.index("--log-level") + 1] = "debug"
    return cmd


def test_secrets_never_logged_nor_echoed(fault_reasoner, tiny_model, work_dir):
    planner_port, service_port = free_port(), free_port()
    planner, service = f"http://127.0.0.1:{planner_port}", f"http://127.0.0.1:{service_port}"
    planner_log, service_log = work_dir / "logs" / "secrets-planner.log", work_dir / "logs" / "secrets-service.log"
    planner_env = {"RSIM_PLANNER_MODEL": str(tiny_model), "RSIM_PLANNER_THREADS": "1",
                   "RSIM_PLANNER_ADMIN_TOKEN": SECRETS["admin"]}
    service_env = {"RSIM_REASONER_URL": fault_reasoner.url, "RSIM_PLANNER_URL": planner,
                   "RSIM_API_KEYS": f"{SECRETS['client']},{SECRETS['client2']}",
                   "RSIM_REASONER_API_KEY": SECRETS["upstream"], "RSIM_MAX_STEPS": "2", "RSIM_MAX_TOKENS_PER_STEP": "4"}
    bodies = []
    with running(debug_cmd("planner", planner_port), ready_url=f"{planner}/ready", log_path=planner_log,
                 env=planner_env), \
         running(debug_cmd("service", service_port), ready_url=f"{service}/ready", log_path=service_log,
                 env=service_env):
        def call(method: str, url: str, key: str | None, **kw) -> httpx.Response:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            r = httpx.request(method, url, headers=headers, timeout=60, **kw)
            bodies.append(r.text + str(dict(r.headers)))
            return r

        assert call("GET", f"{service}/v1/models", SECRETS["client"]).status_code == 200
        assert call("POST", f"{service}/solve", SECRETS["client2"],
                    json={"question": "What is 2 + 2?", "model": "ok"}).status_code == 200
        assert call("POST", f"{service}/v1/chat/completions", SECRETS["client"],
                    json={"model": "fail-500", "messages": [{"role": "user", "content": "q"}]}).status_code == 500
        assert call("POST", f"{service}/solve", SECRETS["wrong"], json={"question": "q"}).status_code == 401
        assert call("POST", f"{service}/solve", SECRETS["upstream"], json={"question": "q"}).status_code == 401
        assert call("POST", f"{planner}/admin/reload", SECRETS["admin_wrong"]).status_code == 401
        assert call("POST", f"{planner}/admin/reload", SECRETS["admin"]).status_code == 200
        seen = httpx.get(fault_reasoner.url.removesuffix("/v1") + "/_log", timeout=10).json()
    # the upstream key was used (the reasoner got it), the client keys were not forwarded
    auth = [e["headers"].get("authorization") for e in seen]
    assert f"Bearer {SECRETS['upstream']}" in auth and not any(SECRETS["client"] in (a or "") for a in auth)
    logs = planner_log.read_text() + service_log.read_text()
    assert "DEBUG" in logs or "INFO" in logs  # they did log, and at length
    for name, secret in SECRETS.items():
        assert secret not in logs, f"the {name} secret is in a log"
        assert not any(secret in b for b in bodies), f"the {name} secret is in a response"
