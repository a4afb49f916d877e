"""Which HTTP client belongs on the service's hot path? Measured, not assumed.

Targets, all in front of the same simulated reasoner (50 ms per answer), each a uvicorn process
with one worker: `direct` (the simulator itself), `httpx` and `aiohttp` (the same 30-line FastAPI
passthrough with one shared client of each kind), and `rsim` (the real service's passthrough).
Rounds interleave the targets so machine drift hits all of them alike; the load generator gives
every worker its own connection. Prints req/s, p50/p99, added p50 over direct, and the target's
CPU time per request; writes JSON with --out.

    python -m loadtests.bench_http_client --seconds 5 --concurrency 1,16,64 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

from loadtests.loadgen import cpu_seconds, load, pct, save
from tests.support.procs import free_port, running

BODY = json.dumps({"model": "sim", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}).encode()


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0, help="per target, concurrency and round")
    p.add_argument("--concurrency", default="1,16,64")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--delay-ms", type=float, default=50.0)
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    levels = [int(x) for x in a.concurrency.split(",")]
    logs = Path(os.environ.get("RSIM_BENCH_LOGS", ".work/bench-logs"))
    py = sys.executable

    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    ports = {name: free_port() for name in ("httpx", "aiohttp", "rsim")}
    uv = [py, "-m", "uvicorn", "--factory", "--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"]
    env = {"RSIM_BENCH_UPSTREAM": sim_url + "/v1", "RSIM_REASONER_URL": sim_url + "/v1"}
    results: dict[str, dict[int, dict]] = {}
    with running([py, "-m", "loadtests.sim_reasoner", "--port", str(sim_port), "--delay-ms", str(a.delay_ms)],
                 ready_url=f"{sim_url}/v1/models", log_path=logs / "sim.log") as sim, \
         running(uv + ["--port", str(ports["httpx"]), "loadtests.passthrough_clients:create_httpx_app"],
                 ready_url=f"http://127.0.0.1:{ports['httpx']}/health", log_path=logs / "httpx.log", env=env) as hx, \
         running(uv + ["--port", str(ports["aiohttp"]), "loadtests.passthrough_clients:create_aiohttp_app"],
                 ready_url=f"http://127.0.0.1:{ports['aiohttp']}/health", log_path=logs / "aiohttp.log",
                 env=env) as ah, \
         running(uv + ["--port", str(ports["rsim"]), "service.app:create_app"],
                 ready_url=f"http://127.0.0.1:{ports['rsim']}/health", log_path=logs / "rsim.log", env=env) as rs:
        targets = {"direct": (f"{sim_url}/v1/chat/completions", sim.pid),
                   "httpx": (f"http://127.0.0.1:{ports['httpx']}/v1/chat/completions", hx.pid),
                   "aiohttp": (f"http://127.0.0.1:{ports['aiohttp']}/v1/chat/completions", ah.pid),
                   "rsim": (f"http://127.0.0.1:{ports['rsim']}/v1/chat/completions", rs.pid)}
        samples = {t: {c: {"lat": [], "n": 0, "err": 0, "cpu": 0.0, "secs": 0.0} for c in levels} for t in targets}
        for rnd in range(a.rounds):
            order = list(targets)
            random.Random(rnd).shuffle(order)
            for c in levels:
                for name in order:
                    url, pid = targets[name]
                    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
                    sample = asyncio.run(load(url, BODY, concurrency=c, seconds=a.seconds))
                    lat, err = sample.latencies, sample.errors
                    s = samples[name][c]
                    s["secs"] += time.perf_counter() - t0
                    s["cpu"] += cpu_seconds(pid) - cpu0
                    s["lat"] += lat
                    s["n"] += len(lat)
                    s["err"] += err
        for name, per in samples.items():
            results[name] = {}
            for c, s in per.items():
                results[name][c] = {"req_s": s["n"] / s["secs"], "p50_ms": pct(s["lat"], 0.5) * 1000,
                                    "p99_ms": pct(s["lat"], 0.99) * 1000, "requests": s["n"], "errors": s["err"],
                                    "cpu_ms_per_req": s["cpu"] * 1000 / max(1, s["n"])}
    print(f"{'target':8} {'conc':>5} {'req/s':>8} {'p50 ms':>8} {'+p50 ms':>8} {'p99 ms':>8} {'cpu ms/req':>10} "
          f"{'req/s vs httpx':>14}")
    for name, per in results.items():
        for c, r in per.items():
            added = r["p50_ms"] - results["direct"][c]["p50_ms"]
            ratio = r["req_s"] / results["httpx"][c]["req_s"] if results["httpx"][c]["req_s"] else float("nan")
            print(f"{name:8} {c:>5} {r['req_s']:>8.1f} {r['p50_ms']:>8.2f} {added:>8.2f} {r['p99_ms']:>8.1f} "
                  f"{r['cpu_ms_per_req']:>10.2f} {ratio:>14.2f}")
    save(results, a.out)
    return results


if __name__ == "__main__":
    main()
