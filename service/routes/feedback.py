"""`POST /v1/feedback`: attach a label (reward or correct, and the right answer) to a recorded trace —
one of the caller's own requests, or any with an admin key (or when no keys are configured)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request

from service.errors import NotFound
from service.protocol import FeedbackRequest
from service.state import State, caller, json_body

router = APIRouter()
FeedbackBody = Annotated[FeedbackRequest, json_body(FeedbackRequest)]


@router.post("/v1/feedback")
async def feedback(req: FeedbackBody, request: Request, state: State) -> dict:
    if state.traces is None:
        raise NotFound("the trace store is disabled (RSIM_TRACES=false)")
    found = await state.traces.label(req.request_id, reward=req.reward, correct=req.correct, answer=req.answer,
                                     owner=state.labelled_by(caller(request)))
    if not found:  # another key's trace reads as no trace: the answer does not tell that it exists
        raise NotFound(f"no recorded trace has request id '{req.request_id}'", param="request_id")
    return {"status": "recorded", "request_id": req.request_id}
