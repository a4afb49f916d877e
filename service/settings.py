"""Service settings, from `RSIM_*` environment variables (L0)."""

from __future__ import annotations

import hashlib
import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ReasonerMode = Literal["continue", "completions", "turns"]
# forwarded by default besides chat: generation and embeddings, never the account's files, batches or fine-tunes
DEFAULT_PASSTHROUGH = "POST /v1/completions,POST /v1/embeddings,POST /v1/responses"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RSIM_", extra="ignore", env_ignore_empty=True)

    reasoner_url: str | None = Field(None, description="base URL of the OpenAI-compatible reasoner, e.g. "
                                     "http://host:8002/v1 (required unless RSIM_ROUTES_FILE names the reasoners)")
    routes_file: Path | None = Field(None, description="YAML/JSON routing file: several reasoners behind one service")
    reasoner_model: str | None = Field(None, description="default reasoner model; first of /v1/models if unset")
    reasoner_mode: ReasonerMode = "continue"
    reasoner_api_key: SecretStr | None = None
    reasoner_temperature: float = Field(0.0, ge=0.0, le=2.0)
    planner_url: str = "http://127.0.0.1:8001"
    on_planner_down: Literal["error", "degrade"] = "error"
    gate: Literal["open", "gated", "shadow"] = Field(
        "shadow", description="when the planner's choice is injected: shadow (default: the planner decides and the "
                              "trace records it, nothing is injected — answers are the reasoner's own loop), gated "
                              "(only where its predicted gain over a quiet step reaches the margin), open (every "
                              "choice, as in the paper)")
    gate_margin: float | None = Field(None, description="gated mode's margin on the predicted gain (unset: the one "
                                                        "calibrated with the planner's checkpoint)")
    decision_timeout_s: float | None = Field(10.0, gt=0, description="a planner decision not back in this time is a "
                                             "quiet step (trace `gate: late`, metric rsim_planner_late_total), "
                                             "never a failed request")
    max_steps: int = Field(8, ge=1, le=64)
    max_tokens_per_step: int = Field(256, ge=1, le=8192)
    final_max_tokens: int = Field(512, ge=1, le=8192, description="token budget of the termination step")
    step_delimiter: str = "\n\n"
    min_step_tokens: int = Field(24, ge=0, le=8192, description="reasoner `min_tokens` of a reasoning step, so the "
                                 "delimiter cannot end it before it holds reasoning (vLLM's extension; 0 for "
                                 "servers without it)")
    min_step_chars: int = Field(16, ge=0, le=8192, description="a reasoning step shorter than this (non-space "
                                "characters) is resumed past its delimiter")
    planner_temperature: float = Field(0.0, ge=0.0, le=10.0)
    continue_cut: bool = Field(False, description="a reasoning step cut by its token budget mid-paragraph is continued "
                               "from its last word, unguided (the planner decides at paragraph ends only)")
    unguided_tail: bool = Field(False, description="after the last planned step a reasoner still reasoning goes on "
                                "unguided until it ends or the reasoning budget ((max_steps-1) x max_tokens_per_step) "
                                "is spent")
    first_step: Literal["planner", "reasoner"] = Field(
        "planner", description="who writes an episode's first step: the planner's pick, or the reasoner from the "
                               "plain question with nothing injected (as a chat begins)")
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(60.0, gt=0, description="longest silence from an upstream")
    request_timeout_s: float = Field(600.0, gt=0, description="longest whole upstream call")
    planner_timeout_s: float = Field(30.0, gt=0)
    retries: int = Field(2, ge=0, le=10, description="retries before the first byte (connect errors, 503)")
    keepalive_s: float = Field(10.0, gt=0, description="SSE keep-alive comment interval")
    reasoning_fields: str = Field("reasoning,reasoning_content", pattern=r"^(reasoning|reasoning_content)"
                                  r"(,(reasoning|reasoning_content))?$",
                                  description="message/delta fields the chain of thought goes out in (rsim/ models)")
    max_connections: int = Field(1024, ge=1)
    max_request_tokens: int = Field(65536, ge=1, description="the most reasoner tokens one request may ask for: "
                                    "n × (max_steps × max_tokens_per_step + final_max_tokens), capped by its "
                                    "max_tokens (400 request_budget_exceeded above)")
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="largest request body (413 above)")
    max_json_depth: int = Field(64, ge=2, le=256, description="deepest nesting of a JSON request body (400 above)")
    catalog_path: Path | None = None
    api_keys: SecretStr | None = Field(None, description="comma-separated client API keys (unset: no auth)")
    api_keys_file: Path | None = Field(None, description="file with one client API key per line")
    admin_keys: SecretStr | None = Field(None, description="comma-separated admin keys: accepted wherever a client "
                                         "key is, and they may label any trace (a client key labels only the "
                                         "traces of its own requests); need RSIM_API_KEYS or RSIM_API_KEYS_FILE")
    allow_anonymous: bool = Field(False, description="serve without client API keys on a non-loopback host "
                                                     "(else such a service refuses to start)")
    rate_limit_rpm: int | None = Field(None, ge=1, description="requests per minute per client key (unset: none)")
    max_concurrent_per_client: int | None = Field(None, ge=1, description="requests in flight per client key")
    redis_url: SecretStr | None = Field(None, description="Redis holding the rate and concurrency limits, shared by "
                                                          "every replica with the same URL (unset: per process)")
    passthrough_allow: str = Field(
        DEFAULT_PASSTHROUGH, description="the /v1 requests, beyond chat and rsim's own paths, forwarded to the reasoner "
        "with its key: comma-separated `METHOD /v1/path`; a trailing `*` matches the rest of a path, `*` as the method "
        "any method (`* /v1/*` forwards everything, as before issue 29; `none` nothing); anything else is a 404")
    docs: bool = Field(True, description="serve /docs, /redoc and /openapi.json (the compose deployment: false)")
    metrics_port: int | None = Field(None, ge=1, le=65535, description="serve Prometheus metrics on this port, apart "
                                     "from the API's (whose /metrics is then a 404): a port the deployment does not "
                                     "publish, which only the scraper reaches")
    metrics_host: str = Field("127.0.0.1", description="address of RSIM_METRICS_PORT's listener")
    ready_cache_s: float = Field(2.0, ge=0, le=60, description="/ready probes the upstreams and the planner at most "
                                 "once per this many seconds, however often it is asked (0: every time)")
    traces: bool = Field(True, description="record every finished request's trace (opt-out: false)")
    trace_store: Path = Field(Path("~/.cache/rsim/traces.db"), description="SQLite file of the trace store")
    trace_retention_days: float = Field(30.0, ge=0, description="traces older than this are deleted, labelled or "
                                        "not (checked every minute; 0: kept forever)")
    trace_max_rows: int = Field(100_000, ge=0, description="the trace store keeps at most this many traces, the "
                                "newest (0: no cap)")

    @field_validator("reasoner_url", "planner_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return v.rstrip("/")

    @field_validator("passthrough_allow")
    @classmethod
    def _passthrough_rules(cls, v: str) -> str:
        passthrough_rules(v)  # raises on a malformed entry
        return v

    def forwards(self, method: str, path: str) -> bool:
        """Whether `method path` (a /v1 path that is not rsim's own) is on the passthrough allowlist."""
        return any(m in ("*", method.upper()) and (path.startswith(p) if prefix else path == p)
                   for m, p, prefix in passthrough_rules(self.passthrough_allow))

    @model_validator(mode="after")
    def _a_reasoner(self) -> ServiceSettings:
        if self.reasoner_url is None and self.routes_file is None:
            raise ValueError("set RSIM_REASONER_URL (one reasoner) or RSIM_ROUTES_FILE (several)")
        return self

    @model_validator(mode="after")
    def _keys_or_anonymous(self) -> ServiceSettings:
        if self.allow_anonymous and (self.api_keys is not None or self.api_keys_file is not None):
            raise ValueError("RSIM_ALLOW_ANONYMOUS=true contradicts RSIM_API_KEYS / RSIM_API_KEYS_FILE: set one")
        return self

    @model_validator(mode="after")
    def _admin_keys_need_client_keys(self) -> ServiceSettings:
        if self.admin_keys is not None and self.api_keys is None and self.api_keys_file is None:
            raise ValueError("RSIM_ADMIN_KEYS needs RSIM_API_KEYS or RSIM_API_KEYS_FILE: without client keys every "
                             "caller may label every trace, and there is nothing to be admin over")
        return self

    def admin_key_hashes(self) -> frozenset[str]:
        """SHA-256 of every admin key; a blank entry in RSIM_ADMIN_KEYS is an error, as in RSIM_API_KEYS."""
        if self.admin_keys is None:
            return frozenset()
        keys = [k.strip() for k in self.admin_keys.get_secret_value().split(",")]
        if not all(keys):
            raise ValueError("RSIM_ADMIN_KEYS has a blank entry: list the keys comma-separated, none empty")
        return frozenset(hashlib.sha256(k.encode()).hexdigest() for k in keys)

    def api_key_hashes(self) -> frozenset[str]:
        """SHA-256 of every configured client key: only hashes are kept in memory. A blank entry in
        RSIM_API_KEYS, or a keys file without a key, is an error: it would leave the service open."""
        keys = []
        if self.api_keys is not None:
            keys = [k.strip() for k in self.api_keys.get_secret_value().split(",")]
            if not all(keys):
                raise ValueError("RSIM_API_KEYS has a blank entry: list the keys comma-separated, none empty")
        if self.api_keys_file is not None:
            if not self.api_keys_file.is_file():
                raise ValueError(f"RSIM_API_KEYS_FILE not found: {self.api_keys_file}")
            in_file = [k.strip() for k in self.api_keys_file.read_text().splitlines() if k.strip()]
            if not in_file:
                raise ValueError(f"RSIM_API_KEYS_FILE holds no key: {self.api_keys_file}")
            keys += in_file
        return frozenset(hashlib.sha256(k.encode()).hexdigest() for k in keys)

    def check_exposure(self, host: str) -> None:
        """Closed by default: serving on a host other than loopback takes client keys, or the operator's
        explicit RSIM_ALLOW_ANONYMOUS=true. Raises ValueError, one line, otherwise."""
        if not (self.allow_anonymous or is_loopback(host) or self.api_key_hashes()):
            raise ValueError(f"refusing to serve on {host} without client API keys: set RSIM_API_KEYS or "
                             "RSIM_API_KEYS_FILE, or RSIM_ALLOW_ANONYMOUS=true to let anyone who reaches it in")

    def masked(self) -> dict:
        return {k: ("***" if isinstance(v, SecretStr) else v) for k, v in self.model_dump().items()
                if v is not None}


_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "*"})


@lru_cache(maxsize=16)
def passthrough_rules(allow: str) -> tuple[tuple[str, str, bool], ...]:
    """RSIM_PASSTHROUGH_ALLOW as (method, path, is_prefix) rules. ValueError, naming the entry, on anything but
    `METHOD /v1/...` with a known method, plain segments and at most one `*`, at the end."""
    rules: list[tuple[str, str, bool]] = []
    if allow.strip().lower() == "none":
        return ()
    for entry in (e.strip() for e in allow.split(",")):
        if not entry:
            continue
        method, _, path = entry.partition(" ")
        method, path = method.upper(), path.strip()
        prefix = path.endswith("*")
        plain = path.removesuffix("*")
        if (method not in _METHODS or not plain.startswith("/v1/") or "*" in plain
                or any(seg in (".", "..") for seg in plain.split("/"))):
            raise ValueError(f"RSIM_PASSTHROUGH_ALLOW entry {entry!r}: want `METHOD /v1/path` (METHOD one of "
                             f"{', '.join(sorted(_METHODS))}; a trailing * matches the rest of the path)")
        rules.append((method, plain, prefix))
    return tuple(rules)


def is_loopback(host: str) -> bool:
    """Whether a bind address takes connections from this machine only (`localhost`, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False
