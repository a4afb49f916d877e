"""`POST /v1/chat/completions`: `rsim/<model>` runs strategy injection; any other model id is forwarded
to the reasoner byte for byte. `GET /v1/models` lists both ids per reasoner model."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from service.errors import InvalidRequest, RsimError, error_envelope
from service.injection import transcript
from service.orchestrator import EpisodeConfig, Finished, StepEnded, StrategyChosen, TextDelta
from service.protocol import (REASONING_EFFORT_STEPS, AssistantMessage, ChatCompletion, ChatCompletionChunk,
                              ChatCompletionRequest, ChunkChoice, CompletionChoice, SolveResponse, Usage)
from service.routes.passthrough import passthrough
from service.sse import DONE, sse, with_keepalive
from service.state import RSIM_PREFIX, ServiceState, State, caller, cancel_on_disconnect, validated
from service.web import document_body, request_id

router = APIRouter()
log = logging.getLogger("rsim.chat")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


CONTEXT_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def text_of(content: str | list[dict[str, Any]] | None) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content or ""


def conversation_of(req: ChatCompletionRequest) -> tuple[str, list[dict[str, str]]]:
    """The question the loop solves — the last user turn — and the conversation before it as the reasoner's
    messages: system (and developer) prompts as one leading system message, earlier user and assistant
    turns as they were, a tool result as a user turn that says so; turns of one role in a row are joined
    (chat templates that want turns to alternate refuse them). The loop writes the assistant turn, so the
    last turn is the user's."""
    turns = [(m.role, text_of(m.content)) for m in req.messages]
    last = max((i for i, (role, text) in enumerate(turns) if role == "user" and text), default=None)
    if last is None:
        raise InvalidRequest("messages contain no user turn with text to reason about", param="messages")
    if any(text for _, text in turns[last + 1:]):
        raise InvalidRequest("on rsim/ models the conversation must end with a user turn: the strategy loop writes "
                             "the assistant's", param=f"messages.{last + 1}")
    system = [text for role, text in turns[:last] if text and CONTEXT_ROLES.get(role) == "system"]
    context: list[dict[str, str]] = [{"role": "system", "content": "\n\n".join(system)}] if system else []
    for role, text in turns[:last]:
        if not text or CONTEXT_ROLES.get(role) == "system":
            continue
        role_out = CONTEXT_ROLES.get(role, "user")
        content = text if role in CONTEXT_ROLES else f"Tool result: {text}"
        if context and context[-1]["role"] == role_out:  # strict chat templates want turns to alternate
            context[-1]["content"] += "\n\n" + content
        else:
            context.append({"role": role_out, "content": content})
    if context and context[-1]["role"] == "user":  # the question is a user turn too: one turn, in order
        context[-1]["content"] += "\n\n" + turns[last][1]
        return context.pop()["content"], context
    return turns[last][1], context


def reasoning(fields: tuple[str, ...], text: str) -> dict[str, str]:
    """The chain of thought under each configured field name (`reasoning`: vLLM's current name;
    `reasoning_content`: the older one, still read by many clients)."""
    return {f: text for f in fields}


def finish_of(result: SolveResponse, budget: int | None) -> str:
    """OpenAI's finish_reason: `length` when the client's token budget ran out, else `stop`."""
    return "length" if budget is not None and result.usage.completion_tokens >= budget else "stop"


def trace_of(result: SolveResponse) -> dict[str, Any]:
    return result.model_dump(exclude={"text", "answer", "usage", "id", "model"})


def total_usage(results: list[SolveResponse]) -> Usage:
    """The exact sum over every episode's upstream calls."""
    total = Usage()
    for r in results:
        for name in ("prompt_tokens", "completion_tokens", "total_tokens", "reasoning_tokens", "planner_calls",
                     "planner_tokens", "reasoner_calls"):
            setattr(total, name, getattr(total, name) + getattr(r.usage, name))
        if r.usage.cached_tokens is not None:
            total.cached_tokens = (total.cached_tokens or 0) + r.usage.cached_tokens
    return total


def chat_payload(results: SolveResponse | list[SolveResponse], model: str, created: int, return_trace: bool,
                 fields: tuple[str, ...] = ("reasoning", "reasoning_content"), budget: int | None = None,
                 cid: str | None = None) -> dict[str, Any]:
    """One choice per episode (a request's `n`); with `return_trace`, each choice's steps in its `rsim`, and
    the first one's also at the top level (where a single episode's always were)."""
    results = results if isinstance(results, list) else [results]
    choices = [CompletionChoice(index=i, message=AssistantMessage(content=r.answer, **reasoning(fields, r.text)),
                                finish_reason=finish_of(r, budget),
                                **({"rsim": trace_of(r)} if return_trace and len(results) > 1 else {}))
               for i, r in enumerate(results)]
    body = ChatCompletion(id=cid or f"chatcmpl-{results[0].id}", created=created, model=model, choices=choices,
                          usage=total_usage(results).openai(),
                          **({"rsim": trace_of(results[0])} if return_trace else {}))
    return body.model_dump()


