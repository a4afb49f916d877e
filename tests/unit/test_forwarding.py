"""What the forwarding fast path refuses: dot segments (plain or percent-encoded) in a forwarded path, an
rsim/ model on a path other than chat; what it forwards: every other /v1 path but rsim's own."""

from functools import partial

import pytest

from service.body import NestedTooDeep, parse_json
from service.routes.passthrough import clean_path, forwarded, model_of, names_rsim_model

parse = partial(parse_json, max_depth=64, max_bytes=1 << 20)


def test_dot_segments_are_refused_plain_or_encoded():
    assert clean_path("/v1/completions") and clean_path("/v1/files/file-1.jsonl")
    for bad in ("/v1/../metrics", "/v1/./completions", "/v1/%2e%2e/admin/reload", "/v1/models/%2E%2E"):
        assert not clean_path(bad), bad


def test_which_paths_and_models_are_forwarded():
    assert forwarded("/v1/completions") and forwarded("/v1/embeddings") and forwarded("/v1/responses")
    for own in ("/v1/chat/completions", "/v1/models", "/v1/models/x", "/v1/feedback", "/v1/strategies", "/solve"):
        assert not forwarded(own), own
    assert names_rsim_model(model_of(b'{"model": "rsim/m", "prompt": "x"}', parse))
    assert not names_rsim_model(model_of(b'{"model": "m"}', parse))
    assert not names_rsim_model(model_of(b"--multipart-- [[[[" + b"[" * 2000, parse))  # never parsed
    assert model_of(b"[1, 2]", parse) is None and model_of(b'{"model": 3}', parse) is None
    assert model_of(b"{not json", parse) is None  # forwarded as it came
    with pytest.raises(NestedTooDeep):  # issue 29: was a RecursionError (500)
        model_of(b'{"model": "m", "x": ' + b"[" * 2000 + b"]" * 2000 + b"}", parse)
