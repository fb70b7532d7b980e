"""Primscene's Prometheus metrics, made with Ray Serve's metrics API so that they are exported
next to Serve's own (every Ray node's metrics endpoint; names get Ray's `ray_` prefix).

Outside a Ray worker (tests of the plain app, scripts) the same calls record nothing."""

from __future__ import annotations

from ray.serve.metrics import Counter, Gauge, Histogram

# Seconds, from a fast model call to a task that waited behind a long queue.
LATENCY_BOUNDARIES = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]


class TaskMetrics:
    """What the ingress (API and dispatcher) reports about tasks."""

    def __init__(self) -> None:
        self.created = Counter("primscene_tasks_created", "Tasks accepted (202).")
        self.succeeded = Counter("primscene_tasks_succeeded", "Tasks finished with a result.")
        self.failed = Counter(
            "primscene_tasks_failed",
            "Tasks failed for good, by reason: image_rejected, attempts_exhausted, lease_expired.",
            tag_keys=("reason",),
        )
        self.attempt_failures = Counter(
            "primscene_attempt_failures", "Attempts that failed and were retried, by error type.", tag_keys=("error",)
        )
        self.queue_depth = Gauge("primscene_queue_depth", "Unfinished tasks in the whole service, by status.", tag_keys=("status",))
        self.queue_wait = Histogram(
            "primscene_queue_wait_seconds", "From accepted to claimed by a dispatcher (this attempt).", LATENCY_BOUNDARIES
        )
        self.stage = Histogram(
            "primscene_stage_seconds", "Time of one model call as the dispatcher sees it, by stage: detection, classification.",
            LATENCY_BOUNDARIES, tag_keys=("stage",),
        )
        self.end_to_end = Histogram(
            "primscene_task_seconds", "From accepted to the result stored, for tasks that succeeded.", LATENCY_BOUNDARIES
        )


_task_metrics: TaskMetrics | None = None


def task_metrics() -> TaskMetrics:
    """One set per process: Ray refuses to register a metric name twice with other settings."""
    global _task_metrics
    if _task_metrics is None:
        _task_metrics = TaskMetrics()
    return _task_metrics
