"""The step loop with no web framework, in each reasoner mode, against the real vLLM reasoner and
the real planner server."""

from __future__ import annotations

import pytest

from service.catalog import load_catalog
from service.injection import completion_prompt
from service.orchestrator import EpisodeConfig, Finished, Orchestrator, StepEnded, StrategyChosen, TextDelta
from service.planner_client import HttpPlanner
from service.reasoner import OpenAIReasoner, make_session

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("mode", ["continue", "completions", "turns"])
async def test_modes_run_the_same_loop(tiny_reasoner, tiny_planner, mode):
    session = make_session(connect_timeout_s=5, read_timeout_s=60, request_timeout_s=120, max_connections=8)
    try:
        catalog = load_catalog()
        orch = Orchestrator(HttpPlanner(session, tiny_planner.url), OpenAIReasoner(session, tiny_reasoner.url,
                                                                                    mode=mode), catalog)
        cfg = EpisodeConfig(model="tiny-qwen2", max_steps=3, max_tokens_per_step=6, final_max_tokens=6)
        events = [e async for e in orch.run("What is 2 + 3?", cfg)]
    finally:
        await session.close()
    result = events[-1].result
    assert isinstance(events[-1], Finished) and isinstance(events[0], StrategyChosen)
    assert len(result.steps) == sum(isinstance(e, StepEnded) for e in events) <= 3
    assert result.steps[-1].strategy == "termination"
    for step in result.steps:
        deltas = "".join(e.text for e in events if isinstance(e, TextDelta) and e.index == step.index)
        assert deltas == step.text and step.tokens <= 6
        assert step.finish_reason in ("stop", "length")
    assert result.usage.reasoner_calls == len(result.steps)
    assert result.usage.planner_calls == sum(not s.forced for s in result.steps)


async def test_forced_strategy_and_append_only_prompts(tiny_reasoner, tiny_planner):
    """With `force`, the planner is never asked; each step's completions prompt extends the last one."""
    session = make_session(connect_timeout_s=5, read_timeout_s=60, request_timeout_s=120, max_connections=8)
    sent: list[str] = []
    reasoner = OpenAIReasoner(session, tiny_reasoner.url, mode="completions")
    original = reasoner.step_body

    def recording(req):
        path, body = original(req)
        sent.append(body["prompt"])
        return path, body

    reasoner.step_body = recording
    try:
        orch = Orchestrator(HttpPlanner(session, tiny_planner.url), reasoner, load_catalog())
        cfg = EpisodeConfig(model="tiny-qwen2", max_steps=3, max_tokens_per_step=5, final_max_tokens=5,
                            force="verification")
        result = await orch.solve("Is 7 prime?", cfg)
    finally:
        await session.close()
    assert [s.strategy for s in result.steps] == ["verification", "verification", "termination"]
    assert result.usage.planner_calls == 0 and result.finish_reason == "max_steps"
    assert sent[0] == completion_prompt("Is 7 prime?", result.steps[0].injected)
    for before, after in zip(sent, sent[1:]):
        assert after.startswith(before)  # append-only: the reasoner's prefix cache covers the past


async def test_a_prompt_baseline_is_an_episode_configuration_of_the_one_loop(tiny_reasoner):
    """Issue 13 §6: zero-shot CoT and PS+ run the Orchestrator's loop (no copy of it in service/baselines):
    one step under the baseline's instruction with the whole reasoning budget, no planner, then the answer
    step with the catalog's termination instruction. An unknown baseline is refused before any call."""
    from service.baselines import BASELINES
    from service.errors import InvalidRequest
    from service.planner_client import NoPlanner

    session = make_session(connect_timeout_s=5, read_timeout_s=60, request_timeout_s=120, max_connections=8)
    try:
        orch = Orchestrator(NoPlanner(), OpenAIReasoner(session, tiny_reasoner.url), load_catalog())
        cfg = EpisodeConfig(model="tiny-qwen2", max_steps=4, max_tokens_per_step=5, final_max_tokens=4,
                            min_step_tokens=0, baseline="ps+", first_step="reasoner", unguided_tail=True)
        result = await orch.solve("What is 6 * 7?", cfg)
        with pytest.raises(InvalidRequest, match="unknown baseline"):
            await orch.solve("What is 6 * 7?", EpisodeConfig(model="tiny-qwen2", baseline="cot"))
    finally:
        await session.close()
    steps = result.steps
    assert steps[0].strategy == "ps+" and steps[0].injected == BASELINES["ps+"] and steps[0].forced
    assert steps[0].tokens <= cfg.reasoning_budget() == 15 and steps[0].tokens > 5  # one step, the whole budget
    assert [s.strategy for s in steps][1:] in ([], ["termination"])
    assert result.usage.planner_calls == 0 and result.finish_reason == "termination"
