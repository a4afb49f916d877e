"""Run datasets × methods against one reasoner through the serving loop, with bounded concurrency, a
progress bar, one JSONL record per item and resume (finished items are not run again).

Methods: `zerocot`, `ps+` (prompt baselines), `prompting` (an LLM prompted to be the planner: the
planner server's prompted backend, in-process), `rsim` (a planner: a running service over HTTP, a
planner server URL, or a checkpoint/base model in-process), `fixed:<strategy>` (that strategy at
every step, then the answer)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from tqdm import tqdm

from clients.errors import APIError, RsimClientError
from clients.eval.peers import optillm_solve
from planner_server.training.data import Problem
from planner_server.training.scoring import check_sandbox, verdict
from service.baselines import BASELINES
from service.catalog import TERMINATION, UNGUIDED, Catalog, load_catalog
from service.errors import RsimError
from service.gate import GATES
from service.orchestrator import EpisodeConfig, Orchestrator
from service.planner_client import HttpPlanner, NoPlanner
from service.protocol import SolveResponse
from service.reasoner import OpenAIReasoner, make_session


@dataclass
class PlannerSpec:
    """Where the `rsim` method's planner comes from (first one set wins)."""

    name: str = "planner"
    service_url: str | None = None  # a running rsim service: /solve over HTTP with its own planner
    planner_url: str | None = None  # a running planner server
    checkpoint: str | None = None  # in-process hf backend
    model: str | None = None


@dataclass
class EvalConfig:
    reasoner_url: str
    reasoner_model: str
    out: Path
    reasoner_mode: str = "continue"
    planner: PlannerSpec = field(default_factory=PlannerSpec)
    prompting_url: str | None = None  # default: the reasoner itself
    prompting_model: str | None = None
    prompting_constrain: bool = False
    max_steps: int = 4
    max_tokens_per_step: int = 64
    final_max_tokens: int = 32
    first_step: str = "planner"  # planned methods: "reasoner" = the reasoner's own first step, nothing injected
    min_step_tokens: int = 24
    unguided_tail: bool = False
    continue_cut: bool = False
    concurrency: int = 4
    reasoner_temperature: float = 0.0
    optillm_url: str | None = None  # an OptiLLM proxy in front of the same reasoner (`optillm:<approach>`)


def record_path(out: Path, dataset: str, method: str) -> Path:
    return out / "records" / dataset / f"{method.replace(':', '_')}.jsonl"


