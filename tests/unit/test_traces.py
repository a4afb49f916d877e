"""The trace store on a real SQLite file (issue 29): a label never stalls the event loop, a write the
database refuses is counted, retention bounds the file, shutdown applies every queued write, and a store
written before issue 29 is migrated. The one fault injected is real: a second connection holding the
database's write lock, as an operator's `sqlite3` shell or a stuck process would."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service.errors import RsimError
from service.metrics import ServiceMetrics
from service.protocol import SolveResponse, Timings, Usage
from service.traces import TraceStore, read_labelled


def result(rid: str) -> SolveResponse:
    return SolveResponse(id=rid, model="m", answer="42", text="t", steps=[], finish_reason="termination",
                         usage=Usage(), timings=Timings(), planner_version=None, catalog_version="c")


def rows(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT request_id FROM traces ORDER BY created")]
    finally:
        conn.close()


@contextlib.contextmanager
def write_locked(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holds the write lock while the block runs: the store's writer waits on it."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield conn
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def wait_until(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


async def test_a_label_on_a_full_queue_is_503_at_once_and_never_blocks_the_loop(tmp_path):
    """The old `label()` waited up to 5 s in `queue.put` on the event loop thread: every request stalled."""
    path = tmp_path / "t.db"
    store = TraceStore(path, queue_size=1)
    store.start()
    try:
        with write_locked(path):
            assert store.record("q", result("r0"))
            wait_until(lambda: store.ops.qsize() == 0)  # the writer took it, and waits on the lock
            assert store.record("q", result("r1"))  # the one slot: the queue is full
            gaps: list[float] = []

            async def tick() -> None:
                while True:
                    t = time.monotonic()
                    await asyncio.sleep(0.01)
                    gaps.append(time.monotonic() - t)

            ticker = asyncio.ensure_future(tick())
            await asyncio.sleep(0.05)
            t0 = time.monotonic()
            [outcome] = await asyncio.gather(store.label("r0", reward=1.0, correct=None, answer=None),
                                             return_exceptions=True)
            elapsed = time.monotonic() - t0
            await asyncio.sleep(0.05)
            ticker.cancel()
            assert max(gaps) < 0.5, f"the event loop stalled {max(gaps):.2f} s"
            assert elapsed < 0.5
            assert isinstance(outcome, RsimError), outcome
            assert outcome.status_code == 503 and outcome.headers == {"Retry-After": "1"}
            assert outcome.envelope()["error"]["code"] == "trace_store_unavailable"
    finally:
        store.close()
    assert rows(path) == ["r0", "r1"]  # the lock gone, both traces written


async def test_a_write_the_database_refuses_is_counted_by_kind(tmp_path):
    path = tmp_path / "t.db"
    metrics = ServiceMetrics()
    store = TraceStore(path, busy_timeout_s=0.05, on_failure=metrics.trace_write_failed)
    store.start()

    def failures(kind: str) -> float:
        return metrics.registry.get_sample_value("rsim_trace_write_failures_total", {"kind": kind})

    try:
        assert failures("trace") == failures("label") == 0.0
        with write_locked(path):  # "database is locked" past the busy timeout
            assert store.record("q", result("lost"))
            wait_until(lambda: failures("trace") == 1.0)
            with pytest.raises(RsimError) as refused:
                await store.label("lost", reward=1.0, correct=None, answer=None)
            assert refused.value.status_code == 503 and failures("label") == 1.0
        assert store.record("q", result("kept"))
    finally:
        store.close()
    assert rows(path) == ["kept"] and failures("trace") == 1.0


async def test_a_label_whose_caller_gave_up_leaves_the_writer_running(tmp_path):
    """The old writer called `set_result` on the future its cancelled caller had cancelled: the
    InvalidStateError ended the writer thread, and every later trace was queued for nobody."""
    path = tmp_path / "t.db"
    store = TraceStore(path, queue_size=100)
    store.start()
    store.record("q", result("r0"))
    try:
        with write_locked(path):
            with pytest.raises((TimeoutError, RsimError)):
                await asyncio.wait_for(store.label("r0", reward=1.0, correct=None, answer=None), 0.2)
        assert store.record("q", result("r1"))
        wait_until(lambda: rows(path) == ["r0", "r1"], timeout_s=8)
    finally:
        store.close(timeout_s=5)


def test_shutdown_applies_every_queued_write(tmp_path):
    path = tmp_path / "t.db"
    store = TraceStore(path)
    store.start()
    with write_locked(path):
        for i in range(200):
            assert store.record("q", result(f"r{i}"))
        assert store.ops.qsize() >= 199  # piled up behind the lock
    store.close()
    assert rows(path) == [f"r{i}" for i in range(200)]


def test_a_trace_after_shutdown_is_dropped_and_counted_not_queued_for_nobody(tmp_path):
    store = TraceStore(tmp_path / "t.db")
    store.start()
    store.close()
    assert store.record("q", result("late")) is False and store.dropped == 1


def age(path: Path, request_ids: list[str], days: float) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        marks = ",".join("?" * len(request_ids))
        conn.execute(f"UPDATE traces SET created = created - ? WHERE request_id IN ({marks})", (days * 86400, *request_ids))
    finally:
        conn.close()


def test_retention_prunes_old_traces_then_the_oldest_beyond_the_cap(tmp_path):
    path = tmp_path / "t.db"
    store = TraceStore(path)
    store.start()
    for i in range(5):
        store.record("q", result(f"r{i}"))
    store.close()
    age(path, ["r0", "r1"], days=40)
    store = TraceStore(path, retention_days=30, max_rows=2)
    store.start()  # a store reopened is pruned at once
    store.close()
    assert rows(path) == ["r3", "r4"]


def test_retention_prunes_a_running_store_periodically(tmp_path):
    path = tmp_path / "t.db"
    store = TraceStore(path, retention_days=1, prune_every_s=0.05)
    store.start()
    try:
        store.record("q", result("old"))
        store.record("q", result("new"))
        wait_until(lambda: rows(path) == ["old", "new"])
        age(path, ["old"], days=2)
        wait_until(lambda: rows(path) == ["new"])
    finally:
        store.close()


# the schema before issue 29: the client's request id was the primary key
V1_SCHEMA = """
CREATE TABLE traces (request_id TEXT PRIMARY KEY, created REAL NOT NULL, question TEXT NOT NULL, model TEXT NOT NULL,
    answer TEXT NOT NULL, text TEXT NOT NULL, steps TEXT NOT NULL, usage TEXT NOT NULL, finish_reason TEXT NOT NULL,
    degraded INTEGER NOT NULL, planner_version TEXT, catalog_version TEXT NOT NULL, reward REAL, correct INTEGER,
    reference_answer TEXT, labelled_at REAL);
CREATE INDEX traces_labelled ON traces (labelled_at);
"""


async def test_a_store_from_before_issue_29_is_migrated_and_its_traces_only_an_admin_labels(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    conn.execute("INSERT INTO traces VALUES ('old-1', ?, 'q', 'm', 'a', 't', '[]', '{}', 'termination', 0, NULL, 'c', "
                 "1.0, 1, '42', ?)", (time.time(), time.time()))
    conn.commit()
    conn.close()
    store = TraceStore(path)
    store.start()
    try:
        assert [t["request_id"] for t in read_labelled(path)] == ["old-1"]
        store.record("q", result("old-1"))  # the same request id again: a trace of its own
        assert not await store.label("old-1", reward=0.5, correct=None, answer=None, owner="f" * 64)
        assert await store.label("old-1", reward=0.5, correct=None, answer=None, owner=None)
    finally:
        store.close()
    conn = sqlite3.connect(path)
    got = conn.execute("SELECT request_id, owner, reward, length(trace_id) FROM traces ORDER BY created").fetchall()
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
    conn.close()
    assert got == [("old-1", None, 1.0, 32), ("old-1", None, 0.5, 32)]  # the latest of the two labelled
    assert indexes == {"traces_labelled", "traces_request", "traces_created"}
