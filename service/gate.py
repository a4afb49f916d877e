"""The gate (DESIGN.md §4.9): the planner speaks only where its predicted gain over staying quiet clears a
margin; otherwise the step is quiet — the catalog's `continuation` with nothing injected. Pure (L1).

Modes: `open` injects every choice of the planner (the paper); `gated` injects a choice only when its
predicted gain over quiet is at least the margin; `shadow` asks the planner and records its choice and gain
in the trace, and injects nothing (how an operator tries a checkpoint on live traffic). A planner that
carries no value calibration (no `gains` in its answer: an untrained one) never clears a gated margin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from service.catalog import QUIET
from service.plan_protocol import PlanResponse

GateMode = Literal["open", "gated", "shadow"]
GATES: tuple[str, ...] = ("open", "gated", "shadow")


@dataclass(frozen=True)
class GateVerdict:
    speak: bool  # inject the planner's choice (else the step is quiet)
    state: Literal["open", "fired", "closed", "shadow"]
    gain: float | None  # the planner's predicted gain of its choice over quiet (None: not calibrated)
    margin: float | None  # the margin the gain was held against


def predicted_gain(plan: PlanResponse) -> float | None:
    if plan.gains is None:
        return None
    return plan.gains.get(plan.strategy)


def gate(plan: PlanResponse, mode: GateMode, margin: float | None = None) -> GateVerdict:
    """Whether the planner's choice is injected. `margin`: the request's or service's margin; None takes the
    one calibrated with the planner's checkpoint (`plan.margin`)."""
    gain = predicted_gain(plan)
    margin = plan.margin if margin is None else margin
    if mode == "open":
        return GateVerdict(True, "open", gain, margin)
    if mode == "shadow":
        return GateVerdict(False, "shadow", gain, margin)
    fired = plan.strategy != QUIET and gain is not None and margin is not None and gain >= margin
    return GateVerdict(fired, "fired" if fired else "closed", gain, margin)
