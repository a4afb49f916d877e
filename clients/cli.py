"""The `rsim` command line: up, serve, solve, strategies."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

out = Console()
err = Console(stderr=True)


def cmd_up(a: argparse.Namespace) -> int:
    from clients.embedded import default_cache_dir
    from clients.up import up

    return up(host=a.host, service_port=a.port, planner_port=a.planner_port, reasoner_port=a.reasoner_port,
              reasoner_url=a.reasoner_url, reasoner_model=a.reasoner_model, reasoner_mode=a.reasoner_mode,
              planner_model=a.planner_model, planner_checkpoint=a.planner_checkpoint,
              cache_dir=Path(a.cache_dir) if a.cache_dir else default_cache_dir(), kv_cache_gb=a.kv_cache_gb,
              ready_timeout_s=a.ready_timeout_s, gate=a.gate)


def cmd_serve(a: argparse.Namespace) -> int:
    import uvicorn

    if a.what == "planner":
        for key, value in (("MODEL", a.model), ("CHECKPOINT", a.checkpoint), ("BACKEND", a.backend)):
            if value:
                os.environ[f"RSIM_PLANNER_{key}"] = value
        from planner_server.app import create_app
        default_port = 8001
    else:
        from service.app import create_app
        default_port = 8000
    logging.basicConfig(level=a.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # uvicorn drains in-flight requests on SIGTERM/SIGINT (up to --grace-s), then re-raises the signal to the
    # handler that was there before it; a no-op one makes a drained stop a clean exit with code 0
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    try:
        if a.what == "service":
            from service.settings import ServiceSettings

            settings = ServiceSettings()
            settings.check_exposure(a.host)  # closed by default: no keys, no serving beyond loopback
            app = create_app(settings)
        else:
            app = create_app()
        gc.freeze()  # modules and the app live as long as the process: keep the collector's passes off them
        uvicorn.run(app, host=a.host, port=a.port or default_port, log_level=a.log_level,
                    access_log=logging.getLevelName(a.log_level.upper()) <= logging.INFO,
                    timeout_graceful_shutdown=a.grace_s)
    except Exception as e:  # settings errors: say which variable, not a traceback
        err.print(f"[red]error:[/] {escape(one_line(e))}", soft_wrap=True, highlight=False)
        return 2
    return 0


def one_line(e: Exception) -> str:
    """A start-up error in one line: pydantic's (several lines, with links) as `field: message; ...`."""
    from pydantic import ValidationError

    if not isinstance(e, ValidationError):
        return str(e)
    return "; ".join((f"{'.'.join(map(str, x['loc']))}: " if x["loc"] else "") + x["msg"].removeprefix("Value error, ")
                     for x in e.errors())


def cmd_solve(a: argparse.Namespace) -> int:
    from clients.errors import RsimClientError
    from clients.sdk import Client

    kw = {"max_steps": a.max_steps, "max_tokens_per_step": a.max_tokens_per_step, "temperature": a.temperature,
          "model": a.model}
    try:
        with Client(a.url, timeout_s=a.timeout_s, api_key=a.api_key) as client:
            if a.json:
                print(client.solve(a.question, **kw).model_dump_json(indent=2))
                return 0
            for event, data in client.solve_stream(a.question, **kw):
                if event == "strategy":
                    p = data.get("probability")
                    prob = f"p={p:.2f}" if p is not None else "forced"
                    if data.get("gate") in ("shadow", "closed") and data.get("planned"):  # the planner, not heeded
                        prob = f"gate {data['gate']}: the planner chose {data['planned']}, {prob}"
                    elif data.get("gate") in ("late", "down"):
                        prob = f"gate {data['gate']}: no planner decision"
                    out.print(f"\n[bold cyan]step {data['index'] + 1}[/] [magenta]{data['strategy']}[/] ({prob})")
                    out.print(f"[dim]{data['injected']}[/]", end="", soft_wrap=True)
                elif event == "delta":
                    out.print(data["text"], end="", markup=False, highlight=False, soft_wrap=True)
                elif event == "answer":
                    out.print(f"\n\n[bold green]answer:[/] {data['answer']}")
                elif event == "done":
                    u, t = data["usage"], data["timings"]
                    out.print(f"[dim]{u['completion_tokens']} tokens generated, {u['planner_calls']} planner calls, "
                              f"{t['total_ms'] / 1000:.1f} s (planner {t['planner_ms'] / 1000:.1f} s, reasoner "
                              f"{t['reasoner_ms'] / 1000:.1f} s); finish: {data['finish_reason']}; planner "
                              f"{data['planner_version']}[/]")
    except RsimClientError as e:
        err.print(f"[red]error:[/] {e}")
        return 1
    except OSError as e:
        err.print(f"[red]error:[/] cannot reach rsim at {a.url}: {e}. Is `rsim up` running?")
        return 1
    return 0


