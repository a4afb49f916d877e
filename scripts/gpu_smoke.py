"""GPU smoke run of the planner (no hub needed): builds a random-initialised model of the
Qwen2.5-0.5B architecture with a tokenizer trained in code, serves it with planner_server's hf
backend (the real app, in-process, with its micro-batcher), and prints decision latency p50/p99 at
two contexts and decisions/s at several concurrencies with micro-batching on and off, as a table.

    bash scripts/gpu_smoke.sh                              # CUDA
    python scripts/gpu_smoke.py --device cpu --tiny --seconds 1 --contexts 128 --concurrency 1,4   # CI
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner_server.app import create_app  # noqa: E402
from planner_server.settings import PlannerSettings  # noqa: E402
from tests.support.tiny_model import build_tiny_model  # noqa: E402

QWEN25_05B = {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
              "num_key_value_heads": 2, "head_dim": 64, "vocab_size": 151936, "max_position_embeddings": 32768,
              "tie_word_embeddings": True}


def plan_body(context_tokens: int) -> dict:
    """A plan request whose chain of thought fills about `context_tokens` tokens."""
    words = ["step", "compute", "twelve", "check", "value", "so", "the", "sum", "is", "then"]
    text = " ".join(words[i % len(words)] for i in range(context_tokens))
    return {"question": "What is 12 * 7 + 5?", "steps": [{"strategy": "decomposition", "text": text}]}


async def latencies(client: httpx.AsyncClient, body: dict, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = await client.post("/v1/plan", json=body)
        r.raise_for_status()
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def throughput(client: httpx.AsyncClient, body: dict, concurrency: int, seconds: float) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            (await client.post("/v1/plan", json=body)).raise_for_status()
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - t0)


async def measure(model_dir: Path, device: str, dtype: str, max_batch: int, context: int, *, latency_n: int,
                  concurrency: list[int], seconds: float) -> dict:
    settings = PlannerSettings(model=str(model_dir), device=device, dtype=dtype, max_batch=max_batch, max_wait_ms=2,
                               context_tokens=context + 64, queue_size=4096, request_timeout_s=600)
    async with LifespanManager(create_app(settings), startup_timeout=600) as mgr:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mgr.app), base_url="http://planner",
                                     timeout=600) as client:
            while (await client.get("/ready")).status_code != 200:
                await asyncio.sleep(0.2)
            body = plan_body(context)
            await latencies(client, body, 3)  # warm-up
            lat = sorted(await latencies(client, body, latency_n))
            rates = {c: await throughput(client, body, c, seconds) for c in concurrency}
    return {"p50": statistics.median(lat), "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))], "rates": rates}


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--tiny", action="store_true", help="a tiny model instead of the Qwen2.5-0.5B architecture")
    p.add_argument("--contexts", default="512,2048")
    p.add_argument("--concurrency", default="1,8,64")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--latency-n", type=int, default=100)
    p.add_argument("--out", type=Path, help="also write the table (Markdown) here")
    a = p.parse_args(argv)
    contexts = [int(x) for x in a.contexts.split(",")]
    conc = [int(x) for x in a.concurrency.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "model", **({} if a.tiny else QWEN25_05B))
        rows = []
        for batching, max_batch in (("on", 64), ("off", 1)):
            for ctx in contexts:
                r = asyncio.run(measure(model_dir, a.device, a.dtype, max_batch, ctx, latency_n=a.latency_n,
                                        concurrency=conc if ctx == contexts[0] else [], seconds=a.seconds))
                rows.append((batching, ctx, r))
    arch = "tiny Qwen2" if a.tiny else "Qwen2.5-0.5B architecture, random weights"
    lines = [f"planner hf backend, {arch}, device {a.device}, dtype {a.dtype}", "",
             "| micro-batching | context (tokens) | p50 ms (conc. 1) | p99 ms (conc. 1) | "
             + " | ".join(f"decisions/s @ {c}" for c in conc) + " |",
             "|---|---|---|---|" + "---|" * len(conc)]
    for batching, ctx, r in rows:
        rates = " | ".join(f"{r['rates'][c]:.1f}" if c in r["rates"] else "" for c in conc)
        lines.append(f"| {batching} | {ctx} | {r['p50']:.1f} | {r['p99']:.1f} | {rates} |")
    on = next(r for b, c, r in rows if b == "on" and c == contexts[0])["rates"]
    off = next(r for b, c, r in rows if b == "off" and c == contexts[0])["rates"]
    lines += ["", "batching on/off at context " + str(contexts[0]) + ": " +
              ", ".join(f"{on[c] / off[c]:.2f}× @ {c}" for c in conc)]
    table = "\n".join(lines)
    print(table)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(table + "\n")
    return table


if __name__ == "__main__":
    main()
