"""Wire models of the planner API (L0: pydantic only). They live in `service` because both sides import
them — the service's planner client and the planner server — and the service never imports
`planner_server` (an import contract); `planner_server.protocol` re-exports them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class DecisionLike(Protocol):
    """What a decision carries (planner_server.decision.Decision)."""

    index: int
    probabilities: Sequence[float]
    entropy: float
    mode: str
    behaviour_probability: float

MAX_QUESTION_CHARS = 100_000
MAX_STEP_CHARS = 100_000


class PlanStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: Annotated[str, Field(min_length=1, max_length=64)]
    text: Annotated[str, Field(max_length=MAX_STEP_CHARS)] = ""


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: Annotated[str, Field(min_length=1, max_length=MAX_QUESTION_CHARS)]
    steps: Annotated[list[PlanStep], Field(max_length=256)] = []
    temperature: Annotated[float, Field(ge=0.0, le=10.0, description="0 = argmax")] = 0.0
    forbid: Annotated[list[str], Field(max_length=16, description="strategy ids never chosen")] = []
    seed: int | None = None


class PlanResponse(BaseModel):
    strategy: str
    probabilities: dict[str, float]
    entropy: float
    planner_version: str
    catalog_version: str
    latency_ms: float
    tokens: int | None = Field(None, description="tokens the planner model read and wrote for this decision")
    mode: Literal["argmax", "sampled", "explored"] = Field(
        "argmax", description="how the strategy was drawn: the argmax, sampled at the request's temperature, or "
                              "explored (argmax with the server's exploration rate ε: sampled with probability ε)")
    behaviour_probability: float = Field(1.0, description="μ(strategy): its probability under the distribution it "
                                                          "was drawn from (1 for an argmax)")

    @classmethod
    def of(cls, decision: DecisionLike, ids: list[str], *, planner_version: str, catalog_version: str,
           latency_ms: float, tokens: int | None = None) -> PlanResponse:
        """The wire answer of a decision over the catalog `ids` (in catalog order)."""
        return cls(strategy=ids[decision.index], probabilities=dict(zip(ids, decision.probabilities, strict=True)),
                   entropy=decision.entropy, planner_version=planner_version, catalog_version=catalog_version,
                   latency_ms=latency_ms, tokens=tokens, mode=decision.mode,
                   behaviour_probability=decision.behaviour_probability)


class PlanBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: Annotated[list[PlanRequest], Field(min_length=1, max_length=256)]


class PlanBatchResponse(BaseModel):
    responses: list[PlanResponse]
