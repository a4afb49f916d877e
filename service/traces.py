"""The trace store: every finished request's trace (question, decisions with their distributions,
steps, answer, usage, versions) in SQLite (WAL), plus feedback labels for continual learning.

One writer thread owns the connection and applies operations in order from a bounded queue, so the
event loop never blocks on disk and a label always lands after the trace it labels. A full queue
drops the trace (counted), never the request; a write the disk refuses is counted by kind (L1)."""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from service.errors import TraceStoreUnavailable
from service.protocol import SolveResponse

log = logging.getLogger("rsim.traces")

WriteKind = Literal["trace", "label", "prune"]

# a trace is keyed by the server's own id: the request id is the client's (its X-Request-Id, echoed), so
# two requests may share one and neither may replace the other's trace
TABLE = """
CREATE TABLE traces (
    trace_id TEXT PRIMARY KEY,      -- made by the store, unique
    request_id TEXT NOT NULL,       -- the request's id as the client knows it (X-Request-Id, or the one made)
    owner TEXT,                     -- SHA-256 of the API key that made the request (NULL: no keys configured)
    created REAL NOT NULL,
    question TEXT NOT NULL,
    model TEXT NOT NULL,
    answer TEXT NOT NULL,
    text TEXT NOT NULL,
    steps TEXT NOT NULL,            -- JSON: [{index, strategy, probability, probabilities, forced, injected, ...}]
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
"""
INDEXES = """
CREATE INDEX IF NOT EXISTS traces_labelled ON traces (labelled_at);
CREATE INDEX IF NOT EXISTS traces_request ON traces (request_id, created);
CREATE INDEX IF NOT EXISTS traces_created ON traces (created);
"""
# the columns a store written before issue 29 has (request_id its primary key): kept when it is migrated
V1_COLUMNS = ("request_id, created, question, model, answer, text, steps, usage, finish_reason, degraded, "
              "planner_version, catalog_version, reward, correct, reference_answer, labelled_at")


