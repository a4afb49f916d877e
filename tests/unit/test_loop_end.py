"""The loop goes to the answer when the reasoner has nothing to add (service.orchestrator): it ended its
message (vLLM's `stop_reason` is null or a token id, not the stop string), or it restated an earlier step.

Seen on the instruct reasoner at temperature 0 (docs/eval-instruct.md): under the same instruction it
copied its last step word for word until `max_steps` (20–30 of 30 episodes per method), and after closing
its message with an answer it was made to write on ("Human: A certain number of students…"). The
scripted reasoner replays those shapes; `ended_itself` reads the chunks vLLM 0.32 sent (recorded here)."""

from __future__ import annotations

from dataclasses import replace

from planner_server.protocol import PlanResponse
from service.catalog import load_catalog
from service.orchestrator import EpisodeConfig, Orchestrator
from service.reasoner import StepDone, ended_itself
from service.step import CopyGuard, restates


class Scripted:
    def __init__(self, replies):
        self.replies, self.calls = list(replies), []

    async def step(self, req):
        self.calls.append(replace(req, steps=list(req.steps)))  # the chain of thought as it was sent
        text, finish, eos = self.replies.pop(0)
        yield text
        yield StepDone(finish_reason=finish, prompt_tokens=10, completion_tokens=len(text.split()), eos=eos)


class Always:
    """A planner that always picks one strategy (what the untrained Gemma planner did: self_reflection)."""

    def __init__(self, strategy):
        self.strategy, self.calls = strategy, 0

    async def plan(self, req, *, request_id=None):
        self.calls += 1
        ids = load_catalog().ids
        return PlanResponse(strategy=self.strategy, probabilities={i: float(i == self.strategy) for i in ids},
                            entropy=0.0, planner_version="test", catalog_version="test", latency_ms=0.0)


STEP1 = " 1. Goran starts with 30 shells.\n2. He gives away 3 shells, so he has 30 - 3 = 27 shells left."
STEP2 = " 3. He gives away 7 more, so he has 27 - 7 = 20 shells left."


def test_ended_itself_reads_vllm_stop_reason():
    # recorded from vLLM 0.32's chat stream (the last chunk's choice, trimmed)
    assert ended_itself({"finish_reason": "stop", "stop_reason": None}) is True  # end of sequence
    assert ended_itself({"finish_reason": "stop", "stop_reason": 151643}) is True  # a stop token id
    assert ended_itself({"finish_reason": "stop", "stop_reason": "\n\n"}) is False  # the step delimiter
    assert ended_itself({"finish_reason": "length", "stop_reason": None}) is False
    assert ended_itself({"finish_reason": "stop"}) is None  # a server that does not say


def test_restates_only_copies_from_the_start():
    assert restates(STEP1, [STEP1])
    assert restates("  " + STEP1.replace("\n", " \n "), [STEP1])  # whitespace aside
    assert restates(STEP1 + " 3. He gives away 7 more.", [STEP1])  # the copy, then more
    assert restates(STEP1[:50], [STEP1])  # the copy, cut short by the budget
    assert not restates(STEP1[:40], [STEP1])  # too short to call a copy
    assert not restates(STEP2, [STEP1])
    assert not restates(" The total is 20.", [" The total is 20."])
    assert not restates("Let me see. " + STEP1, [STEP1])  # not from its start
    assert not restates(STEP1, [])


def feed_all(guard, chunks):
    out = [o for c in chunks for o in guard.feed(c)]
    return out, out + guard.flush()


def test_copy_guard_releases_new_text_at_once_and_never_a_copy():
    fresh = CopyGuard([STEP1])
    assert fresh.feed(" 3. He") == [" 3. He"]  # departs from " 1. Goran…" at once: released at once
    fresh2 = CopyGuard([STEP1])
    assert fresh2.feed(" 1.") == [] and fresh2.feed(" Ana") == [" 1.", " Ana"] and not fresh2.copied
    assert fresh2.feed(" more") == [" more"]
    copy = CopyGuard([STEP1])
    live, total = feed_all(copy, [STEP1[i:i + 7] for i in range(0, len(STEP1), 7)])
    assert copy.copied and live == [] and total == []
    short = CopyGuard([STEP1])  # ends while still on the earlier step's track, too short to be a copy
    assert feed_all(short, [" 1. Goran", " starts"]) == ([], [" 1. Goran", " starts"]) and not short.copied
    assert CopyGuard([]).feed("x") == ["x"] and CopyGuard([" short"]).feed("x") == ["x"]


