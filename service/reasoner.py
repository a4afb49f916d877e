"""Client of any OpenAI-compatible reasoner: one pooled aiohttp session, explicit timeouts,
retries only before the first byte, streaming steps in three modes (L1)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from service.errors import UpstreamError, UpstreamTimeout
from service.injection import WrittenStep, chain_of_thought, completion_prompt, transcript, turn_messages
from service.settings import ReasonerMode

log = logging.getLogger("rsim.reasoner")


@dataclass
class StepRequest:
    model: str
    question: str
    steps: Sequence[WrittenStep]
    pending: str  # instruction injected for this step ("" = none)
    max_tokens: int
    stop: list[str] | None
    temperature: float
    seed: int | None = None
    request_id: str | None = None
    resume: str = ""  # text this step already holds (a resumed step goes on from its end)
    min_tokens: int = 0  # vLLM's `min_tokens`: no stop string counts before that many tokens (0: not sent)
    sampling: dict[str, Any] = field(default_factory=dict)  # top_p, presence/frequency penalties from the client
    context: Sequence[dict[str, str]] = ()  # the conversation before the question (chat messages)
    glued: bool = False  # this step goes on from the last one's last word, with no delimiter between
    delimiter: str = "\n\n"  # what joins the steps of the chain of thought (the episode's)


@dataclass
class StepDone:
    finish_reason: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None  # prompt tokens the reasoner served from its prefix cache (if it says)
    eos: bool | None = None  # the reasoner ended its message itself (None: the server does not say)
    extra: dict[str, Any] = field(default_factory=dict)


def make_session(*, connect_timeout_s: float, read_timeout_s: float, request_timeout_s: float,
                 max_connections: int) -> aiohttp.ClientSession:
    """The one pooled session of a process: created in the app's lifespan, never per request. It keeps no
    cookies (a cookie one client's request brought back must never ride along on another's) and asks for
    no compression (bodies are relayed, or parsed as they stream, as they come)."""
    timeout = aiohttp.ClientTimeout(total=request_timeout_s, connect=connect_timeout_s, sock_read=read_timeout_s)
    connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=max_connections, ttl_dns_cache=300)
    return aiohttp.ClientSession(timeout=timeout, connector=connector, auto_decompress=False,
                                 skip_auto_headers=("User-Agent", "Accept-Encoding"), cookie_jar=aiohttp.DummyCookieJar())


async def iter_sse_data(resp: aiohttp.ClientResponse) -> AsyncIterator[list[str]]:
    """`data:` payloads of an SSE response, grouped by network read: every event that arrived together
    comes in one list, so a burst of tokens costs one pass through the layers above, not one per token."""
    buf = b""
    async for chunk in resp.content.iter_any():
        buf += chunk
        if b"\n" not in chunk:
            continue
        *lines, buf = buf.split(b"\n")
        datas = [line[5:].strip().decode("utf-8") for line in lines if line.startswith(b"data:")]
        if datas:
            yield datas
    if buf.startswith(b"data:"):
        yield [buf[5:].strip().decode("utf-8")]


def upstream_error_message(status: int, body: bytes) -> str:
    try:
        err = json.loads(body).get("error", {})
        msg = err.get("message") if isinstance(err, dict) else str(err)
    except (ValueError, AttributeError):
        msg = None
    return f"reasoner answered {status}: {msg or body[:300].decode('utf-8', 'replace')}"


def ended_itself(choice: dict[str, Any]) -> bool | None:
    """Whether a finished choice ended on the model's own end of message rather than a stop string or
    the length limit. vLLM names the stop string that matched in `stop_reason` (a stop token id or
    null for the end of sequence); servers without the field leave it unknown."""
    if choice.get("finish_reason") != "stop":
        return False
    if "stop_reason" not in choice:
        return None
    return not isinstance(choice["stop_reason"], str)


class OpenAIReasoner:
    """Reasoner over the OpenAI HTTP API (`continue`, `completions` or `turns` mode)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, *, mode: ReasonerMode = "continue",
                 api_key: str | None = None, retries: int = 2):
        self.session, self.base_url, self.mode, self.retries = session, base_url.rstrip("/"), mode, retries
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def open(self, method: str, path: str, *, json_body: Any = None, data: bytes | None = None,
                   headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
        """Send a request; retry connect errors and 503 before the first byte; map errors.

        The caller owns the returned response (release it). Upstream 4xx keep their status."""
        hdrs = {**self.headers, **(headers or {})}
        url = self.base_url + path
        for attempt in range(self.retries + 1):
            try:
                resp = await self.session.request(method, url, json=json_body, data=data, headers=hdrs)
            except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as e:
                if attempt < self.retries:
                    await asyncio.sleep(0.05 * 2**attempt)
                    continue
                raise UpstreamError(f"reasoner unreachable at {self.base_url}: {e.__class__.__name__}") from e
            except asyncio.TimeoutError as e:
                raise UpstreamTimeout("reasoner did not answer in time") from e
            if resp.status == 503 and attempt < self.retries:
                resp.release()
                await asyncio.sleep(0.05 * 2**attempt)
                continue
            return resp
        raise AssertionError("unreachable")

    async def count_tokens(self, model: str, text: str) -> int | None:
        """Tokens of `text` in the reasoner's own tokenizer, through vLLM's `/tokenize` (at the server's root,
        beside `/v1`); None where the server has no such endpoint or does not answer."""
        root = self.base_url.removesuffix("/v1")
        try:
            async with self.session.post(f"{root}/tokenize", json={"model": model, "prompt": text,
                                                                   "add_special_tokens": False},
                                         headers=self.headers) as resp:
                if resp.status != 200:
                    return None
                body = await resp.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return None
        count = body.get("count") if isinstance(body, dict) else None
        return count if isinstance(count, int) else None

    async def raise_for_status(self, resp: aiohttp.ClientResponse) -> None:
        if resp.status < 400:
            return
        try:
            body = await resp.read()
        finally:
            resp.release()
        status = resp.status if resp.status < 500 else 502
        raise UpstreamError(upstream_error_message(resp.status, body), status_code=status,
                            code="upstream_error" if status >= 500 else "upstream_rejected")

    def step_body(self, req: StepRequest) -> tuple[str, dict[str, Any]]:
        common: dict[str, Any] = {"model": req.model, "max_tokens": req.max_tokens, "temperature": req.temperature,
                                  "stream": True, "stream_options": {"include_usage": True}}
        if req.stop:
            common["stop"] = req.stop
        if req.seed is not None:
            common["seed"] = req.seed
        if req.min_tokens:
            common["min_tokens"] = req.min_tokens
        common.update(req.sampling)
        if self.mode == "completions":  # a raw prompt: the conversation goes in as a labelled transcript
            cot = chain_of_thought(req.steps, req.delimiter, req.pending + req.resume, glue_pending=req.glued)
            return "/completions", {**common, "prompt": completion_prompt(transcript(list(req.context), req.question),
                                                                          cot)}
        if self.mode == "turns":
            return "/chat/completions", {**common, "messages": [*req.context, *turn_messages(
                req.question, req.steps, req.pending, req.resume)]}
        cot = chain_of_thought(req.steps, req.delimiter, req.pending + req.resume, glue_pending=req.glued)
        messages = [*req.context, {"role": "user", "content": req.question}]
        if cot:
            messages.append({"role": "assistant", "content": cot})
        return "/chat/completions", {**common, "messages": messages, "continue_final_message": bool(cot),
                                     "add_generation_prompt": not cot}

    async def step(self, req: StepRequest) -> AsyncIterator[str | StepDone]:
        """Stream one reasoning step: text deltas, then one `StepDone`."""
        path, body = self.step_body(req)
        headers = {"X-Request-Id": req.request_id} if req.request_id else None
        resp = await self.open("POST", path, json_body=body, headers=headers)
        await self.raise_for_status(resp)
        done, finished = StepDone(finish_reason=None), False
        try:
            async for batch in iter_sse_data(resp):
                texts = []
                for data in batch:
                    if data == "[DONE]":
                        finished = True
                        break
                    try:
                        event = json.loads(data)
                    except ValueError as e:
                        raise UpstreamError("reasoner sent a malformed stream event") from e
                    if "error" in event:
                        raise UpstreamError(f"reasoner stream error: {str(event['error'])[:300]}")
                    usage = event.get("usage")
                    if usage:
                        done.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                        done.completion_tokens = int(usage.get("completion_tokens") or 0)
                        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
                        if cached is not None:
                            done.cached_tokens = int(cached)
                    for choice in event.get("choices") or ():
                        if "text" in choice:
                            text = choice["text"]
                        else:  # a reasoning-parser server streams the thinking apart from the content
                            delta = choice.get("delta") or {}
                            text = (delta.get("reasoning") or delta.get("reasoning_content") or "") + \
                                (delta.get("content") or "")
                        if text:
                            texts.append(text)
                        if choice.get("finish_reason"):
                            done.finish_reason = choice["finish_reason"]
                            done.eos = ended_itself(choice)
                if texts:
                    yield "".join(texts)
                if finished:
                    break
        except asyncio.TimeoutError as e:
            raise UpstreamTimeout("reasoner stalled past the read timeout") from e
        except aiohttp.ClientPayloadError as e:
            raise UpstreamError("reasoner dropped the connection mid-stream") from e
        finally:
            if finished:
                resp.release()
            else:  # cancelled or broken: close the connection so the reasoner stops generating
                resp.close()
        if done.finish_reason is None:
            raise UpstreamError("reasoner stream ended before the step finished")
        yield done

    async def list_models(self) -> list[dict[str, Any]]:
        resp = await self.open("GET", "/models")
        await self.raise_for_status(resp)
        try:
            payload = await resp.json(content_type=None)
        finally:
            resp.release()
        return list(payload.get("data") or [])
