"""Paired tests of `rsim eval report` on hand-made records with known answers: exact McNemar p-values
computed by hand, Holm's correction, the bootstrap interval, and the report's paired section."""

from __future__ import annotations

import json
import math

import pytest

from clients.eval.paired import holm, mcnemar_exact, paired_bootstrap, paired_table
from clients.eval.report import build_report


def test_mcnemar_exact_matches_hand_computed_binomial_tails():
    assert mcnemar_exact(8, 1) == pytest.approx(2 * (1 + 9) / 2**9)  # 0.0390625
    assert mcnemar_exact(3, 14) == pytest.approx(2 * (1 + 17 + 136 + 680) / 2**17)  # 0.01273
    assert mcnemar_exact(1, 38) == pytest.approx(2 * (1 + 39) / 2**39)
    assert mcnemar_exact(5, 5) == 1.0 and mcnemar_exact(0, 0) == 1.0  # a tie is capped at 1
    assert mcnemar_exact(6, 0) == pytest.approx(2 / 64)  # 6 wins and no loss: p = 0.031
    assert mcnemar_exact(2, 9) == mcnemar_exact(9, 2)


def test_holm_adjusts_in_order_and_stays_monotone():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 2 x 0.8 capped at 1; the larger p never below it
    assert holm([]) == []


def test_paired_bootstrap_brackets_the_difference():
    ref = [True] * 70 + [False] * 30
    same = list(ref)
    assert paired_bootstrap(ref, same) == (0.0, 0.0)  # identical verdicts: no spread at all
    better = [True] * 100
    lo, hi = paired_bootstrap(ref, better, samples=2000)
    assert 20 < lo <= 30 <= hi < 40


def records(method, verdicts, dataset="synthetic"):
    return [{"id": f"q{i}", "dataset": dataset, "method": method, "correct": v, "error": None, "tokens": 10,
             "strategies": [], "n_strategies": 0, "latency_ms": 1.0, "planner_calls": 0}
            for i, v in enumerate(verdicts)]


def test_paired_table_counts_wins_losses_on_the_common_questions():
    quiet = records("fixed:continuation", [True] * 6 + [False] * 4)
    a = records("rsim", [False, False, False, True, True, True, True, True, True, True])  # lost 3, won 4
    b = records("plain", [True] * 6 + [False] * 4)[:8]  # 8 common questions, all the same
    rows = {r.method: r for r in paired_table(quiet + a + b, "fixed:continuation", samples=500)}
    assert (rows["rsim"].won, rows["rsim"].lost, rows["rsim"].n) == (4, 3, 10)
    assert rows["rsim"].p == pytest.approx(1.0) and rows["rsim"].diff == pytest.approx(10.0)
    assert (rows["plain"].won, rows["plain"].lost, rows["plain"].n) == (0, 0, 8)
    assert rows["rsim"].verdict() == "ahead, within the noise"


def test_the_report_pairs_every_method_against_the_quiet_loop(tmp_path):
    run = tmp_path / "run"
    (run / "records" / "synthetic").mkdir(parents=True)
    quiet = records("fixed:continuation", [True] * 30 + [False] * 10)
    worse = records("rsim", [False] * 12 + [True] * 18 + [True] * 2 + [False] * 8)  # lost 12, won 2
    for name, rs in (("fixed_continuation", quiet), ("rsim", worse)):
        (run / "records" / "synthetic" / f"{name}.jsonl").write_text("\n".join(map(json.dumps, rs)) + "\n")
    files = build_report(run)
    paired = json.loads(files["paired"].read_text())
    assert [(p["method"], p["won"], p["lost"]) for p in paired] == [("rsim", 2, 12)]
    assert paired[0]["p"] == pytest.approx(2 * sum(math.comb(14, k) for k in range(3)) / 2**14)
    md = files["markdown"].read_text()
    assert "Paired against `fixed:continuation`" in md and "| synthetic | rsim | 40 | +2 | −12 |" in md
    assert "worse" in md and files["accuracy_vs_tokens"].stat().st_size > 0
    with pytest.raises(ValueError, match="no records of the reference"):
        build_report(run, reference="plain")