async def run(replies, *, planner_strategy="self_reflection", force=None, max_steps=5):
    reasoner, planner = Scripted(replies), Always(planner_strategy)
    orch = Orchestrator(planner, reasoner, load_catalog())
    cfg = EpisodeConfig(model="m", max_steps=max_steps, force=force, min_step_tokens=0, min_step_chars=0)
    return await orch.solve("Goran has 30 shells...", cfg), reasoner, planner


async def test_a_copied_step_is_written_again_without_its_instruction():
    replies = [(STEP1, "stop", False), (STEP1, "stop", False), (STEP2, "stop", False), ("20}", "stop", True)]
    result, reasoner, planner = await run(replies, max_steps=3)
    assert [s.strategy for s in result.steps] == ["self_reflection", "self_reflection", "termination"]
    step = result.steps[1]
    assert step.rewritten and step.injected == "" and step.text == STEP2 and step.ends_reasoning is None
    assert [c.pending for c in reasoner.calls[1:3]] == [load_catalog().get("self_reflection").instruction, ""]
    assert reasoner.calls[2].steps[-1].text == STEP1  # the copy never reached the chain of thought
    assert result.text.count(STEP1) == 1 and STEP2 in result.text
    assert step.tokens == 2 * len(STEP1.split()) // 2 + len(STEP2.split()) and result.usage.reasoner_calls == 4


async def test_a_step_copied_even_without_instruction_goes_to_the_answer():
    replies = [(STEP1, "stop", False), (STEP1, "stop", False), (STEP1, "stop", False), ("20}", "stop", True)]
    result, reasoner, planner = await run(replies)
    assert [s.strategy for s in result.steps] == ["self_reflection", "self_reflection", "termination"]
    assert [s.ends_reasoning for s in result.steps] == [None, "repeat", None]
    assert result.steps[1].rewritten and planner.calls == 2 and result.steps[-1].forced
    assert result.finish_reason == "termination" and result.answer == "20"


async def test_a_step_that_ends_the_message_goes_to_the_answer():
    result, reasoner, planner = await run([(STEP1, "stop", False), (STEP2 + " That is all.", "stop", True),
                                           ("20}.", "stop", True)], force="continuation")
    assert [s.strategy for s in result.steps] == ["continuation", "continuation", "termination"]
    assert result.steps[1].ends_reasoning == "eos" and result.finish_reason == "termination"
    assert planner.calls == 0 and len(reasoner.calls) == 3 and result.answer == "20"


async def test_a_step_with_its_own_boxed_answer_ends_the_episode():
    """What the instruct reasoner did once it had the result: a boxed answer, then a made-up follow-up
    question ("Human: …") whose result the answer step then boxed instead."""
    step = STEP2 + " So he has \\boxed{20} shells.\nHuman: A farmer has 15 apples in 3 bags: \\boxed{45}"
    result, reasoner, planner = await run([(STEP1, "stop", False), (step, "length", False)])
    assert [s.strategy for s in result.steps] == ["self_reflection", "self_reflection"]
    assert result.steps[-1].ends_reasoning == "answer" and result.finish_reason == "termination"
    assert result.answer == "20" and planner.calls == 2 and len(reasoner.calls) == 2


async def test_new_steps_on_a_silent_server_run_to_max_steps():
    """Distinct steps from a server that does not report how they ended: the loop runs as before."""
    replies = [(STEP1, "stop", None), (STEP2, "stop", None), (" 4. He buys 56 more: 20 + 56 = 76 shells.", "stop", None),
               ("76}", "stop", None)]
    result, reasoner, planner = await run(replies, max_steps=4)
    assert [s.ends_reasoning for s in result.steps] == [None] * 4
    assert [s.strategy for s in result.steps][-1] == "termination" and planner.calls == 3
    assert result.finish_reason == "max_steps"


