"""`/solve` on a running stack (`rsim up`'s default, or any service URL) at several concurrencies (issue 26):
per level, the episodes that finished and failed, episodes per minute, the planner's decision latency as the
loop saw it (p50/p95 over planned steps), the reasoner's time per episode, the planner's share of episode
wall time, and the steps kept quiet because their decision came late (or the planner was down).

    rsim up &                                     # the default stack on :8000
    python -m loadtests.bench_embedded_stack --url http://127.0.0.1:8000 --levels 1,4,8,12 --gate shadow
    python -m loadtests.bench_embedded_stack --url http://127.0.0.1:8000 --levels 12 --gate open --out b.json

Each level sends `--episodes` requests (default: `--rounds` (2) × the concurrency, at least 2) of held-out synthetic
problems, `--concurrency` at a time, with the budgets of the s12 evaluation."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from pathlib import Path
from statistics import fmean

import httpx


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


async def one(client: httpx.AsyncClient, question: str, body: dict, timeout_s: float) -> dict:
    t0 = time.perf_counter()
    try:
        r = await client.post("/solve", json={"question": question, **body}, timeout=timeout_s)
    except httpx.HTTPError as e:
        return {"error": f"{type(e).__name__}", "wall_s": time.perf_counter() - t0}
    if r.status_code != 200:
        return {"error": f"{r.status_code} {r.text[:120]}", "wall_s": time.perf_counter() - t0}
    return {"result": r.json(), "wall_s": time.perf_counter() - t0}


def summarise(level: int, outcomes: list[dict], seconds: float) -> dict:
    done = [o["result"] for o in outcomes if "result" in o]
    planned = [s for r in done for s in r["steps"] if s.get("gate") is not None or s.get("planned") is not None]
    decisions = [s["planner_ms"] for s in planned if s.get("gate") not in ("late", "down")]
    total = sum(r["timings"]["total_ms"] for r in done)
    return {"concurrency": level, "episodes": len(done), "failed": len(outcomes) - len(done),
            "errors": sorted({o["error"] for o in outcomes if "error" in o})[:5],
            "episodes_per_min": len(done) / seconds * 60 if seconds > 0 else math.nan,
            "decisions": len(decisions), "decision_p50_ms": percentile(decisions, 0.5),
            "decision_p95_ms": percentile(decisions, 0.95),
            "reasoner_s_per_episode": fmean(r["timings"]["reasoner_ms"] for r in done) / 1000 if done else math.nan,
            "episode_s_p50": percentile([r["timings"]["total_ms"] / 1000 for r in done], 0.5),
            "planner_share": sum(r["timings"]["planner_ms"] for r in done) / total if total else math.nan,
            "late_quiet_steps": sum(s.get("gate") == "late" for r in done for s in r["steps"]),
            "down_quiet_steps": sum(s.get("gate") == "down" for r in done for s in r["steps"]),
            "seconds": seconds}


async def run_level(url: str, level: int, questions: list[str], body: dict, timeout_s: float,
                    headers: dict[str, str]) -> dict:
    limits = httpx.Limits(max_connections=level * 2)
    async with httpx.AsyncClient(base_url=url, limits=limits, headers=headers) as client:
        gate = asyncio.Semaphore(level)

        async def bounded(q: str) -> dict:
            async with gate:
                return await one(client, q, body, timeout_s)

        t0 = time.perf_counter()
        outcomes = await asyncio.gather(*(bounded(q) for q in questions))
        return summarise(level, outcomes, time.perf_counter() - t0)


def table(rows: list[dict]) -> str:
    head = (f"{'conc':>4} {'done':>5} {'failed':>6} {'ep/min':>7} {'dec p50 ms':>10} {'dec p95 ms':>10} "
            f"{'reasoner s/ep':>13} {'ep s p50':>8} {'planner share':>13} {'late':>5} {'down':>5}")
    lines = [head]
    for r in rows:
        lines.append(f"{r['concurrency']:>4} {r['episodes']:>5} {r['failed']:>6} {r['episodes_per_min']:>7.2f} "
                     f"{r['decision_p50_ms']:>10.0f} {r['decision_p95_ms']:>10.0f} {r['reasoner_s_per_episode']:>13.1f} "
                     f"{r['episode_s_p50']:>8.1f} {r['planner_share']:>13.3f} {r['late_quiet_steps']:>5} "
                     f"{r['down_quiet_steps']:>5}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    from planner_server.training.synthetic import synthetic_problems

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the service (rsim up's default)")
    p.add_argument("--api-key", default=None, help="bearer token, when the service has keys")
    p.add_argument("--levels", default="1,4,8,12")
    p.add_argument("--episodes", type=int, default=None, help="requests per level (default: --rounds × concurrency, "
                                                                  "≥ 2)")
    p.add_argument("--rounds", type=int, default=2, help="requests per level as a multiple of its concurrency")
    p.add_argument("--gate", default=None, choices=["open", "gated", "shadow"], help="per request (default: the "
                                                                                        "service's)")
    p.add_argument("--max-steps", type=int, default=5)
    p.add_argument("--max-tokens-per-step", type=int, default=128)
    p.add_argument("--final-max-tokens", type=int, default=32)
    p.add_argument("--timeout-s", type=float, default=1800.0, help="per request")
    p.add_argument("--seed", type=int, default=20261208, help="the synthetic problems' seed")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    levels = [int(x) for x in a.levels.split(",")]
    body = {"max_steps": a.max_steps, "max_tokens_per_step": a.max_tokens_per_step,
            "final_max_tokens": a.final_max_tokens, "first_step": "reasoner",
            **({"gate": a.gate} if a.gate else {})}
    headers = {"Authorization": f"Bearer {a.api_key}"} if a.api_key else {}
    rows, start = [], 0
    for level in levels:
        n = a.episodes or max(2, a.rounds * level)
        problems = synthetic_problems(start + n, seed=a.seed, steps=(4, 6), scale=3)[start:]
        start += n  # every level its own questions
        rows.append(asyncio.run(run_level(a.url, level, [q.question for q in problems], body, a.timeout_s,
                                          headers)))
        print(table(rows[-1:]) if len(rows) == 1 else table(rows[-1:]).split("\n", 1)[1], flush=True)
    results = {"url": a.url, "gate": a.gate, "body": body, "levels": rows}
    print("\n" + table(rows))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
