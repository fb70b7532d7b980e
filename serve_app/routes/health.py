"""Liveness and readiness probes (outside /api/v1, no token needed)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from serve_app.deps import ServicesDep
from serve_app.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness, "description": "Not ready"}})
async def readyz(services: ServicesDep) -> Readiness | JSONResponse:
    """The database answers and the models are loaded."""
    try:
        async with services.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        database = True
    except Exception:
        database = False
    try:
        models = await services.models.ready()
    except Exception:
        models = False
    body = Readiness(status="ready" if database and models else "not ready", database=database, models=models)
    if database and models:
        return body
    return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "5"})
