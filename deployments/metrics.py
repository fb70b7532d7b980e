"""What model replicas report to Prometheus, with Ray Serve's metrics API (exported beside Serve's
own metrics; outside a Ray worker the calls record nothing)."""

from __future__ import annotations

from ray.serve.metrics import Histogram

BATCH_BOUNDARIES = [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0]


class BatchMetrics:
    """What a model replica reports about the batches it was given."""

    def __init__(self, model: str) -> None:
        self._tags = {"model": model}
        self._size = Histogram("primscene_batch_size", "Images per model call, by model.", BATCH_BOUNDARIES, tag_keys=("model",))

    def observe(self, size: int) -> None:
        self._size.observe(size, tags=self._tags)
