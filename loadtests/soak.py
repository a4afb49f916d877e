"""Soak: many concurrent clients against the real service (in front of the simulated reasoner with
injected faults and a real planner server) for a fixed time. Every request carries a unique
X-Request-Id; the report counts requests sent, answered, failed by cause, lost (sent but never
answered nor failed) and duplicated (an id answered twice). Lost and duplicated must be 0.

    python -m loadtests.soak --minutes 10 --concurrency 256 --fault-rate 0.05 --planner-model MODEL
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp

from loadtests import stack
from loadtests.loadgen import save


async def client(url: str, stop_at: float, sent: list[str], outcomes: dict[str, list[str]], timeout_s: float,
                 headers: dict[str, str]) -> None:
    conn = aiohttp.TCPConnector(limit=1)  # one connection per client, as a real fleet would have
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout_s)) as s:
        while time.monotonic() < stop_at:
            rid = uuid.uuid4().hex
            sent.append(rid)
            body = {"question": "What is 3 + 4?", "max_steps": 3, "max_tokens_per_step": 8}
            try:
                async with s.post(url, json=body, headers={**headers, "X-Request-Id": rid}) as r:
                    payload = await r.json(content_type=None)
                    if r.status == 200 and payload.get("id") == rid:
                        cause = "answered"
                    else:
                        cause = f"{r.status} {(payload.get('error') or {}).get('code')}"
            except asyncio.TimeoutError:
                cause = "client timeout"
            except aiohttp.ClientError as e:
                cause = f"connection: {e.__class__.__name__}"
            outcomes.setdefault(rid, []).append(cause)


async def soak(service_url: str, seconds: float, concurrency: int, timeout_s: float,
               headers: dict[str, str]) -> dict:
    sent: list[str] = []
    outcomes: dict[str, list[str]] = {}
    stop_at = time.monotonic() + seconds
    await asyncio.gather(*(client(f"{service_url}/solve", stop_at, sent, outcomes, timeout_s, headers)
                           for _ in range(concurrency)))
    causes = Counter(c for cs in outcomes.values() for c in cs)
    return {"sent": len(sent), "answered": causes.pop("answered", 0), "failed": sum(causes.values()),
            "failed_by_cause": dict(causes), "lost": sum(1 for rid in sent if rid not in outcomes),
            "duplicated": sum(1 for cs in outcomes.values() if len(cs) > 1), "seconds": seconds,
            "concurrency": concurrency}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--fault-rate", type=float, default=0.05)
    p.add_argument("--planner-model", required=True, help="planner base model (HF folder)")
    p.add_argument("--timeout-s", type=float, default=120.0, help="client-side timeout per request")
    p.add_argument("--logs", type=Path, default=Path(".work/soak-logs"))
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    with stack.sim_reasoner(a.logs, ttft_ms=20, tokens=8, fault_rate=a.fault_rate) as sim, \
         stack.planner_server(a.logs, a.planner_model, env={"RSIM_PLANNER_THREADS": "1"}) as planner, \
         stack.rsim_service(a.logs, sim.url, planner.url) as service:
        report = asyncio.run(soak(service.url, a.minutes * 60, a.concurrency, a.timeout_s, service.headers))
    print(json.dumps(report, indent=2))
    save(report, a.out)
    return report


if __name__ == "__main__":
    main()
