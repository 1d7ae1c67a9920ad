"""The service's Prometheus metrics: requests, latency, jobs, the queue, frames through a model."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Prometheus metrics of one app (its own registry, so tests can build several apps)."""

    def __init__(self, manager_depth, running):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("vidrec_requests", "HTTP requests", ["route", "method", "status"], registry=r)
        self.latency = Histogram(
            "vidrec_request_seconds", "time to the response's start", ["route"], registry=r,
            buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )  # fmt: skip
        self.jobs = Counter("vidrec_jobs", "jobs finished", ["kind", "status"], registry=r)
        self.rejected = Counter("vidrec_rejected", "requests refused with 503 (queue full)", registry=r)
        self.frames = Counter("vidrec_frames", "video frames through a model", registry=r)
        Gauge("vidrec_queue_depth", "jobs waiting for a worker", registry=r).set_function(manager_depth)
        Gauge("vidrec_jobs_running", "jobs being worked on", registry=r).set_function(running)
        self.fps = Gauge("vidrec_frames_per_second", "frames through a model, last 10 s", registry=r)
        self.recent: list[tuple[float, int]] = []

    def count_frames(self, n: int) -> None:
        """`n` more frames through a model (the counter, and the rate over the last 10 s)."""
        if n <= 0:
            return
        self.frames.inc(n)
        now = time.monotonic()
        self.recent = [(t, k) for t, k in self.recent if t > now - 10] + [(now, n)]
        self.fps.set(sum(k for _, k in self.recent) / 10)


__all__ = ["Metrics"]
