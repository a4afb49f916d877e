"""Offline training on step values (issue 25 §2; DESIGN §4.10): the planner's distribution fitted to the
advantages the collector measured (`planner_server.training.collect`), so that it knows when to stay quiet.

Each decision of the dataset carries A(a) = mean score(a) − mean score(quiet) for the actions branched there.
The target over the catalog is p*(a) ∝ exp(Ã(a)/τ) on the measured actions (0 elsewhere), with
Ã(quiet) = 0 and Ã(a) = A(a) − c for a strategy: speaking costs `c`, so where nothing beats quiet — every
strategy tied with it, the common case on a reasoner right most of the time — the target leans to quiet.
The loss is the cross-entropy of the planner's label distribution (temperature 1, as served) to p*; a
planner that fits it predicts τ·(log p(a) − log p(quiet)) ≈ Ã(a), the gain the gate reads (service.gate).

The gate's margin is then chosen on a validation split of the dataset's questions (never the test split):
the margin under which speaking, as the gated planner would, gains most on validation decisions. A margin
under which no speaking gains is no margin: the checkpoint's gate never fires (`margin: None`). Pure where
it can be (targets, calibration); the model pieces take the trainer's `PolicyPlanner`."""

from __future__ import annotations

import json
import math
import random
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planner_server.protocol import PlanStep
from service.catalog import QUIET, Catalog

MARGINS = tuple(round(0.05 * i, 2) for i in range(-4, 21))  # the grid calibration searches (score units)


@dataclass(frozen=True)
class ValueDecision:
    question_id: str
    question: str
    steps: list[PlanStep]
    advantage: dict[str, float]  # measured actions, quiet included (0)


def load_values(path: Path, catalog: Catalog) -> list[ValueDecision]:
    """The collector's decisions (records of questions without a decision point skipped); refuses a dataset
    whose actions the catalog does not have, or without a quiet branch."""
    if not path.is_file():
        raise FileNotFoundError(f"step-value dataset not found: {path} (make one with `rsim train collect`)")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("decision") is None:
            continue
        adv = {k: float(v) for k, v in row["advantage"].items()}
        unknown = sorted(set(adv) - set(catalog.ids))
        if unknown or QUIET not in adv:
            raise ValueError(f"{path}:{n}: actions {unknown or '(no quiet branch)'} do not fit catalog "
                             f"{catalog.version} (its ids: {', '.join(catalog.ids)})")
        inp = row["planner_input"]
        out.append(ValueDecision(row["question_id"], inp["question"],
                                 [PlanStep(strategy=s["strategy"], text=s["text"]) for s in inp["steps"]], adv))
    return out


def split(decisions: list[ValueDecision], validation_fraction: float, seed: int = 0
          ) -> tuple[list[ValueDecision], list[ValueDecision]]:
    """(train, validation) by question: all of a question's decisions fall on one side, the same on every run."""
    def held_out(qid: str) -> bool:
        return zlib.crc32(f"{seed}:{qid}".encode()) % 10_000 < validation_fraction * 10_000
    return [d for d in decisions if not held_out(d.question_id)], [d for d in decisions if held_out(d.question_id)]


def target(advantage: dict[str, float], ids: list[str], tau: float, speak_cost: float) -> list[float]:
    """p* over the catalog `ids`: ∝ exp(Ã/τ) on the measured actions, 0 on the others."""
    net = {a: (0.0 if a == QUIET else v - speak_cost) for a, v in advantage.items()}
    top = max(net.values())
    w = {a: math.exp((v - top) / tau) for a, v in net.items()}
    total = sum(w.values())
    return [w.get(a, 0.0) / total for a in ids]


def gains_of(probabilities: list[float], ids: list[str], tau: float) -> dict[str, float]:
    """τ·(log p(a) − log p(quiet)): what the served planner reports (service.plan_protocol.value_gains)."""
    floor = 1e-12
    base = math.log(max(probabilities[ids.index(QUIET)], floor))
    return {a: tau * (math.log(max(p, floor)) - base) for a, p in zip(ids, probabilities, strict=True)}


def gated_outcome(gains: dict[str, float], advantage: dict[str, float], margin: float) -> tuple[bool, float | None]:
    """What the gated planner does at one decision: it picks its argmax (the largest gain), and speaks when that
    is a strategy whose gain reaches `margin`. Returns (fired, realised advantage: 0 when quiet, None when it
    fired an action the collector did not branch)."""
    choice = max(gains, key=lambda a: gains[a])
    if choice == QUIET or gains[choice] < margin:
        return False, 0.0
    return True, advantage.get(choice)


def calibrate(gains: list[dict[str, float]], advantages: list[dict[str, float]],
              margins: tuple[float, ...] = MARGINS) -> dict[str, Any]:
    """The margin of most realised gain on validation decisions (ties: the larger, more conservative margin),
    or None when no margin gains: the gate then never fires. Also the table the firing-rate plot draws."""
    table = []
    for m in margins:
        outcomes = [gated_outcome(g, a, m) for g, a in zip(gains, advantages, strict=True)]
        fired = sum(f for f, _ in outcomes)
        known = [v for f, v in outcomes if f and v is not None]
        table.append({"margin": m, "fired": fired, "firing_rate": fired / max(1, len(outcomes)),
                      "gain": sum(known), "won": sum(v > 0 for v in known), "lost": sum(v < 0 for v in known),
                      "unmeasured": sum(1 for f, v in outcomes if f and v is None)})
    best = max(table, key=lambda r: (r["gain"], r["margin"]))
    margin = best["margin"] if best["gain"] > 0 else None
    return {"margin": margin, "decisions": len(gains), "table": table,
            "validation_gain": best["gain"] if margin is not None else 0.0}


def sample_batch(decisions: list[ValueDecision], k: int, rng: random.Random) -> list[ValueDecision]:
    return rng.sample(decisions, min(k, len(decisions)))
