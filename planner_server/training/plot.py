"""`rsim train plot RUN_DIR`: PNG curves from a run's metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.jsonl in {run_dir}; is it a training run folder?")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def smooth(values: list[float], window: int = 5) -> list[float]:
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1): i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


PANELS = {
    "planner": [("reward/planner_total_mean", "planner reward (mean)"), ("accuracy", "accuracy (rollouts)"),
                ("entropy", "decision entropy (nats)"), ("loss", "GRPO loss")],
    "joint": [("reward/planner_total_mean", "planner reward (mean)"), ("accuracy", "accuracy (rollouts)"),
              ("reward/reasoner_follow_mean", "reasoner R_follow (mean)"), ("entropy", "decision entropy (nats)")],
    "grpo": [("reward/reasoner_total_mean", "reasoner reward R_acc + R_format (mean)"), ("accuracy", "accuracy (rollouts)"),
             ("kl", "KL to the base model"), ("loss", "GRPO loss")],
}


def mode_of(rows: list[dict]) -> str:
    """The training mode a run's rows come from: grpo rows say so, joint rows carry λ."""
    if any(r.get("mode") == "grpo" for r in rows):
        return "grpo"
    return "joint" if any("lambda" in r for r in rows) else "planner"


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run_dir)
    rows = read_metrics(run)
    out = Path(out_dir) if out_dir else run / "plots"
    out.mkdir(parents=True, exist_ok=True)
    steps = [r["step"] for r in rows]
    mode = mode_of(rows)
    written = []

    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    panels = PANELS[mode]
    for ax, (key, title) in zip(axes.flat, panels, strict=True):
        ys = [r.get(key, 0.0) for r in rows]
        ax.plot(steps, ys, alpha=0.35, label="per step")
        ax.plot(steps, smooth(ys), label="moving mean (5)")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes.flat[0].legend()
    fig.suptitle(f"rsim {mode} training: {run.name}")
    fig.tight_layout()
    path = out / "training_curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    agents = [k for k in ("update_norm/planner", "update_norm/reasoner") if any(k in r for r in rows)]
    if agents:  # what each agent's parameters moved per step, and the stage weight λ of joint mode
        fig, ax = plt.subplots(figsize=(11, 4))
        for key in agents:
            ax.plot([r["step"] for r in rows if key in r], [r[key] for r in rows if key in r], marker=".",
                    label=key.split("/", 1)[1])
        ax.set_yscale("log")
        ax.set_ylabel("L2 norm of the step (log)")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if any("lambda" in r for r in rows):
            twin = ax.twinx()
            twin.step([r["step"] for r in rows if "lambda" in r], [r["lambda"] for r in rows if "lambda" in r],
                      where="mid", color="grey", linestyle="--", label="λ (planner weight)")
            twin.set_ylim(0, 1)
            twin.set_ylabel("λ")
            twin.legend(loc="upper right")
        ax.legend(loc="upper left")
        ax.set_title("update norm per agent")
        fig.tight_layout()
        path = out / "update_norms.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    names = sorted({k for r in rows for k in r.get("strategies", {})})
    if names:
        fig, ax = plt.subplots(figsize=(11, 4))
        bottom = [0.0] * len(rows)
        for name in names:
            counts = [r.get("strategies", {}).get(name, 0) / max(1, sum(r.get("strategies", {}).values()))
                      for r in rows]
            ax.bar(steps, counts, bottom=bottom, label=name, width=1.0)
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
        ax.set_title("strategy share per step")
        ax.set_xlabel("step")
        ax.legend(ncol=5, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18))
        fig.tight_layout()
        path = out / "strategies.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
