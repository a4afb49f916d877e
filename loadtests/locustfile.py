"""Locust load for rsim: `POST /solve`, and `POST /v1/chat/completions` non-streamed and streamed. For
streams, the entry's time is the whole stream and its time to first token (the first chunk that carries
text) is reported as a separate `TTFT` entry of the same name. Each locust user holds one connection.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 --headless -u 32 -r 32 -t 60s
    python -m loadtests.load ...      # the headless runner: starts a stack, writes JSON per endpoint

Configured by environment variables:
    RSIM_LOAD_MODEL      the reasoner model id ("sim" for the simulated reasoner)
    RSIM_LOAD_INJECT     1: chat requests ask for `rsim/<model>` (strategy injection), 0: passthrough (default 1)
    RSIM_LOAD_MAX_STEPS  steps per strategy-injected request (default 2)
    RSIM_LOAD_MAX_TOKENS tokens per step (default 16)
    RSIM_API_KEY         sent as a bearer token when set
"""

from __future__ import annotations

import json
import os
import time

from locust import FastHttpUser, constant, events, tag, task

MODEL = os.environ.get("RSIM_LOAD_MODEL", "sim")
INJECT = os.environ.get("RSIM_LOAD_INJECT", "1") == "1"
MAX_STEPS = int(os.environ.get("RSIM_LOAD_MAX_STEPS", "2"))
MAX_TOKENS = int(os.environ.get("RSIM_LOAD_MAX_TOKENS", "16"))
API_KEY = os.environ.get("RSIM_API_KEY")
QUESTION = "Natalia sold 48 clips in April and half as many in May. How many clips did she sell in all?"
CHAT = "/v1/chat/completions"


def chat_body(stream: bool) -> dict:
    body = {"model": f"rsim/{MODEL}" if INJECT else MODEL, "stream": stream,
            "messages": [{"role": "user", "content": QUESTION}]}
    if INJECT:
        body["rsim"] = {"max_steps": MAX_STEPS, "max_tokens_per_step": MAX_TOKENS}
    else:
        body["max_tokens"] = MAX_STEPS * MAX_TOKENS
    return body


def carries_text(line: str) -> bool:
    """A `data:` line with a non-empty content or reasoning delta."""
    if not line.startswith("data: {"):
        return False
    for choice in json.loads(line[6:]).get("choices", ()):
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("reasoning_content"):
            return True
    return False


class RsimUser(FastHttpUser):
    wait_time = constant(0)  # closed loop: the next request as soon as the last one is answered
    concurrency = 1  # one connection per user
    network_timeout = 300.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.auth = {"Authorization": f"Bearer {API_KEY}"} if API_KEY else {}

    @tag("solve")
    @task
    def solve(self) -> None:
        body = {"question": QUESTION, "model": MODEL, "max_steps": MAX_STEPS, "max_tokens_per_step": MAX_TOKENS}
        with self.client.post("/solve", json=body, headers=self.auth, catch_response=True) as r:
            if r.status_code == 200 and not (r.json() or {}).get("answer") and not (r.json() or {}).get("text"):
                r.failure("answer and text are empty")

    @tag("chat")
    @task
    def chat(self) -> None:
        with self.client.post(CHAT, json=chat_body(False), headers=self.auth, catch_response=True) as r:
            if r.status_code == 200 and not (r.json() or {}).get("choices"):
                r.failure("no choices")

    @tag("chat_stream")
    @task
    def chat_stream(self) -> None:
        name = f"{CHAT} [stream]"
        t0 = time.perf_counter()
        ttft = None
        with self.client.post(CHAT, json=chat_body(True), headers=self.auth, stream=True, catch_response=True,
                              name=name) as r:
            done, error = False, None
            raw = r._response  # geventhttpclient's response: readline returns as soon as a line is in
            while raw is not None and (line := raw.readline(b"\n")):
                line = line.decode().rstrip("\r\n")
                if ttft is None and carries_text(line):
                    ttft = time.perf_counter() - t0
                if line.startswith('data: {"error"'):
                    error = json.loads(line[6:])["error"].get("message")
                done = done or line == "data: [DONE]"
            r.request_meta["response_time"] = (time.perf_counter() - t0) * 1000  # the whole stream
            if r.status_code == 200 and (error or not done):
                r.failure(error or "stream ended without [DONE]")
        if ttft is not None and r.status_code == 200:
            events.request.fire(request_type="TTFT", name=name, response_time=ttft * 1000, response_length=0,
                                exception=None, context={})
