"""The dispatcher: claims queued tasks, runs them through the pipeline, stores what comes back.

It holds no state that a task needs to finish: if this process dies, the leases of its tasks
expire and any dispatcher rescues them (see `db.queue`). It keeps at most `max_in_flight` tasks
running, so it only takes what the pipeline can absorb.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid

from db import queue
from db.engine import SessionFactory
from db.models import UNFINISHED, Primitive, SceneResult, TaskInput, TaskStatus
from db.types import utcnow
from db.queue import Claim
from deployments.contract import ImagePayload, ImageRejected, Pipeline, PipelineResult
from serve_app.metrics import task_metrics
from serve_app.settings import QueueSettings
from serve_app.task_log import TaskLog

log = logging.getLogger(__name__)

MAX_ERROR_BACKOFF_S = 5.0
MAX_REASON_CHARS = 300


def _first_line(exc: Exception) -> str:
    """What a task's owner is told: the first line of the error, never a traceback."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else "")[:MAX_REASON_CHARS]


class Dispatcher:
    def __init__(
        self, sessions: SessionFactory, pipeline: Pipeline, settings: QueueSettings, *, worker_id: str | None = None
    ) -> None:
        self._sessions = sessions
        self._pipeline = pipeline
        self._settings = settings
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._metrics = task_metrics()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name=f"dispatcher {self.worker_id}")

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop claiming, give running tasks `grace_s` to finish, then cancel the rest
        (their leases expire and another dispatcher picks them up)."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
        if self._in_flight:
            _, pending = await asyncio.wait(set(self._in_flight), timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def drain(self) -> None:
        """Run until no task is ready and none is running (for scripts and tests)."""
        while await self.dispatch_available() or self._in_flight:
            if self._in_flight:
                await asyncio.wait(set(self._in_flight), return_when=asyncio.FIRST_COMPLETED)

    async def rescue(self) -> queue.Rescued:
        """Put tasks whose worker was lost back in the queue, and report the queue's depth."""
        async with self._sessions() as session:
            rescued = await queue.rescue_expired(session)
            depth = await queue.unfinished_counts(session)
        if rescued.requeued or rescued.failed:
            log.warning("rescued expired leases: %d queued again, %d failed", rescued.requeued, rescued.failed)
        if rescued.failed:
            self._metrics.failed.inc(rescued.failed, tags={"reason": "lease_expired"})
        for status in UNFINISHED:
            self._metrics.queue_depth.set(depth.get(status, 0), tags={"status": status})
        return rescued

    async def dispatch_available(self) -> int:
        """Claim as many ready tasks as there are free slots and start them. Returns how many."""
        free = self._settings.max_in_flight - len(self._in_flight)
        if free <= 0 or self._stopping:
            return 0
        async with self._sessions() as session:
            claims = await queue.claim(session, worker_id=self.worker_id, limit=free, lease_s=self._settings.lease_s)
            inputs = await queue.load_inputs(session, [claim.task_id for claim in claims])
        for claim in claims:
            stored = inputs.get(claim.task_id)
            if stored is None:  # deleted since it was claimed
                continue
            task = asyncio.create_task(self._process(claim, stored), name=f"task {claim.task_id} attempt {claim.attempt}")
            self._in_flight.add(task)
            task.add_done_callback(self._on_done)
        return len(claims)

    def _on_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()  # a slot is free: look for more work
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("%s ended without recording an outcome (%r); its lease will expire", task.get_name(), exc)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_rescue = 0.0
        errors = 0
        while not self._stopping:
            self._wake.clear()  # cleared before claiming, so a wake-up during the claim is not lost
            try:
                if loop.time() >= next_rescue:
                    await self.rescue()
                    next_rescue = loop.time() + self._settings.rescue_interval_s
                await self.dispatch_available()
            except Exception as exc:  # e.g. the database is down: keep trying, quietly
                errors += 1
                if errors == 1:
                    log.warning("dispatcher cannot reach the database (%s); retrying", type(exc).__name__)
                await asyncio.sleep(min(MAX_ERROR_BACKOFF_S, self._settings.poll_interval_s * 2**errors))
                continue
            if errors:
                log.warning("dispatcher reconnected after %d failed rounds", errors)
                errors = 0
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._settings.poll_interval_s)
            except TimeoutError:
                pass

    async def _process(self, claim: Claim, stored: TaskInput) -> None:
        if claim.created_at is not None:
            self._metrics.queue_wait.observe(max(0.0, (utcnow() - claim.created_at).total_seconds()))
        worker = asyncio.current_task()
        assert worker is not None
        keeper = asyncio.create_task(self._keep_lease(claim, worker))
        try:
            await self._attempt(claim, stored)
        finally:
            keeper.cancel()

    async def _keep_lease(self, claim: Claim, worker: asyncio.Task[None]) -> None:
        """Extend the lease while the attempt runs; stop the attempt once the lease is lost
        (the task was deleted or rescued), since its result would be discarded anyway."""
        while True:
            await asyncio.sleep(self._settings.heartbeat_s)
            try:
                async with self._sessions() as session:
                    held = await queue.heartbeat(session, claim, lease_s=self._settings.lease_s)
            except Exception as exc:
                TaskLog(claim.task_id, claim.owner_id).warning("heartbeat failed (%s)", type(exc).__name__)
                continue
            if not held:
                worker.cancel()
                return

    async def _attempt(self, claim: Claim, stored: TaskInput) -> None:
        image = ImagePayload(data=stored.data, content_type=stored.content_type, width=stored.width, height=stored.height)
        task_log = TaskLog(claim.task_id, claim.owner_id)
        task_log.info("attempt %d started", claim.attempt)
        try:
            result = await self._pipeline(image)
        except ImageRejected as exc:
            task_log.info("attempt %d: image rejected (%s)", claim.attempt, _first_line(exc))
            await self._fail(claim, f"The image could not be processed: {_first_line(exc)}", retryable=False)
        except Exception as exc:
            task_log.warning("attempt %d failed: %r", claim.attempt, exc)
            await self._fail(claim, f"Attempt {claim.attempt} failed: {type(exc).__name__}: {_first_line(exc)}", retryable=True)
            self._metrics.attempt_failures.inc(tags={"error": type(exc).__name__})
        else:
            await self._store(claim, result)
            task_log.info("attempt %d succeeded", claim.attempt)

    async def _fail(self, claim: Claim, error: str, *, retryable: bool) -> None:
        async with self._sessions() as session:
            status = await queue.fail(session, claim, error=error, retryable=retryable, backoff_s=self._settings.retry_backoff_s)
        if status is TaskStatus.failed:
            self._metrics.failed.inc(tags={"reason": "attempts_exhausted" if retryable else "image_rejected"})

    async def _store(self, claim: Claim, result: PipelineResult) -> None:
        primitives = [Primitive(**p.model_dump()) for p in result.primitives]
        scene = SceneResult(
            class_id=result.scene.class_id,
            class_name=result.scene.class_name,
            confidence=result.scene.confidence,
            top_k=[score.model_dump() for score in result.scene.top_k],
            detector_model=result.models.detector,
            classifier_model=result.models.classifier,
        )
        async with self._sessions() as session:
            stored = await queue.finish(session, claim, primitives=primitives, scene=scene)
        if not stored:
            TaskLog(claim.task_id, claim.owner_id).info("attempt %d: late result discarded", claim.attempt)
            return
        self._metrics.succeeded.inc()
        if claim.created_at is not None:
            self._metrics.end_to_end.observe(max(0.0, (utcnow() - claim.created_at).total_seconds()))
