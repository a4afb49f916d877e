"""Benchmark 3: the service's own CPU per reasoning step of strategy-injected requests.

The service runs between a simulated planner (instant, never terminates: every request takes exactly
`--max-steps` steps) and a simulated reasoner (`--ttft-ms` per step, `--tokens` streamed tokens), so
everything the service process burns is its own work: the planner call, the reasoner stream, injection,
the answer; waiting on either costs it no CPU. CPU seconds come from /proc. Measured in the same run and
the same rounds: the passthrough's CPU per request (one upstream call, the floor of any proxy step).

    python -m loadtests.bench_step_cpu --concurrency 1,16,64 --rounds 3 --seconds 5
    python -m loadtests.bench_step_cpu --short
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
from pathlib import Path

import httpx

from loadtests import stack
from loadtests.loadgen import Sample, load, save

QUESTION = "Natalia sold 48 clips in April and half as many in May. How many clips did she sell in all?"


def bodies(steps: int, tokens: int) -> dict[str, tuple[str, bytes]]:
    chat = {"model": "rsim/sim", "messages": [{"role": "user", "content": QUESTION}],
            "rsim": {"max_steps": steps, "max_tokens_per_step": tokens}}
    return {
        "solve": ("/solve", json.dumps({"question": QUESTION, "model": "sim", "max_steps": steps,
                                        "max_tokens_per_step": tokens}).encode()),
        "chat_stream": ("/v1/chat/completions", json.dumps({**chat, "stream": True}).encode()),
        "passthrough": ("/v1/chat/completions", json.dumps({"model": "sim", "max_tokens": tokens,
                                                            "messages": [{"role": "user", "content": QUESTION}]
                                                            }).encode()),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--concurrency", default="1,16,64")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--max-steps", type=int, default=4)
    p.add_argument("--tokens", type=int, default=16, help="tokens per step, streamed one per chunk")
    p.add_argument("--ttft-ms", type=float, default=20.0)
    p.add_argument("--tokens-per-s", type=float, default=0.0, help="0: a step's tokens arrive together")
    p.add_argument("--short", action="store_true")
    p.add_argument("--logs", type=Path, default=Path(".work/bench-logs/step-cpu"))
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    if a.short:
        a.concurrency, a.rounds, a.seconds = "1,8", 1, 1.0
    levels = [int(x) for x in a.concurrency.split(",")]
    kinds = bodies(a.max_steps, a.tokens)
    with contextlib.ExitStack() as es:
        sim = es.enter_context(stack.sim_reasoner(a.logs, ttft_ms=a.ttft_ms, tokens=a.tokens,
                                                  tokens_per_s=a.tokens_per_s))
        planner = es.enter_context(stack.sim_planner(a.logs))
        rsim = es.enter_context(stack.rsim_service(a.logs, sim.url, planner.url))
        # every request takes exactly max_steps steps: checked, not assumed
        probe = httpx.post(f"{rsim.url}/solve", content=kinds["solve"][1], timeout=30,
                           headers={**rsim.headers, "Content-Type": "application/json"}).json()
        steps = len(probe["steps"])
        if steps != a.max_steps:
            sys.exit(f"expected {a.max_steps} steps per request, got {steps}: {probe}")
        samples = {k: {c: Sample() for c in levels} for k in kinds}
        for rnd in range(a.rounds):
            for c in levels:
                order = list(kinds)
                random.Random(rnd * 100 + c).shuffle(order)
                for k in order:
                    path, body = kinds[k]
                    samples[k][c].add(asyncio.run(load(rsim.url + path, body, concurrency=c, seconds=a.seconds,
                                                       headers=rsim.headers, stream=k == "chat_stream",
                                                       pid=rsim.pid)))
    results: dict = {"max_steps": steps, "tokens_per_step": a.tokens, "levels": {}}
    print(f"{'conc':>5} {'kind':12} {'req/s':>8} {'p50 ms':>8} {'cpu ms/req':>10} {'cpu ms/step':>11} "
          f"{'step / passthrough':>18} {'errors':>6}")
    for c in levels:
        results["levels"][c] = {}
        floor = samples["passthrough"][c].summary()["cpu_ms_per_req"]
        for k in kinds:
            s = samples[k][c].summary()
            per_step = s["cpu_ms_per_req"] / (1 if k == "passthrough" else steps)
            s |= {"cpu_ms_per_step": per_step, "step_over_passthrough": per_step / floor}
            results["levels"][c][k] = s
            print(f"{c:>5} {k:12} {s['req_s']:>8.1f} {s['p50_ms']:>8.1f} {s['cpu_ms_per_req']:>10.2f} "
                  f"{per_step:>11.2f} {s['step_over_passthrough']:>18.2f} {s['errors']:>6}")
    worst = max(results["levels"][c][k]["cpu_ms_per_step"] for c in levels for k in ("solve", "chat_stream"))
    results["worst_cpu_ms_per_step"] = worst
    print(f"service CPU per reasoning step, worst level and kind: {worst:.2f} ms (target ≤ 1 ms)")
    save(results, a.out)
    return results


if __name__ == "__main__":
    main()
