"""`POST /admin/reload` (bearer admin token): load a checkpoint in the background and swap it in."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header
from pydantic import BaseModel, ConfigDict

from planner_server.reload import reload_backend
from planner_server.state import State
from service.errors import InvalidRequest, NotFound, Unauthorized

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


def allowed_checkpoint(state, checkpoint: str) -> Path:
    """A checkpoint named in the body must lie under the configured checkpoint folder (links resolved):
    the admin token reloads the operator's checkpoints, never an arbitrary path."""
    root = state.settings.checkpoint_root
    if root is None:
        raise InvalidRequest("no checkpoint folder is configured (RSIM_PLANNER_CHECKPOINT or "
                             "RSIM_PLANNER_CHECKPOINT_ROOT): reload takes no path", param="checkpoint",
                             code="checkpoint_outside")
    path, base = Path(checkpoint).resolve(), Path(root).resolve()
    if not path.is_relative_to(base):
        raise InvalidRequest(f"checkpoint must be under the configured folder {base}", param="checkpoint",
                             code="checkpoint_outside")
    return path


@router.post("/admin/reload")
async def reload(state: State, req: ReloadRequest | None = None,
                 authorization: Annotated[str | None, Header()] = None) -> dict:
    check_admin(state, authorization)
    old = state.backend.version if state.backend else None
    version = await reload_backend(state, allowed_checkpoint(state, req.checkpoint) if req and req.checkpoint else None)
    return {"status": "reloaded", "previous_version": old, "planner_version": version}