async def test_a_code_task_answers_with_a_code_block_not_a_box():
    """Termination used to open `\\boxed{` on code too, and the `\\n\\n` stop cut the code at its first
    blank line (issue 13): the code answer step opens a Python block and runs to its closing fence."""
    code = "def add(a, b):\n    s = a + b\n\n    return s\n```\nThat is the function."
    reasoner, planner = Scripted([(" I add the two numbers and return the sum, nothing more to it.", "stop", False),
                                  (code, "stop", True)]), Always("termination")
    orch = Orchestrator(planner, reasoner, load_catalog())
    cfg = EpisodeConfig(model="m", max_steps=2, force="continuation", answer_format="code", min_step_tokens=0,
                        min_step_chars=0)
    result = await orch.solve("def add(a, b):\n    \"\"\"Sum.\"\"\"\n", cfg)
    answer_step = reasoner.calls[-1]
    assert answer_step.pending.endswith("```python\n") and "\\boxed" not in answer_step.pending
    assert answer_step.stop is None
    assert result.answer == "def add(a, b):\n    s = a + b\n\n    return s"


class Seeing(Always):
    """Always, and keeps the steps each decision saw."""

    def __init__(self, strategy):
        super().__init__(strategy)
        self.seen = []

    async def plan(self, req, *, request_id=None):
        self.seen.append([s.strategy for s in req.steps])
        return await super().plan(req, request_id=request_id)


async def test_the_reasoner_writes_the_first_step_from_the_plain_question():
    """`first_step="reasoner"`: the episode opens as a chat does — no planner call, nothing injected, the
    question alone as the user turn (on a chat reasoner: a fresh assistant turn, not a continued one) —
    and the planner decides from the second step on, seeing that step as unguided."""
    from service.reasoner import OpenAIReasoner

    reasoner, planner = Scripted([(STEP1, "stop", False), (STEP2, "stop", False), ("20}", "stop", True)]), \
        Seeing("verification")
    cfg = EpisodeConfig(model="m", max_steps=3, first_step="reasoner", min_step_tokens=0, min_step_chars=0)
    result = await Orchestrator(planner, reasoner, load_catalog()).solve("Goran has 30 shells...", cfg)
    assert [s.strategy for s in result.steps] == ["unguided", "verification", "termination"]
    first = result.steps[0]
    assert first.injected == "" and first.forced and first.probability is None and first.text == STEP1
    assert planner.calls == 1 and planner.seen == [["unguided"]]
    assert reasoner.calls[0].pending == "" and reasoner.calls[0].steps == []
    path, body = OpenAIReasoner(None, "http://x/v1").step_body(reasoner.calls[0])
    assert body["messages"] == [{"role": "user", "content": "Goran has 30 shells..."}]
    assert body["add_generation_prompt"] and not body["continue_final_message"]
    assert result.text.startswith(STEP1) and result.answer == "20"


async def test_the_planners_first_pick_is_the_default():
    reasoner, planner = Scripted([(STEP1, "stop", False), ("20}", "stop", True)]), Seeing("verification")
    cfg = EpisodeConfig(model="m", max_steps=2, min_step_tokens=0, min_step_chars=0)
    result = await Orchestrator(planner, reasoner, load_catalog()).solve("Goran has 30 shells...", cfg)
    assert [s.strategy for s in result.steps] == ["verification", "termination"] and planner.seen == [[]]


def test_unguided_is_reserved_and_shown_to_the_planner_as_no_strategy():
    import pytest

    from planner_server.prompt import planner_prompt
    from service.catalog import Catalog

    cat = load_catalog()
    prompt = planner_prompt("Q?", [type("S", (), {"strategy": "unguided", "text": " 30 - 3 = 27"})()], cat)
    assert "[No strategy] 30 - 3 = 27\n" in prompt
    bad = [s.model_dump() for s in cat.strategies]
    bad[0]["id"] = "unguided"
    with pytest.raises(ValueError, match="reserved"):
        Catalog.model_validate({"strategies": bad})


