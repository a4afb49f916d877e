import pytest

from planner_server.backends.prompted import UNSEEN_LOGIT, logits_from_text, logits_from_top_logprobs
from service.errors import UpstreamError

LABELS = [str(i) for i in range(1, 10)]


def test_top_logprobs_give_the_distribution():
    top = [{"token": " 3", "logprob": -0.1}, {"token": "x", "logprob": -1.0}, {"token": "7", "logprob": -2.5},
           {"token": "3", "logprob": -3.0}]
    logits = logits_from_top_logprobs(top, LABELS)
    assert logits[2] == -0.1 and logits[6] == -2.5  # the first (best) entry per label wins
    assert logits[0] == UNSEEN_LOGIT
    assert logits_from_top_logprobs([{"token": "hello", "logprob": -0.1}], LABELS) is None


def test_text_is_parsed_when_no_logprobs():
    assert logits_from_text("I choose 4.", LABELS).index(0.0) == 3
    assert logits_from_text("**7**", LABELS).index(0.0) == 6
    with pytest.raises(UpstreamError, match="no strategy number"):
        logits_from_text("no idea", LABELS)
