"""Benchmarks 1 and 2: what does putting a proxy in front of a reasoner cost?

Targets, all in front of the same simulated reasoner (50 ms per answer, 8 tokens): `direct` (the
simulator itself), `asgi` (a passthrough in plain ASGI on an aiohttp session: the least any Python proxy
on uvicorn spends), `bare` (the same as a 30-line FastAPI app: the floor the issue names), `rsim` (the
service's passthrough, API keys on) and, with `--peers`, `optillm` (`--approach none`) and `litellm` (the proxy,
one worker, no database), each from its own venv (`bash loadtests/install_peers.sh`). Every round visits
every concurrency level and, within it, every target in a fresh random order, so machine drift hits all
alike. Per target and level: req/s, p50/p99, p50 added over direct, the proxy's CPU per request, and
time to first chunk of streamed requests; then the ratios the targets are judged by.

    python -m loadtests.bench_passthrough --peers optillm,litellm --concurrency 1,16,64,256 --rounds 3 --seconds 5
    python -m loadtests.bench_passthrough --short      # CI: seconds, no peers
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import platform
import random
import sys
from pathlib import Path

from loadtests import stack
from loadtests.loadgen import Sample, load, save

BODY = json.dumps({"model": "sim", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}).encode()
STREAM_BODY = json.dumps({"model": "sim", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8,
                          "stream": True}).encode()


def machine() -> str:
    import os
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


PATHS = {  # what is forwarded, and the bodies sent there
    "chat": ("/v1/chat/completions", BODY, STREAM_BODY),
    "completions": ("/v1/completions",
                    json.dumps({"model": "sim", "prompt": "hello", "max_tokens": 8}).encode(),
                    json.dumps({"model": "sim", "prompt": "hello", "max_tokens": 8, "stream": True}).encode()),
}


def run(levels: list[int], rounds: int, seconds: float, stream_seconds: float, peers: list[str], ttft_ms: float,
        logs: Path, path: str = "chat") -> dict:
    for p in peers:
        if not stack.peer_installed(p):
            sys.exit(f"{p} is not installed under {stack.PEERS_DIR}: run `bash loadtests/install_peers.sh {p}`")
    with contextlib.ExitStack() as es:
        sim = es.enter_context(stack.sim_reasoner(logs, ttft_ms=ttft_ms, tokens=8))
        url_path, body, stream_body = PATHS[path]
        targets = [sim, es.enter_context(stack.bare_passthrough(logs, sim.url, framework=False)),
                   *([es.enter_context(stack.bare_passthrough(logs, sim.url))] if path == "chat" else []),
                   es.enter_context(stack.rsim_service(logs, sim.url, planner_url="http://127.0.0.1:9")),
                   *(es.enter_context(getattr(stack, p)(logs, sim.url)) for p in peers)]
        plain = {t.name: {c: Sample() for c in levels} for t in targets}
        streamed = {t.name: {c: Sample() for c in levels} for t in targets}
        total = rounds * len(levels) * len(targets)
        done = 0
        for rnd in range(rounds):
            for c in levels:
                order = list(targets)
                random.Random(rnd * 1000 + c).shuffle(order)
                for t in order:
                    url = f"{t.url}{url_path}"
                    plain[t.name][c].add(asyncio.run(load(url, body, concurrency=c, seconds=seconds,
                                                          headers=t.headers, pid=t.pid)))
                    if stream_seconds:
                        streamed[t.name][c].add(asyncio.run(load(url, stream_body, concurrency=c,
                                                                 seconds=stream_seconds, headers=t.headers,
                                                                 stream=True)))
                    done += 1
                    print(f"\r  round {rnd + 1}/{rounds} · {done}/{total} runs", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    results: dict = {"machine": machine(), "ttft_ms": ttft_ms, "seconds": seconds, "rounds": rounds,
                     "targets": {}}
    for name in plain:
        results["targets"][name] = {}
        for c in levels:
            r = plain[name][c].summary()
            r["ttfc_p50_ms"] = streamed[name][c].summary()["ttfc_p50_ms"]
            r["added_p50_ms"] = r["p50_ms"] - plain["direct"][c].summary()["p50_ms"]
            results["targets"][name][c] = r
        results["targets"][name]["ceiling_req_s"] = max(results["targets"][name][c]["req_s"] for c in levels)
    return results


def ratios(results: dict) -> dict[str, float]:
    t = results["targets"]
    out = {}
    levels = sorted(k for k in t["rsim"] if isinstance(k, int))
    out["rsim added p50 ms at concurrency 1"] = t["rsim"][levels[0]]["added_p50_ms"]
    out["rsim CPU ms per request (worst level)"] = max(t["rsim"][c]["cpu_ms_per_req"] for c in levels)
    floor = out["asgi floor CPU ms per request at concurrency 1"] = t["asgi"][levels[0]]["cpu_ms_per_req"]
    # /proc counts CPU in 10 ms ticks: a short run can read 0 for the floor
    out["rsim CPU per request / asgi floor's at concurrency 1"] = (t["rsim"][levels[0]]["cpu_ms_per_req"] / floor
                                                                  if floor else math.nan)
    for peer in ("asgi", "bare", "optillm", "litellm", "direct"):
        if peer in t and t[peer]["ceiling_req_s"]:
            out[f"rsim ceiling / {peer} ceiling"] = t["rsim"]["ceiling_req_s"] / t[peer]["ceiling_req_s"]
    return out


def report(results: dict) -> str:
    lines = [f"machine: {results['machine']}; reasoner: simulated, {results['ttft_ms']:g} ms per answer",
             f"{'target':8} {'conc':>5} {'req/s':>8} {'p50 ms':>8} {'+p50 ms':>8} {'p99 ms':>8} {'cpu ms/req':>10} "
             f"{'ttfc p50':>9} {'errors':>6}"]
    for name, per in results["targets"].items():
        for c, r in per.items():
            if not isinstance(c, int):
                continue
            lines.append(f"{name:8} {c:>5} {r['req_s']:>8.1f} {r['p50_ms']:>8.2f} {r['added_p50_ms']:>8.2f} "
                         f"{r['p99_ms']:>8.1f} {r['cpu_ms_per_req']:>10.2f} {r['ttfc_p50_ms']:>9.1f} "
                         f"{r['errors']:>6}")
    lines.append("ceilings (best req/s over the levels): " + ", ".join(
        f"{n} {per['ceiling_req_s']:.0f}" for n, per in results["targets"].items()))
    lines += [f"{k}: {v:.2f}" for k, v in ratios(results).items() if not math.isnan(v)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--concurrency", default="1,16,64,256")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0, help="per target, level and round (non-streamed)")
    p.add_argument("--stream-seconds", type=float, default=2.0, help="same, streamed (time to first chunk)")
    p.add_argument("--peers", default="", help="comma-separated: optillm,litellm")
    p.add_argument("--ttft-ms", type=float, default=50.0, help="the simulated reasoner's time per answer")
    p.add_argument("--short", action="store_true", help="a few seconds in all (CI): levels 1,8, one round")
    p.add_argument("--logs", type=Path, default=Path(".work/bench-logs/passthrough"))
    p.add_argument("--out", type=Path, help="write the results as JSON")
    p.add_argument("--path", default="chat", choices=sorted(PATHS),
                   help="what is forwarded: chat (plain-model chat completions) or completions (/v1/completions, "
                        "one of the other /v1 paths; the FastAPI floor and the peers forward chat only)")
    a = p.parse_args(argv)
    if a.short:
        a.concurrency, a.rounds, a.seconds, a.stream_seconds = "1,8", 1, 0.5, 0.3
    results = run([int(x) for x in a.concurrency.split(",")], a.rounds, a.seconds, a.stream_seconds,
                  [x for x in a.peers.split(",") if x], a.ttft_ms, a.logs, a.path)
    results["ratios"] = ratios(results)
    print(report(results))
    save(results, a.out)
    return results


if __name__ == "__main__":
    main()
