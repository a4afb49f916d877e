"""The vllm planner backend with automatic prefix caching on and off: the decisions of growing
episodes (each decision sees the previous chain of thought plus one more step), timed per decision.
With caching on, a decision re-prefills only the tokens added since the previous one. Prints the mean
decision latency by position in the episode and the on/off ratio, measured in the same run.

    python -m loadtests.bench_planner_prefix_cache --model ~/.cache/rsim/gemma-3-270m --episodes 4 --steps 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from statistics import fmean

STEP_TEXT = ("We compute the partial result carefully, check the arithmetic of the previous line, and write the "
             "intermediate value down before moving on to the next part of the problem. ")


def run_variant(model: str, caching: bool, episodes: int, steps: int, step_words: int) -> list[list[float]]:
    from planner_server.backends import PlanItem
    from planner_server.backends.vllm import VLLMBackend
    from planner_server.protocol import PlanStep
    from planner_server.settings import PlannerSettings
    from service.catalog import load_catalog

    backend = VLLMBackend.from_settings(PlannerSettings(backend="vllm", model=model, prefix_caching=caching,
                                                        context_tokens=4096), load_catalog())
    text = " ".join((STEP_TEXT * 20).split()[:step_words])

    async def episodes_timed() -> list[list[float]]:  # one event loop: the async engine lives in it
        times: list[list[float]] = []
        try:
            for e in range(episodes):
                question = f"Episode {e}: a shop sells {e + 3} boxes of 12 pencils; how many pencils in total?"
                written: list[PlanStep] = []
                row = []
                for i in range(steps):
                    t0 = time.perf_counter()
                    await backend.label_logits([PlanItem(question, list(written))])
                    row.append((time.perf_counter() - t0) * 1000)
                    written.append(PlanStep(strategy="continuation", text=f"({i}) {text}"))
                times.append(row)
        finally:
            await backend.close()
        return times

    return asyncio.run(episodes_timed())


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--episodes", type=int, default=4)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--step-words", type=int, default=60)
    p.add_argument("--variant", choices=["on", "off"], help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.variant:  # child: one engine per process, so each variant starts cold and alone
        print(json.dumps(run_variant(a.model, a.variant == "on", a.episodes, a.steps, a.step_words)))
        return {}
    result = {}
    for variant in ("on", "off"):
        r = subprocess.run([sys.executable, "-m", "loadtests.bench_planner_prefix_cache", "--model", a.model,
                            "--episodes", str(a.episodes), "--steps", str(a.steps), "--step-words", str(a.step_words),
                            "--variant", variant], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"caching {variant}: the measuring process failed:\n{r.stderr[-3000:]}")
        result[variant] = json.loads(r.stdout.strip().splitlines()[-1])
    # the first episode warms the engine up: report the others
    by_pos = {v: [fmean(ep[i] for ep in rows[1:] or rows) for i in range(a.steps)] for v, rows in result.items()}
    print(f"planner vllm backend, {a.model.rstrip('/').split('/')[-1]}: decision latency (ms) by position in the "
          f"episode, {a.step_words} words added per step")
    print(f"{'decision':>8} {'caching on':>11} {'caching off':>12} {'on/off':>7}")
    for i in range(a.steps):
        print(f"{i + 1:>8} {by_pos['on'][i]:>11.1f} {by_pos['off'][i]:>12.1f} {by_pos['on'][i] / by_pos['off'][i]:>7.2f}")
    mean_on, mean_off = fmean(by_pos["on"]), fmean(by_pos["off"])
    print(f"{'mean':>8} {mean_on:>11.1f} {mean_off:>12.1f} {mean_on / mean_off:>7.2f}")
    return {"by_position": by_pos, "ratio": mean_on / mean_off}


if __name__ == "__main__":
    main()
