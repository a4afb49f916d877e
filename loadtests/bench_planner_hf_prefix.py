"""The hf planner backend with its prefix cache on and off, on one model in the same run: the decisions at
steps 1..N of growing episodes (each sees the previous chain of thought plus one more step), a batch of
episodes decided together, the two backends alternating decision by decision. Prints per decision the
prompt's tokens, the tokens the cached backend prefilled, both latencies and their ratio, and the largest
difference between the two backends' probabilities.

    python -m loadtests.bench_planner_hf_prefix --model ~/.cache/rsim/gemma-3-270m --steps 6 --batch 1,4 --threads 2
    python -m loadtests.bench_planner_hf_prefix --model PATH --short
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from pathlib import Path
from statistics import fmean

STEP_TEXT = ("We compute the partial result carefully, check the arithmetic of the previous line, and write the "
             "intermediate value down before moving on to the next part of the problem. ")
STRATEGIES = ["unguided", "decomposition", "continuation", "verification", "deep_thinking", "summarization"]


def probabilities(logits: list[float]) -> list[float]:
    top = max(logits)
    exp = [math.exp(x - top) for x in logits]
    return [e / sum(exp) for e in exp]


async def episodes(on, off, batch: int, steps: int, words: int, tag: str) -> tuple[list[dict], float]:
    """Decisions 1..steps of `batch` episodes decided together; per decision both backends, alternating who
    goes first. Returns one row per decision and the largest probability difference seen."""
    from planner_server.backends import PlanItem
    from planner_server.protocol import PlanStep

    text = " ".join((STEP_TEXT * 20).split()[:words])
    written: list[list[PlanStep]] = [[] for _ in range(batch)]
    questions = [f"Episode {tag}-{e}: a shop sells {e + 3} boxes of 12 pencils; how many pencils in total?"
                 for e in range(batch)]
    rows, worst = [], 0.0
    for i in range(steps):
        items = {name: [PlanItem(q, list(s)) for q, s in zip(questions, written, strict=True)]
                 for name in ("on", "off")}
        ms, out = {}, {}
        before = on.prefix_cache.stats.prefilled_tokens
        for name in (("on", "off") if i % 2 else ("off", "on")):
            backend = on if name == "on" else off
            t0 = time.perf_counter()
            out[name] = await backend.label_logits(items[name])
            ms[name] = (time.perf_counter() - t0) * 1000
        worst = max([worst] + [abs(a - b) for x, y in zip(out["on"], out["off"], strict=True)
                               for a, b in zip(probabilities(x), probabilities(y), strict=True)])
        rows.append({"decision": i + 1, "prompt_tokens": fmean(it.tokens["prompt"] for it in items["on"]),
                     "prefilled_tokens": (on.prefix_cache.stats.prefilled_tokens - before) / batch,
                     "cached_ms": ms["on"], "uncached_ms": ms["off"]})
        for e in range(batch):
            written[e].append(PlanStep(strategy=STRATEGIES[i % len(STRATEGIES)], text=f"({i}) {text}"))
    return rows, worst


def main(argv: list[str] | None = None) -> dict:
    import torch

    from planner_server.backends.hf import HFBackend
    from planner_server.settings import PlannerSettings
    from service.catalog import load_catalog

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="HF folder of the planner LM")
    p.add_argument("--steps", type=int, default=6, help="decisions per episode")
    p.add_argument("--batch", default="1,4", help="episodes decided together, comma-separated")
    p.add_argument("--step-words", type=int, default=60, help="words each step adds")
    p.add_argument("--rounds", type=int, default=2, help="episodes of each batch size (latencies are averaged)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--short", action="store_true", help="3 decisions, batches 1 and 2, one round: for CI")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    a = p.parse_args(argv)
    if a.short:
        a.steps, a.batch, a.step_words, a.rounds = 3, "1,2", 20, 1
    model = str(Path(a.model).expanduser())
    catalog = load_catalog()
    on = HFBackend.from_settings(PlannerSettings(model=model, threads=a.threads, dtype=a.dtype, device="cpu"), catalog)
    off = HFBackend(on.model, on.tokenizer, catalog, version=on.version, context_tokens=on.context_tokens)
    asyncio.run(episodes(on, off, 1, 2, 8, "warm-up"))
    result: dict = {"model": Path(model).name, "threads": torch.get_num_threads(), "batches": {}, "max_prob_diff": 0.0}
    for batch in (int(b) for b in a.batch.split(",")):
        runs = []
        for r in range(a.rounds):
            rows, worst = asyncio.run(episodes(on, off, batch, a.steps, a.step_words, f"{batch}.{r}"))
            runs.append(rows)
            result["max_prob_diff"] = max(result["max_prob_diff"], worst)
        rows = [{"decision": i + 1, **{k: fmean(run[i][k] for run in runs) for k in runs[0][i] if k != "decision"}}
                for i in range(a.steps)]
        for row in rows:
            row["ratio"] = row["cached_ms"] / row["uncached_ms"]
        result["batches"][batch] = {"rows": rows, "ratio": fmean(r["cached_ms"] for r in rows)
                                    / fmean(r["uncached_ms"] for r in rows)}
    print(f"planner hf backend, {result['model']}, {a.dtype}, {result['threads']} threads: decision latency with the "
          f"prefix cache on and off, {a.step_words} words added per step, mean of {a.rounds} round(s)")
    for batch, res in result["batches"].items():
        print(f"batch of {batch} episode(s)")
        print(f"{'decision':>8} {'prompt tok':>10} {'prefilled':>9} {'uncached ms':>11} {'cached ms':>9} "
              f"{'cached/uncached':>15}")
        for r in res["rows"]:
            print(f"{r['decision']:>8} {r['prompt_tokens']:>10.0f} {r['prefilled_tokens']:>9.0f} "
                  f"{r['uncached_ms']:>11.1f} {r['cached_ms']:>9.1f} {r['ratio']:>15.2f}")
        print(f"{'all':>8} {'':>10} {'':>9} {'':>11} {'':>9} {res['ratio']:>15.2f}")
    print(f"largest |p_cached - p_uncached| over all decisions: {result['max_prob_diff']:.2e}")
    if a.out:
        a.out.write_text(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
