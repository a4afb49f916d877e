"""Verifiable multi-step arithmetic word problems with exact integer answers (CPU-scale experiments
and tests). Deterministic for a seed: `synthetic_problems(n, seed=0, steps=(2, 4))`."""

from __future__ import annotations

import random
from collections.abc import Iterator

from planner_server.training.data import Problem

NAMES = ["Ana", "Ben", "Chloe", "Dev", "Eli", "Fatima", "Goran", "Hana", "Ivo", "Jun"]
THINGS = ["apples", "marbles", "stickers", "coins", "books", "shells", "cards", "pencils"]


def one_problem(rng: random.Random, steps: int, scale: int = 1) -> Problem:
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    total = rng.randint(5, 40 * scale)
    sentences = [f"{name} has {total} {thing}."]
    for _ in range(steps):
        op = rng.choice(["buy", "give", "groups", "double"] if total < 200 * scale else ["give"])
        if op == "buy":
            k = rng.randint(2, 15 * scale)
            total += k
            sentences.append(f"Then {name} gets {k} more {thing}.")
        elif op == "give" and total > 2:
            k = rng.randint(1, total - 1)
            total -= k
            sentences.append(f"Then {name} gives away {k} {thing}.")
        elif op == "groups":
            bags, each = rng.randint(2, 5 * scale), rng.randint(2, 9 * scale)
            total += bags * each
            sentences.append(f"Then {name} buys {bags} bags with {each} {thing} in each bag.")
        else:
            total *= 2
            sentences.append(f"Then the number of {thing} {name} has doubles.")
    sentences.append(f"How many {thing} does {name} have now?")
    return Problem(question=" ".join(sentences), answer=str(total), task="synthetic", source="synthetic")


def synthetic_problems(n: int, *, seed: int = 0, steps: tuple[int, int] = (2, 4), scale: int = 1) -> list[Problem]:
    rng = random.Random(seed)
    return [one_problem(rng, rng.randint(*steps), scale) for _ in range(n)]


def synthetic_stream(*, seed: int = 0, steps: tuple[int, int] = (2, 4), scale: int = 1) -> Iterator[Problem]:
    rng = random.Random(seed)
    while True:
        yield one_problem(rng, rng.randint(*steps), scale)
