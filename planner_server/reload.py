"""Hot reload: build a new backend off the event loop, swap it in atomically between batches, close
the old one once its last batch is done. A failed or refused load leaves the old model serving."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from planner_server.backends import start_backend
from planner_server.checkpoint import CheckpointError, resolve_planner
from planner_server.state import PlannerState
from service.errors import InvalidRequest, NotReady

log = logging.getLogger("rsim.planner.reload")


async def reload_backend(state: PlannerState, checkpoint: Path | None = None) -> str:
    """Load `checkpoint` (default: the configured one, e.g. its `latest` pointer) and swap it in.
    Returns the new planner_version."""
    if state.backend is None:
        raise NotReady("planner is still loading its first model")
    settings = state.settings.model_copy(update={"checkpoint": checkpoint or state.settings.checkpoint})
    try:
        resolve_planner(settings.model, settings.checkpoint, state.catalog)  # refuse before loading anything
    except CheckpointError as e:
        raise InvalidRequest(str(e), param="checkpoint", code="checkpoint_refused") from None
    async with state.reload_lock:
        new = await start_backend(settings, state.catalog)
        old, state.backend = state.backend, new  # batches from now on use the new model
        state.settings = settings
        if state.batcher is not None:
            await state.batcher.wait_idle()  # the batch in flight on the old model finishes first
        if old is not None:
            await old.close()
    log.info("planner reloaded: %s", new.version)
    return new.version


def pointer_of(state: PlannerState) -> str | None:
    ckpt = state.settings.checkpoint
    if ckpt is None or not (Path(ckpt) / "latest").is_file():
        return None
    return (Path(ckpt) / "latest").read_text().strip()


async def watch_latest(state: PlannerState, interval_s: float) -> None:
    """Reload whenever the checkpoint folder's `latest` pointer changes."""
    seen = pointer_of(state)
    while True:
        await asyncio.sleep(interval_s)
        current = pointer_of(state)
        if current and current != seen and state.backend is not None:
            with contextlib.suppress(Exception):
                log.info("checkpoint pointer moved to %s: reloading", current)
                await reload_backend(state)
            seen = current
