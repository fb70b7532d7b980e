"""Python client for the Primscene service (`Client`, `AsyncClient`) and the `primscene` command."""

from primscene_client.client import AsyncClient, Client
from primscene_client.errors import (
    APIError,
    AuthError,
    Busy,
    Conflict,
    Forbidden,
    NotFinished,
    NotFound,
    PrimsceneError,
    Refused,
    ServerError,
    ServerUnavailable,
    WaitTimeout,
)
from primscene_client.models import ClassScore, ImageSize, ModelInfo, ModelVersions, Primitive, Result, Scene, Task, TaskPage, Token, User

__all__ = [
    "APIError", "AsyncClient", "AuthError", "Busy", "ClassScore", "Client", "Conflict", "Forbidden", "ImageSize",
    "ModelInfo", "ModelVersions", "NotFinished", "NotFound", "Primitive", "PrimsceneError", "Refused", "Result",
    "Scene", "ServerError", "ServerUnavailable", "Task", "TaskPage", "Token", "User", "WaitTimeout",
]