def cmd_merge(a: argparse.Namespace) -> int:
    from planner_server.checkpoint import CheckpointError
    from planner_server.merge import merge_checkpoint, merge_reasoner
    from service.catalog import load_catalog

    try:
        with err.status("merging the adapter into its base model"):
            if a.reasoner:
                out_dir = merge_reasoner(Path(a.checkpoint), a.out, dtype=a.dtype)
            else:
                out_dir = merge_checkpoint(Path(a.checkpoint), a.out, load_catalog(a.catalog),
                                           base_model=a.base_model, dtype=a.dtype)
    except (CheckpointError, FileExistsError, FileNotFoundError) as e:
        err.print(f"[red]error:[/] {e}", soft_wrap=True)
        return 2
    if a.reasoner:
        out.print(f"merged reasoner: {out_dir}  (serve it: vllm serve {out_dir} --served-model-name NAME; then "
                  f"rsim eval --reasoner-url http://HOST:PORT/v1 --reasoner-model NAME --methods plain,zerocot,rsim …)",
                  soft_wrap=True)
    else:
        out.print(f"merged planner: {out_dir}  (serve it: RSIM_PLANNER_CHECKPOINT={out_dir} rsim serve planner)")
    return 0


def cmd_strategies(a: argparse.Namespace) -> int:
    if a.local or a.catalog:
        from service.catalog import load_catalog

        data = load_catalog(a.catalog).describe()
    else:
        import httpx

        try:
            data = httpx.get(f"{a.url.rstrip('/')}/v1/strategies", timeout=10).json()
        except httpx.HTTPError as e:
            err.print(f"[red]error:[/] cannot reach {a.url}: {e} (use --local for the built-in catalog)")
            return 1
    if a.json:
        print(json.dumps(data, indent=2))
        return 0
    table = Table(title=f"catalog {data['name']} · version {data['version']}")
    for col in ("label", "id", "instruction injected"):
        table.add_column(col)
    for s in data["strategies"]:
        table.add_row(s["label"], s["id"], s["instruction"])
    out.print(table)
    return 0


def cmd_train_eval(extra: list[str]) -> int:
    """Gone: one harness. A trained planner is compared with `rsim eval`, on the same loop, loaders and scorers
    as every other method."""
    err.print("`rsim train eval` is now `rsim eval` (one harness, one loader set, one scorer). A trained planner "
              "against the untrained one and zero-shot CoT, on held-out problems:\n"
              "  rsim eval --dataset synthetic:seed=20261124 --limit 50 --methods zerocot,rsim "
              "--planner-model BASE --label rsim@base --reasoner-url URL --reasoner-model M --out runs/eval/cmp\n"
              "  rsim eval --dataset synthetic:seed=20261124 --limit 50 --methods rsim --checkpoint RUN/checkpoints "
              "--label rsim@trained --reasoner-url URL --reasoner-model M --out runs/eval/cmp", soft_wrap=True)
    return 2


