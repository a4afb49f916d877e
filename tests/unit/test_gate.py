"""The gate (service.gate, DESIGN §4.9) and the loop's quiet steps: shadow records the planner's choice and
injects nothing, gated speaks only where the predicted gain reaches the margin, a late or missing decision
is a quiet step and never a failed request, and a branch goes on from a copy of an episode's state."""

from __future__ import annotations

import asyncio
import math

import pytest

from service.catalog import load_catalog
from service.errors import Overloaded, PlannerLate, PlannerUnavailable
from service.gate import gate
from service.orchestrator import Deciding, EpisodeConfig, Orchestrator
from service.plan_protocol import PlanResponse, value_gains
from tests.unit.test_loop_end import STEP1, STEP2, Scripted

IDS = load_catalog().ids
STEP3 = " 4. He buys 56 more: 20 + 56 = 76 shells."


def plan(strategy: str, *, probs: dict[str, float] | None = None, gains: dict[str, float] | None = None,
         margin: float | None = None) -> PlanResponse:
    probs = probs or {i: (0.6 if i == strategy else 0.4 / (len(IDS) - 1)) for i in IDS}
    return PlanResponse(strategy=strategy, probabilities=probs, entropy=1.0, planner_version="t", catalog_version="t",
                        latency_ms=0.0, gains=gains, margin=margin)


def test_open_speaks_shadow_never_gated_only_at_the_margin():
    p = plan("verification", gains={"verification": 0.05, "continuation": 0.0}, margin=0.1)
    assert gate(p, "open").speak and gate(p, "open").state == "open"
    assert not gate(p, "shadow").speak and gate(p, "shadow").gain == pytest.approx(0.05)
    closed = gate(p, "gated")  # 0.05 < the checkpoint's margin 0.1
    assert not closed.speak and closed.state == "closed" and closed.margin == 0.1
    assert gate(p, "gated", margin=0.05).speak  # a gain at the margin clears it
    assert not gate(p, "gated", margin=0.0500001).speak
    assert gate(p, "gated", margin=-1.0).state == "fired"


def test_gated_stays_quiet_without_a_calibration_or_when_quiet_is_the_choice():
    assert not gate(plan("verification"), "gated", margin=-100.0).speak  # an untrained planner claims no gain
    assert not gate(plan("verification", gains={"verification": 1.0}), "gated").speak  # no margin anywhere
    quiet = plan("continuation", gains={"continuation": 0.0}, margin=-1.0)
    assert not gate(quiet, "gated").speak and gate(quiet, "gated").state == "closed"


def test_gains_are_the_value_scale_times_the_log_ratio_to_quiet():
    probs = {"verification": 0.5, "continuation": 0.25, "termination": 0.25}
    g = value_gains(probs, 0.2)
    assert g["verification"] == pytest.approx(0.2 * math.log(2)) and g["continuation"] == 0.0
    assert value_gains({"a": 1.0}, 1.0) is None  # no quiet action in the catalog: no gains


class Planner:
    """Answers `strategy` at every decision (or raises / stalls), counting the calls."""

    def __init__(self, strategy="verification", *, gains=None, margin=None, delay_s=0.0, error=None):
        self.strategy, self.gains, self.margin, self.delay_s, self.error = strategy, gains, margin, delay_s, error
        self.calls = 0

    async def plan(self, req, *, request_id=None):
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return plan(self.strategy, gains=self.gains, margin=self.margin)


def cfg(**kw) -> EpisodeConfig:
    return EpisodeConfig(model="m", max_steps=4, min_step_tokens=0, min_step_chars=0, **kw)


REPLIES = [(STEP1, "stop", False), (STEP2, "stop", False), (STEP3, "stop", False), ("76}", "stop", True)]


async def test_shadow_records_the_choice_and_sends_what_the_quiet_loop_sends():
    """Shadow is the quiet loop, step for step, with the planner's choices in the trace — termination included:
    a shadow planner that says "answer now" changes nothing."""
    catalog = load_catalog()
    quiet_reasoner = Scripted(REPLIES)
    quiet = await Orchestrator(Planner(), quiet_reasoner, catalog).solve("q", cfg(force="continuation"))
    for choice in ("verification", "termination"):
        reasoner, planner = Scripted(REPLIES), Planner(choice)
        shadow = await Orchestrator(planner, reasoner, catalog).solve("q", cfg(gate="shadow"))
        assert [c.pending for c in reasoner.calls[:3]] == ["", "", ""]  # nothing injected, whatever the catalog says
        assert [s.strategy for s in shadow.steps] == ["continuation"] * 3 + ["termination"]
        assert [s.planned for s in shadow.steps] == [choice] * 3 + [None]
        assert [s.gate for s in shadow.steps] == ["shadow"] * 3 + [None]
        assert shadow.steps[0].probability == pytest.approx(0.6) and shadow.steps[0].probabilities is not None
        assert shadow.answer == "76" and planner.calls == 3 and shadow.usage.planner_calls == 3
        # the fixed quiet loop injects the paper catalog's continuation text; the shadow loop's steps are the
        # same reasoner text under nothing at all
        assert [s.text for s in shadow.steps] == [s.text for s in quiet.steps]


