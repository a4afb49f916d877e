"""The trace store: every finished request's trace (question, decisions with their distributions,
steps, answer, usage, versions) in SQLite (WAL), plus feedback labels for continual learning.

One writer thread owns the connection and applies operations in order from a bounded queue, so the
event loop never blocks on disk and a label always lands after the trace it labels. A full queue
drops the trace (counted), never the request (L1)."""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from service.protocol import SolveResponse

log = logging.getLogger("rsim.traces")

SCHEMA = """
CREATE TABLE IF NOT EXISTS traces (
    request_id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    question TEXT NOT NULL,
    model TEXT NOT NULL,
    answer TEXT NOT NULL,
    text TEXT NOT NULL,
    steps TEXT NOT NULL,            -- JSON: [{index, strategy, probability, probabilities, forced, injected, text, ...}]
    usage TEXT NOT NULL,            -- JSON
    finish_reason TEXT NOT NULL,
    degraded INTEGER NOT NULL,
    planner_version TEXT,
    catalog_version TEXT NOT NULL,
    reward REAL,
    correct INTEGER,
    reference_answer TEXT,
    labelled_at REAL
);
CREATE INDEX IF NOT EXISTS traces_labelled ON traces (labelled_at);
"""


class TraceStore:
    def __init__(self, path: str | Path, *, queue_size: int = 10_000):
        self.path = Path(path)
        self.ops: queue.Queue[tuple[Callable[[sqlite3.Connection], Any], Future | None] | None] = \
            queue.Queue(maxsize=queue_size)
        self.dropped = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="trace-store", daemon=True)
        self._thread.start()
        ready.result(timeout=30)

    def _run(self, ready: Future) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SCHEMA)
        except Exception as e:
            ready.set_exception(e)
            return
        ready.set_result(None)
        while (item := self.ops.get()) is not None:
            op, fut = item
            try:
                result = op(conn)
            except Exception as e:
                log.exception("trace store operation failed")
                if fut is not None:
                    fut.set_exception(e)
            else:
                if fut is not None:
                    fut.set_result(result)
        conn.close()

    def record(self, question: str, result: SolveResponse) -> bool:
        """Queue a finished request's trace; never blocks (False = dropped, queue full)."""
        row = (result.id, time.time(), question, result.model, result.answer, result.text,
               json.dumps([s.model_dump() for s in result.steps]), result.usage.model_dump_json(),
               result.finish_reason, int(result.degraded), result.planner_version, result.catalog_version)

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO traces (request_id, created, question, model, answer, text, steps, "
                         "usage, finish_reason, degraded, planner_version, catalog_version) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        try:
            self.ops.put_nowait((insert, None))
            return True
        except queue.Full:
            self.dropped += 1
            return False

    async def label(self, request_id: str, *, reward: float | None, correct: bool | None,
                    answer: str | None) -> bool:
        """Attach feedback to a recorded trace; False if no trace has this id."""
        def update(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("UPDATE traces SET reward = ?, correct = ?, reference_answer = ?, labelled_at = ? "
                               "WHERE request_id = ?",
                               (reward, None if correct is None else int(correct), answer, time.time(), request_id))
            return cur.rowcount == 1
        fut: Future[bool] = Future()
        try:
            self.ops.put((update, fut), timeout=5)
        except queue.Full:
            return False
        return await asyncio.wait_for(asyncio.wrap_future(fut), 30)

    def close(self) -> None:
        if self._thread is not None:
            self.ops.put(None)
            self._thread.join(timeout=30)
            self._thread = None


def read_labelled(path: str | Path) -> list[dict[str, Any]]:
    """Labelled traces for continual learning (read-only; safe while the service writes)."""
    conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT * FROM traces WHERE labelled_at IS NOT NULL ORDER BY created").fetchall()
    finally:
        conn.close()
    out = []
    for r in rows:
        d = dict(r)
        d["steps"] = json.loads(d["steps"])
        d["usage"] = json.loads(d["usage"])
        out.append(d)
    return out