def chunk(cid: str, model: str, created: int, delta: dict[str, Any], finish_reason: str | None = None,
          index: int = 0, **extra: Any) -> bytes:
    return sse(ChatCompletionChunk(id=cid, created=created, model=model, choices=[ChunkChoice(
        index=index, delta=delta, finish_reason=finish_reason)], **extra).model_dump(exclude_none=False,
                                                                                      exclude={"usage"}))


async def merged(streams: list[AsyncIterator[Any]], bound: int = 64) -> AsyncIterator[Any]:
    """Items of several async iterators as they come (a bounded queue between them); the first error ends
    it, and the others are cancelled."""
    if len(streams) == 1:
        async with contextlib.aclosing(streams[0]) as only:  # type: ignore[type-var]
            async for item in only:
                yield item
        return
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=bound)
    end = object()

    async def pump(stream: AsyncIterator[Any]) -> None:
        try:
            async for item in stream:
                await queue.put(item)
        except asyncio.CancelledError:
            raise  # the reader is gone or done: nothing to hand on
        except Exception as e:  # handed to the reader, which raises it
            await queue.put(e)
        else:
            await queue.put(end)
        finally:
            await stream.aclose()  # type: ignore[attr-defined]  # its reasoner call ends with it

    tasks = [asyncio.create_task(pump(s)) for s in streams]
    try:
        left = len(tasks)
        while left:
            item = await queue.get()
            if item is end:
                left -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield item
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def chat_stream(state: ServiceState, question: str, cfgs: EpisodeConfig | list[EpisodeConfig], model: str,
                      rid: str, include_usage: bool, return_trace: bool, budget: int | None = None,
                      outcome: dict | None = None, owner: str | None = None) -> AsyncIterator[bytes]:
    """One SSE stream of a request's episodes (its `n`), their chunks interleaved by choice index. `outcome`:
    the request's scope state, where a failure after the 200 went out leaves its status; `owner`: the
    caller's key (`caller`), whose traces these are."""
    outcome = {} if outcome is None else outcome
    cfgs = cfgs if isinstance(cfgs, list) else [cfgs]
    cid, created = f"chatcmpl-{rid}", int(time.time())
    results: list[SolveResponse | None] = [None] * len(cfgs)
    rids = episode_ids(rid, len(cfgs))
    try:
        async with contextlib.aclosing(merged([episode_chunks(state, question, cfg, model, rids[i], cid, created, i,
                                                              return_trace, budget, results, owner)
                                               for i, cfg in enumerate(cfgs)])) as chunks:
            async for data in chunks:  # a client that leaves closes this, and every episode with it
                yield data
        if include_usage:
            yield sse(ChatCompletionChunk(id=cid, created=created, model=model, choices=[],
                                          usage=total_usage([r for r in results if r is not None]).openai()).model_dump())
    except RsimError as e:
        outcome["outcome_status"] = e.status_code
        yield sse(e.envelope())
    except Exception:
        log.exception("chat stream %s failed", rid)
        outcome["outcome_status"] = 500
        yield sse(error_envelope("internal server error"))
    yield DONE


async def solve_all(state: ServiceState, question: str, cfgs: list[EpisodeConfig], rids: list[str]
                    ) -> list[SolveResponse]:
    """A request's episodes side by side; the first error cancels the others (no reasoner call left running)."""
    tasks = [asyncio.ensure_future(state.orchestrator_for(c.model).solve(question, c, request_id=r))
             for c, r in zip(cfgs, rids, strict=True)]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for t in tasks:
            t.cancel()


def episode_ids(rid: str, n: int) -> list[str]:
    """Request ids of a request's episodes: its own for one, `<id>-<i>` for each of several."""
    return [rid] if n == 1 else [f"{rid}-{i}" for i in range(n)]


async def episode_chunks(state: ServiceState, question: str, cfg: EpisodeConfig, model: str, rid: str, cid: str,
                         created: int, index: int, return_trace: bool, budget: int | None,
                         results: list[SolveResponse | None], owner: str | None = None) -> AsyncIterator[bytes]:
    """The chunks of one choice: its role, its reasoning as it is written, its answer and finish."""
    fields = state.reasoning_fields
    yield chunk(cid, model, created, {"role": "assistant", "content": ""}, index=index)
    # a step's instruction goes out with its first text, not when it is chosen: a step the loop
    # rewrites without its instruction (the reasoner began to copy itself) then streams as it is kept
    steps: dict[int, Any] = {}
    opened: set[int] = set()

    def opening(step: int) -> bytes:
        opened.add(step)
        prefix = cfg.delimiter if step > 0 and not steps[step].continued else ""
        return chunk(cid, model, created, reasoning(fields, prefix + steps[step].injected), index=index)

    async for event in state.orchestrator_for(cfg.model).run(question, cfg, request_id=rid):
        if isinstance(event, StrategyChosen):
            steps[event.step.index] = event.step
        elif isinstance(event, TextDelta):
            if event.index not in opened:
                yield opening(event.index)
            yield chunk(cid, model, created, reasoning(fields, event.text), index=index)
        elif isinstance(event, StepEnded):
            if event.step.index not in opened:
                yield opening(event.step.index)
        elif isinstance(event, Finished):
            result = results[index] = event.result
            state.finished(transcript(cfg.context, question), result, owner=owner)
            yield chunk(cid, model, created, {"content": result.answer}, index=index)
            extra = {"rsim": trace_of(result)} if return_trace else {}
            yield chunk(cid, model, created, {}, finish_of(result, budget), index=index, **extra)


