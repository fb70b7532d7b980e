"""One exception hierarchy for everything that can go wrong talking to Primscene.

Every exception's message is a sentence a person can act on; the server's own words are kept in
`detail`, and the HTTP status (when there was an answer) in `status_code`.
"""

from __future__ import annotations

from typing import Any

import httpx


class PrimsceneError(Exception):
    """Base class: `str(error)` is the message to show."""

    def __init__(self, message: str, *, status_code: int | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.detail = detail


class ServerUnavailable(PrimsceneError):
    """No HTTP answer at all: connection refused, DNS failure, timeout, broken connection."""


class WaitTimeout(PrimsceneError, TimeoutError):
    """A task did not finish within the time given to `wait`."""

    def __init__(self, message: str, *, task: Any = None) -> None:
        super().__init__(message)
        self.task = task


class APIError(PrimsceneError):
    """The server answered with an error status."""


class AuthError(APIError):
    """401: not logged in, wrong password, or a token that expired or is invalid."""


class Forbidden(APIError):
    """403: the user may not do this (e.g. only administrators create users)."""


class NotFound(APIError):
    """404: no such task (another user's task is answered the same way)."""


class Conflict(APIError):
    """409: conflicts with the current state (user exists, idempotency key reused)."""


class NotFinished(Conflict):
    """409 from a result: the task has not succeeded (yet). `task_status` and `error` say why."""

    def __init__(self, message: str, *, status_code: int, detail: str, task_status: str | None, error: str | None) -> None:
        super().__init__(message, status_code=status_code, detail=detail)
        self.task_status = task_status
        self.error = error


class Refused(APIError):
    """400/413/415/422: the request or upload was refused; `detail` is the server's reason."""


class Busy(APIError):
    """429/503: try again later; `retry_after` is the server's hint in seconds (or None)."""

    def __init__(self, message: str, *, status_code: int, detail: str, retry_after: float | None) -> None:
        super().__init__(message, status_code=status_code, detail=detail)
        self.retry_after = retry_after


class ServerError(APIError):
    """Any other error status (500 and friends): a fault on the server's side."""


def describe_detail(detail: Any) -> str:
    """The server's `detail` as one line: a sentence stays as it is; FastAPI's list of validation
    issues becomes `field: message; field: message`."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for issue in detail:
            if isinstance(issue, dict):
                loc = [str(p) for p in issue.get("loc", []) if p not in ("body", "query", "path", "header")]
                msg = str(issue.get("msg", issue))
                parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
            else:
                parts.append(str(issue))
        return "; ".join(parts)
    return "" if detail is None else str(detail)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date; we do not need that precision
        return None


def error_for(response: httpx.Response, *, had_token: bool, logging_in: bool = False) -> APIError:
    """The exception for an error response."""
    code = response.status_code
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        pass
    raw = body.get("detail") if isinstance(body, dict) else None
    detail = describe_detail(raw) or response.text.strip()[:200] or response.reason_phrase
    if code == 401:
        if logging_in:
            return AuthError(detail, status_code=code, detail=detail)
        if not had_token:
            return AuthError("Not logged in — run `primscene login`.", status_code=code, detail=detail)
        return AuthError("Token expired or invalid — run `primscene login`.", status_code=code, detail=detail)
    if code == 403:
        return Forbidden(detail, status_code=code, detail=detail)
    if code == 404:
        return NotFound(detail, status_code=code, detail=detail)
    if code == 409 and isinstance(body, dict) and "status" in body:
        task_status, error = body.get("status"), body.get("error")
        message = f"{detail} (status: {task_status}{f'; error: {error}' if error else ''})"
        return NotFinished(message, status_code=code, detail=detail, task_status=task_status, error=error)
    if code == 409:
        return Conflict(detail, status_code=code, detail=detail)
    if code in (400, 413, 415, 422):
        return Refused(detail, status_code=code, detail=detail)
    if code in (429, 503):
        after = _retry_after(response)
        hint = f" (retry after {after:g} s)" if after is not None else ""
        return Busy(f"{detail}{hint}", status_code=code, detail=detail, retry_after=after)
    return ServerError(f"The server answered {code} {response.reason_phrase}: {detail}", status_code=code, detail=detail)


def unreachable(base_url: str, exc: httpx.TransportError) -> ServerUnavailable:
    if isinstance(exc, httpx.TimeoutException):
        return ServerUnavailable(f"no answer from {base_url} in time — is the service overloaded or stuck? ({type(exc).__name__})")
    if isinstance(exc, httpx.ConnectError):
        return ServerUnavailable(f"cannot reach {base_url} — is the service running?")
    return ServerUnavailable(f"the connection to {base_url} failed: {exc or type(exc).__name__}")
