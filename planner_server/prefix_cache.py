"""The hf planner backend's prefix cache: key/value states of prompts already read, found again by the
longest common token prefix (no episode id needed), bounded in entries, bytes and idle time (L1).

An episode's decisions share a growing prefix (question, then the chain of thought so far), so the entry a
decision stores is what the next one extends; an entry that a newer one extends is dropped at once."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

LayerKV = tuple[torch.Tensor, torch.Tensor]  # one layer's keys and values: [kv_heads, tokens, head_dim]


@dataclass(eq=False)  # entries are compared by identity
class PrefixEntry:
    ids: torch.Tensor  # [tokens] long, on the CPU: what the states were computed from
    kv: list[LayerKV]
    nbytes: int
    used_at: float

    def __len__(self) -> int:
        return int(self.ids.numel())


@dataclass
class CacheStats:
    lookups: int = 0
    hits: int = 0
    reused_tokens: int = 0  # prompt tokens whose states came from the cache
    prefilled_tokens: int = 0  # prompt tokens computed
    evicted: int = 0  # entries dropped by a bound (count, bytes or age), not by being extended


def common_prefix(a: torch.Tensor, b: torch.Tensor) -> int:
    n = min(a.numel(), b.numel())
    differ = (a[:n] != b[:n]).nonzero()
    return int(differ[0]) if differ.numel() else n


class PrefixCache:
    """Entries are kept least-recently-used first out; every bound is checked on each insert. Not thread-safe:
    the backend calls it under its forward lock."""

    def __init__(self, *, max_entries: int, max_bytes: int, ttl_s: float,
                 clock: Callable[[], float] = time.monotonic):
        self.max_entries, self.max_bytes, self.ttl_s, self.clock = max_entries, max_bytes, ttl_s, clock
        self.entries: list[PrefixEntry] = []  # oldest use first
        self.stats = CacheStats()

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self.entries)

    def lookup(self, ids: Sequence[int]) -> tuple[PrefixEntry | None, int]:
        """The entry sharing the longest prefix with `ids` and that prefix's length, at most len(ids) − 1 (the
        last position is always computed: its hidden state scores the labels)."""
        self._expire()
        self.stats.lookups += 1
        query = torch.as_tensor(ids, dtype=torch.long)
        best, best_n = None, 0
        for e in reversed(self.entries):  # most recent first: it wins ties
            n = common_prefix(e.ids, query)
            if n > best_n:
                best, best_n = e, n
        best_n = min(best_n, len(ids) - 1)
        if best is None or best_n <= 0:
            self.stats.prefilled_tokens += len(ids)
            return None, 0
        self._touch(best)
        self.stats.hits += 1
        self.stats.reused_tokens += best_n
        self.stats.prefilled_tokens += len(ids) - best_n
        return best, best_n

    def insert(self, ids: Sequence[int], kv: list[LayerKV]) -> None:
        """Keep the states of `ids` (copied by the caller: nothing else may hold their storage)."""
        query = torch.as_tensor(ids, dtype=torch.long)
        if query.numel() == 0:
            return
        for e in self.entries:
            if len(e) >= query.numel() and common_prefix(e.ids, query) == query.numel():
                self._touch(e)  # already covered by a longer (or equal) entry
                return
        # an entry the new one extends can serve no prompt the new one cannot
        self.entries = [e for e in self.entries if common_prefix(e.ids, query) < len(e)]
        nbytes = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)
        if nbytes > self.max_bytes or self.max_entries <= 0:
            return
        self.entries.append(PrefixEntry(query, kv, nbytes, self.clock()))
        self._expire()
        total = self.nbytes
        while len(self.entries) > self.max_entries or total > self.max_bytes:
            total -= self.entries.pop(0).nbytes
            self.stats.evicted += 1

    def clear(self) -> None:
        self.entries.clear()

    def _touch(self, entry: PrefixEntry) -> None:
        entry.used_at = self.clock()
        self.entries.remove(entry)
        self.entries.append(entry)

    def _expire(self) -> None:
        now = self.clock()
        kept = [e for e in self.entries if now - e.used_at <= self.ttl_s]
        self.stats.evicted += len(self.entries) - len(kept)
        self.entries = kept
