"""`POST /v1/chat/completions`: `rsim/<model>` runs strategy injection; any other model id is forwarded
to the reasoner byte for byte. `GET /v1/models` lists both ids per reasoner model."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from service.errors import InvalidRequest, RsimError, error_envelope, validation_message
from service.orchestrator import EpisodeConfig, Finished, StepEnded, StrategyChosen, TextDelta
from service.protocol import REASONING_EFFORT_STEPS, ChatCompletionRequest, SolveResponse
from service.routes.passthrough import passthrough
from service.sse import DONE, sse, with_keepalive
from service.state import RSIM_PREFIX, ServiceState, State, cancel_on_disconnect
from service.web import request_id

router = APIRouter()
log = logging.getLogger("rsim.chat")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


LABELS = {"system": "System", "developer": "System", "user": "User", "assistant": "Assistant", "tool": "Tool",
          "function": "Tool"}


def question_of(req: ChatCompletionRequest) -> str:
    """The question the loop solves: a single user turn (after any system prompt) as it is; a conversation
    as its transcript, every turn labelled and kept, the last user turn last."""
    turns = []
    for m in req.messages:
        if isinstance(m.content, list):
            text = "".join(p.get("text", "") for p in m.content if isinstance(p, dict) and p.get("type") == "text")
        else:
            text = m.content or ""
        if text:
            turns.append((m.role, text))
    if not any(role == "user" for role, _ in turns):
        raise InvalidRequest("messages contain no user turn with text to reason about", param="messages")
    if all(role in ("system", "developer") for role, _ in turns[:-1]) and turns[-1][0] == "user":
        return "\n\n".join(text for _, text in turns)
    return "\n\n".join(f"{LABELS[role]}: {text}" for role, text in turns)


def reasoning(fields: tuple[str, ...], text: str) -> dict[str, str]:
    """The chain of thought under each configured field name (`reasoning`: vLLM's current name;
    `reasoning_content`: the older one, still read by many clients)."""
    return {f: text for f in fields}


def finish_of(result: SolveResponse, budget: int | None) -> str:
    """OpenAI's finish_reason: `length` when the client's token budget ran out, else `stop`."""
    return "length" if budget is not None and result.usage.completion_tokens >= budget else "stop"


def chat_payload(result: SolveResponse, model: str, created: int, return_trace: bool,
                 fields: tuple[str, ...] = ("reasoning", "reasoning_content"), budget: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"chatcmpl-{result.id}", "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.answer,
                                             **reasoning(fields, result.text)},
                     "finish_reason": finish_of(result, budget), "logprobs": None}],
        "usage": result.usage.openai(),
    }
    if return_trace:
        body["rsim"] = result.model_dump(exclude={"text", "answer", "usage", "id", "model"})
    return body


def chunk(cid: str, model: str, created: int, delta: dict[str, Any], finish_reason: str | None = None,
          **extra: Any) -> bytes:
    return sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}], **extra})


async def chat_stream(state: ServiceState, question: str, cfg: EpisodeConfig, model: str, rid: str,
                      include_usage: bool, return_trace: bool, budget: int | None = None) -> AsyncIterator[bytes]:
    cid, created = f"chatcmpl-{rid}", int(time.time())
    fields = state.reasoning_fields
    yield chunk(cid, model, created, {"role": "assistant", "content": ""})
    try:
        # a step's instruction goes out with its first text, not when it is chosen: a step the loop
        # rewrites without its instruction (the reasoner began to copy itself) then streams as it is kept
        steps: dict[int, Any] = {}
        opened: set[int] = set()

        def opening(index: int) -> bytes:
            opened.add(index)
            prefix = cfg.delimiter if index > 0 else ""
            return chunk(cid, model, created, reasoning(fields, prefix + steps[index].injected))

        async for event in state.orchestrator.run(question, cfg, request_id=rid):
            if isinstance(event, StrategyChosen):
                steps[event.step.index] = event.step
            elif isinstance(event, TextDelta):
                if event.index not in opened:
                    yield opening(event.index)
                yield chunk(cid, model, created, reasoning(fields, event.text))
            elif isinstance(event, StepEnded):
                if event.step.index not in opened:
                    yield opening(event.step.index)
            elif isinstance(event, Finished):
                result = event.result
                state.finished(question, result, "chat_rsim")
                yield chunk(cid, model, created, {"content": result.answer})
                extra = {"rsim": result.model_dump(exclude={"text", "answer", "usage", "id", "model"})} \
                    if return_trace else {}
                yield chunk(cid, model, created, {}, finish_of(result, budget), **extra)
                if include_usage:
                    yield sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                               "choices": [], "usage": result.usage.openai()})
    except RsimError as e:
        state.metrics.requests.labels("chat_rsim", str(e.status_code)).inc()
        yield sse(e.envelope())
    except Exception:
        log.exception("chat stream %s failed", rid)
        state.metrics.requests.labels("chat_rsim", "500").inc()
        yield sse(error_envelope("internal server error"))
    yield DONE


def document_chat_body(openapi: dict[str, Any]) -> dict[str, Any]:
    """The route reads its raw body (passthrough must stay byte-faithful and cheap), so FastAPI cannot
    see its model: describe `ChatCompletionRequest` as the request body in the OpenAPI document."""
    body = ChatCompletionRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(body.pop("$defs", {}))
    schemas["ChatCompletionRequest"] = body
    openapi["paths"]["/v1/chat/completions"]["post"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}},
        "description": "An OpenAI chat request. `rsim/<model>` runs strategy injection (options under `rsim`); "
                       "any other model is forwarded to the reasoner byte for byte."}
    return openapi


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, state: State) -> Response:
    raw = await request.body()  # bounded by BodyLimitMiddleware (RSIM_MAX_BODY_BYTES)
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidRequest("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    rid = request_id(request)
    model = body.get("model")
    if not (isinstance(model, str) and model.startswith(RSIM_PREFIX)):
        if not isinstance(model, str) or not model:
            raise InvalidRequest("model is required", param="model")
        return await passthrough(state, raw, bool(body.get("stream")), rid)

    try:
        req = ChatCompletionRequest.model_validate(body)
    except ValidationError as e:
        message, param = validation_message(e.errors())
        raise InvalidRequest(message, param=param) from None
    if (field := req.refused()) is not None:
        raise InvalidRequest(f"{field} is not supported on rsim/ models (strategy injection writes text); send "
                             f"the request to the plain model id to use it", param=field, code="unsupported_field")
    reasoner_model = await state.resolve_model(req.model)
    opts = req.rsim
    max_steps = opts.max_steps if opts and opts.max_steps else None
    if req.reasoning_effort is not None and max_steps is None:  # the step budget, from the default
        max_steps = max(1, min(64, round(state.settings.max_steps * REASONING_EFFORT_STEPS[req.reasoning_effort])))
    cfg = state.episode(reasoner_model, max_steps=max_steps,
                        max_tokens_per_step=opts.max_tokens_per_step if opts else None,
                        temperature=opts.temperature if opts else None, reasoner_temperature=req.temperature,
                        force=opts.force if opts else None, forbid=opts.forbid if opts else [], seed=req.seed)
    cfg = replace(cfg, max_total_tokens=req.budget, answer_stop=req.stops,
                  sampling={k: v for k, v in (("top_p", req.top_p), ("presence_penalty", req.presence_penalty),
                                              ("frequency_penalty", req.frequency_penalty)) if v is not None})
    state.orchestrator.check(cfg)
    question = question_of(req)
    return_trace = bool(opts and opts.return_trace)
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        events = chat_stream(state, question, cfg, req.model, rid, include_usage, return_trace, req.budget)
        return StreamingResponse(with_keepalive(events, state.settings.keepalive_s),
                                 media_type="text/event-stream", headers=SSE_HEADERS)
    try:
        result = await cancel_on_disconnect(request, state.orchestrator.solve(question, cfg, request_id=rid))
    except RsimError as e:
        state.metrics.requests.labels("chat_rsim", str(e.status_code)).inc()
        raise
    state.finished(question, result, "chat_rsim")
    return JSONResponse(chat_payload(result, req.model, int(time.time()), return_trace, state.reasoning_fields,
                                     req.budget))


@router.get("/v1/models")
async def models(state: State) -> dict[str, Any]:
    ids = await state.refresh_models()
    created = int(time.time())
    data = []
    for mid in ids:
        data.append({"id": mid, "object": "model", "created": created, "owned_by": "reasoner"})
        data.append({"id": RSIM_PREFIX + mid, "object": "model", "created": created, "owned_by": "rsim"})
    return {"object": "list", "data": data}


