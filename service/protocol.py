"""Wire models of the service API: /solve and the OpenAI-compatible chat endpoint (L0)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_QUESTION_CHARS = 100_000


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int = Field(0, description="completion tokens of the reasoning steps (all but the answer)")
    cached_tokens: int | None = Field(None, description="prompt tokens served from the reasoner's prefix cache, "
                                                        "when it reports them")
    planner_calls: int = 0
    planner_tokens: int = Field(0, description="tokens the planner model read and wrote, when it reports them")
    reasoner_calls: int = 0

    def add(self, done: Any, *, reasoning: bool) -> None:
        """Count one finished step (a `StepDone`) into the totals."""
        self.prompt_tokens += done.prompt_tokens
        self.completion_tokens += done.completion_tokens
        self.reasoner_calls += done.extra["calls"]
        if reasoning:
            self.reasoning_tokens += done.completion_tokens
        if done.cached_tokens is not None:
            self.cached_tokens = (self.cached_tokens or 0) + done.cached_tokens

    def openai(self) -> dict[str, Any]:
        """OpenAI's usage object: totals, the reasoning split, the cached split when known."""
        out: dict[str, Any] = {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                               "total_tokens": self.total_tokens,
                               "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens}}
        if self.cached_tokens is not None:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        out["rsim"] = {"planner_calls": self.planner_calls, "planner_tokens": self.planner_tokens,
                       "reasoner_calls": self.reasoner_calls}
        return out


class StepTrace(BaseModel):
    index: int
    strategy: str
    probability: float | None = Field(None, description="planner probability of the chosen strategy")
    probabilities: dict[str, float] | None = None
    decision: Literal["argmax", "sampled", "explored"] | None = Field(
        None, description="how the planner drew the strategy (None: not the planner's choice)")
    behaviour_probability: float | None = Field(None, description="μ(strategy) under the distribution it was drawn "
                                                                  "from: what off-policy learning divides by")
    forced: bool = False
    injected: str = Field(description="the strategy instruction injected before the step")
    text: str = Field(description="what the reasoner wrote under the instruction")
    tokens: int = 0
    finish_reason: str | None = None
    ends_reasoning: Literal["answer", "eos", "repeat"] | None = Field(
        None, description="why the reasoning ended with this step: it holds the reasoner's own boxed answer "
                          "(answer: the episode ends here), the reasoner ended its message (eos) or copied an "
                          "earlier step (repeat); the last two go to the answer step")
    continued: bool = Field(False, description="the step goes on from the previous one's last word: its token "
                                               "budget cut that one mid-paragraph, so nothing was injected and no "
                                               "delimiter put between them")
    rewritten: bool = Field(False, description="under its instruction the reasoner began to restate an earlier "
                                                "step; that text was dropped and the step written without it")
    planned: str | None = Field(None, description="the planner's choice, when the planner was asked and answered in "
                                                  "time (the step's `strategy` differs when the gate kept it quiet)")
    gain: float | None = Field(None, description="the planner's predicted gain of `planned` over a quiet step "
                                                 "(None: the planner carries no value calibration)")
    gate: Literal["open", "fired", "closed", "shadow", "late", "down", "branch"] | None = Field(
        None, description="how the planned step was decided: open (every choice injected), fired / closed (the "
                          "gate let the choice through / kept the step quiet), shadow (recorded, nothing injected), "
                          "late (no decision in time: quiet), down (the planner unreachable under a gated or shadow "
                          "loop: quiet), branch (an action set from outside: a branch rollout); None: no planner "
                          "decision at this step")
    planner_ms: float = 0.0
    reasoner_ms: float = 0.0


class Timings(BaseModel):
    total_ms: float = 0.0
    planner_ms: float = 0.0
    reasoner_ms: float = 0.0
    overhead_ms: float = 0.0


class SolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: Annotated[str, Field(min_length=1, max_length=MAX_QUESTION_CHARS)]
    max_steps: Annotated[int | None, Field(ge=1, le=64)] = None
    max_tokens_per_step: Annotated[int | None, Field(ge=1, le=8192)] = None
    final_max_tokens: Annotated[int | None, Field(ge=1, le=8192, description="the answer step's budget "
                                                  "(default: RSIM_FINAL_MAX_TOKENS)")] = None
    temperature: Annotated[float | None, Field(ge=0.0, le=10.0, description="planner temperature, 0 = argmax")] = None
    reasoner_temperature: Annotated[float | None, Field(ge=0.0, le=2.0)] = None
    model: Annotated[str | None, Field(max_length=256, description="reasoner model id")] = None
    force: Annotated[str | None, Field(max_length=64, description="use this strategy at every step")] = None
    forbid: Annotated[list[str], Field(max_length=16)] = []
    seed: int | None = None
    first_step: Literal["planner", "reasoner"] | None = Field(
        None, description="who writes the first step: the planner's pick, or the reasoner from the plain question "
                          "with nothing injected (default: RSIM_FIRST_STEP)")
    gate: Literal["open", "gated", "shadow"] | None = Field(
        None, description="when the planner's choice is injected (default: RSIM_GATE, shadow unless configured)")
    gate_margin: float | None = Field(None, description="gated mode's margin (default: RSIM_GATE_MARGIN, else the "
                                                        "checkpoint's)")
    stream: bool = False


class SolveResponse(BaseModel):
    id: str
    model: str
    answer: str
    text: str
    steps: list[StepTrace]
    finish_reason: Literal["termination", "max_steps", "degraded"]
    degraded: bool = False
    usage: Usage
    timings: Timings
    planner_version: str | None
    catalog_version: str


class FeedbackRequest(BaseModel):
    """A label for a finished request: a reward, or whether it was correct (and the right answer)."""

    model_config = ConfigDict(extra="forbid")

    request_id: Annotated[str, Field(min_length=1, max_length=128)]
    reward: Annotated[float | None, Field(ge=-100.0, le=100.0)] = None
    correct: bool | None = None
    answer: Annotated[str | None, Field(max_length=MAX_QUESTION_CHARS)] = None

    @model_validator(mode="after")
    def _has_label(self) -> FeedbackRequest:
        if self.reward is None and self.correct is None:
            raise ValueError("give a reward or correct")
        return self


class RsimOptions(BaseModel):
    """The optional `rsim` field of a chat completion request."""

    model_config = ConfigDict(extra="forbid")

    max_steps: Annotated[int | None, Field(ge=1, le=64)] = None
    max_tokens_per_step: Annotated[int | None, Field(ge=1, le=8192)] = None
    temperature: Annotated[float | None, Field(ge=0.0, le=10.0)] = None
    force: Annotated[str | None, Field(max_length=64)] = None
    forbid: Annotated[list[str], Field(max_length=16)] = []
    gate: Literal["open", "gated", "shadow"] | None = None
    gate_margin: float | None = None
    return_trace: bool = False


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


REASONING_EFFORT_STEPS = {"minimal": 0.0, "low": 0.5, "medium": 1.0, "high": 2.0}  # × the default max_steps


class ChatCompletionRequest(BaseModel):
    """A chat request to an `rsim/` model. Every OpenAI field has a defined fate (README, "Chat fields"):
    honoured, accepted without effect on the reasoning (bookkeeping fields), or refused with a 400 naming
    it; an unknown field is refused too, never silently ignored."""

    model_config = ConfigDict(extra="forbid")

    model: Annotated[str, Field(min_length=1, max_length=256)]
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=512)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float | None, Field(ge=0.0, le=2.0)] = None
    top_p: Annotated[float | None, Field(gt=0.0, le=1.0)] = None
    presence_penalty: Annotated[float | None, Field(ge=-2.0, le=2.0)] = None
    frequency_penalty: Annotated[float | None, Field(ge=-2.0, le=2.0)] = None
    max_tokens: Annotated[int | None, Field(ge=1, le=65536, description="total completion budget, all steps")] = None
    max_completion_tokens: Annotated[int | None, Field(ge=1, le=65536)] = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    seed: int | None = None
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    n: Annotated[int | None, Field(ge=1, le=16, description="independent episodes, one choice each")] = None
    # accepted, with no effect on the reasoning (bookkeeping on the caller's side)
    user: Annotated[str | None, Field(max_length=256)] = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    safety_identifier: Annotated[str | None, Field(max_length=256)] = None
    prompt_cache_key: Annotated[str | None, Field(max_length=256)] = None
    parallel_tool_calls: bool | None = None  # meaningless without tools, which are refused
    # refused unless off: the strategy loop produces text, not tool calls, structured output or log-probs
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    function_call: Any = None
    response_format: dict[str, Any] | None = None
    modalities: list[str] | None = None
    audio: Any = None
    prediction: Any = None
    logit_bias: dict[str, Any] | None = None
    web_search_options: Any = None
    rsim: RsimOptions | None = None

    def refused(self) -> str | None:
        """The first field set to something the strategy loop cannot honour (the route answers 400 naming it)."""
        refused = {
            "tools": bool(self.tools), "tool_choice": self.tool_choice not in (None, "none"),
            "functions": bool(self.functions), "function_call": self.function_call not in (None, "none"),
            "response_format": bool(self.response_format) and self.response_format.get("type") != "text",
            "logprobs": bool(self.logprobs), "top_logprobs": self.top_logprobs is not None,
            "modalities": self.modalities not in (None, ["text"]), "audio": self.audio is not None,
            "prediction": self.prediction is not None, "logit_bias": bool(self.logit_bias),
            "web_search_options": self.web_search_options is not None,
        }
        return next((name for name, bad in refused.items() if bad), None)

    @property
    def budget(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


# --- what rsim/ models answer: OpenAI's chat completion and chunk, typed (field names as OpenAI's) ---


class AssistantMessage(BaseModel):
    """The answer in `content`; the chain of thought under each configured reasoning field (extra keys)."""

    model_config = ConfigDict(extra="allow")

    role: Literal["assistant"] = "assistant"
    content: str | None


class CompletionChoice(BaseModel):
    model_config = ConfigDict(extra="allow")  # `rsim`: the episode's steps, with return_trace and n > 1

    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class ChatCompletion(BaseModel):
    model_config = ConfigDict(extra="allow")  # `rsim`: the first episode's steps, with return_trace

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: dict[str, Any]


class ChunkChoice(BaseModel):
    index: int
    delta: dict[str, Any]  # role, content, or the reasoning fields; {} with the finish
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    model_config = ConfigDict(extra="allow")  # `rsim` on a choice's finish chunk, with return_trace

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: dict[str, Any] | None = None
