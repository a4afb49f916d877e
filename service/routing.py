"""Several reasoners behind one service: a routing file names each upstream — its URL, key, mode, the
model ids it serves (or whatever its `/v1/models` lists) and episode defaults for its models (L1).

    reasoners:
      - name: qwen
        url: http://gpu-1:8002/v1
        api_key_env: QWEN_KEY          # or api_key: ...
        mode: continue
        models: [Qwen/Qwen2.5-7B-Instruct]
        episode: {max_steps: 6, first_step: reasoner, continue_cut: true, unguided_tail: true}
      - name: llama
        url: http://gpu-2:8002/v1

Without a routing file the single-reasoner settings (`RSIM_REASONER_URL`, ...) make one upstream."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.orchestrator import Orchestrator
from service.reasoner import OpenAIReasoner

EPISODE_KEYS = {"max_steps", "max_tokens_per_step", "final_max_tokens", "min_step_tokens", "min_step_chars",
                "first_step", "unguided_tail", "continue_cut", "reasoner_temperature", "planner_temperature"}


class RouteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    url: str
    api_key: str | None = None
    api_key_env: str | None = None
    mode: Literal["continue", "completions", "turns"] = "continue"
    models: list[str] | None = None
    episode: dict[str, Any] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return v.rstrip("/")

    @field_validator("episode")
    @classmethod
    def _known(cls, v: dict[str, Any]) -> dict[str, Any]:
        """Known keys, each checked with the service setting's own type and bounds (a bad value stops the
        start-up, not a request)."""
        from service.settings import ServiceSettings

        unknown = set(v) - EPISODE_KEYS
        if unknown:
            raise ValueError(f"unknown episode settings {sorted(unknown)}; known: {sorted(EPISODE_KEYS)}")
        checked = ServiceSettings.model_validate({"reasoner_url": "http://x", **v})
        return {k: getattr(checked, k) for k in v}

    def key(self) -> str | None:
        if self.api_key_env:
            value = os.environ.get(self.api_key_env)
            if not value:
                raise ValueError(f"reasoner '{self.name}': the variable {self.api_key_env} is unset or empty")
            return value
        return self.api_key


class RoutesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reasoners: list[RouteSpec] = Field(min_length=1)

    @field_validator("reasoners")
    @classmethod
    def _unique(cls, v: list[RouteSpec]) -> list[RouteSpec]:
        names = [r.name for r in v]
        if len(set(names)) != len(names):
            raise ValueError("reasoner names must be unique")
        listed = [m for r in v for m in (r.models or [])]
        if len(set(listed)) != len(listed):
            raise ValueError("a model id is listed under two reasoners")
        return v


def load_routes(path: Path) -> RoutesFile:
    if not path.is_file():
        raise ValueError(f"routing file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    return RoutesFile.model_validate(data)


@dataclass
class Upstream:
    """One reasoner endpoint: its client, the loop over it, the models it serves (cached), its defaults."""

    name: str
    reasoner: OpenAIReasoner
    orchestrator: Orchestrator
    listed: list[str] | None = None
    episode: dict[str, Any] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    models_at: float = 0.0

    async def refresh(self, max_age_s: float) -> list[str]:
        if self.models and time.monotonic() - self.models_at < max_age_s:
            return self.models
        served = [m["id"] for m in await self.reasoner.list_models() if "id" in m]  # also its health check
        self.models = self.listed if self.listed is not None else served
        self.models_at = time.monotonic()
        return self.models
