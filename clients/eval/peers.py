"""What a user would pick instead of rsim: OptiLLM's own inference-time techniques (`cot_reflection`,
`re2`, `self_consistency`, …), run by OptiLLM itself as a proxy in front of the same reasoner. One
plain chat request per question with the whole reasoning budget; its answer is scored like every other
method's (the last `\\boxed{}`, else the last code block, else the text)."""

from __future__ import annotations

import json
import time
import uuid

from service.answer import extract_answer
from service.errors import UpstreamError
from service.protocol import SolveResponse, StepTrace, Timings, Usage
from service.reasoner import OpenAIReasoner

ANSWER_FORMAT = "Put the final answer within \\boxed{}."


async def optillm_solve(proxy: OpenAIReasoner, approach: str, question: str, *, model: str, max_tokens: int,
                        temperature: float, catalog_version: str) -> SolveResponse:
    """`approach` through an OptiLLM proxy (`proxy.base_url`, e.g. http://127.0.0.1:8010/v1), selected the way
    OptiLLM's README does it, as a prefix of the model id (`re2-<model>`): its `optillm_approach` body field
    selects the same, but OptiLLM forwards it to the reasoner with `none`, which then fails."""
    t0 = time.perf_counter()
    body = {"model": f"{approach}-{model}", "messages": [{"role": "user", "content": f"{question}\n\n{ANSWER_FORMAT}"}],
            "max_tokens": max_tokens, "temperature": temperature}
    resp = await proxy.open("POST", "/chat/completions", json_body=body)
    await proxy.raise_for_status(resp)
    try:
        payload = json.loads(await resp.read())
    finally:
        resp.release()
    try:
        text = payload["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError) as e:
        raise UpstreamError(f"OptiLLM answered without a message: {str(payload)[:300]}") from e
    u = payload.get("usage") or {}
    usage = Usage(prompt_tokens=int(u.get("prompt_tokens") or 0), completion_tokens=int(u.get("completion_tokens") or 0),
                  reasoner_calls=1)
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
    ms = (time.perf_counter() - t0) * 1000
    step = StepTrace(index=0, strategy=f"optillm:{approach}", forced=True, injected=ANSWER_FORMAT, text=text,
                     tokens=usage.completion_tokens, finish_reason=payload["choices"][0].get("finish_reason"),
                     reasoner_ms=ms)
    return SolveResponse(id=uuid.uuid4().hex, model=model, answer=extract_answer(text, text), text=text, steps=[step],
                         finish_reason="termination", usage=usage, timings=Timings(total_ms=ms, reasoner_ms=ms),
                         planner_version=None, catalog_version=catalog_version)
