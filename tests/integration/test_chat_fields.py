"""Every chat field on an `rsim/` model has a defined fate (issue 15), tried with the official SDK: the
ones the loop cannot honour are refused with a 400 naming them (they were silently dropped: `tools` got
an invented answer, `response_format` plain text, `n=2` one choice), and the honoured ones reach the
reasoner — seen in what the fault reasoner logs of each call."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.integration.test_faults import start_service

pytestmark = pytest.mark.slow
MSG = [{"role": "user", "content": "What is 2 + 3?"}]


@pytest.fixture(scope="module")
def service(fault_reasoner, tiny_planner, work_dir):
    port, ctx = start_service(work_dir, fault_reasoner.url, tiny_planner.url, "service-fields",
                              RSIM_MAX_STEPS="4", RSIM_MIN_STEP_TOKENS="0", RSIM_MIN_STEP_CHARS="0")
    with ctx:
        yield f"http://127.0.0.1:{port}"


def calls(fault_reasoner, rid: str) -> list[dict]:
    log = httpx.get(f"http://127.0.0.1:{fault_reasoner.port}/_log").json()
    return [json.loads(e["raw"]) for e in log if e["headers"].get("x-request-id") == rid]


@pytest.mark.parametrize(("field", "value"), [
    ("tools", [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]),
    ("tool_choice", "auto"), ("response_format", {"type": "json_object"}), ("logprobs", True), ("top_logprobs", 2),
    ("n", 17), ("logit_bias", {"50256": -100}), ("modalities", ["text", "audio"]), ("no_such_field", 1),
])
def test_unsupported_fields_are_refused_by_name(service, field, value):
    client = openai.OpenAI(base_url=f"{service}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="rsim/ok", messages=MSG, extra_body={field: value})
    err = e.value.body
    assert e.value.status_code == 400 and err["param"] == field and field in err["message"]


def test_off_values_and_bookkeeping_fields_are_accepted(service):
    client = openai.OpenAI(base_url=f"{service}/v1", api_key="x", max_retries=0)
    r = client.chat.completions.create(model="rsim/ok", messages=MSG, tool_choice="none", logprobs=False, n=1,
                                       response_format={"type": "text"}, user="u-1", metadata={"team": "a"},
                                       store=False)
    assert r.choices[0].message.content


def test_honoured_fields_reach_the_reasoner(service, fault_reasoner):
    client = openai.OpenAI(base_url=f"{service}/v1", api_key="x", max_retries=0)
    r = client.chat.completions.create(model="rsim/ok", messages=MSG, top_p=0.9, presence_penalty=0.5,
                                       frequency_penalty=0.25, seed=7, stop=["###"], temperature=0.3,
                                       extra_headers={"X-Request-Id": "fields-1"},
                                       extra_body={"rsim": {"return_trace": True}})
    sent = calls(fault_reasoner, "fields-1")
    assert len(sent) == len(r.model_extra["rsim"]["steps"]) >= 2
    for body in sent:
        assert (body["top_p"], body["presence_penalty"], body["frequency_penalty"]) == (0.9, 0.5, 0.25)
        assert body["seed"] == 7 and body["temperature"] == 0.3
    assert "###" in sent[-1]["stop"] and all("###" not in b["stop"] for b in sent[:-1])  # the answer's stop


@pytest.fixture(scope="module")
def real(tiny_reasoner, tiny_planner, work_dir):
    """In front of the tiny vLLM reasoner, which honours `max_tokens` (the fake writes what it likes)."""
    port, ctx = start_service(work_dir, tiny_reasoner.url, tiny_planner.url, "service-fields-real",
                              RSIM_READ_TIMEOUT_S="60", RSIM_MAX_STEPS="4", RSIM_FINAL_MAX_TOKENS="16",
                              RSIM_MAX_TOKENS_PER_STEP="64")
    with ctx:
        yield f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("budget", [4, 60, 140])
def test_max_tokens_is_the_total_budget(real, budget):
    """All steps together stay within the client's budget: a small one goes straight to the answer,
    a larger one holds reasoning steps too (a quarter of it, at most the answer budget, kept for the answer)."""
    client = openai.OpenAI(base_url=f"{real}/v1", api_key="x", max_retries=0)
    for kw in ({"max_tokens": budget}, {"max_completion_tokens": budget}):
        r = client.chat.completions.create(model="rsim/tiny-qwen2", messages=MSG, temperature=0,
                                           extra_body={"rsim": {"return_trace": True}}, **kw)
        steps = r.model_extra["rsim"]["steps"]
        assert r.usage.completion_tokens <= budget and steps[-1]["strategy"] == "termination"
        assert len(steps) == 1 if budget == 4 else len(steps) >= 2
        assert r.choices[0].finish_reason == ("length" if r.usage.completion_tokens == budget else "stop")


def test_reasoning_effort_sets_the_step_budget(service):
    client = openai.OpenAI(base_url=f"{service}/v1", api_key="x", max_retries=0)
    lengths = {}
    for effort in ("minimal", "low", "high"):
        r = client.chat.completions.create(model="rsim/ok", messages=MSG, reasoning_effort=effort,
                                           extra_body={"rsim": {"return_trace": True}})
        lengths[effort] = len(r.model_extra["rsim"]["steps"])
    assert lengths["minimal"] == 1 and lengths["low"] <= 2 < lengths["high"]


def test_the_conversation_is_kept_as_messages(service, fault_reasoner, tiny_planner):
    """The system prompt goes to the reasoner as a system message and earlier turns as the turns they were
    (they were merged into one labelled user turn, and before that thrown away); the planner reads the
    same conversation labelled; a conversation must end with the user's turn."""
    client = openai.OpenAI(base_url=f"{service}/v1", api_key="x", max_retries=0)
    client.chat.completions.create(model="rsim/ok", extra_headers={"X-Request-Id": "conv-1"}, messages=[
        {"role": "system", "content": "Answer tersely."}, {"role": "user", "content": "I have 3 apples."},
        {"role": "assistant", "content": "Noted: 3 apples."},
        {"role": "tool", "content": "apples=3", "tool_call_id": "c1"},
        {"role": "user", "content": [{"type": "text", "text": "I buy 2 more. How many?"}]}])
    sent = calls(fault_reasoner, "conv-1")
    assert sent[0]["messages"][:4] == [  # turns of one role in a row joined: strict templates want alternation
        {"role": "system", "content": "Answer tersely."}, {"role": "user", "content": "I have 3 apples."},
        {"role": "assistant", "content": "Noted: 3 apples."},
        {"role": "user", "content": "Tool result: apples=3\n\nI buy 2 more. How many?"}]
    assert all(b["messages"][:4] == sent[0]["messages"][:4] for b in sent)  # every step, the answer's too
    assert [m["role"] for m in sent[-1]["messages"][4:]] == ["assistant"]  # then the chain of thought
    client.chat.completions.create(model="rsim/ok", extra_headers={"X-Request-Id": "conv-2"}, messages=[
        {"role": "user", "content": "Hi."}, {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "2 + 3?"}])
    assert calls(fault_reasoner, "conv-2")[0]["messages"][:2] == [  # a system prompt goes first, always
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi.\n\n2 + 3?"}]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="rsim/ok", messages=[
            {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Let me think"}])
    assert e.value.body["param"] == "messages.1" and "end with a user turn" in e.value.body["message"]


def test_the_planner_reads_the_conversation_labelled():
    from service.injection import transcript

    ctx = [{"role": "system", "content": "Be brief."}, {"role": "assistant", "content": "Hello."}]
    assert transcript(ctx, "2 + 3?") == "System: Be brief.\n\nAssistant: Hello.\n\nUser: 2 + 3?"
    assert transcript([], "2 + 3?") == "2 + 3?"


def test_n_runs_independent_episodes(service, fault_reasoner):
    """`n=2` was answered with one choice: now each is an episode of its own (its own reasoner calls), the
    usage their exact sum, and a stream interleaves both choices by index, each opened and finished once."""
    client = openai.OpenAI(base_url=f"{service}/v1", api_key="x", max_retries=0)
    r = client.chat.completions.create(model="rsim/ok", messages=MSG, n=2, seed=3,
                                       extra_headers={"X-Request-Id": "n-two"}, extra_body={"rsim": {"return_trace": True}})
    assert [c.index for c in r.choices] == [0, 1] and all(c.message.content for c in r.choices)
    traces = [c.model_extra["rsim"]["steps"] for c in r.choices]
    first, second = calls(fault_reasoner, "n-two-0"), calls(fault_reasoner, "n-two-1")
    assert len(first) == len(traces[0]) and len(second) == len(traces[1]) and first and second
    assert {b["seed"] for b in first} == {3} and {b["seed"] for b in second} == {4}
    assert r.usage.model_extra["rsim"]["reasoner_calls"] == len(first) + len(second)
    one = client.chat.completions.create(model="rsim/ok", messages=MSG, seed=3)
    assert r.usage.completion_tokens == 2 * one.usage.completion_tokens  # the fake writes the same for each
    chunks = list(client.chat.completions.create(model="rsim/ok", messages=MSG, n=3, stream=True,
                                                 stream_options={"include_usage": True}))
    by_index = {i: [c for c in chunks if c.choices and c.choices[0].index == i] for i in range(3)}
    for i, cs in by_index.items():
        assert cs[0].choices[0].delta.role == "assistant", i
        assert sum(1 for c in cs if c.choices[0].finish_reason) == 1 and cs[-1].choices[0].finish_reason == "stop"
        assert "".join(c.choices[0].delta.content or "" for c in cs)
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3 * one.usage.completion_tokens


def test_payloads_are_the_sdks_types(service):
    """What rsim/ models answer is built from typed models (service.protocol.ChatCompletion, …Chunk) and
    parses as the official SDK's types, with no key the SDK does not define beyond the documented extras
    (the reasoning fields, `rsim`)."""
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    extras = {"reasoning", "reasoning_content", "rsim"}
    body = {"model": "rsim/ok", "messages": MSG, "n": 2, "rsim": {"return_trace": True}}
    raw = httpx.post(f"{service}/v1/chat/completions", json=body, timeout=60).json()
    typed = ChatCompletion.model_validate(raw)
    assert set(raw) - set(ChatCompletion.model_fields) <= extras
    for choice, parsed in zip(raw["choices"], typed.choices, strict=True):
        assert set(choice) - set(type(parsed).model_fields) <= extras
        assert set(choice["message"]) - set(type(parsed.message).model_fields) <= extras
    with httpx.stream("POST", f"{service}/v1/chat/completions", timeout=60,
                      json={**body, "stream": True, "stream_options": {"include_usage": True}}) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    for event in events:
        parsed = ChatCompletionChunk.model_validate(event)
        assert set(event) - set(ChatCompletionChunk.model_fields) <= extras
        for choice in parsed.choices:
            assert set(choice.delta.model_extra or {}) <= extras
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] > 0
