"""Prometheus metrics of the service, in a registry owned by the app (nothing global)."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from service.protocol import SolveResponse

_LATENCY = (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class ServiceMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("rsim_requests", "Requests by endpoint and status", ["endpoint", "status"], registry=r)
        self._counted: dict[tuple[str, int], Counter] = {}
        self.upstream_requests = Counter("rsim_upstream_requests", "Forwarded requests by upstream and status",
                                         ["upstream", "status"], registry=r)
        self.upstream_up = Gauge("rsim_upstream_up", "1 if the upstream listed its models at the last readiness "
                                 "check", ["upstream"], registry=r)
        self.steps = Counter("rsim_steps", "Reasoning steps by strategy", ["strategy"], registry=r)
        self.tokens = Counter("rsim_tokens", "Reasoner tokens", ["kind"], registry=r)
        self.latency = Histogram("rsim_request_seconds", "End-to-end latency of strategy-injected requests",
                                 buckets=_LATENCY, registry=r)
        self.planner_latency = Histogram("rsim_planner_seconds", "Time waiting on the planner per request",
                                         buckets=_LATENCY, registry=r)
        self.reasoner_latency = Histogram("rsim_reasoner_seconds", "Time waiting on the reasoner per request",
                                          buckets=_LATENCY, registry=r)
        self.overhead = Histogram("rsim_overhead_seconds", "Own time per request (total − planner − reasoner)",
                                  buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1), registry=r)
        self.steps_per_request = Histogram("rsim_steps_per_request", "Steps per request",
                                           buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64), registry=r)
        self.degraded = Counter("rsim_degraded", "Requests answered without the planner", registry=r)
        self.gate = Counter("rsim_gate_decisions", "Planned steps by what the gate did: open, fired, closed, shadow, "
                            "late (no decision in time: a quiet step)", ["gate"], registry=r)
        self.late = Counter("rsim_planner_late", "Planner decisions that did not come in time (quiet steps)",
                            registry=r)
        # read at scrape time (on the loop, or from RSIM_METRICS_PORT's thread): a number that only grows is a
        # leaked task. The loop is the one these metrics were made on (the service's lifespan)
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        Gauge("rsim_event_loop_tasks", "Tasks alive on the service's event loop", registry=r).set_function(
            lambda: len(asyncio.all_tasks(loop)) if loop is not None else 0)
        self.traces_dropped = Counter("rsim_traces_dropped", "Traces not recorded: the store's queue was full",
                                      registry=r)
        self.trace_write_failures = Counter(
            "rsim_trace_write_failures", "Trace store writes the database refused (disk full, locked past the "
            "busy timeout, a damaged file), by kind: trace, label, prune", ["kind"], registry=r)
        for kind in ("trace", "label", "prune"):
            self.trace_write_failures.labels(kind)  # exported at 0 from the start

    def trace_write_failed(self, kind: str) -> None:
        """Called from the trace store's writer thread (prometheus counters are thread-safe)."""
        self.trace_write_failures.labels(kind).inc()

    def count_upstream(self, upstream: str, status: int) -> None:
        child = self._counted.get((f"upstream:{upstream}", status))
        if child is None:
            child = self._counted[(f"upstream:{upstream}", status)] = self.upstream_requests.labels(upstream, str(status))
        child.inc()

    def count(self, endpoint: str, status: int) -> None:
        """One answered request in `rsim_requests` (the labelled child is looked up once, not per request)."""
        child = self._counted.get((endpoint, status))
        if child is None:
            child = self._counted[(endpoint, status)] = self.requests.labels(endpoint, str(status))
        child.inc()

    def observe(self, result: SolveResponse) -> None:
        for step in result.steps:
            self.steps.labels(step.strategy).inc()
            if step.gate is not None:
                self.gate.labels(step.gate).inc()
                if step.gate == "late":
                    self.late.inc()
        self.tokens.labels("prompt").inc(result.usage.prompt_tokens)
        self.tokens.labels("completion").inc(result.usage.completion_tokens)
        t = result.timings
        self.latency.observe(t.total_ms / 1000)
        self.planner_latency.observe(t.planner_ms / 1000)
        self.reasoner_latency.observe(t.reasoner_ms / 1000)
        self.overhead.observe(t.overhead_ms / 1000)
        self.steps_per_request.observe(len(result.steps))
        if result.degraded:
            self.degraded.inc()
