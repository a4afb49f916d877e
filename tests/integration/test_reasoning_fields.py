"""Reasoning in today's field names (issue 15): rsim's chain of thought goes out as `reasoning` and
`reasoning_content` (configurable), in messages and stream deltas; and a reasoner served with a
reasoning parser — its thinking streamed under `reasoning` or `reasoning_content`, not `content` — still
writes steps. The small models here emit no thinking tags for a real parser to split, so the fake
reasoner replays the two shapes vLLM streams (recorded field names); the official SDK reads them."""

from __future__ import annotations

import openai
import pytest

from tests.integration.test_faults import start_service

pytestmark = pytest.mark.slow


def extra(obj) -> dict:
    return obj.model_extra or {}


@pytest.mark.parametrize("model", ["reasoning", "reasoning_content"])
def test_a_reasoning_parser_reasoner_writes_steps(fault_reasoner, tiny_planner, work_dir, model):
    port, ctx = start_service(work_dir, fault_reasoner.url, tiny_planner.url, f"service-rf-{model}")
    with ctx:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        r = client.chat.completions.create(model=f"rsim/{model}", messages=[{"role": "user", "content": "q"}],
                                           extra_body={"rsim": {"return_trace": True}})
        msg = r.choices[0].message
        steps = extra(r)["rsim"]["steps"]
        assert all(s["text"].startswith("think0 think1 think2 t0") for s in steps)  # thinking read as step text
        assert extra(msg)["reasoning"] == extra(msg)["reasoning_content"] and "think2 t0" in extra(msg)["reasoning"]

        stream = client.chat.completions.create(model=f"rsim/{model}", messages=[{"role": "user", "content": "q"}],
                                                stream=True)
        got = {"reasoning": "", "reasoning_content": ""}
        for c in stream:
            for f in got:
                got[f] += extra(c.choices[0].delta).get(f) or "" if c.choices else ""
        assert got["reasoning"] == got["reasoning_content"] and "think0 think1 think2 t0" in got["reasoning"]


def test_one_reasoning_field_when_configured(fault_reasoner, tiny_planner, work_dir):
    port, ctx = start_service(work_dir, fault_reasoner.url, tiny_planner.url, "service-rf-one",
                              RSIM_REASONING_FIELDS="reasoning")
    with ctx:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        msg = client.chat.completions.create(model="rsim/ok", messages=[{"role": "user", "content": "q"}]).choices[0].message
        assert "t0 t1" in extra(msg)["reasoning"] and "reasoning_content" not in extra(msg)


def test_a_rewritten_step_streams_as_it_is_kept(fault_reasoner, tiny_planner, work_dir):
    """A reasoner that writes the same 50 tokens every time: its second step is a copy, dropped and
    written again without its instruction. The stream must carry the chain of thought as kept — the
    dropped instruction never went out — so streamed and non-streamed reasoning are the same text."""
    port, ctx = start_service(work_dir, fault_reasoner.url, tiny_planner.url, "service-rf-copy",
                              RSIM_MAX_STEPS="3", RSIM_MIN_STEP_CHARS="0", RSIM_MIN_STEP_TOKENS="0")
    with ctx:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        r = client.chat.completions.create(model="rsim/long", messages=[{"role": "user", "content": "q"}],
                                           extra_body={"rsim": {"return_trace": True}})
        steps = extra(r)["rsim"]["steps"]
        assert steps[1]["rewritten"] and steps[1]["injected"] == "" and steps[1]["ends_reasoning"] == "repeat"
        stream = client.chat.completions.create(model="rsim/long", messages=[{"role": "user", "content": "q"}],
                                                stream=True)
        streamed = "".join(extra(c.choices[0].delta).get("reasoning") or "" for c in stream if c.choices)
        assert streamed == extra(r.choices[0].message)["reasoning"]
        assert steps[0]["injected"] in streamed