def finished_ids(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    done = set()
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            if rec.get("error") is None:
                done.add(rec["id"])
    return done


def make_record(problem: Problem, dataset: str, method: str, result: SolveResponse | None, latency_ms: float,
                error: str | None = None) -> dict[str, Any]:
    base = {"id": problem.id, "dataset": dataset, "method": method, "question": problem.question,
            "truth": problem.answer, "task": problem.task, "latency_ms": latency_ms, "error": error,
            # what a scorer needs besides the answer, so `rsim eval rescore` can score the record again
            **({"answer_type": problem.answer_type} if problem.answer_type else {}),
            **({"tests": problem.tests, "entry_point": problem.entry_point} if problem.tests else {})}
    if result is None:
        return {**base, "answer": None, "correct": False, "strategies": [], "n_strategies": 0, "tokens": 0,
                "planner_calls": 0, "trace": []}
    planned = method == "prompting" or method == "rsim" or method.startswith(("fixed:", "rsim:"))
    strategies = [s.strategy for s in result.steps] if planned else []
    correct, scoring_error = verdict(result.answer, problem)  # an error is counted wrong, and said so
    return {**base, "answer": result.answer, "correct": correct, "scoring_error": scoring_error, "strategies": strategies,
            "n_strategies": len({s for s in strategies if s not in (TERMINATION, UNGUIDED)}), "tokens": result.usage.completion_tokens,
            "planner_calls": result.usage.planner_calls, "finish_reason": result.finish_reason,
            # tokens split: what the reasoner wrote (`tokens`), what the planner model read and wrote
            "planner_tokens": result.usage.planner_tokens,
            "planner_version": result.planner_version,
            # the whole trace, so a failure can be read rather than guessed
            "trace": [{"strategy": s.strategy, "injected": s.injected, "text": s.text, "tokens": s.tokens,
                       "finish_reason": s.finish_reason, "ends_reasoning": s.ends_reasoning, "rewritten": s.rewritten,
                       "continued": s.continued,
                       "probability": s.probability} for s in result.steps]}


class Runner:
    """Owns the pooled session, the reasoner client and the planners of one evaluation run."""

    def __init__(self, cfg: EvalConfig, catalog: Catalog | None = None):
        self.cfg, self.catalog = cfg, catalog or load_catalog()
        self.session = None
        self.optillm: OpenAIReasoner | None = None
        self.orchestrators: dict[str, Orchestrator] = {}
        self.building = asyncio.Lock()
        self.backends: list[Any] = []
        self.sdk = None

    async def __aenter__(self) -> Runner:
        self.session = make_session(connect_timeout_s=10, read_timeout_s=600, request_timeout_s=1800,
                                    max_connections=self.cfg.concurrency * 4)
        self.reasoner = OpenAIReasoner(self.session, self.cfg.reasoner_url, mode=self.cfg.reasoner_mode)
        self.token_counts: dict[str, int | None] = {}
        return self

    async def __aexit__(self, *exc: Any) -> None:
        for b in self.backends:
            await b.close()
        if self.sdk is not None:
            await self.sdk.close()
        await self.session.close()

    def episode(self, force: str | None = None, task: str | None = None, baseline: str | None = None) -> EpisodeConfig:
        c = self.cfg
        return EpisodeConfig(model=c.reasoner_model, max_steps=c.max_steps, max_tokens_per_step=c.max_tokens_per_step,
                             final_max_tokens=c.final_max_tokens, reasoner_temperature=c.reasoner_temperature,
                             force=force, baseline=baseline, answer_format="code" if task in ("code", "runs") else "boxed",
                             first_step=c.first_step, min_step_tokens=c.min_step_tokens,
                             unguided_tail=c.unguided_tail, continue_cut=c.continue_cut)

    async def orchestrator(self, method: str) -> Orchestrator:
        """The loop for a planned method, built once per run: concurrent items wait for the first build
        (parallel model loads in threads break transformers' meta-device loading)."""
        async with self.building:
            if method not in self.orchestrators:
                self.orchestrators[method] = await self.build(method)
        return self.orchestrators[method]

    async def build(self, method: str) -> Orchestrator:
        from planner_server.backends import start_backend
        from planner_server.settings import PlannerSettings
        from planner_server.backends import BackendPlanner

        spec = self.cfg.planner
        if method == "fixed":
            planner: Any = NoPlanner()
        elif method == "prompting":
            settings = PlannerSettings(backend="prompted", prompted_url=self.cfg.prompting_url or self.cfg.reasoner_url,
                                       prompted_model=self.cfg.prompting_model or self.cfg.reasoner_model,
                                       prompted_constrain=self.cfg.prompting_constrain,
                                       request_timeout_s=1800)  # an eval waits as long as its reasoner calls may
            backend = await start_backend(settings, self.catalog)
            self.backends.append(backend)
            planner = BackendPlanner(backend, self.catalog)
        elif spec.planner_url:
            planner = HttpPlanner(self.session, spec.planner_url)
        elif spec.checkpoint or spec.model:
            settings = PlannerSettings(model=spec.model, checkpoint=spec.checkpoint)
            backend = await start_backend(settings, self.catalog)
            self.backends.append(backend)
            planner = BackendPlanner(backend, self.catalog)
        else:
            raise ValueError("the rsim method needs a planner: --service-url, --planner-url, --checkpoint or "
                             "--planner-model")
        return Orchestrator(planner, self.reasoner, self.catalog)

    async def solve(self, method: str, problem: Problem) -> SolveResponse:
        if method in BASELINES:  # an episode configuration of the same loop: no planner, one step, the answer
            orch = await self.orchestrator("fixed")
            return await orch.solve(problem.question, self.episode(task=problem.task, baseline=method))
        if method.startswith("optillm:"):
            if not self.cfg.optillm_url:
                raise ValueError(f"method '{method}' needs --optillm-url (an OptiLLM proxy in front of the reasoner)")
            self.optillm = self.optillm or OpenAIReasoner(self.session, self.cfg.optillm_url, retries=0)
            return await optillm_solve(self.optillm, method.split(":", 1)[1], problem.question,
                                       model=self.cfg.reasoner_model, temperature=self.cfg.reasoner_temperature,
                                       max_tokens=self.cfg.max_tokens_per_step * max(1, self.cfg.max_steps - 1)
                                       + self.cfg.final_max_tokens, catalog_version=self.catalog.version)
        force = method.split(":", 1)[1] if method.startswith("fixed:") else None
        gate = method.split(":", 1)[1] if method.startswith("rsim:") else None  # rsim:gated, rsim:shadow, rsim:open
        if gate is not None and gate not in GATES:
            raise ValueError(f"unknown gate in method '{method}'; known: {', '.join('rsim:' + g for g in GATES)}")
        if force is None and gate is None and method not in ("rsim", "prompting"):
            raise ValueError(f"unknown method '{method}'; known: plain, zerocot, ps+, prompting, rsim, rsim:<gate>, "
                             "fixed:<strategy>, optillm:<approach>")
        if force is not None and force not in self.catalog.ids:
            raise ValueError(f"unknown strategy in method '{method}'; known: {', '.join(self.catalog.ids)}")
        if self.cfg.planner.service_url and method != "prompting":  # the real service, over HTTP
            from clients.sdk import AsyncClient

            self.sdk = self.sdk or AsyncClient(self.cfg.planner.service_url, timeout_s=1800)
            return await self.sdk.solve(problem.question, max_steps=self.cfg.max_steps,
                                        max_tokens_per_step=self.cfg.max_tokens_per_step, model=self.cfg.reasoner_model,
                                        final_max_tokens=self.cfg.final_max_tokens,
                                        force=force, first_step=self.cfg.first_step,
                                        **({"gate": gate} if gate else {}))
        orch = await self.orchestrator("fixed" if force else "rsim" if gate else method)
        episode = self.episode(force, problem.task)
        return await orch.solve(problem.question, replace(episode, gate=gate) if gate else episode)

    async def injected_tokens(self, result: SolveResponse) -> int | None:
        """Tokens rsim put into the reasoner's chain of thought (every step's injected instruction), counted
        by the reasoner's tokenizer; None where the reasoner cannot count them. Counts of an instruction
        are kept (a bounded cache: a catalog has a few dozen texts)."""
        total = 0
        for step in result.steps:
            if not step.injected:
                continue
            if step.injected not in self.token_counts:
                if len(self.token_counts) >= 4096:
                    self.token_counts.clear()
                self.token_counts[step.injected] = await self.reasoner.count_tokens(self.cfg.reasoner_model,
                                                                                    step.injected)
            n = self.token_counts[step.injected]
            if n is None:
                return None
            total += n
        return total

    async def run(self, dataset: str, problems: list[Problem], method: str, *, label: str | None = None) -> Path:
        """Run `method` on every problem not finished yet; records carry `label` (default: the method)."""
        label = label or method
        path = record_path(self.cfg.out, dataset, label)
        path.parent.mkdir(parents=True, exist_ok=True)
        order = self.cfg.out / "order.jsonl"  # the report lists methods and datasets in the order they ran
        seen = order.read_text().splitlines() if order.is_file() else []
        entry = json.dumps({"dataset": dataset, "method": label})
        if entry not in seen:
            with order.open("a") as f:
                f.write(entry + "\n")
        done = finished_ids(path)
        todo = [p for p in problems if p.id not in done]
        if any(p.task in ("code", "runs") for p in todo):
            await asyncio.to_thread(check_sandbox)  # refuse now, not after an hour of generation
        gate = asyncio.Semaphore(self.cfg.concurrency)
        bar = tqdm(total=len(problems), initial=len(problems) - len(todo), desc=f"{dataset} · {label}",
                   dynamic_ncols=True)

        async def one(problem: Problem) -> dict[str, Any]:
            async with gate:
                t0 = time.perf_counter()
                try:
                    result = await self.solve(method, problem)
                    # scoring may run code in a subprocess: off the event loop, so other items stream on
                    rec = await asyncio.to_thread(make_record, problem, dataset, method, result,
                                                  (time.perf_counter() - t0) * 1000)
                    rec["injected_tokens"] = await self.injected_tokens(result)
                except (RsimError, APIError) as e:  # the loop's own error, or the service's through the SDK
                    rec = make_record(problem, dataset, method, None, (time.perf_counter() - t0) * 1000,
                                      error=f"{e.status_code} {e.message}")
                except (RsimClientError, aiohttp.ClientError, httpx.HTTPError, asyncio.TimeoutError) as e:  # no answer at all
                    rec = make_record(problem, dataset, method, None, (time.perf_counter() - t0) * 1000,
                                      error=f"{type(e).__name__}: {e}")
                rec["method"] = label
            with path.open("a") as f:  # one line per finished item: an interrupted run resumes here
                f.write(json.dumps(rec) + "\n")
            bar.update(1)
            return rec

        try:
            await asyncio.gather(*(one(p) for p in todo))
        finally:
            bar.close()
        return path

