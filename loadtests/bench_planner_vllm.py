"""The planner's vllm backend on the async engine (decisions in flight together) against the same backend
holding one batch at a time (`RSIM_PLANNER_MAX_IN_FLIGHT=1`: the global lock it had before issue 12) and
against the hf backend (the default): decisions/s and latency at 1, 8 and 64 concurrent clients, every
ratio measured in this run. One planner server at a time (an idle vLLM engine still holds its cores), each
warmed up first; every request asks about its own episode, so with prefix caching off (the default here)
every decision prefills its whole prompt, as the first decision of an episode does.

    python -m loadtests.bench_planner_vllm --model ~/.cache/rsim/gemma-3-270m --seconds 20
    python -m loadtests.bench_planner_vllm --model PATH --short
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import tempfile
import time
from pathlib import Path

import httpx

from loadtests import stack
from loadtests.loadgen import Sample, save
from tests.support.procs import vllm_env

QUESTION = ("Episode {n}: Natalia sold {a} clips in April and half as many in May. How many clips did she sell "
            "in April and May together?")
STEPS = [{"strategy": "decomposition", "text": "In April she sold {a} clips. In May she sold half as many."},
         {"strategy": "verification", "text": "Half of {a} is {h}, so in May she sold {h} clips."}]

VARIANTS = {  # name: backend, extra environment
    "vllm-async": ("vllm", {}),
    "vllm-locked": ("vllm", {"RSIM_PLANNER_MAX_IN_FLIGHT": "1"}),
    "hf": ("hf", {}),
}


def body(n: int) -> dict:
    a = 2 * (n % 500) + 40
    fill = {"n": n, "a": a, "h": a // 2}
    return {"question": QUESTION.format(**fill),
            "steps": [{"strategy": s["strategy"], "text": s["text"].format(**fill)} for s in STEPS]}


async def closed_loop(url: str, concurrency: int, seconds: float, counter: itertools.count) -> Sample:
    """`concurrency` clients, each sending its next decision as soon as the last one returns."""
    sample = Sample()
    stop_at = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency)) as client:
        async def user() -> None:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                r = await client.post(url, json=body(next(counter)))
                if r.status_code == 200:
                    sample.latencies.append(time.perf_counter() - t0)
                else:
                    sample.errors += 1
        t0 = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        sample.seconds = time.perf_counter() - t0
    return sample


def measure(name: str, model: str, levels: list[int], seconds: float, logs: Path, caching: bool,
            threads: int) -> dict[int, dict]:
    backend, extra = VARIANTS[name]
    env = {"RSIM_PLANNER_BACKEND": backend, "RSIM_PLANNER_THREADS": str(threads), "RSIM_PLANNER_DEVICE": "cpu",
           "RSIM_PLANNER_MAX_BATCH": "16", "RSIM_PLANNER_QUEUE_SIZE": "4096",
           "RSIM_PLANNER_REQUEST_TIMEOUT_S": "600", "RSIM_PLANNER_PREFIX_CACHING": str(caching).lower(), **extra}
    counter = itertools.count(1_000_000 * (list(VARIANTS).index(name) + 1))  # no prompt shared across variants
    with tempfile.TemporaryDirectory(prefix="rsim-bench-") as tmp:
        if backend == "vllm":
            env.update(vllm_env(Path(tmp)))
        with stack.planner_server(logs, model, name=f"planner-{name}", env=env) as planner:
            url = f"{planner.url}/v1/plan"
            asyncio.run(closed_loop(url, max(levels), min(seconds, 5.0), counter))  # warm-up
            return {c: asyncio.run(closed_loop(url, c, seconds, counter)).summary() for c in levels}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="planner model (HF folder)")
    p.add_argument("--concurrency", default="1,8,64")
    p.add_argument("--seconds", type=float, default=20.0, help="per variant and level")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the hf backend")
    p.add_argument("--prefix-caching", action="store_true", help="vllm: automatic prefix caching on")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--short", action="store_true")
    p.add_argument("--logs", type=Path, default=Path(".work/bench-logs/planner-vllm"))
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    if a.short:
        a.concurrency, a.seconds = "1,8", 3.0
    levels = [int(x) for x in a.concurrency.split(",")]
    names = a.variants.split(",")
    results: dict = {"levels": levels, "seconds": a.seconds, "prefix_caching": a.prefix_caching, "variants": {}}
    for name in names:
        print(f"measuring {name} …", flush=True)
        results["variants"][name] = measure(name, a.model, levels, a.seconds, a.logs, a.prefix_caching, a.threads)
    base = "vllm-locked" if "vllm-locked" in names else names[-1]
    print(f"planner decisions/s and p50 latency, {Path(a.model).name}, {a.seconds:g} s per level, "
          f"prefix caching {'on' if a.prefix_caching else 'off'}; ratio against {base}")
    print(f"{'conc':>5} " + " ".join(f"{n + ' dec/s':>17} {'p50 ms':>7}" for n in names)
          + " " + " ".join(f"{n + '/' + base:>24}" for n in names if n != base) + f" {'errors':>6}")
    for c in levels:
        row = {n: results["variants"][n][c] for n in names}
        ratios = {n: row[n]["req_s"] / row[base]["req_s"] if row[base]["req_s"] else float("nan")
                  for n in names if n != base}
        results.setdefault("ratios", {})[c] = ratios
        print(f"{c:>5} " + " ".join(f"{row[n]['req_s']:>17.2f} {row[n]['p50_ms']:>7.0f}" for n in names) + " "
              + " ".join(f"{ratios[n]:>24.2f}" for n in ratios) + f" {sum(r['errors'] for r in row.values()):>6}")
    save(results, a.out)
    print(json.dumps(results["ratios"]))
    return results


if __name__ == "__main__":
    main()
