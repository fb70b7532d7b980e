"""The FastAPI application factory: routes, error handling, and start-up/shut-down of the
database, the first admin and the dispatcher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from importlib.metadata import version as package_version
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from db.direct import DirectStatements
from db.engine import SessionFactory, create_engine, is_sqlite, read_session_factory, session_factory
from db.migrate import check_schema
from deployments.contract import BatchPipeline, ModelCatalog
from serve_app.body_limit import BodySizeLimit
from serve_app.bootstrap import ensure_admin
from serve_app.dispatcher import Dispatcher
from serve_app.dispatching import running_dispatcher
from serve_app.errors import install_error_handlers
from serve_app.housekeeping import Housekeeping
from serve_app.routes import API_PREFIX, auth, batches, health, task_events, tasks, users
from serve_app.routes import models as model_routes
from serve_app.security import TokenCodec
from serve_app.services import Services
from serve_app.settings import Settings
from serve_app.task_changes import TaskChangeFeed
from serve_app.webhooks import WebhookSender

# The web app (plain ES modules, no build step), served at `/`.
WEB_DIR = Path(__file__).with_name("web")
# Room for the multipart framing around the largest allowed image.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


async def _web_page() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@asynccontextmanager
async def _dispatching(settings: Settings, sessions: SessionFactory, pipeline: BatchPipeline | None) -> AsyncIterator[Dispatcher | None]:
    if pipeline is None:
        yield None
        return
    async with running_dispatcher(settings, sessions, pipeline) as dispatcher:
        yield dispatcher


def create_app(settings: Settings | None = None, *, models: ModelCatalog, pipeline: BatchPipeline | None = None) -> FastAPI:
    """Build the app. With a `pipeline`, the app also runs a dispatcher that feeds it queued
    tasks (tests, one process); served by Ray, the `Dispatcher` deployment does that instead."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = settings.database
        engine = create_engine(
            settings.database_url, pool_size=db.db_pool_size, max_overflow=db.db_max_overflow, echo=db.db_echo
        )
        try:
            await check_schema(engine)
            sessions = session_factory(engine)
            passwords = await run_in_threadpool(settings.passwords)  # hashes its dummy password
            await ensure_admin(sessions, settings, passwords)
            # Periodic jobs of every ingress replica; the webhook sender only where webhooks are on.
            jobs: list[Housekeeping | WebhookSender] = [Housekeeping(sessions, settings.retention, settings.auth.login_policy())]
            if settings.webhooks.allowed_hosts():
                jobs.append(WebhookSender(sessions, settings.webhooks))
            for job in jobs:
                job.start()
            changes = TaskChangeFeed(settings.database_url, sessions, poll_interval_s=settings.queue.events_poll_interval_s)
            changes.start()
            direct = None
            try:
                if db.db_direct_statements and not is_sqlite(settings.database_url):
                    direct = await DirectStatements.open(settings.database_url, max_size=db.db_pool_size)
                async with _dispatching(settings, sessions, pipeline) as dispatcher:
                    app.state.services = Services(
                        settings=settings,
                        engine=engine,
                        sessions=sessions,
                        reads=read_session_factory(engine),
                        passwords=passwords,
                        tokens=TokenCodec(settings.jwt_secret(), timedelta(minutes=settings.auth.access_token_ttl_minutes)),
                        models=models,
                        dispatcher=dispatcher,
                        changes=changes,
                        direct=direct,
                    )
                    yield
            finally:
                if direct is not None:
                    await direct.close()
                await changes.stop()
                for job in jobs:
                    await job.stop()
        finally:
            await engine.dispose()

    app = FastAPI(
        title="Primscene",
        summary="Finds geometric primitives in images and names the scene they form.",
        version=package_version("primscene"),
        lifespan=lifespan,
        # operationId = the handler's name ("get_task"), not FastAPI's "get_task_api_v1_tasks__task_id__get":
        # the OpenAPI links of the task routes name these ids, and generated clients get readable methods.
        generate_unique_id_function=lambda route: route.name,
    )
    limits = settings.limits
    app.add_middleware(
        BodySizeLimit,
        max_bytes=limits.max_upload_bytes + MULTIPART_OVERHEAD_BYTES,
        detail=f"The request body is too large: images may be at most {limits.max_upload_bytes} bytes.",
        per_path={
            f"{API_PREFIX}{batches.BATCH_PATH}": (
                limits.max_batch_bytes + MULTIPART_OVERHEAD_BYTES,
                f"The request body is too large: a batch may be at most {limits.max_batch_bytes} bytes; send fewer images per request.",
            )
        },
    )
    install_error_handlers(app, retry_after_s=limits.retry_after_s)
    # Each router straight under the app, prefixed: FastAPI checks an unprefixed include route by
    # route and resolves every level of nesting again, which made building an app about 40 ms slower.
    for module in (auth, task_events, tasks, batches, model_routes, users):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(health.router)
    # The web app: its page at `/`, its files under `/web/`. Not a catch-all mount at `/`: that
    # would answer a wrong method on an API path with 404 instead of 405.
    app.add_api_route("/", _web_page, methods=["GET"], include_in_schema=False)
    app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")
    return app
