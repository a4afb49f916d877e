"""Benchmark 4: planner micro-batching on vs off, decisions/s at concurrency 1, 8 and 64.

Two planner servers on the same model (hf backend, CPU): `on` batches up to 64 waiting decisions into
one forward pass (`RSIM_PLANNER_MAX_BATCH=64`), `off` runs one decision per forward
(`RSIM_PLANNER_MAX_BATCH=1`). Rounds interleave them. To tell what batching can give on this hardware
at all, the same run first times the backend itself, in-process and without HTTP: 64 forwards of one
prompt against one forward of 64 prompts (the hardware ceiling of the ratio).

    python -m loadtests.bench_planner_batching --model ~/.cache/rsim/gemma-3-270m --rounds 3 --seconds 20
    python -m loadtests.bench_planner_batching --model PATH --short
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from pathlib import Path

from loadtests import stack
from loadtests.loadgen import Sample, load, save

QUESTION = "Natalia sold 48 clips in April and half as many in May. How many clips did she sell in all?"
STEPS = [{"strategy": "decomposition", "text": "In April she sold 48 clips. In May she sold half as many."},
         {"strategy": "verification", "text": "Half of 48 is 24, so in May she sold 24 clips."}]


def ceiling(model: str, threads: int, batch: int, repeats: int) -> dict:
    """Backend throughput, batch of `batch` prompts vs the same prompts one by one."""
    from planner_server.backends import PlanItem
    from planner_server.backends.hf import HFBackend
    from planner_server.protocol import PlanStep
    from planner_server.settings import PlannerSettings
    from service.catalog import load_catalog

    backend = HFBackend.from_settings(PlannerSettings(model=model, threads=threads), load_catalog())
    ids = backend.encode(PlanItem(QUESTION, [PlanStep(**s) for s in STEPS]))
    backend.forward([ids])  # warm-up
    one = many = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(batch):
            backend.forward([ids])
        one += time.perf_counter() - t0
        t0 = time.perf_counter()
        backend.forward([ids] * batch)
        many += time.perf_counter() - t0
    del backend
    return {"prompt_tokens": len(ids), "batch": batch, "one_by_one_s": one / repeats, "batched_s": many / repeats,
            "ratio": one / many}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="planner base model (HF folder)")
    p.add_argument("--concurrency", default="1,8,64")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=20.0, help="per server, level and round")
    p.add_argument("--threads", type=int, default=2, help="torch threads of each planner")
    p.add_argument("--short", action="store_true")
    p.add_argument("--logs", type=Path, default=Path(".work/bench-logs/planner-batching"))
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    if a.short:
        a.concurrency, a.rounds, a.seconds = "1,8", 1, 2.0
    levels = [int(x) for x in a.concurrency.split(",")]
    hw = ceiling(a.model, a.threads, max(levels), repeats=1 if a.short else 3)
    print(f"hardware ceiling: {hw['batch']} prompts of {hw['prompt_tokens']} tokens, one by one "
          f"{hw['one_by_one_s']:.2f} s vs one batch {hw['batched_s']:.2f} s → {hw['ratio']:.2f}×")
    body = json.dumps({"question": QUESTION, "steps": STEPS}).encode()
    results: dict = {"ceiling": hw, "levels": {}}
    with contextlib.ExitStack() as es:
        servers = {}
        for name, max_batch, wait_ms in (("on", max(levels), 5), ("off", 1, 0)):
            env = {"RSIM_PLANNER_THREADS": str(a.threads), "RSIM_PLANNER_DEVICE": "cpu",
                   "RSIM_PLANNER_MAX_BATCH": str(max_batch), "RSIM_PLANNER_MAX_WAIT_MS": str(wait_ms),
                   "RSIM_PLANNER_QUEUE_SIZE": "1024", "RSIM_PLANNER_REQUEST_TIMEOUT_S": "600"}
            planner = es.enter_context(stack.planner_server(a.logs, a.model, name=f"planner-{name}", env=env))
            servers[name] = (f"{planner.url}/v1/plan", planner.pid)
        samples = {n: {c: Sample() for c in levels} for n in servers}
        for rnd in range(a.rounds):
            for c in levels:
                for name in (("on", "off") if rnd % 2 == 0 else ("off", "on")):
                    url, pid = servers[name]
                    samples[name][c].add(asyncio.run(load(url, body, concurrency=c, seconds=a.seconds, pid=pid,
                                                          timeout_s=600)))
    print(f"{'conc':>5} {'on dec/s':>9} {'off dec/s':>10} {'on/off':>7} {'on p50 ms':>10} {'off p50 ms':>11} "
          f"{'errors':>6}")
    for c in levels:
        on, off = samples["on"][c].summary(), samples["off"][c].summary()
        ratio = on["req_s"] / off["req_s"] if off["req_s"] else float("nan")
        results["levels"][c] = {"on": on, "off": off, "ratio": ratio}
        print(f"{c:>5} {on['req_s']:>9.2f} {off['req_s']:>10.2f} {ratio:>7.2f} {on['p50_ms']:>10.0f} "
              f"{off['p50_ms']:>11.0f} {on['errors'] + off['errors']:>6}")
    top = max(levels)
    print(f"micro-batching at concurrency {top}: {results['levels'][top]['ratio']:.2f}× "
          f"(hardware ceiling for batch {top}: {hw['ratio']:.2f}×)")
    save(results, a.out)
    return results


if __name__ == "__main__":
    main()
