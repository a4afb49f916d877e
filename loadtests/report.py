"""Markdown tables from the JSON results of `loadtests/run_all.sh`, so the figures in
docs/performance.md and docs/reliability.md are pasted from runs, never typed.

    python -m loadtests.report .work/bench
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def table(header: list[str], rows: list[list[object]]) -> str:
    def cell(v: object) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def passthrough(d: dict) -> str:
    rows = []
    for name, per in d["targets"].items():
        for c, r in per.items():
            if c.isdigit():
                rows.append([name, int(c), round(r["req_s"]), r["p50_ms"], r["added_p50_ms"], r["p99_ms"],
                             r["cpu_ms_per_req"], r["ttfc_p50_ms"], r["errors"]])
    ceilings = ", ".join(f"{n} {round(per['ceiling_req_s'])}" for n, per in d["targets"].items())
    ratios = "\n".join(f"- {k}: **{v:.2f}**" for k, v in d["ratios"].items())
    return (table(["target", "concurrency", "req/s", "p50 ms", "added p50 ms", "p99 ms", "CPU ms/request",
                   "first chunk p50 ms", "errors"], rows)
            + f"\n\nCeilings (best req/s over the levels): {ceilings}.\n\n" + ratios)


def step_cpu(d: dict) -> str:
    rows = [[int(c), kind, round(r["req_s"], 1), r["p50_ms"], r["cpu_ms_per_req"], r["cpu_ms_per_step"],
             r["step_over_passthrough"], r["errors"]]
            for c, per in d["levels"].items() for kind, r in per.items()]
    return table(["concurrency", "kind", "req/s", "p50 ms", "CPU ms/request", "CPU ms/step",
                  "step ÷ passthrough request", "errors"], rows)


def planner_batching(d: dict) -> str:
    hw = d["ceiling"]
    rows = [[int(c), r["on"]["req_s"], r["off"]["req_s"], r["ratio"], r["on"]["p50_ms"], r["off"]["p50_ms"],
             r["on"]["errors"] + r["off"]["errors"]] for c, r in d["levels"].items()]
    return (table(["concurrency", "on: decisions/s", "off: decisions/s", "on ÷ off", "on p50 ms", "off p50 ms",
                   "errors"], rows)
            + f"\n\nBackend alone, in-process: {hw['batch']} prompts of {hw['prompt_tokens']} tokens one by one "
              f"{hw['one_by_one_s']:.2f} s, as one batch {hw['batched_s']:.2f} s: **{hw['ratio']:.2f}×**.")


def stepwise(d: dict) -> str:
    rows = [[m, r["requests"], r["tokens"], r["steps"], r["stepwise_s"], r["oneshot_s"], round(r["ratio"], 3),
             round(r["ratio_median"], 3)] for m, r in d["modes"].items()]
    return table(["prefix caching", "requests", "tokens", "steps", "step-wise s", "one-shot s", "ratio (sums)",
                  "ratio (median)"], rows)


def load(d: dict) -> str:
    rows = [[name, e.get("requests"), e.get("failures"), f"{e.get('error_rate', 0):.1%}", e.get("req_s"),
             e.get("p50_ms"), e.get("p95_ms"), e.get("p99_ms"), e.get("ttft_p50_ms", "–"),
             e.get("ttft_p95_ms", "–")]
            for name, e in d["endpoints"].items()]
    return table(["endpoint", "requests", "failures", "error rate", "req/s", "p50 ms", "p95 ms", "p99 ms",
                  "TTFT p50 ms", "TTFT p95 ms"], rows)


def soak(d: dict) -> str:
    causes = ", ".join(f"{k}: {v}" for k, v in d["failed_by_cause"].items()) or "none"
    return table(["minutes", "concurrency", "sent", "answered", "failed", "lost", "duplicated", "failed by cause"],
                 [[d["seconds"] / 60, d["concurrency"], d["sent"], d["answered"], d["failed"], d["lost"],
                   d["duplicated"], causes]])


RENDER = {"passthrough": passthrough, "step-cpu": step_cpu, "step-cpu-streamed": step_cpu,
          "planner-batching": planner_batching, "stepwise": stepwise, "load-sim": load,
          "load-sim-passthrough": load, "load-vllm": load, "soak": soak}


def plot_passthrough(d: dict, path: Path) -> None:
    """req/s, added p50 and the proxy's CPU per request against concurrency, one line per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4))
    for i, (name, per) in enumerate(d["targets"].items()):
        levels = sorted(int(c) for c in per if c.isdigit())
        style = {"marker": "o", "label": name, "color": f"C{i}"}
        ax1.plot(levels, [per[str(c)]["req_s"] for c in levels], **style)
        if name != "direct":
            ax2.plot(levels, [max(per[str(c)]["added_p50_ms"], 0.1) for c in levels], **style)
            ax3.plot(levels, [per[str(c)]["cpu_ms_per_req"] for c in levels], **style)
    ax3.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="target")
    for ax, title in ((ax1, "throughput (req/s)"), (ax2, "added p50 over direct (ms; ≤ 0.1 drawn at 0.1)"),
                      (ax3, "proxy CPU per request (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrent clients")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    for ax in (ax1, ax2, ax3):
        ax.legend(fontsize=8)
    fig.suptitle(f"proxies in front of a simulated reasoner ({d['ttft_ms']:g} ms per answer) · {d['machine']}",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path)
    p.add_argument("--plot", type=Path, help="also draw passthrough.json to this PNG")
    a = p.parse_args(argv)
    if a.plot:
        plot_passthrough(json.loads((a.folder / "passthrough.json").read_text()), a.plot)
    parts = []
    for name, render in RENDER.items():
        path = a.folder / f"{name}.json"
        if path.exists():
            parts.append(f"### {name}\n\n{render(json.loads(path.read_text()))}\n")
    out = "\n".join(parts)
    print(out)
    return out


if __name__ == "__main__":
    main()
