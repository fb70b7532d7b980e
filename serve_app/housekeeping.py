"""A periodic clean-up in every ingress replica: finished tasks past the retention period, and
login-failure records that no longer matter. Both deletions are idempotent, so replicas running
it at the same time do no harm."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from db import login_throttle, retention
from db.engine import SessionFactory
from db.login_throttle import ThrottlePolicy
from db.types import utcnow
from serve_app.settings import RetentionSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cleaned:
    tasks: int
    login_records: int


class Housekeeping:
    def __init__(self, sessions: SessionFactory, settings: RetentionSettings, login_policy: ThrottlePolicy) -> None:
        self._sessions = sessions
        self._settings = settings
        self._login_policy = login_policy
        self._loop_task: asyncio.Task[None] | None = None

    async def run_once(self, *, now: datetime | None = None) -> Cleaned:
        now = now or utcnow()
        tasks = 0
        async with self._sessions() as session:
            if self._settings.retention_days is not None:
                cutoff = now - timedelta(days=self._settings.retention_days)
                tasks = await retention.delete_finished_before(session, cutoff)
            login_records = await login_throttle.purge_stale(session, self._login_policy, now=now)
        if tasks:
            log.info("retention: deleted %d tasks finished more than %d days ago", tasks, self._settings.retention_days)
        return Cleaned(tasks=tasks, login_records=login_records)

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="housekeeping")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # e.g. the database is down: the next round tries again
                log.warning("housekeeping failed (%s); retrying in %.0f s", type(exc).__name__, self._settings.housekeeping_interval_s)
            await asyncio.sleep(self._settings.housekeeping_interval_s)
