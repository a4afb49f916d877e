"""Paired comparisons of methods on the same questions (pure): per method against a reference, the questions
it won and lost, an exact McNemar p-value, a paired-bootstrap 95% interval of the accuracy difference, and
Holm's correction across the methods compared. A failed episode counts as wrong, as in the score."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def mcnemar_exact(won: int, lost: int) -> float:
    """Two-sided exact McNemar test: under "no difference" each discordant question is a fair coin, so the
    p-value is twice the binomial tail of the rarer side (capped at 1)."""
    n = won + lost
    if n == 0:
        return 1.0
    k = min(won, lost)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_bootstrap(reference: Sequence[bool], other: Sequence[bool], *, samples: int = 10_000,
                     seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of accuracy(other) − accuracy(reference), in points, resampling questions
    (each draw keeps a question's pair together)."""
    n = len(reference)
    if n == 0:
        return 0.0, 0.0
    diffs = [int(o) - int(r) for r, o in zip(reference, other, strict=True)]
    rng = random.Random(seed)
    stats = sorted(100 * sum(rng.choices(diffs, k=n)) / n for _ in range(samples))
    return stats[int(0.025 * samples)], stats[min(samples - 1, int(0.975 * samples))]


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input's order (monotone, capped at 1)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


@dataclass
class Paired:
    method: str
    dataset: str
    reference: str
    n: int  # questions both methods have a record for
    won: int  # right under the method, wrong under the reference
    lost: int
    diff: float  # accuracy difference, points
    ci95: tuple[float, float]
    p: float
    p_holm: float = 1.0

    def verdict(self, alpha: float = 0.05) -> str:
        if self.p_holm < alpha:
            return "better" if self.won > self.lost else "worse"
        return "no detectable difference" if self.won == self.lost else (
            "ahead, within the noise" if self.won > self.lost else "behind, within the noise")


def paired_table(records: list[dict[str, Any]], reference: str, *, samples: int = 10_000) -> list[Paired]:
    """Every method against `reference`, per dataset, on the questions both answered; Holm across the
    methods of a dataset."""
    by: dict[tuple[str, str], dict[str, bool]] = {}
    for r in records:
        by.setdefault((r["dataset"], r["method"]), {})[r["id"]] = bool(r["correct"])
    out: list[Paired] = []
    for dataset in dict.fromkeys(d for d, _ in by):
        ref = by.get((dataset, reference))
        if ref is None:
            continue
        rows = []
        for (d, method), answers in by.items():
            if d != dataset or method == reference:
                continue
            common = sorted(set(ref) & set(answers))
            a, b = [ref[q] for q in common], [answers[q] for q in common]
            won = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
            lost = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
            rows.append(Paired(method, dataset, reference, len(common), won, lost,
                               100 * (sum(b) - sum(a)) / len(common) if common else 0.0,
                               paired_bootstrap(a, b, samples=samples), mcnemar_exact(won, lost)))
        for row, adjusted in zip(rows, holm([r.p for r in rows]), strict=True):
            row.p_holm = adjusted
        out += rows
    return out


def paired_markdown(rows: list[Paired]) -> str:
    if not rows:
        return ""
    lines = [f"\n## Paired against `{rows[0].reference}` (same questions)\n",
             "+won: right where the reference was wrong; −lost: the reverse. p: exact McNemar on the discordant "
             "questions; Holm: corrected across the methods of a dataset; interval: paired bootstrap of the accuracy "
             "difference (95%, points).\n",
             "| Dataset | Method | n | +won | −lost | Δ points | 95% CI | p | p (Holm) | verdict (α 0.05, Holm) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.dataset} | {r.method} | {r.n} | +{r.won} | −{r.lost} | {r.diff:+.1f} | "
                     f"{r.ci95[0]:+.1f} to {r.ci95[1]:+.1f} | {r.p:.3g} | {r.p_holm:.3g} | {r.verdict()} |")
    return "\n".join(lines) + "\n"
