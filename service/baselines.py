"""Prompt-only baselines: the question alone (`plain`: nothing injected, what a chat request gets, and the
episode `mode: grpo` trains), zero-shot chain of thought and Plan-and-Solve (PS+). A baseline is an episode
configuration of the one `Orchestrator` (`EpisodeConfig(baseline=...)`): one reasoning step under the
baseline's instruction with the whole reasoning budget, then the catalog's termination instruction, so
every method runs the same loop, ends with the same answer step and is scored the same way (L0)."""

from __future__ import annotations

BASELINES = {
    "plain": "",
    "zerocot": "Let's think step by step.",
    "ps+": ("Let's first understand the problem, extract relevant variables and their corresponding numerals, "
            "and devise a plan. Then, let's carry out the plan, calculate intermediate variables (pay attention to "
            "correct numerical calculation and commonsense), solve the problem step by step, and show the answer."),
}
