"""service/body.py: the one bounded JSON parse (issue 29: a 2,000-deep body was a 500 RecursionError)."""

from __future__ import annotations

import json
import random

import pytest

from service.body import NestedTooDeep, looks_like_json, nesting_depth, parse_json
from service.errors import InvalidRequest, PayloadTooLarge


def depth_of(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    return 0


def random_json(rng: random.Random, level: int = 0) -> object:
    """Values whose strings and keys are full of brackets, quotes and backslashes."""
    r = rng.random()
    if level > 7 or r < 0.3:
        return rng.choice(['a"b', "[", "]\\", "\\\\", "{x}", '\\"[', "}}]]", 1, None, 2.5])
    if r < 0.65:
        return [random_json(rng, level + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["k", "[", "\\", '"', "{"]) + str(i): random_json(rng, level + 1) for i in range(rng.randint(0, 3))}


def test_nesting_depth_is_exact_and_ignores_brackets_in_strings():
    rng = random.Random(29)
    for _ in range(3000):
        value = random_json(rng)
        raw = json.dumps(value).encode()
        assert nesting_depth(raw) == depth_of(value), raw
    assert nesting_depth(b'{"a": "[[[[", "b": "\\\\", "c": ["\\"]]]"]}') == 2
    assert nesting_depth(b"[" * 2000) == 2000  # malformed: as deep as a parser would go


def test_a_body_past_the_bound_is_refused_before_parsing_one_under_it_parses():
    under = b"[" * 64 + b"]" * 64
    assert parse_json(under, max_depth=64, max_bytes=1 << 20) == json.loads(under)
    for raw in (b"[" * 65 + b"]" * 65, b"[" * 2000 + b"]" * 2000, b'{"a":' * 2000 + b"1" + b"}" * 2000, b"[" * 2000):
        with pytest.raises(NestedTooDeep) as e:
            parse_json(raw, max_depth=64, max_bytes=1 << 20)
        assert e.value.status_code == 400 and e.value.envelope()["error"]["code"] == "json_too_deep"
    # many brackets, none nested deep (a long conversation): parsed
    wide = json.dumps({"messages": [{"role": "user", "content": "[{"}] * 500}).encode()
    assert len(parse_json(wide, max_depth=64, max_bytes=1 << 20)["messages"]) == 500


def test_invalid_and_oversized_bodies_are_typed_errors():
    for raw in (b"{not json", b"", b"\xff\xfe\x00", b"1" * 5000):  # the last: over Python's int digit limit
        with pytest.raises(InvalidRequest) as e:
            parse_json(raw, max_depth=64, max_bytes=1 << 20)
        assert not isinstance(e.value, NestedTooDeep) and e.value.status_code == 400
    with pytest.raises(PayloadTooLarge):
        parse_json(b"[1]" * 400, max_depth=64, max_bytes=1024)


def test_only_json_containers_look_like_json():
    assert looks_like_json(b'  {"model": "m"}') and looks_like_json(b"\n[1]")
    assert not looks_like_json(b"--boundary\r\nContent-Disposition: form-data; [[[[") and not looks_like_json(b"")