def cmd_train_collect(extra: list[str]) -> int:
    """`rsim train collect`: step values from branch rollouts (planner_server.training.collect), resumable."""
    import asyncio

    from clients.eval.datasets import load_dataset
    from clients.eval.runner import EvalConfig, Runner
    from planner_server.training.collect import CollectConfig, collect, summarize
    from service.catalog import load_catalog
    from service.orchestrator import Orchestrator
    from service.planner_client import NoPlanner

    p = argparse.ArgumentParser(prog="rsim train collect", description="from every decision point of the quiet "
                                "loop, roll each action's branch to its answer and score it; one JSON line per "
                                "decision in --out (resumable: finished questions are skipped)")
    p.add_argument("--dataset", required=True, help="as rsim eval's, e.g. synthetic:steps=4-6,scale=3,seed=11")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--reasoner-url", required=True)
    p.add_argument("--reasoner-model", required=True)
    p.add_argument("--reasoner-mode", default="continue", choices=["continue", "completions", "turns"])
    p.add_argument("--actions", default="verification,self_reflection,decomposition,deep_thinking,summarization,"
                                        "prioritization,sub_planning,termination",
                   help="candidate strategies branched besides quiet (continuation)")
    p.add_argument("--samples", type=int, default=1, help="rollouts per branch (> 1 with --reasoner-temperature)")
    p.add_argument("--decisions", type=int, default=None,
                   help="decision points branched per question, drawn at random per question (default: every one)")
    p.add_argument("--seed", type=int, default=0, help="the draw of --decisions")
    p.add_argument("--reasoner-temperature", type=float, default=0.0)
    p.add_argument("--max-steps", type=int, default=5)
    p.add_argument("--max-tokens-per-step", type=int, default=128)
    p.add_argument("--final-max-tokens", type=int, default=32)
    p.add_argument("--first-step", default="reasoner", choices=["planner", "reasoner"])
    p.add_argument("--no-unguided-tail", dest="unguided_tail", action="store_false")
    p.add_argument("--no-continue-cut", dest="continue_cut", action="store_false")
    p.add_argument("--catalog", type=Path, default=Path("configs/catalog-quiet-continuation.json"))
    p.add_argument("--concurrency", type=int, default=2, help="questions in flight (each fans out its branches)")
    p.add_argument("--out", type=Path, required=True, help="the dataset file (JSONL), appended to")
    e = p.parse_args(extra)
    name, _, spec = e.dataset.partition(":")
    problems = load_dataset(name, spec or None, limit=e.limit)
    catalog = load_catalog(e.catalog)
    cfg = EvalConfig(reasoner_url=e.reasoner_url, reasoner_model=e.reasoner_model, out=e.out.parent,
                     reasoner_mode=e.reasoner_mode, max_steps=e.max_steps, max_tokens_per_step=e.max_tokens_per_step,
                     final_max_tokens=e.final_max_tokens, first_step=e.first_step, unguided_tail=e.unguided_tail,
                     continue_cut=e.continue_cut, concurrency=e.concurrency,
                     reasoner_temperature=e.reasoner_temperature)

    async def go() -> dict:
        async with Runner(cfg, catalog=catalog) as runner:
            orch = Orchestrator(NoPlanner(), runner.reasoner, catalog)
            return await collect(orch, problems, runner.episode(force="continuation", task=problems[0].task),
                                 CollectConfig(actions=tuple(e.actions.split(",")), samples=e.samples,
                                               concurrency=e.concurrency, decisions=e.decisions, seed=e.seed),
                                 e.out)

    try:
        counts = asyncio.run(go())
    except (ValueError, KeyError) as exc:
        err.print(f"[red]error:[/] {exc}")
        return 2
    out.print(f"{counts}; {json.dumps(summarize(e.out))}")
    return 0


