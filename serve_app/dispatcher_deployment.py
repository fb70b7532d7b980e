"""The Dispatcher deployment: feeds queued tasks to the model graph, off the HTTP replicas.

Each replica runs one `Dispatcher` on its own event loop with its own database pool: it claims
batches, calls Detector then Classifier once per batch, and stores each batch in one
transaction. The Ingress only serves HTTP, so accepting an upload never waits behind
dispatching. Replicas can be added for availability; they share the queue safely (leases,
`SKIP LOCKED`), and one that dies leaves leases that the others rescue.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from ray import serve
from ray.serve.handle import DeploymentHandle

from db.engine import create_engine, session_factory
from db.migrate import check_schema
from serve_app.dispatching import running_dispatcher
from serve_app.ray_models import ServeBatchPipeline
from serve_app.settings import Settings


@serve.deployment(name="Dispatcher", num_replicas=1, max_ongoing_requests=4, ray_actor_options={"num_cpus": 0.1})
class DispatcherDeployment:
    async def __init__(self, settings: Settings, detector: DeploymentHandle, classifier: DeploymentHandle) -> None:  # type: ignore[misc]  # Serve awaits an async constructor
        database = settings.database
        self._engine = create_engine(
            settings.database_url, pool_size=database.db_pool_size, max_overflow=database.db_max_overflow, echo=database.db_echo
        )
        await check_schema(self._engine)
        self._stack = AsyncExitStack()
        pipeline = ServeBatchPipeline(detector, classifier)
        self._dispatcher = await self._stack.enter_async_context(
            running_dispatcher(settings, session_factory(self._engine), pipeline)
        )

    def check_health(self) -> None:
        if not self._dispatcher.running:
            raise RuntimeError("the dispatcher's claiming loop has stopped")

    def in_flight(self) -> int:
        """Tasks this replica holds now (for tests and operators)."""
        return self._dispatcher.in_flight

    async def __del__(self) -> None:
        # Serve's graceful shutdown: running batches get their grace, then leases are left to expire.
        await self._stack.aclose()
        await self._engine.dispose()
