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
    "values": [("loss", "cross-entropy to p* (train batch)"), ("validation/loss", "cross-entropy (validation)"),
               ("quiet_probability", "p(quiet) (train batch)"), ("validation/gain", "gated gain on validation")],
    "grpo": [("reward/reasoner_total_mean", "reasoner reward R_acc + R_format (mean)"), ("accuracy", "accuracy (rollouts)"),
             ("kl", "KL to the base model"), ("loss", "GRPO loss")],
}


def mode_of(rows: list[dict]) -> str:
    """The training mode a run's rows come from: grpo rows say so, joint rows carry λ."""
    if any(r.get("mode") == "grpo" for r in rows):
        return "grpo"
    if any(r.get("source") == "values" for r in rows):
        return "values"
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
        xs = [r["step"] for r in rows if r.get(key) is not None]  # validation rows only where a checkpoint was
        ys = [r[key] for r in rows if r.get(key) is not None]
        ax.plot(xs, ys, alpha=0.35, label="per step", marker="." if len(xs) < len(steps) else None)
        ax.plot(xs, smooth(ys), label="moving mean (5)")
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
    gate = gate_calibration(run)
    if gate is not None:
        written.append(plot_gate(gate, out / "gate.png", title=f"gate calibration: {run.name}"))
    return written


def gate_calibration(run: Path) -> dict | None:
    """The gate calibration of a run's latest checkpoint (values mode), if it has one."""
    from planner_server.training.checkpoints import latest_checkpoint

    ckpt = latest_checkpoint(run)
    if ckpt is None or not (ckpt / "manifest.json").is_file():
        return None
    gate = ((json.loads((ckpt / "manifest.json").read_text()).get("serving") or {}).get("gate") or {})
    return gate.get("calibration")


def plot_gate(calibration: dict, path: Path, title: str = "gate calibration") -> Path:
    """The gate's firing rate and its realised gain on the validation decisions, against the margin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = calibration["table"]
    margins = [r["margin"] for r in table]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(margins, [r["firing_rate"] for r in table], marker=".", label="firing rate")
    ax.set_xlabel("margin on the predicted gain (score units)")
    ax.set_ylabel("share of decisions where the gate fires")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    twin.plot(margins, [r["gain"] for r in table], color="tab:green", marker=".", label="realised gain (sum of A)")
    twin.axhline(0, color="grey", linewidth=0.8)
    twin.set_ylabel("realised gain on validation")
    if calibration.get("margin") is not None:
        ax.axvline(calibration["margin"], color="tab:red", linestyle="--", label=f"chosen {calibration['margin']:g}")
    else:
        ax.set_title("no margin gains: the gate never fires", fontsize=9)
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right", fontsize=8)
    fig.suptitle(f"{title} ({calibration['decisions']} validation decisions)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