def document_chat_body(openapi: dict[str, Any]) -> dict[str, Any]:
    """The route reads its raw body (passthrough must stay byte-faithful and cheap), so FastAPI cannot
    see its model: describe `ChatCompletionRequest` as the request body in the OpenAPI document."""
    return document_body(openapi, "/v1/chat/completions", ChatCompletionRequest,
                         "An OpenAI chat request. `rsim/<model>` runs strategy injection (options under `rsim`); "
                         "any other model is forwarded to the reasoner byte for byte.")


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, state: State) -> Response:
    raw = await request.body()  # bounded by BodyLimitMiddleware (RSIM_MAX_BODY_BYTES)
    body = state.parse_json(raw)  # and its nesting by RSIM_MAX_JSON_DEPTH
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    rid = request_id(request)
    model = body.get("model")
    request.scope.setdefault("state", {})["endpoint"] = ("chat_rsim" if isinstance(model, str) and
                                                         model.startswith(RSIM_PREFIX) else "chat_passthrough")
    if not (isinstance(model, str) and model.startswith(RSIM_PREFIX)):
        if not isinstance(model, str) or not model:
            raise InvalidRequest("model is required", param="model")
        return await passthrough(state, raw, bool(body.get("stream")), rid, model)

    req = validated(ChatCompletionRequest, body)
    if (field := req.refused()) is not None:
        raise InvalidRequest(f"{field} is not supported on rsim/ models (strategy injection writes text); send "
                             f"the request to the plain model id to use it", param=field, code="unsupported_field")
    reasoner_model = await state.resolve_model(req.model)
    opts = req.rsim
    max_steps = opts.max_steps if opts and opts.max_steps else None
    if req.reasoning_effort is not None and max_steps is None:  # the step budget, from the default
        default = state.upstream_for(reasoner_model).episode.get("max_steps", state.settings.max_steps)
        max_steps = max(1, min(64, round(default * REASONING_EFFORT_STEPS[req.reasoning_effort])))
    cfg = state.episode(reasoner_model, max_steps=max_steps,
                        max_tokens_per_step=opts.max_tokens_per_step if opts else None,
                        temperature=opts.temperature if opts else None, reasoner_temperature=req.temperature,
                        force=opts.force if opts else None, forbid=opts.forbid if opts else [], seed=req.seed,
                        gate=opts.gate if opts else None, gate_margin=opts.gate_margin if opts else None)
    cfg = replace(cfg, max_total_tokens=req.budget, answer_stop=req.stops,
                  sampling={k: v for k, v in (("top_p", req.top_p), ("presence_penalty", req.presence_penalty),
                                              ("frequency_penalty", req.frequency_penalty)) if v is not None})
    state.orchestrator_for(reasoner_model).check(cfg, episodes=req.n or 1,
                                                 max_request_tokens=state.settings.max_request_tokens)
    question, context = conversation_of(req)
    cfg = replace(cfg, context=context)
    return_trace = bool(opts and opts.return_trace)
    # `n` independent episodes, each with its own seed when the client set one (else each samples on its own)
    cfgs = [cfg if i == 0 or cfg.seed is None else replace(cfg, seed=cfg.seed + i) for i in range(req.n or 1)]
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        events = chat_stream(state, question, cfgs, req.model, rid, include_usage, return_trace, req.budget,
                             request.scope.setdefault("state", {}), caller(request))
        return StreamingResponse(with_keepalive(events, state.settings.keepalive_s),
                                 media_type="text/event-stream", headers=SSE_HEADERS)
    rids = episode_ids(rid, len(cfgs))
    results = await cancel_on_disconnect(request, solve_all(state, question, cfgs, rids))
    for result in results:
        state.finished(transcript(cfg.context, question), result, owner=caller(request))
    return JSONResponse(chat_payload(list(results), req.model, int(time.time()), return_trace, state.reasoning_fields,
                                     req.budget, cid=f"chatcmpl-{rid}"))


@router.get("/v1/models")
async def models(state: State) -> dict[str, Any]:
    ids = await state.refresh_models()
    created = int(time.time())
    data = []
    for mid in ids:
        data.append({"id": mid, "object": "model", "created": created, "owned_by": "reasoner"})
        data.append({"id": RSIM_PREFIX + mid, "object": "model", "created": created, "owned_by": "rsim"})
    return {"object": "list", "data": data}