async def test_after_the_planned_steps_the_reasoner_finishes_unguided_in_the_budget_left():
    """`unguided_tail`: max_steps caps the planner's interventions, not the reasoning. A reasoner still
    mid-computation after the last planned step goes on with nothing injected and no delimiter, in what is
    left of the reasoning budget ((max_steps - 1) x max_tokens_per_step, what a prompt baseline gets), and
    its own boxed answer ends the episode; without the tail the answer step cut it off (the first run with
    `first_step="reasoner"`: 21 of 30 episodes forced to answer after an intermediate result)."""
    rest = " 4. He buys 56 more: 20 + 56 = 76 shells. So Goran has \\boxed{76} shells."
    reasoner, planner = Scripted([(STEP1, "stop", False), (STEP2, "stop", False), (rest, "stop", True)]), \
        Seeing("continuation")
    cfg = EpisodeConfig(model="m", max_steps=3, max_tokens_per_step=64, first_step="reasoner", unguided_tail=True,
                        min_step_tokens=0, min_step_chars=0)
    result = await Orchestrator(planner, reasoner, load_catalog()).solve("Goran has 30 shells...", cfg)
    assert [s.strategy for s in result.steps] == ["unguided", "continuation", "unguided"]
    tail = reasoner.calls[-1]
    used = len(STEP1.split()) + len(STEP2.split())
    assert tail.pending == "" and tail.stop is None and tail.max_tokens == 2 * 64 - used
    assert result.steps[-1].ends_reasoning == "answer" and result.answer == "76" and planner.calls == 1

    # a tail that ends without an answer goes to the answer step; no budget left: no tail
    reasoner = Scripted([(STEP1, "stop", False), (STEP2, "stop", False), (" 20 + 56 = 76.", "length", False),
                         ("76}", "stop", True)])
    result = await Orchestrator(Seeing("continuation"), reasoner, load_catalog()).solve("Goran...", cfg)
    assert [s.strategy for s in result.steps] == ["unguided", "continuation", "unguided", "termination"]
    assert result.answer == "76" and result.finish_reason == "max_steps"
    tight = replace(cfg, max_tokens_per_step=10)
    reasoner = Scripted([(STEP1, "stop", False), (STEP2, "stop", False), ("76}", "stop", True)])
    result = await Orchestrator(Seeing("continuation"), reasoner, load_catalog()).solve("Goran...", tight)
    assert [s.strategy for s in result.steps] == ["unguided", "continuation", "termination"]


async def test_a_step_cut_by_its_budget_is_continued_from_its_last_word():
    """Seen with every step of the first `first_step="reasoner"` run: a step that ran out of tokens at
    "4." got the delimiter and the next step after it, and the reasoner, starting a new paragraph, skipped
    the operation it was about to write (29 became 32). `continue_cut`: the next step goes on from the last
    word — no delimiter, nothing injected, no planner call — and the planner decides at the paragraph's end."""
    from service.injection import chain_of_thought
    from service.reasoner import OpenAIReasoner

    half, rest = " 3. She gives away 3 pencils: 4 - 3 =", " 1 pencil left."
    reasoner = Scripted([(STEP1, "stop", False), (half, "length", False), (rest, "stop", False),
                         (" 4. She gets 28 more: 1 + 28 = 29.", "stop", False), ("29}", "stop", True)])
    planner = Seeing("continuation")
    cfg = EpisodeConfig(model="m", max_steps=5, first_step="reasoner", continue_cut=True, min_step_tokens=0,
                        min_step_chars=0)
    result = await Orchestrator(planner, reasoner, load_catalog()).solve("Ana has 75 pencils...", cfg)
    assert [s.strategy for s in result.steps] == ["unguided", "continuation", "unguided", "continuation",
                                                  "termination"]
    assert [s.continued for s in result.steps] == [False, False, True, False, False]
    glued = reasoner.calls[2]
    assert glued.pending == "" and glued.glued and planner.calls == 2
    path, body = OpenAIReasoner(None, "http://x/v1").step_body(glued)
    assert body["messages"][-1]["content"].endswith(half)  # goes on from "4 - 3 =", no "\n\n" after it
    assert half + rest in result.text and result.answer == "29"
    assert chain_of_thought(reasoner.calls[3].steps, "\n\n").count(half + rest) == 1

    # off (the default): the delimiter and the planner's next decision follow the cut, as before
    reasoner = Scripted([(STEP1, "stop", False), (half, "length", False), (rest, "stop", False), ("29}", "stop", True)])
    result = await Orchestrator(Seeing("continuation"), reasoner, load_catalog()).solve(
        "Ana has 75 pencils...", replace(cfg, continue_cut=False, max_steps=4))
    assert [s.continued for s in result.steps] == [False] * 4 and half + "\n\n" in result.text
