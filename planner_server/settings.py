"""Planner server settings, from `RSIM_PLANNER_*` environment variables (L0)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


MIN_ADMIN_TOKEN = 16  # characters: a short admin token is refused at start-up


class PlannerSettings(BaseSettings):
    # compose passes `${VAR:-}` as an empty string: an empty variable is an unset one
    model_config = SettingsConfigDict(env_prefix="RSIM_PLANNER_", extra="ignore", env_ignore_empty=True)

    backend: Literal["hf", "vllm", "prompted"] = "hf"
    model: str | None = Field(None, description="HF folder or hub id of the planner LM (hf, vllm)")
    checkpoint: Path | None = Field(None, description="trained planner checkpoint folder (overrides model)")
    checkpoint_root: Path | None = Field(None, description="/admin/reload loads only checkpoints under this folder "
                                                           "(default: the configured checkpoint folder)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    threads: int | None = Field(None, ge=1, description="torch CPU threads")
    context_tokens: int = Field(1024, ge=32, le=131072, description="token budget for the chain of thought")
    exploration: float = Field(0.0, ge=0.0, le=1.0, description="ε: an argmax decision samples from the planner's "
                               "distribution with this probability, so served traces can train the planner "
                               "off-policy (0: pure argmax, which continual learning cannot use)")
    max_batch: int = Field(16, ge=1, le=1024)
    max_wait_ms: float = Field(5.0, ge=0.0, le=1000.0)
    queue_size: int = Field(256, ge=1, le=100_000)
    max_in_flight: int | None = Field(None, ge=1, le=1024, description="batches run at once (default: the "
                                      "backend's: 1 for hf and prompted, 64 for vllm, whose engine schedules them)")
    request_timeout_s: float = Field(30.0, gt=0)
    catalog_path: Path | None = None
    admin_token: SecretStr | None = Field(None, description="bearer token of /admin/* (unset = admin disabled)")
    watch_s: float | None = Field(None, gt=0, description="poll the checkpoint's `latest` pointer every N s")
    gpu_memory_utilization: float = Field(0.3, gt=0, le=1.0, description="vllm backend share of GPU memory")
    prefix_caching: bool = Field(True, description="vllm backend: automatic prefix caching")
    prefix_cache_entries: int = Field(64, ge=0, le=100_000, description="hf backend: prompt prefixes whose key/value "
                                      "states are kept, so a decision prefills only what its episode added since the "
                                      "last one (0: off)")
    prefix_cache_mb: float = Field(1024.0, ge=0.0, description="hf backend: memory those states may take, in MiB "
                                   "(on the model's device; least recently used out first)")
    prefix_cache_ttl_s: float = Field(600.0, gt=0.0, description="hf backend: a kept prefix unused this long is "
                                      "dropped")
    prompted_url: str | None = Field(None, description="OpenAI-compatible base URL (prompted backend)")
    prompted_model: str | None = None
    prompted_api_key: SecretStr | None = None
    prompted_constrain: bool = Field(False, description="vLLM servers: constrain the answer to the labels "
                                                        "(structured_outputs choice)")

    @field_validator("admin_token")
    @classmethod
    def _long_admin_token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < MIN_ADMIN_TOKEN:
            raise ValueError(f"RSIM_PLANNER_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN} characters "
                             f"(e.g. `openssl rand -hex 24`), or unset to turn the admin endpoints off")
        return v

    @model_validator(mode="after")
    def _backend_needs(self) -> PlannerSettings:
        if self.backend in ("hf", "vllm") and not (self.model or self.checkpoint):
            raise ValueError(f"backend '{self.backend}' needs RSIM_PLANNER_MODEL or RSIM_PLANNER_CHECKPOINT")
        if self.backend == "prompted" and not (self.prompted_url and self.prompted_model):
            raise ValueError("backend 'prompted' needs RSIM_PLANNER_PROMPTED_URL and RSIM_PLANNER_PROMPTED_MODEL")
        if self.checkpoint_root is None and self.checkpoint is not None:
            self.checkpoint_root = self.checkpoint
        return self
