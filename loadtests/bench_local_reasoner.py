"""The local reasoner of joint and grpo training: steps of concurrent episodes generated in one batch
(`max_batch` = the run's `concurrency`) against one step at a time (`max_batch=1`, how it generated before),
same model, same prompts, same budget, measured in this run: generated tokens/s and the ratio to one at a time.

    python -m loadtests.bench_local_reasoner --model ~/.cache/rsim/qwen2.5-coder-1.5b-instruct --episodes 4
    python -m loadtests.bench_local_reasoner --model PATH --short
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import torch

QUESTION = "Goran has {n} apples. Then the number of apples Goran has doubles. Then Goran buys 5 bags with 7 apples " \
           "in each bag. How many apples does Goran have now?"


async def run(local, episodes: int, tokens: int, tag: str) -> float:
    from service.reasoner import StepDone, StepRequest

    async def one(i: int) -> int:
        async for chunk in local.step(StepRequest(model="local", question=QUESTION.format(n=20 + 7 * i), steps=[],
                                                  pending="", max_tokens=tokens, min_tokens=tokens, stop=None,
                                                  request_id=f"{tag}{i}", temperature=1.0, delimiter="\n\n")):
            if isinstance(chunk, StepDone):
                local.take(f"{tag}{i}")
                return chunk.completion_tokens
        return 0

    t0 = time.perf_counter()
    done = await asyncio.gather(*(one(i) for i in range(episodes)))
    return sum(done) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from planner_server.training.local_reasoner import LocalReasoner

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="HF folder of the reasoner")
    ap.add_argument("--episodes", type=int, default=4, help="concurrent episodes (the run's concurrency)")
    ap.add_argument("--tokens", type=int, default=64, help="tokens per step")
    ap.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    ap.add_argument("--short", action="store_true", help="8 tokens per step, for CI")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)
    tokens = 8 if args.short else args.tokens
    model_dir = str(Path(args.model).expanduser())
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, args.dtype)).eval()
    results = {}
    for name, batch in (("one at a time", 1), (f"batched ({args.episodes})", args.episodes)):
        local = LocalReasoner(model, tok, temperature=1.0, max_batch=batch)
        asyncio.run(run(local, 1, 2 if args.short else 4, "warm"))
        results[name] = asyncio.run(run(local, args.episodes, tokens, "e"))
    base = results["one at a time"]
    print(f"{args.episodes} concurrent episodes, {tokens} tokens each, {Path(model_dir).name}, {args.dtype}, "
          f"{torch.get_num_threads()} threads")
    for name, rate in results.items():
        print(f"  {name:<16} {rate:7.2f} tokens/s   × {rate / base:.2f}")
    out = {"episodes": args.episodes, "tokens": tokens, "tokens_per_s": results,
           "ratio": results[f"batched ({args.episodes})"] / base}
    if args.out:
        args.out.write_text(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