def cmd_train(a: argparse.Namespace, extra: list[str]) -> int:
    if a.config == "eval":
        return cmd_train_eval(extra)
    if a.config == "collect":
        return cmd_train_collect(extra)
    if a.config == "plot":
        from planner_server.training.plot import plot_run

        if not extra:
            err.print("usage: rsim train plot RUN_DIR [OUT_DIR]")
            return 2
        for path in plot_run(extra[0], extra[1] if len(extra) > 1 else None):
            out.print(f"wrote {path}")
        return 0
    import asyncio

    from pydantic import ValidationError

    from planner_server.training.config import load_config
    from planner_server.training.train import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(a.config_file or (None if a.config is None else a.config), extra)
    except (ValidationError, ValueError, FileNotFoundError) as e:
        err.print(f"[red]error:[/] {e}")
        return 2
    last = asyncio.run(train(cfg))
    out.print(f"done; last checkpoint: {last}")
    return 0


def cmd_eval(a: argparse.Namespace, extra: list[str]) -> int:
    from clients.eval.report import build_report

    what = extra.pop(0) if extra and extra[0] in ("report", "suite", "score", "rescore") else None
    asked_help = what in ("rescore", "score") and extra[:1] in (["-h"], ["--help"])
    if asked_help:
        extra = []  # the usage line below is the help, and exits 0
    if what == "rescore":
        from clients.eval.score import rescore_run

        if len(extra) != 1 or not Path(extra[0]).is_dir():
            err.print("usage: rsim eval rescore RUN_DIR   (re-scores its records with today's scorers, in place)")
            return 0 if asked_help else 2
        try:
            changes = rescore_run(Path(extra[0]))
        except FileNotFoundError as e:
            err.print(f"[red]error:[/] {e}")
            return 2
        for name, c in changes.items():
            out.print(f"{name}: {c['records']} records, {c['changed']} verdicts changed, {c['right']} right, "
                      f"{c['errors']} undecided" + (f", {c['kept']} kept as they were (not rescorable)"
                                                     if c["kept"] else ""))
        for kind, path in build_report(extra[0]).items():
            out.print(f"{kind}: {path}")
        return 0
    if what == "score":
        from clients.eval.score import read_jsonl, score_rows

        if len(extra) != 1:
            err.print("usage: rsim eval score FILE.jsonl   (rows {task, answer, truth, prompt?, test?, entry_point?}; "
                      "'-' reads stdin)")
            return 0 if asked_help else 2
        if extra[0] != "-" and not Path(extra[0]).is_file():
            err.print(f"[red]error:[/] no such file: {extra[0]}")
            return 2
        src = sys.stdin if extra[0] == "-" else open(extra[0], encoding="utf-8")  # noqa: SIM115
        with src:
            for row in score_rows(read_jsonl(src)):
                sys.stdout.write(json.dumps(row) + "\n")
                sys.stdout.flush()
        return 0
    if what == "report":
        p = argparse.ArgumentParser(prog="rsim eval report")
        p.add_argument("run_dir")
        p.add_argument("--reference", help="the method every other is paired against (+won −lost, exact McNemar "
                                           "p, paired-bootstrap interval, Holm); default: the quiet loop, "
                                           "fixed:continuation, when the run has it")
        r = p.parse_args(extra)
        try:
            files = build_report(r.run_dir, reference=r.reference)
        except (FileNotFoundError, ValueError) as e:
            err.print(f"[red]error:[/] {e}")
            return 2
        for kind, path in files.items():
            out.print(f"{kind}: {path}")
        return 0
    if what == "suite":
        from clients.eval.suite import run_suite_sync

        p = argparse.ArgumentParser(prog="rsim eval suite")
        p.add_argument("file")
        p.add_argument("--out", type=Path)
        p.add_argument("--limit", type=int, help="at most N problems per dataset (overrides the suite)")
        p.add_argument("--dry-run", action="store_true",
                       help="validate the suite (methods, planners, checkpoints, dataset files) and print the run "
                            "matrix and its size; contacts no server, runs nothing")
        s = p.parse_args(extra)
        if s.dry_run:
            from clients.eval.suite import dry_run

            try:
                lines, problems = dry_run(s.file, out=s.out, limit=s.limit)
            except (OSError, ValueError) as exc:
                err.print(f"[red]error:[/] {exc}")
                return 2
            sys.stdout.write("".join(f"{line}\n" for line in lines))  # one row per line, never wrapped
            for problem in problems:
                err.print(f"[red]error:[/] {problem}", highlight=False, soft_wrap=True)
            return 2 if problems else 0
        from planner_server.training.scoring import SandboxUnavailable

        try:
            for report in run_suite_sync(s.file, out=s.out, limit=s.limit):
                out.print(f"report: {report}")
        except SandboxUnavailable as exc:
            err.print(f"[red]error:[/] {exc}")
            return 2
        return 0
    import asyncio

    from clients.eval.datasets import load_dataset
    from clients.eval.runner import EvalConfig, PlannerSpec, Runner
    from service.catalog import load_catalog

    p = argparse.ArgumentParser(prog="rsim eval", description="run datasets × methods against a reasoner; "
                                "then `rsim eval report RUN_DIR`, or `rsim eval suite FILE`")
    p.add_argument("--dataset", action="append", required=True,
                   help="NAME[:PATH]: math, gsm8k, aime2024, mmlu-pro, theoremqa, humaneval, codealpaca, rows "
                        "(with a JSONL/Parquet path), synthetic[:steps=3-5,scale=3,seed=7], humaneval-bundled; "
                        "repeatable")
    p.add_argument("--methods", default="zerocot,ps+,rsim", help="comma list: plain, zerocot, ps+, prompting, rsim, "
                                                                 "rsim:gated|shadow|open (the planner through that gate; "
                                                                 "rsim alone: open), fixed:<strategy>, "
                                                                 "optillm:<approach>")
    p.add_argument("--reasoner-url", required=True)
    p.add_argument("--reasoner-model", required=True)
    p.add_argument("--reasoner-mode", default="continue", choices=["continue", "completions", "turns"])
    p.add_argument("--service-url", help="rsim/fixed through this running service (its planner)")
    p.add_argument("--planner-url", help="rsim with this planner server")
    p.add_argument("--checkpoint", help="rsim with this checkpoint, in-process")
    p.add_argument("--planner-model", help="rsim with this base model, in-process")
    p.add_argument("--prompting-url")
    p.add_argument("--prompting-model")
    p.add_argument("--optillm-url", help="optillm:<approach> through this OptiLLM proxy (base URL with /v1) in front "
                                         "of the same reasoner")
    p.add_argument("--limit", type=int)
    p.add_argument("--max-steps", type=int, default=4)
    p.add_argument("--max-tokens-per-step", type=int, default=64)
    p.add_argument("--final-max-tokens", type=int, default=32)
    p.add_argument("--first-step", default="planner", choices=["planner", "reasoner"],
                   help="planned methods (rsim, prompting, fixed:*): the planner picks the first step's strategy, "
                        "or the reasoner writes the first step from the plain question with nothing injected")
    p.add_argument("--unguided-tail", action="store_true",
                   help="planned methods: after the last planned step the reasoner finishes its reasoning unguided "
                        "in the reasoning budget left ((max-steps - 1) x max-tokens-per-step), then answers")
    p.add_argument("--continue-cut", action="store_true",
                   help="planned methods: a step its budget cut mid-paragraph is continued from its last word, "
                        "unguided; the planner decides only at paragraph ends")
    p.add_argument("--min-step-tokens", type=int, default=24,
                   help="a reasoning step's vLLM min_tokens: the step delimiter counts only after that many tokens")
    p.add_argument("--catalog", type=Path, help="strategy catalog JSON for the planned methods (default: the paper's)")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--label", help="the records' method name when --methods names one planned method (e.g. "
                                    "rsim@trained beside rsim@base in the same --out)")
    p.add_argument("--out", type=Path, default=Path("runs/eval/latest"))
    e = p.parse_args(extra)
    if e.label and "," in e.methods:
        err.print("[red]error:[/] --label names the records of one method; give --methods one method")
        return 2
    cfg = EvalConfig(reasoner_url=e.reasoner_url, reasoner_model=e.reasoner_model, out=e.out,
                     reasoner_mode=e.reasoner_mode,
                     planner=PlannerSpec(service_url=e.service_url, planner_url=e.planner_url, checkpoint=e.checkpoint,
                                         model=e.planner_model),
                     prompting_url=e.prompting_url, prompting_model=e.prompting_model, max_steps=e.max_steps,
                     max_tokens_per_step=e.max_tokens_per_step, final_max_tokens=e.final_max_tokens,
                     first_step=e.first_step, min_step_tokens=e.min_step_tokens, unguided_tail=e.unguided_tail,
                     continue_cut=e.continue_cut,
                     concurrency=e.concurrency, optillm_url=e.optillm_url)
    datasets, skipped = [], []
    for spec in e.dataset:
        name, _, path = spec.partition(":")
        datasets.append((name, load_dataset(name, path or None, limit=e.limit, skipped=skipped)))
    if skipped:
        from clients.eval.report import record_skipped

        err.print(f"[yellow]warning:[/] {len(skipped)} rows skipped when loading (first: {skipped[0]['reason']}); "
                  f"listed in {e.out / 'skipped.jsonl'} and the report")
        record_skipped(e.out, skipped)

    async def go() -> None:
        async with Runner(cfg, catalog=load_catalog(e.catalog) if e.catalog else None) as runner:
            for name, problems in datasets:
                for method in e.methods.split(","):
                    await runner.run(name, problems, method, label=e.label)

    from planner_server.training.scoring import SandboxUnavailable

    try:
        asyncio.run(go())
    except SandboxUnavailable as exc:
        err.print(f"[red]error:[/] {exc}")
        return 2
    for kind, path in build_report(e.out).items():
        out.print(f"{kind}: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rsim", description="reinforced strategy injection for any OpenAI-compatible LLM")
    sub = p.add_subparsers(dest="command", required=True)

    u = sub.add_parser("up", help="start reasoner, planner and service (embedded Qwen2.5-Coder-1.5B-Instruct reasoner, Gemma 3 270M planner by default)")
    u.add_argument("--host", default="127.0.0.1")
    u.add_argument("--port", type=int, default=8000, help="service port")
    u.add_argument("--planner-port", type=int, default=8001)
    u.add_argument("--reasoner-port", type=int, default=8002, help="port of the embedded vLLM reasoner")
    u.add_argument("--reasoner-url", help="use this OpenAI-compatible reasoner (base URL with /v1) instead")
    u.add_argument("--reasoner-model", help="reasoner model id (default: first listed by the reasoner)")
    u.add_argument("--reasoner-mode", default="continue", choices=["continue", "completions", "turns"])
    u.add_argument("--planner-model", help="planner base model (HF folder or hub id; default: embedded Gemma)")
    u.add_argument("--planner-checkpoint", help="trained planner checkpoint folder")
    u.add_argument("--gate", choices=["shadow", "gated", "open"],
                   help="when the planner's choice is injected (RSIM_GATE; default shadow: recorded in the trace, "
                        "never injected, so answers are the reasoner's own — no planner of ours has won yet)")
    u.add_argument("--cache-dir", help="where the embedded models and logs live (default ~/.cache/rsim, "
                                       "or RSIM_CACHE_DIR)")
    u.add_argument("--kv-cache-gb", type=int, default=1, help="KV cache of the embedded vLLM (GiB)")
    u.add_argument("--ready-timeout-s", type=float, default=900.0)
    u.set_defaults(fn=cmd_up)

    s = sub.add_parser("serve", help="run one server in the foreground (settings from RSIM_* env vars)")
    s.add_argument("what", choices=["planner", "service"])
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int)
    s.add_argument("--model", help="planner: HF folder or hub id (RSIM_PLANNER_MODEL)")
    s.add_argument("--checkpoint", help="planner: checkpoint folder (RSIM_PLANNER_CHECKPOINT)")
    s.add_argument("--backend", choices=["hf", "vllm", "prompted"], help="planner backend (RSIM_PLANNER_BACKEND)")
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    s.add_argument("--grace-s", type=float, default=30.0, help="drain time for in-flight requests on SIGTERM")
    s.set_defaults(fn=cmd_serve)

    v = sub.add_parser("solve", help="solve a question with strategy injection, printing the trace")
    v.add_argument("question")
    v.add_argument("--url", default=os.environ.get("RSIM_URL", "http://127.0.0.1:8000"))
    v.add_argument("--max-steps", type=int)
    v.add_argument("--max-tokens-per-step", type=int)
    v.add_argument("--temperature", type=float, help="planner temperature (0 = argmax)")
    v.add_argument("--model", help="reasoner model id")
    v.add_argument("--timeout-s", type=float, default=900.0)
    v.add_argument("--api-key", default=os.environ.get("RSIM_API_KEY"), help="client API key (env RSIM_API_KEY)")
    v.add_argument("--json", action="store_true", help="print the whole result as JSON (no streaming)")
    v.set_defaults(fn=cmd_solve)

    r = sub.add_parser("train", help="train a planner with GRPO (`rsim train --config FILE [--key=value ...]`, "
                                     "`rsim train plot RUN_DIR`)")
    r.add_argument("config", nargs="?", help="'plot' to draw a run's curves; otherwise a YAML config (or --config)")
    r.add_argument("--config", dest="config_file", help="YAML config; every key also settable as --key=value")
    r.set_defaults(fn=cmd_train, takes_extra=True)

    ev = sub.add_parser("eval", help="evaluate methods on datasets (`rsim eval --dataset … --methods …`, "
                                     "`rsim eval report RUN_DIR`, `rsim eval suite FILE`, `rsim eval score FILE.jsonl`, "
                                     "`rsim eval rescore RUN_DIR`)",
                        add_help=False)
    ev.set_defaults(fn=cmd_eval, takes_extra=True)

    m = sub.add_parser("merge", help="merge a LoRA planner checkpoint (or, with --reasoner, the reasoner a joint or "
                                     "grpo run trained) into its base model: one full HF folder")
    m.add_argument("checkpoint", help="a checkpoint folder, or a run's checkpoints/ folder (its `latest`)")
    m.add_argument("--out", required=True, type=Path, help="the new folder (must not exist, or be empty)")
    m.add_argument("--base-model", help="the adapter's base model, if its manifest names none (or elsewhere)")
    m.add_argument("--catalog", help="the catalog the checkpoint was trained with (default: the paper's)")
    m.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    m.add_argument("--reasoner", action="store_true", help="the trained reasoner (joint: the checkpoint's reasoner/; "
                                                           "grpo: the checkpoint), for a vLLM server")
    m.set_defaults(fn=cmd_merge)

    t = sub.add_parser("strategies", help="show the strategy catalog")
    t.add_argument("--url", default=os.environ.get("RSIM_URL", "http://127.0.0.1:8000"))
    t.add_argument("--local", action="store_true", help="the built-in catalog, no server needed")
    t.add_argument("--catalog", help="a catalog JSON file to show")
    t.add_argument("--json", action="store_true")
    t.set_defaults(fn=cmd_strategies)
    return p


def main(argv: list[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    if getattr(args, "takes_extra", False):
        return args.fn(args, extra)
    if extra:
        err.print(f"[red]error:[/] unrecognized arguments: {' '.join(extra)}")
        return 2
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