def open_store(path: Path, *, busy_timeout_s: float) -> sqlite3.Connection:
    """The store's connection, its schema current: a pre-issue-29 table (keyed by the client's request id)
    is rebuilt with a trace id per row and no owner (only an admin key may label those)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    columns = {row[1] for row in conn.execute("PRAGMA table_info(traces)")}
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not columns:
            conn.execute(TABLE)
        elif "trace_id" not in columns:
            conn.execute("ALTER TABLE traces RENAME TO traces_v1")
            conn.execute("DROP INDEX IF EXISTS traces_labelled")  # it went with the renamed table
            conn.execute(TABLE)
            conn.execute(f"INSERT INTO traces (trace_id, {V1_COLUMNS}) "
                         f"SELECT lower(hex(randomblob(16))), {V1_COLUMNS} FROM traces_v1")
            conn.execute("DROP TABLE traces_v1")
        for statement in filter(str.strip, INDEXES.split(";")):
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        conn.close()
        raise
    return conn


@dataclass(frozen=True)
class Op:
    """One write for the writer thread; `done` (labels only) carries its result back."""

    kind: WriteKind
    apply: Callable[[sqlite3.Connection], Any]
    done: Future | None = None


class TraceStore:
    """`retention_days` and `max_rows` (0: no bound) are enforced by the writer at start and then every
    `prune_every_s`. `on_failure(kind)` is told of every write that failed (the service counts them)."""

    def __init__(self, path: str | Path, *, queue_size: int = 10_000, retention_days: float = 0,
                 max_rows: int = 0, prune_every_s: float = 60.0, busy_timeout_s: float = 5.0,
                 on_failure: Callable[[WriteKind], None] | None = None):
        self.path = Path(path)
        self.ops: queue.Queue[Op | None] = queue.Queue(maxsize=queue_size)
        self.retention_days, self.max_rows, self.prune_every_s = retention_days, max_rows, prune_every_s
        self.busy_timeout_s = busy_timeout_s
        self.on_failure = on_failure
        self.dropped = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self._closing = threading.Lock()  # no write is queued behind the writer's stop sign

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="trace-store", daemon=True)
        self._thread.start()
        ready.result(timeout=30)

    def _run(self, ready: Future) -> None:
        try:
            conn = open_store(self.path, busy_timeout_s=self.busy_timeout_s)
        except Exception as e:
            ready.set_exception(e)
            return
        ready.set_result(None)
        next_prune = time.monotonic()  # at once: a store reopened after a while may hold expired traces
        while True:
            if time.monotonic() >= next_prune:
                self._apply(conn, Op("prune", self._prune))
                next_prune = time.monotonic() + self.prune_every_s
            try:
                item = self.ops.get(timeout=max(0.0, next_prune - time.monotonic()))
            except queue.Empty:
                continue
            if item is None:  # the stop sign: every write queued before it has been applied
                break
            self._apply(conn, item)
        conn.close()

    def _apply(self, conn: sqlite3.Connection, op: Op) -> None:
        if op.done is not None and not op.done.set_running_or_notify_cancel():
            return  # its caller gave up waiting (and answered 503): it will send the label again
        try:
            result = op.apply(conn)
        except Exception as e:  # disk full, database locked past the busy timeout, a damaged file, ...
            log.error("trace store %s write failed: %s", op.kind, e)
            if self.on_failure is not None:
                self.on_failure(op.kind)
            if op.done is not None:
                op.done.set_exception(e)
        else:
            if op.done is not None:
                op.done.set_result(result)

    def _prune(self, conn: sqlite3.Connection) -> int:
        """Delete traces past the retention age, then the oldest beyond `max_rows`; the number deleted."""
        deleted = 0
        if self.retention_days > 0:
            cutoff = time.time() - self.retention_days * 86400
            deleted += conn.execute("DELETE FROM traces WHERE created < ?", (cutoff,)).rowcount
        if self.max_rows > 0:
            deleted += conn.execute("DELETE FROM traces WHERE trace_id IN (SELECT trace_id FROM traces "
                                    "ORDER BY created DESC LIMIT -1 OFFSET ?)", (self.max_rows,)).rowcount
        if deleted:
            log.info("trace store: %d traces past retention deleted", deleted)
        return deleted

    def _put(self, op: Op) -> bool:
        with self._closing:
            if self._closed:
                return False
            try:
                self.ops.put_nowait(op)
            except queue.Full:
                return False
            return True

    def record(self, question: str, result: SolveResponse, *, owner: str | None = None) -> bool:
        """Queue a finished request's trace under a new trace id; never blocks (False = dropped: the queue
        is full, or the store is closing). `owner`: the SHA-256 of the caller's API key."""
        row = (uuid.uuid4().hex, result.id, owner, time.time(), question, result.model, result.answer, result.text,
               json.dumps([s.model_dump() for s in result.steps]), result.usage.model_dump_json(),
               result.finish_reason, int(result.degraded), result.planner_version, result.catalog_version)

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO traces (trace_id, request_id, owner, created, question, model, answer, text, "
                         "steps, usage, finish_reason, degraded, planner_version, catalog_version) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        if self._put(Op("trace", insert)):
            return True
        self.dropped += 1
        return False

    async def label(self, request_id: str, *, reward: float | None, correct: bool | None,
                    answer: str | None, owner: str | None = None, timeout_s: float = 30.0) -> bool:
        """Attach feedback to the latest trace with this request id — of `owner`'s only, unless `owner` is
        None (any trace). False if there is none. Never blocks the event loop: a label that cannot be queued
        at once is a `TraceStoreUnavailable` (503, Retry-After) rather than a wait — the client holds the label
        and may send it again, where a wait would stall every request on this loop, and buffering it past the
        queue's bound would be memory no one bounds. One the disk refused, or not applied in `timeout_s`,
        is the same error."""
        def update(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE traces SET reward = ?, correct = ?, reference_answer = ?, labelled_at = ? WHERE trace_id = "
                "(SELECT trace_id FROM traces WHERE request_id = ? AND (? IS NULL OR owner = ?) "
                "ORDER BY created DESC LIMIT 1)",
                (reward, None if correct is None else int(correct), answer, time.time(), request_id, owner, owner))
            return cur.rowcount == 1
        done: Future[bool] = Future()
        if not self._put(Op("label", update, done)):
            raise TraceStoreUnavailable("the trace store is busy (its write queue is full): send the label again")
        try:
            return await asyncio.wait_for(asyncio.wrap_future(done), timeout_s)
        except TimeoutError:
            raise TraceStoreUnavailable("the trace store did not apply the label in time: send it again") from None
        except sqlite3.Error:
            raise TraceStoreUnavailable("the trace store could not write the label: send it again") from None

    def close(self, timeout_s: float = 30.0) -> None:
        """Take no more writes, apply every queued one, close the file (blocking: run it off the loop).
        Writes still queued after `timeout_s` are lost, and logged as such."""
        if self._thread is None:
            return
        with self._closing:
            self._closed = True
        deadline = time.monotonic() + timeout_s
        try:
            self.ops.put(None, timeout=timeout_s)
        except queue.Full:
            pass
        self._thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            log.error("trace store: %d queued writes not applied in %.0f s at shutdown", self.ops.qsize(), timeout_s)
        self._thread = None


def read_labelled(path: str | Path) -> list[dict[str, Any]]:
    """Labelled traces for continual learning (read-only; safe while the service writes), without their
    owner: a training run needs no key's fingerprint."""
    conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT * FROM traces WHERE labelled_at IS NOT NULL ORDER BY created").fetchall()
    finally:
        conn.close()
    out = []
    for r in rows:
        d = dict(r)
        d.pop("owner", None)
        d["steps"] = json.loads(d["steps"])
        d["usage"] = json.loads(d["usage"])
        out.append(d)
    return out
