"""Prometheus metrics of the planner server, in a registry owned by the app (nothing global)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class PlannerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter("rsim_planner_decisions", "Decisions by chosen strategy", ["strategy"],
                                 registry=self.registry)
        self.latency = Histogram("rsim_planner_decision_seconds", "Decision latency (queue + forward)",
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30),
                                 registry=self.registry)
        self.batch_size = Histogram("rsim_planner_batch_size", "Items per forward pass",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=self.registry)
        self.forward = Histogram("rsim_planner_forward_seconds", "Forward pass time per batch",
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30), registry=self.registry)
        self.queue_depth = Gauge("rsim_planner_queue_depth", "Decisions waiting for a batch", registry=self.registry)
        self.rejected = Counter("rsim_planner_rejected", "Decisions refused because the queue was full",
                                registry=self.registry)
        self.requests = Counter("rsim_planner_requests", "Requests by endpoint and status", ["endpoint", "status"],
                                registry=self.registry)
        self._counted: dict[tuple[str, int], Counter] = {}

    def count(self, endpoint: str, status: int) -> None:
        """One answered request (the labelled child looked up once, not per request, as the service does)."""
        child = self._counted.get((endpoint, status))
        if child is None:
            child = self._counted[(endpoint, status)] = self.requests.labels(endpoint, str(status))
        child.inc()
