"""From label logits to a decision: forbid mask, temperature, argmax or sampling (pure, no torch)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    index: int
    probabilities: list[float]  # over the catalog, forbidden ones at 0, sum 1 (temperature 1: the policy π)
    entropy: float  # nats
    # how the action was drawn — the behaviour policy μ an off-policy update must divide by:
    mode: str = "argmax"  # argmax (μ a point mass), sampled (softmax(logits / T)), explored (ε-mixture)
    behaviour_probability: float = 1.0  # μ(action)


def softmax(logits: Sequence[float]) -> list[float]:
    finite = [x for x in logits if x != -math.inf]
    if not finite:
        raise ValueError("every strategy is forbidden")
    m = max(finite)
    exps = [0.0 if x == -math.inf else math.exp(x - m) for x in logits]
    total = sum(exps)
    return [e / total for e in exps]


def entropy(probs: Sequence[float]) -> float:
    return -sum(p * math.log(p) for p in probs if p > 0)


def _draw(probs: Sequence[float], r: float) -> int:
    acc, index = 0.0, len(probs) - 1
    for i, p in enumerate(probs):
        acc += p
        if r < acc and p > 0:
            index = i
            break
    while probs[index] == 0:  # float round-off landed on a forbidden tail entry
        index -= 1
    return index


def decide(logits: Sequence[float], *, temperature: float = 0.0, forbidden: Sequence[int] = (),
           seed: int | None = None, rng: random.Random | None = None, exploration: float = 0.0) -> Decision:
    """Probabilities are the softmax of the label logits (forbidden ones removed); temperature 0
    takes the argmax, otherwise sample from softmax(logits / temperature). `exploration` ε (argmax only):
    with probability ε the action is sampled from the probabilities instead, so every allowed action has
    μ(a) ≥ ε·π(a) > 0 and served decisions can be learned from off-policy. The decision records which way
    it was made and μ(action)."""
    masked = [(-math.inf if i in set(forbidden) else float(x)) for i, x in enumerate(logits)]
    probs = softmax(masked)
    draw = (random.Random(seed) if seed is not None else (rng or random)).random
    best = max(range(len(probs)), key=lambda i: probs[i])
    if temperature > 0:
        sample_probs = softmax([x / temperature if x != -math.inf else x for x in masked])
        index = _draw(sample_probs, draw())
        return Decision(index, probs, entropy(probs), "sampled", sample_probs[index])
    if exploration > 0:
        explore = draw() < exploration
        index = _draw(probs, draw()) if explore else best
        mu = (1 - exploration) * (index == best) + exploration * probs[index]
        return Decision(index, probs, entropy(probs), "explored", mu)
    return Decision(best, probs, entropy(probs), "argmax", 1.0)
