"""`rsim train plot`: each mode's panels, and the per-agent update norms with λ where a run has them."""

import json

import pytest

from planner_server.training.plot import mode_of, plot_run


def write_rows(run, rows):
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_a_joint_run_plots_both_agents_update_norms(tmp_path):
    rows = [{"step": s, "accuracy": 0.5, "loss": 0.1, "entropy": 1.0, "lambda": 0.7 if s <= 3 else 0.3,
             "reward/planner_total_mean": 1.0, "reward/reasoner_follow_mean": 0.4, "strategies": {"verification": 2},
             "update_norm/planner": 0.07 if s <= 3 else 0.03, "update_norm/reasoner": 0.03 if s <= 3 else 0.07}
            for s in range(1, 7)]
    write_rows(tmp_path / "joint", rows)
    assert mode_of(rows) == "joint"
    written = {p.name for p in plot_run(tmp_path / "joint")}
    assert written == {"training_curves.png", "update_norms.png", "strategies.png"}
    assert (tmp_path / "joint" / "plots" / "update_norms.png").stat().st_size > 10_000


def test_a_grpo_run_is_plotted_as_one_and_a_run_without_norms_gets_no_norm_plot(tmp_path):
    grpo = [{"step": s, "mode": "grpo", "accuracy": 0.5, "loss": 0.1, "kl": 0.01, "reward/reasoner_total_mean": 1.2,
             "update_norm/reasoner": 0.05} for s in range(1, 4)]
    old = [{"step": s, "accuracy": 0.5, "loss": 0.1, "entropy": 1.0, "reward/planner_total_mean": 1.0}
           for s in range(1, 4)]  # a run from before the norms were logged
    write_rows(tmp_path / "grpo", grpo)
    write_rows(tmp_path / "old", old)
    assert (mode_of(grpo), mode_of(old)) == ("grpo", "planner")
    assert {p.name for p in plot_run(tmp_path / "grpo")} == {"training_curves.png", "update_norms.png"}
    assert {p.name for p in plot_run(tmp_path / "old")} == {"training_curves.png"}


def test_a_folder_without_metrics_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        plot_run(tmp_path)
