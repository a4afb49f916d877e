"""Real processes on loopback for tests: free ports, start, wait until ready, stop by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}) before ready:\n{log_path.read_text()[-4000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.25)
    raise TimeoutError(f"{url} not ready after {timeout_s} s:\n{log_path.read_text()[-4000:]}")


def stop(proc: subprocess.Popen, grace_s: float = 20) -> int | None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode


@contextlib.contextmanager
def running(cmd: list[str], *, ready_url: str, log_path: Path, env: dict[str, str] | None = None,
            timeout_s: float = 120) -> Iterator[subprocess.Popen]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO)
    try:
        wait_ready(ready_url, proc, log_path, timeout_s)
        yield proc
    finally:
        stop(proc)


def vllm_cmd(model_dir: Path, port: int, served_name: str) -> list[str]:
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
            "--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(port), "--enforce-eager",
            "--max-model-len", "2048", "--disable-uvicorn-access-log", "--enable-prompt-tokens-details"]


def vllm_env(tmp: Path) -> dict[str, str]:
    from clients.up import vllm_cpu_threads

    tmp.mkdir(parents=True, exist_ok=True)
    return {"VLLM_CPU_KVCACHE_SPACE": "1", "TMPDIR": str(tmp), "VLLM_CACHE_ROOT": str(tmp), **vllm_cpu_threads()}


def serve_cmd(what: str, port: int) -> list[str]:
    return [sys.executable, "-m", "clients.cli", "serve", what, "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--grace-s", "5"]
