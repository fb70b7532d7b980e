"""How failures become HTTP answers: always a status that says who must act, and a `detail`
that says what to change; never a stack trace."""

from __future__ import annotations

import logging

import asyncpg
from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from db.queue import IdempotencyConflict, QueueFull
from serve_app.schemas import ErrorBody, InvalidRequestBody
from serve_app.uploads import UploadRejected

try:  # recent FastAPI keeps included routers nested: this walks their routes
    from fastapi.routing import iter_route_contexts as _all_routes
except ImportError:  # older FastAPI: `app.routes` is already flat
    def _all_routes(routes):  # type: ignore[misc]  # a fallback with looser types
        return routes

log = logging.getLogger(__name__)


def error_responses(*codes: int, streaming: bool = False) -> dict[int | str, dict[str, object]]:
    """OpenAPI entries for the error statuses a route may answer with. Errors are JSON; on a
    `streaming` route (`text/event-stream` on success) FastAPI would file their schema under the
    stream's media type, so they are written out as JSON here (the models are in the
    components already, through the other routes)."""
    descriptions = {
        400: "Malformed request body: not parseable as the declared form or JSON",
        401: "Missing, expired or invalid access token",
        403: "Not allowed for this user",
        404: "Not found (also for another user's task)",
        409: "Conflicts with the current state",
        413: "Upload too large (bytes or pixels)",
        415: "Not a JPEG, PNG, WebP or BMP image",
        422: "Invalid parameters, or a corrupt image",
        429: "Too many requests (your queue is full, or too many failed logins); retry after `Retry-After` seconds",
        503: "The service queue is full or the database is unavailable; retry after `Retry-After` seconds",
    }
    # FastAPI's own 422 (request does not match the schema) has a list as `detail`; ours a sentence.
    models = {422: InvalidRequestBody}
    if streaming:
        return {
            code: {
                "description": descriptions[code],
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{models.get(code, ErrorBody).__name__}"}}},
            }
            for code in codes
        }
    return {code: {"model": models.get(code, ErrorBody), "description": descriptions[code]} for code in codes}


# SQLSTATE classes that mean "the server is not there right now": connection exceptions (08…)
# and operator intervention (57P…: shutting down, terminated by an administrator, starting up).
UNREACHABLE_SQLSTATE_PREFIXES = ("08", "57P")


def database_unreachable(exc: DBAPIError | asyncpg.PostgresError) -> bool:
    """Whether a database error (through SQLAlchemy, or asyncpg's own on the direct path) means
    the server is down or restarting (503, try again) rather than a fault in the statement (500)."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    else:
        sqlstate = exc.sqlstate
    return sqlstate is not None and str(sqlstate).startswith(UNREACHABLE_SQLSTATE_PREFIXES)


def refusal(exc: Exception) -> tuple[int, str] | None:
    """Status and detail for a submit refused on its own merits (too large, not an image, a full
    queue, a reused key); None for any other error. Shared by single and batch submits."""
    if isinstance(exc, UploadRejected):
        return exc.status_code, exc.detail
    if isinstance(exc, QueueFull):
        if exc.scope == "user":
            return status.HTTP_429_TOO_MANY_REQUESTS, f"You have {exc.limit} unfinished tasks, the most allowed; wait for some to finish."
        return status.HTTP_503_SERVICE_UNAVAILABLE, "The service is at capacity; try again shortly."
    if isinstance(exc, IdempotencyConflict):
        return status.HTTP_409_CONFLICT, f"{exc} Use a new key for a new image."
    return None


def _retry_later(status_code: int, detail: str, retry_after_s: int) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code, headers={"Retry-After": str(retry_after_s)})


def install_error_handlers(app: FastAPI, *, retry_after_s: int) -> None:
    @app.exception_handler(UploadRejected)
    @app.exception_handler(IdempotencyConflict)
    async def _refused(_: Request, exc: Exception) -> JSONResponse:
        status_code, detail = refusal(exc) or (status.HTTP_500_INTERNAL_SERVER_ERROR, "Internal error")
        return JSONResponse({"detail": detail}, status_code=status_code)

    @app.exception_handler(QueueFull)
    async def _queue_full(_: Request, exc: QueueFull) -> JSONResponse:
        status_code, detail = refusal(exc) or (status.HTTP_503_SERVICE_UNAVAILABLE, "")
        return _retry_later(status_code, detail, retry_after_s)

    @app.exception_handler(status.HTTP_405_METHOD_NOT_ALLOWED)
    async def _method_not_allowed(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's `Allow` names only the methods of the first route on the path (`POST` for
        # /tasks, which GET also serves); RFC 9110 wants every method the resource supports. The
        # resource is the first route template that matches: `/tasks/events` is not also
        # `/tasks/{task_id}`, which would match the same path with other methods.
        methods: set[str] = set()
        resource = None
        for route in _all_routes(request.app.routes):
            match, _ = route.matches(request.scope)
            if match is Match.PARTIAL and resource in (None, route.path):
                resource = route.path
                methods |= getattr(route, "methods", None) or set()
        headers = {**(exc.headers or {}), **({"Allow": ", ".join(sorted(methods))} if methods else {})}
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", type(exc).__name__)
        return _retry_later(status.HTTP_503_SERVICE_UNAVAILABLE, "The database is unavailable; try again shortly.", retry_after_s)

    # Pool exhausted (every connection busy for `pool_timeout`): busy, not broken. asyncpg's
    # InterfaceError on the direct path: a connection closed under the statement. Its
    # InternalClientError ("cannot switch to state …; another operation is in progress"): a pooled
    # connection that a server going down left mid-operation; the pool's reset closes it when it
    # comes back, so the client's retry gets a sound one (seen twice in the reliability run's
    # outage, 2026-12-06).
    database_gone = (OperationalError, InterfaceError, ConnectionError, TimeoutError, PoolTimeout, asyncpg.InterfaceError, asyncpg.InternalClientError)
    for error in database_gone:
        app.add_exception_handler(error, _database_unavailable)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(asyncpg.PostgresError)
    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DBAPIError | asyncpg.PostgresError)
        if database_unreachable(exc):
            return await _database_unavailable(request, exc)
        log.exception("database error")
        return JSONResponse({"detail": "Internal error"}, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the log for operators; the client learns nothing about internals.
        log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "Internal error"}, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR)
