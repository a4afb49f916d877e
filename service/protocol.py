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
        out["rsim"] = {"planner_calls": self.planner_calls, "reasoner_calls": self.reasoner_calls}
        return out


class StepTrace(BaseModel):
    index: int
    strategy: str
    probability: float | None = Field(None, description="planner probability of the chosen strategy")
    probabilities: dict[str, float] | None = None
    forced: bool = False
    injected: str = Field(description="the strategy instruction injected before the step")
    text: str = Field(description="what the reasoner wrote under the instruction")
    tokens: int = 0
    finish_reason: str | None = None
    ends_reasoning: Literal["answer", "eos", "repeat"] | None = Field(
        None, description="why the reasoning ended with this step: it holds the reasoner's own boxed answer "
                          "(answer: the episode ends here), the reasoner ended its message (eos) or copied an "
                          "earlier step (repeat); the last two go to the answer step")
    rewritten: bool = Field(False, description="under its instruction the reasoner began to restate an earlier "
                                                "step; that text was dropped and the step written without it")
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
    temperature: Annotated[float | None, Field(ge=0.0, le=10.0, description="planner temperature, 0 = argmax")] = None
    reasoner_temperature: Annotated[float | None, Field(ge=0.0, le=2.0)] = None
    model: Annotated[str | None, Field(max_length=256, description="reasoner model id")] = None
    force: Annotated[str | None, Field(max_length=64, description="use this strategy at every step")] = None
    forbid: Annotated[list[str], Field(max_length=16)] = []
    seed: int | None = None
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
    return_trace: bool = False


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """What the strategy-injection path reads; other OpenAI fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: Annotated[str, Field(min_length=1, max_length=256)]
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=512)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float | None, Field(ge=0.0, le=2.0)] = None
    max_tokens: Annotated[int | None, Field(ge=1, le=8192)] = None
    max_completion_tokens: Annotated[int | None, Field(ge=1, le=8192)] = None
    seed: int | None = None
    rsim: RsimOptions | None = None