async def test_gated_injects_only_where_the_gain_clears_the_margin():
    instruction = load_catalog().get("verification").instruction
    for margin, injected, states in ((0.3, "", "closed"), (0.1, instruction, "fired")):
        reasoner, planner = Scripted(REPLIES), Planner(gains={"verification": 0.2, "continuation": 0.0}, margin=margin)
        result = await Orchestrator(planner, reasoner, load_catalog()).solve("q", cfg(gate="gated"))
        assert [c.pending for c in reasoner.calls[:3]] == [injected] * 3
        assert [s.gate for s in result.steps[:3]] == [states] * 3
        assert result.steps[0].gain == pytest.approx(0.2)
        assert result.steps[0].strategy == ("verification" if states == "fired" else "continuation")
    # the request's margin wins over the checkpoint's
    reasoner = Scripted(REPLIES)
    result = await Orchestrator(Planner(gains={"verification": 0.2}, margin=0.1), reasoner,
                                load_catalog()).solve("q", cfg(gate="gated", gate_margin=0.25))
    assert [s.gate for s in result.steps[:3]] == ["closed"] * 3


@pytest.mark.parametrize("planner", [Planner(delay_s=5.0), Planner(error=PlannerLate("late")),
                                     Planner(error=Overloaded("queue full"))], ids=["stall", "504", "429"])
@pytest.mark.parametrize("mode", ["open", "shadow"])
async def test_a_late_decision_is_a_quiet_step_never_a_failed_request(planner, mode):
    reasoner = Scripted(REPLIES)
    result = await asyncio.wait_for(Orchestrator(planner, reasoner, load_catalog()).solve(
        "q", cfg(gate=mode, decision_timeout_s=0.05)), 10)
    assert [s.gate for s in result.steps[:3]] == ["late"] * 3
    assert [s.strategy for s in result.steps] == ["continuation"] * 3 + ["termination"]
    assert [c.pending for c in reasoner.calls[:3]] == ["", "", ""] and result.answer == "76"
    assert result.usage.planner_calls == 0 and result.steps[0].planned is None


async def test_a_planner_gone_away_fails_an_open_loop_but_not_a_shadow_one():
    down = PlannerUnavailable("planner unreachable")
    with pytest.raises(PlannerUnavailable):
        await Orchestrator(Planner(error=down), Scripted(REPLIES), load_catalog()).solve("q", cfg(gate="open"))
    for mode in ("shadow", "gated"):
        result = await Orchestrator(Planner(error=down), Scripted(REPLIES), load_catalog()).solve("q", cfg(gate=mode))
        assert [s.gate for s in result.steps[:3]] == ["down"] * 3 and result.answer == "76" and not result.degraded


async def test_a_branch_goes_on_from_the_shared_prefix_with_its_action():
    """`snapshots=True` hands out the state before each decision; `run(state=…, action=…)` takes the action
    there once, then the loop goes on as it would (here: quiet), on the same written prefix."""
    catalog = load_catalog()
    reasoner = Scripted(REPLIES)
    orch = Orchestrator(Planner(), reasoner, catalog)
    states = [e.state async for e in orch.run("q", cfg(force="continuation"), snapshots=True)
              if isinstance(e, Deciding)]
    assert [s.index for s in states] == [-1, 0, 1]
    branch_reasoner = Scripted([(" Check: 27 - 7 = 20. Right.", "stop", False), (STEP3, "stop", False),
                                ("76}", "stop", True)])
    branch = await Orchestrator(Planner(), branch_reasoner, catalog).solve(
        "q", cfg(force="continuation"), state=states[1], action="verification")
    assert [s.strategy for s in branch.steps] == ["continuation", "verification", "continuation", "termination"]
    assert branch.steps[1].gate == "branch" and branch.steps[0].text == STEP1
    first = branch_reasoner.calls[0]
    assert [w.text for w in first.steps] == [STEP1] and first.pending == catalog.get("verification").instruction
    assert branch_reasoner.calls[1].pending == catalog.get("continuation").instruction
    assert states[1].traces[0].text == STEP1 and len(states[1].traces) == 1  # the snapshot is untouched
    assert branch.answer == "76"


async def test_shadow_asks_the_planner_beside_the_step_not_before_it():
    """Under shadow the step is quiet whatever the planner says, so the reasoner does not wait for it (issue 26:
    the default stack spent up to the decision deadline per step waiting for a starved planner). Here the
    planner answers only once the reasoner has been sent the step: a loop that waits first never gets there."""
    sent = asyncio.Event()

    class Reasoner(Scripted):
        async def step(self, req):
            sent.set()
            async for chunk in super().step(req):
                yield chunk

    class Waits(Planner):
        async def plan(self, req, *, request_id=None):
            await sent.wait()
            sent.clear()
            return await super().plan(req, request_id=request_id)

    reasoner = Reasoner(REPLIES)
    result = await asyncio.wait_for(Orchestrator(Waits(), reasoner, load_catalog()).solve(
        "q", cfg(gate="shadow", decision_timeout_s=5.0)), 10)
    assert [s.gate for s in result.steps[:3]] == ["shadow"] * 3  # answered in time, recorded on the step
    assert [s.planned for s in result.steps[:3]] == ["verification"] * 3 and result.usage.planner_calls == 3
    assert [c.pending for c in reasoner.calls[:3]] == ["", "", ""] and result.answer == "76"
