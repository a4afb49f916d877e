"""The hf planner backend's prefix cache as a store: longest-common-prefix lookup, entries an extension
replaces, and the bounds (count, bytes, idle time), on hand-made states."""

from __future__ import annotations

import pytest
import torch

from planner_server.prefix_cache import PrefixCache, common_prefix
from planner_server.settings import PlannerSettings


def states(n: int, layers: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """n tokens' keys and values: 1 head × 4 dims × 4 bytes × 2 = 32 bytes per token and layer."""
    return [(torch.zeros(1, n, 4), torch.zeros(1, n, 4)) for _ in range(layers)]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def cache(**bounds) -> PrefixCache:
    return PrefixCache(**{"max_entries": 8, "max_bytes": 1 << 20, "ttl_s": 60.0, **bounds})


def test_common_prefix():
    t = torch.tensor
    assert common_prefix(t([1, 2, 3]), t([1, 2, 4])) == 2
    assert common_prefix(t([1, 2]), t([1, 2, 3])) == 2
    assert common_prefix(t([5]), t([1])) == 0


def test_lookup_finds_the_longest_common_prefix_and_leaves_one_token_to_compute():
    c = cache()
    c.insert([1, 2, 3], states(3))
    c.insert([1, 2, 9, 9, 9], states(5))
    entry, n = c.lookup([1, 2, 9, 9, 7, 7])
    assert entry.ids.tolist() == [1, 2, 9, 9, 9] and n == 4
    entry, n = c.lookup([1, 2, 3])  # the whole prompt is cached: its last position is still computed
    assert entry.ids.tolist() == [1, 2, 3] and n == 2
    assert c.lookup([7, 1, 2]) == (None, 0)
    assert (c.stats.lookups, c.stats.hits, c.stats.reused_tokens, c.stats.prefilled_tokens) == (3, 2, 6, 2 + 1 + 3)


def test_an_entry_a_newer_one_extends_is_dropped_and_a_covered_one_is_not_stored():
    c = cache()
    c.insert([1, 2, 3], states(3))
    c.insert([1, 2, 4], states(3))  # a branch: both kept
    c.insert([1, 2, 3, 5, 6], states(5))  # the next decision of the first episode replaces its entry
    assert sorted(e.ids.tolist() for e in c.entries) == [[1, 2, 3, 5, 6], [1, 2, 4]]
    c.insert([1, 2, 3, 5], states(4))  # already covered
    assert len(c.entries) == 2 and c.entries[-1].ids.tolist() == [1, 2, 3, 5, 6]  # ... and refreshed


def test_count_bound_drops_the_least_recently_used():
    c = cache(max_entries=2)
    c.insert([1], states(1))
    c.insert([2], states(1))
    c.lookup([1, 0])  # [1] is used again
    c.insert([3], states(1))
    assert sorted(e.ids.tolist() for e in c.entries) == [[1], [3]] and c.stats.evicted == 1


def test_byte_bound():
    c = cache(max_bytes=64 * 10)  # ten tokens of two layers
    c.insert([1] * 6, states(6))
    c.insert([2] * 4, states(4))
    assert c.nbytes == 640 and len(c.entries) == 2
    c.insert([3], states(1))
    assert [e.ids.tolist()[0] for e in c.entries] == [2, 3] and c.nbytes == 320
    c.insert([4] * 11, states(11))  # larger than the whole budget: not kept
    assert [e.ids.tolist()[0] for e in c.entries] == [2, 3]


def test_idle_entries_expire():
    clock = Clock()
    c = cache(ttl_s=10.0, clock=clock)
    c.insert([1, 2], states(2))
    clock.now = 8.0
    assert c.lookup([1, 2, 3])[1] == 2  # a use restarts its clock
    clock.now = 17.0
    assert c.lookup([1, 2, 3])[1] == 2
    clock.now = 27.5
    assert c.lookup([1, 2, 3]) == (None, 0) and not c.entries and c.stats.evicted == 1


def test_settings_from_the_environment(monkeypatch):
    s = PlannerSettings(model="m")
    assert (s.prefix_cache_entries, s.prefix_cache_mb, s.prefix_cache_ttl_s) == (64, 1024.0, 600.0)
    monkeypatch.setenv("RSIM_PLANNER_PREFIX_CACHE_ENTRIES", "0")
    monkeypatch.setenv("RSIM_PLANNER_PREFIX_CACHE_MB", "256")
    monkeypatch.setenv("RSIM_PLANNER_PREFIX_CACHE_TTL_S", "30")
    s = PlannerSettings(model="m")
    assert (s.prefix_cache_entries, s.prefix_cache_mb, s.prefix_cache_ttl_s) == (0, 256.0, 30.0)
    monkeypatch.setenv("RSIM_PLANNER_PREFIX_CACHE_TTL_S", "0")
    with pytest.raises(ValueError):
        PlannerSettings(model="m")
