"""Offline training on step values (planner_server.training.values; issue 25 §2–3): the target leans to quiet
where nothing beats it, the margin is chosen on validation questions and is None where speaking never gains,
and a tiny planner trained on hand-made values speaks where its values say so — the served checkpoint then
reports gains and its calibrated margin, and the gate lets it speak exactly there."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from planner_server.training import values as V
from service.catalog import QUIET, load_catalog

CATALOG = load_catalog(Path(__file__).parents[3] / "configs" / "catalog-quiet-continuation.json")
IDS = CATALOG.ids


def test_the_target_leans_to_quiet_on_ties_and_to_a_strategy_that_wins():
    tie = V.target({QUIET: 0.0, "verification": 0.0, "decomposition": 0.0}, IDS, tau=0.25, speak_cost=0.1)
    assert sum(tie) == pytest.approx(1.0) and tie[IDS.index(QUIET)] > tie[IDS.index("verification")]
    assert tie[IDS.index("verification")] == pytest.approx(tie[IDS.index(QUIET)] * math.exp(-0.1 / 0.25))
    assert tie[IDS.index("termination")] == 0.0  # not branched: no mass
    win = V.target({QUIET: 0.0, "verification": 1.0}, IDS, tau=0.25, speak_cost=0.1)
    # the served gain of a planner that fits the target is Ã = A − cost
    assert V.gains_of(win, IDS, 0.25)["verification"] == pytest.approx(0.9)


def test_calibration_picks_the_margin_of_most_validation_gain_and_none_where_speaking_never_gains():
    gains = [{QUIET: 0.0, "verification": 0.8}, {QUIET: 0.0, "verification": 0.3}, {QUIET: 0.0, "verification": -0.2}]
    good = [{QUIET: 0.0, "verification": 1.0}, {QUIET: 0.0, "verification": -1.0}, {QUIET: 0.0, "verification": 1.0}]
    cal = V.calibrate(gains, good, margins=(0.0, 0.25, 0.5, 1.0))
    # fires at 0.8 only from 0.5 up (+1); at 0.25 and 0 it also fires at 0.3 (−1): total 0. 1.0 fires nothing.
    assert cal["margin"] == 0.5 and cal["validation_gain"] == 1.0
    row = {r["margin"]: r for r in cal["table"]}
    assert row[0.0]["fired"] == 2 and row[0.0]["won"] == 1 and row[0.0]["lost"] == 1 and row[1.0]["fired"] == 0
    bad = [{QUIET: 0.0, "verification": -1.0}] * 3
    assert V.calibrate(gains, bad)["margin"] is None  # no margin gains: the gate never fires
    # the argmax is quiet: quiet, whatever the margin
    assert V.gated_outcome({QUIET: 0.0, "verification": -0.1}, good[0], -1.0) == (False, 0.0)
    assert V.gated_outcome({QUIET: 0.0, "termination": 0.4}, good[0], 0.0) == (True, None)  # not branched there


def test_the_split_keeps_a_question_on_one_side_and_is_the_same_every_run(tmp_path):
    ds = [V.ValueDecision(f"q{i // 2}", "?", [], {QUIET: 0.0}) for i in range(200)]
    train, val = V.split(ds, 0.2, seed=1)
    assert {d.question_id for d in train}.isdisjoint({d.question_id for d in val})
    assert 10 <= len({d.question_id for d in val}) <= 30 and V.split(ds, 0.2, seed=1)[1] == val


def test_a_dataset_that_does_not_fit_the_catalog_is_refused(tmp_path):
    path = tmp_path / "v.jsonl"
    row = {"question_id": "q", "decision": 0, "planner_input": {"question": "?", "steps": []},
           "advantage": {QUIET: 0.0, "no_such_strategy": 1.0}}
    path.write_text(json.dumps(row) + "\n" + json.dumps({"question_id": "r", "decision": None}) + "\n")
    with pytest.raises(ValueError, match="no_such_strategy"):
        V.load_values(path, CATALOG)
    with pytest.raises(FileNotFoundError, match="rsim train collect"):
        V.load_values(tmp_path / "missing.jsonl", CATALOG)


def values_dataset(path: Path, n: int = 48) -> Path:
    """Questions that mention a check gain from verification (A = +1); elsewhere every strategy loses (A = −1)."""
    rows = []
    for i in range(n):
        check = i % 2 == 0
        q = f"Problem {i}: " + ("check the sum of the apples." if check else "add the apples.")
        adv = {QUIET: 0.0, "verification": 1.0 if check else -1.0, "decomposition": -1.0}
        rows.append({"question_id": f"q{i}", "decision": 0, "planner_input": {"question": q, "steps": [
            {"strategy": "unguided", "text": "First I count."}]}, "advantage": adv})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


async def test_a_planner_trained_on_values_speaks_where_they_say_and_its_checkpoint_carries_the_gate(
        tiny_model, tmp_path):
    from planner_server.backends import BackendPlanner, start_backend
    from planner_server.protocol import PlanRequest, PlanStep
    from planner_server.settings import PlannerSettings
    from planner_server.training.config import TrainConfig
    from planner_server.training.train import train
    from service.gate import gate

    data = values_dataset(tmp_path / "values.jsonl")
    cfg = TrainConfig(run_dir=tmp_path / "run", planner_model=str(tiny_model), data={"values": str(data)},
                      catalog_path=Path(__file__).parents[3] / "configs" / "catalog-quiet-continuation.json",
                      lora={"enabled": False}, max_steps=40, batch_size=16, micro_batch=16, lr=3e-3, save_every=20,
                      seed=0, threads=1, context_tokens=64, validation_fraction=0.25)
    last = await train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < rows[0]["loss"] and rows[-1]["validation/loss"] < rows[0]["loss"]
    manifest = json.loads((last / "manifest.json").read_text())
    g = manifest["serving"]["gate"]
    assert g["value_scale"] == 0.25 and g["margin"] is not None and g["calibration"]["validation_gain"] > 0
    from planner_server.training.plot import plot_run

    assert {p.name for p in plot_run(tmp_path / "run")} == {"training_curves.png", "gate.png"}

    backend = await start_backend(PlannerSettings(model=str(tiny_model), checkpoint=str(last)), CATALOG)
    try:
        assert (backend.value_scale, backend.gate_margin) == (0.25, g["margin"])
        planner = BackendPlanner(backend, CATALOG)
        steps = [PlanStep(strategy="unguided", text="First I count.")]
        spoke = []
        for i, q in enumerate(["check the sum of the apples.", "add the apples."] * 2):
            plan = await planner.plan(PlanRequest(question=f"Problem {100 + i}: {q}", steps=steps))
            assert plan.gains is not None and plan.margin == g["margin"]
            spoke.append(gate(plan, "gated").speak)
        assert spoke == [True, False, True, False]
    finally:
        await backend.close()


def test_the_gate_plot_draws_the_calibration(tmp_path):
    from planner_server.training.plot import plot_gate

    gains = [{QUIET: 0.0, "verification": 0.1 * i} for i in range(10)]
    cal = V.calibrate(gains, [{QUIET: 0.0, "verification": 1.0 if i > 5 else -1.0} for i in range(10)])
    assert cal["margin"] is not None and cal["table"][0]["firing_rate"] > cal["table"][-1]["firing_rate"]
    path = plot_gate(cal, tmp_path / "gate.png")
    assert path.stat().st_size > 10_000
