"""`rsim up`: start reasoner (vLLM), planner server and service as child processes, wait until all
are ready, print their URLs, and stop all of them on Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console

console = Console(stderr=True)


@dataclass
class Child:
    name: str
    cmd: list[str]
    env: dict[str, str]
    ready_url: str
    log_path: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.cmd, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def tail(self, n: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, grace_s: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        except ProcessLookupError:
            pass


def vllm_command(model_dir: Path, port: int, host: str, served_name: str) -> list[str]:
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
            "--served-model-name", served_name, "--host", host, "--port", str(port), "--enforce-eager",
            "--dtype", "bfloat16", "--max-model-len", "4096", "--disable-uvicorn-access-log"]


def wait_ready(children: list[Child], timeout_s: float) -> None:
    pending = list(children)
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as http, console.status("starting " + ", ".join(c.name for c in pending)) as st:
        while pending:
            for c in list(pending):
                if c.proc is not None and c.proc.poll() is not None:
                    raise RuntimeError(f"{c.name} exited with code {c.proc.returncode}; last log lines "
                                       f"({c.log_path}):\n{c.tail()}")
                try:
                    if http.get(c.ready_url).status_code == 200:
                        pending.remove(c)
                        console.print(f"[green]✓[/] {c.name} ready")
                except httpx.HTTPError:
                    pass
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout_s:.0f} s: {', '.join(c.name for c in pending)}")
            st.update("waiting for " + ", ".join(c.name for c in pending))
            time.sleep(0.5)


def up(*, host: str, service_port: int, planner_port: int, reasoner_port: int, reasoner_url: str | None,
       reasoner_model: str | None, reasoner_mode: str, planner_model: str | None, planner_checkpoint: str | None,
       cache_dir: Path, kv_cache_gb: int, ready_timeout_s: float) -> int:
    from clients.embedded import EMBEDDED_NAME, ensure_embedded_model

    logs = cache_dir / "logs"
    children: list[Child] = []
    embedded: Path | None = None
    if reasoner_url is None or planner_model is None and planner_checkpoint is None:
        with console.status(f"preparing the embedded {EMBEDDED_NAME} (one-time conversion)"):
            embedded = ensure_embedded_model(cache_dir)
    if reasoner_url is None:
        assert embedded is not None
        reasoner_model = EMBEDDED_NAME
        reasoner_url = f"http://{host}:{reasoner_port}/v1"
        vtmp = cache_dir / "vllm-tmp"
        vtmp.mkdir(parents=True, exist_ok=True)
        children.append(Child("reasoner (vLLM)", vllm_command(embedded, reasoner_port, host, EMBEDDED_NAME),
                              {"VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gb), "TMPDIR": str(vtmp),
                               "VLLM_CACHE_ROOT": str(vtmp), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "")
                               or str(os.cpu_count() or 1)},
                              f"{reasoner_url}/models", logs / "reasoner.log"))
    planner_env = {"RSIM_PLANNER_BACKEND": "hf", "RSIM_PLANNER_MODEL": planner_model or str(embedded)}
    if planner_checkpoint:
        planner_env["RSIM_PLANNER_CHECKPOINT"] = planner_checkpoint
    children.append(Child("planner", [sys.executable, "-m", "clients.cli", "serve", "planner", "--host", host,
                                      "--port", str(planner_port)], planner_env,
                          f"http://{host}:{planner_port}/ready", logs / "planner.log"))
    service_env = {"RSIM_REASONER_URL": reasoner_url, "RSIM_PLANNER_URL": f"http://{host}:{planner_port}",
                   "RSIM_REASONER_MODE": reasoner_mode}
    if reasoner_model:
        service_env["RSIM_REASONER_MODEL"] = reasoner_model
    service_env.setdefault("RSIM_TRACE_STORE", os.environ.get("RSIM_TRACE_STORE") or str(cache_dir / "traces.db"))
    children.append(Child("service", [sys.executable, "-m", "clients.cli", "serve", "service", "--host", host,
                                      "--port", str(service_port)], service_env,
                          f"http://{host}:{service_port}/ready", logs / "service.log"))

    stop = {"requested": False}

    def on_signal(signum: int, _frame: object) -> None:
        stop["requested"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for c in children:
            c.start()
        wait_ready(children, ready_timeout_s)
        console.print(f"\n[bold]rsim is up[/]  (logs in {logs})")
        console.print(f"  service   http://{host}:{service_port}   (POST /solve, OpenAI API at /v1)")
        console.print(f"  planner   http://{host}:{planner_port}   (POST /v1/plan)")
        console.print(f"  reasoner  {reasoner_url}   (model {reasoner_model or 'first listed'})")
        if not planner_checkpoint:
            console.print("[yellow]note:[/] the planner is UNTRAINED (base weights of "
                          f"{Path(planner_env['RSIM_PLANNER_MODEL']).name}): its strategy choices are not learned "
                          "until you pass --planner-checkpoint.")
        if embedded is not None and reasoner_model == EMBEDDED_NAME:
            console.print("[yellow]note:[/] the embedded reasoner is Gemma 3 270M base: it shows the machinery "
                          "(protocol, streaming, caching), not reasoning quality.")
        console.print('try:  rsim solve "What is 17 * 23?"      stop: Ctrl-C')
        while not stop["requested"]:
            for c in children:
                if c.proc is not None and c.proc.poll() is not None:
                    console.print(f"[red]{c.name} exited ({c.proc.returncode})[/]; stopping. Last log lines:\n"
                                  f"{c.tail()}")
                    return 1
            time.sleep(0.5)
        return 0
    except RuntimeError as e:
        console.print(f"[red]error:[/] {e}")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        console.print("stopping rsim …")
        for c in reversed(children):
            c.stop()
        console.print("stopped")
