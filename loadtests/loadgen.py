"""The load generator the benchmarks share: `concurrency` workers for a fixed time, each worker with its
own single connection (one shared pool would cap even direct calls), closed loop. Records latency of
every answered request and, for streams, the time to the first chunk."""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its reaped children) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK  # utime, stime, cutime, cstime


def save(results: dict, path: Path | None) -> None:
    """Write a benchmark's results as JSON when `--out` was given."""
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2))


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)
    first_chunk: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0

    def add(self, other: Sample) -> None:
        self.latencies += other.latencies
        self.first_chunk += other.first_chunk
        self.errors += other.errors
        self.seconds += other.seconds
        self.cpu_s += other.cpu_s

    def summary(self) -> dict[str, float]:
        n = len(self.latencies)
        return {"requests": n, "errors": self.errors, "req_s": n / self.seconds if self.seconds else 0.0,
                "p50_ms": pct(self.latencies, 0.5) * 1e3, "p95_ms": pct(self.latencies, 0.95) * 1e3,
                "p99_ms": pct(self.latencies, 0.99) * 1e3, "ttfc_p50_ms": pct(self.first_chunk, 0.5) * 1e3,
                "cpu_ms_per_req": self.cpu_s * 1e3 / n if n else float("nan")}


async def load(url: str, body: bytes, *, concurrency: int, seconds: float, headers: dict[str, str] | None = None,
               stream: bool = False, timeout_s: float = 60.0, pid: int | None = None) -> Sample:
    """Closed-loop load on `url`; with `pid`, also the CPU seconds that process spent meanwhile."""
    sample = Sample()
    headers = {"Content-Type": "application/json", **(headers or {})}
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        conn = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout_s)) as s:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                first = None
                try:
                    async with s.post(url, data=body, headers=headers) as r:
                        if stream:
                            async for _ in r.content.iter_any():
                                first = first or time.perf_counter()
                        else:
                            await r.read()
                        ok = r.status == 200
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    ok = False
                if ok:
                    sample.latencies.append(time.perf_counter() - t0)
                    if first is not None:
                        sample.first_chunk.append(first - t0)
                else:
                    sample.errors += 1

    cpu0, t0 = (cpu_seconds(pid) if pid else 0.0), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    sample.seconds = time.perf_counter() - t0
    sample.cpu_s = cpu_seconds(pid) - cpu0 if pid else 0.0
    return sample
