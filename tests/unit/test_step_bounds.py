"""A step ends at its delimiter only once it holds reasoning and no code fence is open (service.step).

The scripted reasoner replays what the instruct reasoner did (RUNTIME.md): a blank line or a bare
announcement right after the instruction, a blank line inside a code block. It is a fault injector
for the bounding logic; the real model's behaviour is covered by the instruct integration test."""

from __future__ import annotations

from service.reasoner import StepDone, StepRequest
from service.step import StepBounds, needs_more, open_fence, write_step


class Scripted:
    """Answers each call with the next (text, finish_reason, tokens) and records the requests."""

    def __init__(self, replies):
        self.replies, self.calls = list(replies), []

    async def step(self, req: StepRequest):
        self.calls.append(req)
        text, finish, tokens = self.replies.pop(0)
        if text:
            yield text
        yield StepDone(finish_reason=finish, prompt_tokens=10, completion_tokens=tokens)


def request(max_tokens=100, stop=("\n\n",)) -> StepRequest:
    return StepRequest(model="m", question="q", steps=[], pending="Let me verify.", max_tokens=max_tokens,
                       stop=list(stop) if stop else None, temperature=0.0)


async def collect(reasoner, req, bounds):
    parts, done = [], None
    async for chunk in write_step(reasoner, req, bounds):
        if isinstance(chunk, StepDone):
            done = chunk
        else:
            parts.append(chunk)
    return "".join(parts), done


def test_open_fence_and_needs_more():
    assert open_fence("text\n```python\nx = 1") and not open_fence("```python\nx = 1\n```")
    assert needs_more("", StepBounds(min_chars=1)) and needs_more("  \n ", StepBounds(min_chars=1))
    assert needs_more("I'll do it.", StepBounds(min_chars=16))
    assert not needs_more("168 - 155 = 13, so 13 shells remain.", StepBounds(min_chars=16))
    assert needs_more("```python\nx = 1", StepBounds())  # an open fence needs more, whatever the length


async def test_an_empty_step_is_resumed_past_its_delimiter():
    reasoner = Scripted([("", "stop", 1), (" 124 + 44 = 168, then 168 - 155 = 13.", "stop", 14)])
    text, done = await collect(reasoner, request(), StepBounds(min_chars=16))
    assert text == "\n\n 124 + 44 = 168, then 168 - 155 = 13."
    assert len(reasoner.calls) == 2 and reasoner.calls[1].resume == "\n\n"  # goes on after the held-back stop
    assert reasoner.calls[1].max_tokens == 99  # within the step's budget
    assert done.completion_tokens == 15 and done.prompt_tokens == 20 and done.extra["calls"] == 2


async def test_an_announcement_alone_is_not_a_step():
    reasoner = Scripted([(" I'll then proceed.", "stop", 5), (" 13 - 5 = 8 shells.", "stop", 8)])
    text, _ = await collect(reasoner, request(), StepBounds(min_chars=24))
    assert text == " I'll then proceed.\n\n 13 - 5 = 8 shells."


async def test_a_step_never_ends_inside_a_code_block():
    reasoner = Scripted([("```python\ndef f(x):", "stop", 6), ("    return x + 1\n```", "stop", 7)])
    text, done = await collect(reasoner, request(), StepBounds())
    assert text == "```python\ndef f(x):\n\n    return x + 1\n```" and not open_fence(text)
    assert done.extra["calls"] == 2


async def test_a_step_with_reasoning_ends_at_its_delimiter_and_min_tokens_is_sent():
    reasoner = Scripted([(" 124 + 44 = 168 shells in all.", "stop", 12)])
    text, done = await collect(reasoner, request(), StepBounds(min_tokens=24, min_chars=16))
    assert text == " 124 + 44 = 168 shells in all." and done.extra["calls"] == 1
    assert reasoner.calls[0].min_tokens == 24


async def test_no_resume_past_the_budget_or_a_length_stop():
    reasoner = Scripted([("", "stop", 10)])
    _, done = await collect(reasoner, request(max_tokens=10), StepBounds(min_chars=16))
    assert done.extra["calls"] == 1  # the budget is spent
    reasoner = Scripted([("```python\nx = [", "length", 10)])
    _, done = await collect(reasoner, request(max_tokens=50), StepBounds())
    assert done.extra["calls"] == 1 and done.finish_reason == "length"
    reasoner = Scripted([("", "stop", 0)] * 20)  # a server that reports no usage: the resume count bounds it
    _, done = await collect(reasoner, request(), StepBounds(min_chars=16))
    assert done.extra["calls"] == 9


async def test_min_tokens_never_exceeds_the_budget_and_is_not_sent_when_zero():
    reasoner = Scripted([("short answer}", "stop", 3)])
    await collect(reasoner, request(max_tokens=6), StepBounds(min_tokens=24))
    assert reasoner.calls[0].min_tokens == 6
    reasoner = Scripted([("42}", "stop", 2)])
    await collect(reasoner, request(), StepBounds())
    assert reasoner.calls[0].min_tokens == 0


def test_each_mode_goes_on_from_a_resumed_step_append_only():
    from service.injection import WrittenStep
    from service.reasoner import OpenAIReasoner

    steps = [WrittenStep("Let me plan.", " Plan: add, then subtract.")]
    first = StepRequest(model="m", question="Q?", steps=steps, pending="Let me verify.", max_tokens=50,
                        stop=["\n\n"], temperature=0.0, min_tokens=24)
    resumed = StepRequest(**{**first.__dict__, "resume": "\n\n", "min_tokens": 0})
    for mode in ("continue", "completions"):
        r = OpenAIReasoner(None, "http://x/v1", mode=mode)  # step_body builds the body only
        _, a = r.step_body(first)
        _, b = r.step_body(resumed)
        key = "prompt" if mode == "completions" else "messages"
        before = a[key] if mode == "completions" else a[key][-1]["content"]
        after = b[key] if mode == "completions" else b[key][-1]["content"]
        assert after == before + "\n\n"  # the held-back delimiter, then the reasoner goes on
        assert a["min_tokens"] == 24 and "min_tokens" not in b
    _, body = OpenAIReasoner(None, "http://x/v1", mode="turns").step_body(resumed)
    assert [m["role"] for m in body["messages"][-3:]] == ["user", "assistant", "user"]
    assert body["messages"][-2]["content"] == "\n\n"
