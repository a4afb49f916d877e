"""Prompted backend: an OpenAI-compatible LLM is asked to choose the next strategy (the paper's
"planner prompting" baseline). Uses the answer token's logprobs when offered, parses otherwise (L1)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp

from planner_server.backends import PlanItem
from planner_server.prompt import planner_prompt
from planner_server.settings import PlannerSettings
from service.catalog import Catalog
from service.errors import UpstreamError
from service.reasoner import make_session

UNSEEN_LOGIT = -30.0  # a label the LLM never mentioned: tiny but non-zero probability

SYSTEM = ("You are the planner of a step-by-step reasoner. Read the question and the reasoning so far and "
          "answer with only the number of the strategy for the next step.")


def logits_from_top_logprobs(top: list[dict[str, Any]], labels: list[str]) -> list[float] | None:
    best: dict[str, float] = {}
    for entry in top:
        tok = str(entry.get("token", "")).strip()
        if tok in labels and tok not in best:
            best[tok] = float(entry["logprob"])
    if not best:
        return None
    return [best.get(label, UNSEEN_LOGIT) for label in labels]


def logits_from_text(text: str, labels: list[str]) -> list[float]:
    for m in re.finditer(r"\S+", text):
        token = m.group(0).strip(".):*[]")
        if token in labels:
            return [0.0 if label == token else UNSEEN_LOGIT for label in labels]
    raise UpstreamError(f"prompted planner answered no strategy number: {text[:100]!r}")


class PromptedBackend:
    value_scale: float | None = None  # an LLM prompted to plan carries no value calibration
    gate_margin: float | None = None

    def __init__(self, session: aiohttp.ClientSession | None, base_url: str, model: str, catalog: Catalog,
                 api_key: str | None = None, constrain: bool = False, timeout_s: float = 30.0):
        """`session=None`: one is opened on first use, inside the event loop (the backend may be built
        in a worker thread, where aiohttp cannot open one)."""
        self.session, self.base_url, self.model, self.catalog = session, base_url.rstrip("/"), model, catalog
        self.timeout_s = timeout_s
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.labels = [s.label for s in catalog.strategies]
        self.version = f"prompted:{model}"
        self.extra = {"structured_outputs": {"choice": self.labels}} if constrain else {}

    @classmethod
    def from_settings(cls, settings: PlannerSettings, catalog: Catalog) -> PromptedBackend:
        key = settings.prompted_api_key.get_secret_value() if settings.prompted_api_key else None
        return cls(None, settings.prompted_url or "", settings.prompted_model or "", catalog, key,
                   settings.prompted_constrain, settings.request_timeout_s)

    async def one(self, item: PlanItem) -> list[float]:
        body = {"model": self.model, "max_tokens": 4, "temperature": 0.0, "logprobs": True, "top_logprobs": 20,
                "messages": [{"role": "system", "content": SYSTEM},
                             {"role": "user", "content": planner_prompt(item.question, item.steps, self.catalog)}],
                **self.extra}
        if self.session is None:
            self.session = make_session(connect_timeout_s=5, read_timeout_s=self.timeout_s,
                                        request_timeout_s=self.timeout_s, max_connections=256)
        try:
            async with self.session.post(f"{self.base_url}/chat/completions", json=body, headers=self.headers) as r:
                payload = await r.json(content_type=None)
                if r.status >= 400:
                    raise UpstreamError(f"prompted planner LLM answered {r.status}: {str(payload)[:200]}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            raise UpstreamError(f"prompted planner LLM unreachable: {e.__class__.__name__}") from e
        usage = payload.get("usage") or {}
        item.tokens.update(prompt=int(usage.get("prompt_tokens") or 0), completion=int(usage.get("completion_tokens") or 0))
        choice = payload["choices"][0]
        for entry in ((choice.get("logprobs") or {}).get("content") or []):
            logits = logits_from_top_logprobs(entry.get("top_logprobs") or [], self.labels)
            if logits is not None:
                return logits
        return logits_from_text(choice["message"].get("content") or "", self.labels)

    async def label_logits(self, items: list[PlanItem]) -> list[list[float]]:
        return list(await asyncio.gather(*(self.one(item) for item in items)))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()



