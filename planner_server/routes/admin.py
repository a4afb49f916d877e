"""`POST /admin/reload` (bearer admin token): load a checkpoint in the background and swap it in."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header
from pydantic import BaseModel, ConfigDict

from planner_server.reload import reload_backend
from planner_server.state import State
from service.errors import NotFound, Unauthorized

router = APIRouter()


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpoint: str | None = None  # a checkpoint folder or a folder with `latest`; default: the configured one


def check_admin(state, authorization: str | None) -> None:
    token = state.settings.admin_token
    if token is None:
        raise NotFound("admin endpoints are disabled (set RSIM_PLANNER_ADMIN_TOKEN)")
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise Unauthorized("invalid admin token")


@router.post("/admin/reload")
async def reload(state: State, req: ReloadRequest | None = None,
                 authorization: Annotated[str | None, Header()] = None) -> dict:
    check_admin(state, authorization)
    old = state.backend.version if state.backend else None
    version = await reload_backend(state, Path(req.checkpoint) if req and req.checkpoint else None)
    return {"status": "reloaded", "previous_version": old, "planner_version": version}
