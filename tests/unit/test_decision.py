import math

import pytest

from planner_server.decision import decide, entropy, softmax


def test_argmax_and_distribution():
    d = decide([0.0, 2.0, 1.0])
    assert d.index == 1
    assert sum(d.probabilities) == pytest.approx(1.0)
    e = [math.exp(x) for x in (0.0, 2.0, 1.0)]
    assert d.probabilities == pytest.approx([x / sum(e) for x in e])
    assert d.entropy == pytest.approx(entropy(d.probabilities))


def test_forbidden_strategies_get_zero_probability_and_are_never_chosen():
    d = decide([0.0, 5.0, 1.0], forbidden=[1])
    assert d.index == 2 and d.probabilities[1] == 0.0
    assert sum(d.probabilities) == pytest.approx(1.0)
    for seed in range(50):
        assert decide([0.0, 5.0, 1.0], temperature=2.0, forbidden=[1], seed=seed).index != 1


def test_sampling_is_reproducible_with_a_seed_and_follows_temperature():
    a = [decide([0.0, 0.0, 0.0], temperature=1.0, seed=s).index for s in range(30)]
    b = [decide([0.0, 0.0, 0.0], temperature=1.0, seed=s).index for s in range(30)]
    assert a == b and len(set(a)) == 3
    # a very low temperature behaves like argmax
    assert all(decide([0.0, 3.0, 0.0], temperature=0.01, seed=s).index == 1 for s in range(30))


def test_all_forbidden_is_an_error():
    with pytest.raises(ValueError):
        softmax([-math.inf, -math.inf])
