"""The dispatcher: claims queued tasks a batch at a time, runs each batch through the pipeline
in one call, and stores the batch's results in one transaction.

It holds no state that a task needs to finish: if this process dies, the leases of its tasks
expire and any dispatcher rescues them (see `db.queue`). It keeps at most `max_in_flight` tasks
running, in batches of at most `batch_size`, so it only takes what the models can absorb.
All leases it holds are extended by one statement per heartbeat.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field

from db import queue
from db.direct import DirectStatements
from db.engine import SessionFactory
from db.models import UNFINISHED, TaskStatus
from db.queue import Claim, Outcome, StoredImage
from db.types import utcnow
from deployments.contract import BatchPipeline, ImagePayload, ImageRejected, PipelineResult
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


@dataclass(eq=False)
class _Batch:
    """Claimed tasks that go through the models together. `held` shrinks when a heartbeat finds
    an attempt gone (deleted or rescued); once it is empty the work is cancelled."""

    claims: list[Claim]
    inputs: list[StoredImage]
    held: set[uuid.UUID] = field(default_factory=set)
    task: asyncio.Task[None] | None = None


class Dispatcher:
    def __init__(
        self, sessions: SessionFactory, pipeline: BatchPipeline, settings: QueueSettings, *, worker_id: str | None = None,
        direct: DirectStatements | None = None,
    ) -> None:
        """With `direct` (PostgreSQL), a batch's claim and finish are one statement each (db/direct.py)."""
        self._sessions = sessions
        self._direct = direct
        self._pipeline = pipeline
        self._settings = settings
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._batches: set[_Batch] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._metrics = task_metrics()

    @property
    def in_flight(self) -> int:
        """Tasks claimed and not yet recorded."""
        return sum(len(batch.claims) for batch in self._batches)

    @property
    def running(self) -> bool:
        """The claiming loop is alive (for health checks)."""
        return self._loop_task is not None and not self._loop_task.done()

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name=f"dispatcher {self.worker_id}")
        self._heartbeat_task = asyncio.create_task(self._keep_leases(), name=f"heartbeat {self.worker_id}")

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop claiming, give running batches `grace_s` to finish, then cancel the rest
        (their leases expire and another dispatcher picks them up)."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
        running = {batch.task for batch in self._batches if batch.task is not None}
        if running:
            _, pending = await asyncio.wait(running, timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            await asyncio.gather(self._heartbeat_task, return_exceptions=True)

    async def drain(self) -> None:
        """Run until no task is ready and none is running (for scripts and tests)."""
        while await self.dispatch_available() or self._batches:
            running = {batch.task for batch in self._batches if batch.task is not None}
            if running:
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)

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

    def _batch_room(self) -> int:
        """How many tasks the next claim may take: a whole batch, or nothing while a whole batch
        does not fit (so that batches stay full under load). With nothing in flight, any room."""
        free = self._settings.max_in_flight - self.in_flight
        size = min(self._settings.batch_size, self._settings.max_in_flight)
        return min(free, size) if free >= size or not self._batches else 0

    async def dispatch_available(self) -> int:
        """Claim batches while there is room and work, and start them. Returns how many tasks."""
        started = 0
        while not self._stopping and (room := self._batch_room()) > 0:
            claims, inputs = await self._claim(room)
            present = [(claim, inputs[claim.task_id]) for claim in claims if claim.task_id in inputs]  # deleted since
            if present:
                batch = _Batch(claims=[c for c, _ in present], inputs=[i for _, i in present], held={c.task_id for c, _ in present})
                batch.task = asyncio.create_task(self._process(batch), name=f"batch of {len(present)}")
                self._batches.add(batch)
                batch.task.add_done_callback(functools.partial(self._on_done, batch))
            started += len(claims)
            if len(claims) < room:
                break
        return started

    async def _claim(self, room: int) -> tuple[list[Claim], dict[uuid.UUID, StoredImage]]:
        """Up to `room` claims, and the images of those whose task still has one."""
        lease_s = self._settings.lease_s
        if self._direct is not None:
            return await self._direct.claim(worker_id=self.worker_id, limit=room, lease_s=lease_s)
        async with self._sessions() as session:
            claims = await queue.claim(session, worker_id=self.worker_id, limit=room, lease_s=lease_s)
            return claims, await queue.load_inputs(session, [claim.task_id for claim in claims])

    def _on_done(self, batch: _Batch, task: asyncio.Task[None]) -> None:
        self._batches.discard(batch)
        self._wake.set()  # room is free: look for more work
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("%s ended without recording its outcomes (%r); their leases will expire", task.get_name(), exc)

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
            if self._batches and not self._stopping:
                # Models are busy with a batch anyway: let arrivals gather into a fuller one.
                await asyncio.sleep(self._settings.batch_wait_s)

    async def _keep_leases(self) -> None:
        """Extend every held lease in one statement per heartbeat; cancel a batch once none of
        its attempts is ours any more (deleted or rescued), since its results would be discarded."""
        while True:
            await asyncio.sleep(self._settings.heartbeat_s)
            batches = list(self._batches)
            claims = [claim for batch in batches for claim in batch.claims if claim.task_id in batch.held]
            if not claims:
                continue
            try:
                async with self._sessions() as session:
                    held = await queue.heartbeat_many(session, claims, lease_s=self._settings.lease_s)
            except Exception as exc:
                log.warning("heartbeat of %d tasks failed (%s)", len(claims), type(exc).__name__)
                continue
            for batch in batches:
                for claim in batch.claims:
                    if claim.task_id in batch.held and claim.task_id not in held:
                        TaskLog(claim.task_id, claim.owner_id).info("attempt %d: lease lost (deleted or rescued)", claim.attempt)
                batch.held &= held
                if not batch.held and batch.task is not None:
                    batch.task.cancel()

    async def _process(self, batch: _Batch) -> None:
        now = utcnow()
        for claim in batch.claims:
            if claim.created_at is not None:
                self._metrics.queue_wait.observe(max(0.0, (now - claim.created_at).total_seconds()))
            TaskLog(claim.task_id, claim.owner_id).info("attempt %d started", claim.attempt)
        images = [ImagePayload(data=i.data, content_type=i.content_type, width=i.width, height=i.height) for i in batch.inputs]
        try:
            outcomes: list[PipelineResult | Exception] = await self._pipeline.run_batch(images)
        except Exception as exc:  # the whole call failed: every attempt in it failed
            outcomes = [exc] * len(images)
        await self._record(batch.claims, outcomes)

    async def _record(self, claims: list[Claim], outcomes: list[PipelineResult | Exception]) -> None:
        results = [Outcome(claim, *_rows(result)) for claim, result in zip(claims, outcomes) if isinstance(result, PipelineResult)]
        if results:
            if self._direct is not None:
                stored = await self._direct.finish_many(results)
            else:
                async with self._sessions() as session:
                    stored = await queue.finish_many(session, results)
            self._succeeded([o.claim for o in results], stored)
        for claim, outcome in zip(claims, outcomes):
            if isinstance(outcome, Exception):
                await self._fail(claim, outcome)

    def _succeeded(self, claims: list[Claim], stored: set[uuid.UUID]) -> None:
        now = utcnow()
        for claim in claims:
            task_log = TaskLog(claim.task_id, claim.owner_id)
            if claim.task_id not in stored:
                task_log.info("attempt %d: late result discarded", claim.attempt)
                continue
            task_log.info("attempt %d succeeded", claim.attempt)
            self._metrics.succeeded.inc()
            if claim.created_at is not None:
                self._metrics.end_to_end.observe(max(0.0, (now - claim.created_at).total_seconds()))

    async def _fail(self, claim: Claim, exc: Exception) -> None:
        task_log = TaskLog(claim.task_id, claim.owner_id)
        if isinstance(exc, ImageRejected):
            task_log.info("attempt %d: image rejected (%s)", claim.attempt, _first_line(exc))
            error, retryable = f"The image could not be processed: {_first_line(exc)}", False
        else:
            task_log.warning("attempt %d failed: %r", claim.attempt, exc)
            error, retryable = f"Attempt {claim.attempt} failed: {type(exc).__name__}: {_first_line(exc)}", True
            self._metrics.attempt_failures.inc(tags={"error": type(exc).__name__})
        async with self._sessions() as session:
            status = await queue.fail(session, claim, error=error, retryable=retryable, backoff_s=self._settings.retry_backoff_s)
        if status is TaskStatus.failed:
            self._metrics.failed.inc(tags={"reason": "attempts_exhausted" if retryable else "image_rejected"})


def _rows(result: PipelineResult) -> tuple[list[dict], dict]:
    """A pipeline result as the column values of its primitive and scene rows."""
    primitives = [p.model_dump() for p in result.primitives]
    scene = {
        "class_id": result.scene.class_id,
        "class_name": result.scene.class_name,
        "confidence": result.scene.confidence,
        "top_k": [score.model_dump() for score in result.scene.top_k],
        "detector_model": result.models.detector,
        "classifier_model": result.models.classifier,
    }
    return primitives, scene
