"""From label logits to a decision: forbid mask, temperature, argmax or sampling (pure, no torch)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    index: int
    probabilities: list[float]  # over the catalog, forbidden ones at 0, sum 1
    entropy: float  # nats


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


def decide(logits: Sequence[float], *, temperature: float = 0.0, forbidden: Sequence[int] = (),
           seed: int | None = None, rng: random.Random | None = None) -> Decision:
    """Probabilities are the softmax of the label logits (forbidden ones removed); temperature 0
    takes the argmax, otherwise sample from softmax(logits / temperature)."""
    masked = [(-math.inf if i in set(forbidden) else float(x)) for i, x in enumerate(logits)]
    probs = softmax(masked)
    if temperature <= 0:
        index = max(range(len(probs)), key=lambda i: probs[i])
    else:
        sample_probs = softmax([x / temperature if x != -math.inf else x for x in masked])
        r = (random.Random(seed) if seed is not None else (rng or random)).random()
        acc, index = 0.0, len(sample_probs) - 1
        for i, p in enumerate(sample_probs):
            acc += p
            if r < acc and p > 0:
                index = i
                break
        while sample_probs[index] == 0:  # float round-off landed on a forbidden tail entry
            index -= 1
    return Decision(index=index, probabilities=probs, entropy=entropy(probs))
