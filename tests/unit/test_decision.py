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


def test_each_decision_records_how_it_was_drawn():
    """Issue 14 §5: continual learning divided by the temperature-1 probabilities whatever the server did;
    served at argmax the behaviour policy is a point mass. The decision now says how it was made and μ(a)."""
    logits = [2.0, 1.0, 0.0]
    d = decide(logits)
    assert (d.mode, d.behaviour_probability) == ("argmax", 1.0)
    d = decide(logits, temperature=0.5, seed=3)
    assert d.mode == "sampled"
    assert d.behaviour_probability == pytest.approx(softmax([x / 0.5 for x in logits])[d.index])
    assert d.behaviour_probability != pytest.approx(d.probabilities[d.index])  # μ is not π at T = 1


def test_exploration_is_an_epsilon_mixture_with_full_support():
    logits, eps = [3.0, 1.0, 0.0], 0.2
    pi = softmax(logits)
    seen = [decide(logits, exploration=eps, seed=s) for s in range(4000)]
    freq = [sum(d.index == i for d in seen) / len(seen) for i in range(3)]
    mu = [(1 - eps) * (i == 0) + eps * pi[i] for i in range(3)]
    assert freq == pytest.approx(mu, abs=0.02)  # what the server does is what it records
    for d in seen:
        assert d.mode == "explored" and d.behaviour_probability == pytest.approx(mu[d.index])
    assert all(f > 0 for f in freq)
    assert decide(logits, exploration=eps, forbidden=[1], seed=0).index != 1
