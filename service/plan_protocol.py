"""Wire models of the planner API (L0: pydantic only). They live in `service` because both sides import
them — the service's planner client and the planner server — and the service never imports
`planner_server` (an import contract); `planner_server.protocol` re-exports them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from service.catalog import QUIET


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
    gains: dict[str, float] | None = Field(
        None, description="predicted gain of each strategy over staying quiet (`continuation`), in score units, "
                          "from a checkpoint trained on step values; None: the planner carries no calibration")
    margin: float | None = Field(None, description="the gate margin calibrated with the checkpoint (validation "
                                                   "split): a gated step speaks only where the gain reaches it")

    @classmethod
    def of(cls, decision: DecisionLike, ids: list[str], *, planner_version: str, catalog_version: str,
           latency_ms: float, tokens: int | None = None, value_scale: float | None = None,
           margin: float | None = None) -> PlanResponse:
        """The wire answer of a decision over the catalog `ids` (in catalog order). `value_scale` τ: the
        checkpoint was fitted to p(a) ∝ exp(A(a)/τ) over step values A, so the gain of `a` over quiet is
        τ·(log p(a) − log p(quiet))."""
        probabilities = dict(zip(ids, decision.probabilities, strict=True))
        return cls(strategy=ids[decision.index], probabilities=probabilities,
                   entropy=decision.entropy, planner_version=planner_version, catalog_version=catalog_version,
                   latency_ms=latency_ms, tokens=tokens, mode=decision.mode,
                   behaviour_probability=decision.behaviour_probability,
                   gains=None if value_scale is None else value_gains(probabilities, value_scale), margin=margin)


def value_gains(probabilities: dict[str, float], value_scale: float, quiet: str = QUIET) -> dict[str, float] | None:
    """τ·(log p(a) − log p(quiet)) for every strategy (None when the catalog has no quiet action)."""
    if quiet not in probabilities:
        return None
    floor = 1e-12
    base = math.log(max(probabilities[quiet], floor))
    return {k: value_scale * (math.log(max(p, floor)) - base) for k, p in probabilities.items()}


class PlanBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: Annotated[list[PlanRequest], Field(min_length=1, max_length=256)]


class PlanBatchResponse(BaseModel):
    responses: list[PlanResponse]
