"""`Client` (blocking, httpx.Client) and `AsyncClient` (httpx.AsyncClient): the same typed methods
over the Primscene HTTP API. Requests are built and answers read by `_Calls`, shared by both, so
the two cannot drift apart; each class only adds its own I/O.

    with Client("http://127.0.0.1:8000") as ps:
        ps.login("alice", "alice-password-1")
        task = ps.wait(ps.submit("photo.jpg").id)
        print(ps.result(task.id).scene.class_name)
"""

from __future__ import annotations

import builtins
import mimetypes
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
from pydantic import BaseModel, TypeAdapter

from primscene_client.errors import NotFound, WaitTimeout, error_for, unreachable
from primscene_client.models import BatchItem, BatchSubmitted, ModelInfo, Result, Task, TaskPage, Token, User

API = "/api/v1"
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
MAX_PAGE = 100  # the server's largest page

TaskId = uuid.UUID | str
ImageSource = str | os.PathLike[str] | bytes
M = TypeVar("M", bound=BaseModel)


def normalise_url(url: str) -> str:
    """`127.0.0.1:8000/`, `http://host:8000/api/v1` → `http://127.0.0.1:8000`, `http://host:8000`."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    if url.endswith(API):
        url = url[: -len(API)]
    return url


@dataclass
class _Request:
    """One API call, ready for either client: what to send and how to read the answer."""

    method: str
    path: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    ok: tuple[int, ...] = (200,)
    logging_in: bool = False


class _Calls:
    """Everything but the I/O: building requests and turning answers into models or errors."""

    def __init__(self, base_url: str, token: str | None, page_size: int) -> None:
        if not 1 <= page_size <= MAX_PAGE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE}")
        self.base_url = normalise_url(base_url)
        self.token = token
        self.page_size = page_size  # tasks fetched per request by list/iter_tasks

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**headers, **(extra or {})}

    def _check(self, call: _Request, response: httpx.Response) -> httpx.Response:
        if response.status_code not in call.ok:
            raise error_for(response, had_token=bool(self.token), logging_in=call.logging_in)
        return response

    @staticmethod
    def _parse(model: type[M], response: httpx.Response) -> M:
        return model.model_validate_json(response.content)

    # Requests -------------------------------------------------------------------------------

    def login_request(self, username: str, password: str) -> _Request:
        form = {"username": username, "password": password}
        return _Request("POST", f"{API}/auth/token", {"data": form}, logging_in=True)

    def submit_request(self, source: ImageSource, filename: str | None, idempotency_key: str | None, callback_url: str | None) -> _Request:
        kwargs = self._upload_kwargs([("image", _file_part(source, filename))], idempotency_key, callback_url)
        return _Request("POST", f"{API}/tasks", kwargs, ok=(200, 202))

    def batch_request(self, sources: list[ImageSource], idempotency_key: str | None, callback_url: str | None) -> _Request:
        kwargs = self._upload_kwargs([("images", _file_part(source, None)) for source in sources], idempotency_key, callback_url)
        return _Request("POST", f"{API}/batches", kwargs, ok=(200, 202))

    def _upload_kwargs(self, parts: list[tuple[str, tuple[str, bytes, str]]], idempotency_key: str | None, callback_url: str | None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        kwargs: dict[str, Any] = {"files": parts, "headers": self._headers(headers)}
        if callback_url:
            kwargs["data"] = {"callback_url": callback_url}
        return kwargs

    def get_request(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> _Request:
        return _Request(method, f"{API}{path}", {"headers": self._headers(), **kwargs}, ok=ok)

    def events_request(self, task_id: TaskId, backoff: Backoff) -> _Request:
        """The task's event stream. A read waits at most until the deadline, and never much
        longer than the server's keep-alive comments take to come (a silent stream is dead)."""
        read_s = backoff.stream_read_s()
        return self.get_request("GET", f"/tasks/{task_id}/events", timeout=httpx.Timeout(60.0, connect=5.0, read=read_s))

    def page_request(self, status: str | None, page_size: int, cursor: str | None) -> _Request:
        params: dict[str, Any] = {"limit": page_size}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        return self.get_request("GET", "/tasks", params=params)

    def user_request(self, username: str, password: str, is_admin: bool) -> _Request:
        body = {"username": username, "password": password, "is_admin": is_admin}
        return self.get_request("POST", "/users", ok=(201,), json=body)


def _file_part(source: ImageSource, filename: str | None) -> tuple[str, bytes, str]:
    if isinstance(source, bytes):
        data, name = source, filename or "image"
    else:
        path = Path(source)
        data, name = path.read_bytes(), filename or path.name
    # The server sniffs the format from the bytes; the name and type only help logs.
    return name, data, mimetypes.guess_type(name)[0] or "application/octet-stream"


def _page_size(page_size: int, limit: int | None, seen: int) -> int:
    return page_size if limit is None else max(1, min(page_size, limit - seen))


class TaskEvents:
    """Reads a task's event stream (`text/event-stream`) line by line: `feed` returns the task of
    each `task` event and raises NotFound on `deleted`.

    Written here rather than taken from an SSE library because `wait` must see every line,
    keep-alive comments included, to keep its deadline: SSE readers hand over events only, and a
    stream that sends nothing but keep-alives would hold them past it."""

    def __init__(self, task_id: TaskId) -> None:
        self.task_id = task_id
        self._event: str = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> Task | None:
        if line.startswith(":"):  # a comment: the server's keep-alive
            return None
        if line:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                self._event = value
            elif name == "data":
                self._data.append(value)
            return None
        event, data = self._event, "\n".join(self._data)  # a blank line ends an event
        self._event, self._data = "message", []
        if event == "deleted":
            raise NotFound(f"task {self.task_id} was deleted while waiting for it", status_code=404, detail="Task not found")
        return Task.model_validate_json(data) if event == "task" and data else None


class Backoff:
    """Polling intervals: quick at first (an idle service finishes in tens of milliseconds), then
    slower, never past `cap`, never past the deadline."""

    def __init__(self, timeout: float | None, first: float = 0.05, factor: float = 1.5, cap: float = 2.0) -> None:
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.delay, self.factor, self.cap = first, factor, cap

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def stream_read_s(self) -> float:
        """How long one read of an event stream may wait: SILENT_STREAM_S, never past the deadline."""
        if self.deadline is None:
            return SILENT_STREAM_S
        return max(0.01, min(SILENT_STREAM_S, self.deadline - time.monotonic()))

    def next_delay(self) -> float | None:
        """Seconds to sleep before the next poll, or None when time is up."""
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            return None
        delay = self.delay
        self.delay = min(self.cap, self.delay * self.factor)
        return delay if self.deadline is None else min(delay, self.deadline - now)


# An event stream with nothing on it for this long is taken as dead and opened again: the
# server sends a keep-alive comment after 15 s without an event.
SILENT_STREAM_S = 25.0


def _timed_out(task: Task, timeout: float | None) -> WaitTimeout:
    return WaitTimeout(f"task {task.id} is still {task.status} after {timeout:g} s", task=task)


_MODELS = TypeAdapter(list[ModelInfo])


class Client(_Calls):
    """Blocking client. `transport` is passed to httpx (tests use it to reach an in-process app)."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        page_size: int = MAX_PAGE,
    ) -> None:
        super().__init__(base_url, token, page_size)
        self._http = httpx.Client(base_url=self.base_url, transport=transport, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: _Request) -> httpx.Response:
        try:
            response = self._http.request(call.method, call.path, **call.kwargs)
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc
        return self._check(call, response)

    def login(self, username: str, password: str) -> Token:
        """Exchange a username and password for a token; later calls use it."""
        token = self._parse(Token, self._send(self.login_request(username, password)))
        self.token = token.access_token
        return token

    def submit(
        self, image: ImageSource, *, idempotency_key: str | None = None, callback_url: str | None = None, filename: str | None = None
    ) -> Task:
        """Upload an image (a path or its bytes); answers at once with the queued task. With
        `callback_url` the service POSTs the outcome there when the task finishes (its host must
        be on the service's webhook allow-list, else Refused)."""
        return self._parse(Task, self._send(self.submit_request(image, filename, idempotency_key, callback_url)))

    def submit_batch(
        self, images: list[ImageSource], *, idempotency_key: str | None = None, callback_url: str | None = None
    ) -> list[BatchItem]:
        """Upload several images in one request (at most the server's batch limit, 32 by
        default): one item per image, in order, with its task or the reason it was refused (a
        refused image refuses only itself)."""
        return self._parse(BatchSubmitted, self._send(self.batch_request(images, idempotency_key, callback_url))).items

    def get(self, task_id: TaskId) -> Task:
        return self._parse(Task, self._send(self.get_request("GET", f"/tasks/{task_id}")))

    def wait(self, task_id: TaskId, timeout: float | None = 300.0) -> Task:
        """Wait until the task has succeeded or failed and return it; WaitTimeout after `timeout`
        seconds (None: no limit), NotFound if it is deleted meanwhile. One request: the task's
        event stream (`GET /tasks/{id}/events`), which tells of each change as it happens and
        ends when the task finishes. A stream that breaks off is opened again, with backoff."""
        backoff, last = Backoff(timeout), None  # last: the task as its latest event showed it
        while True:
            call = self.events_request(task_id, backoff)
            events = TaskEvents(task_id)
            try:
                with self._http.stream(call.method, call.path, **call.kwargs) as response:
                    if response.status_code not in call.ok:
                        response.read()
                        self._check(call, response)
                    for line in response.iter_lines():
                        if (task := events.feed(line)) is not None:
                            last = task
                            if task.finished:
                                return task
                        if backoff.expired():
                            break
            except httpx.ConnectError as exc:
                raise unreachable(self.base_url, exc) from exc
            except httpx.TransportError:  # the stream broke off or fell silent: open it again
                pass
            if (delay := backoff.next_delay()) is None:
                raise _timed_out(last or self.get(task_id), timeout)
            time.sleep(delay)

    def result(self, task_id: TaskId) -> Result:
        """Primitives, scene and model versions; NotFinished while the task has not succeeded."""
        return self._parse(Result, self._send(self.get_request("GET", f"/tasks/{task_id}/result")))

    def input(self, task_id: TaskId) -> bytes:
        """The uploaded image, byte for byte."""
        return self._send(self.get_request("GET", f"/tasks/{task_id}/input")).content

    def page(self, status: str | None = None, limit: int = 20, cursor: str | None = None) -> TaskPage:
        """One page of the caller's tasks, newest first: `items`, `total` and the `next` cursor."""
        return self._parse(TaskPage, self._send(self.page_request(status, limit, cursor)))

    def iter_tasks(self, status: str | None = None, limit: int | None = None, *, after: str | None = None) -> Iterator[Task]:
        """The caller's tasks, newest first, page after page (following `next`; from the cursor
        `after` if given)."""
        seen, cursor = 0, after
        while limit is None or seen < limit:
            page = self.page(status, _page_size(self.page_size, limit, seen), cursor)
            for task in page.items[: None if limit is None else limit - seen]:
                seen += 1
                yield task
            if page.next is None or not page.items:
                return
            cursor = page.next

    def list(self, status: str | None = None, limit: int | None = None, *, after: str | None = None) -> list[Task]:
        """All the caller's tasks (or the newest `limit`), optionally only those in `status`."""
        return [*self.iter_tasks(status, limit, after=after)]

    def delete(self, task_id: TaskId) -> None:
        """Remove a task with its input and result."""
        self._send(self.get_request("DELETE", f"/tasks/{task_id}", ok=(204,)))

    def models(self) -> builtins.list[ModelInfo]:  # builtins: `list` here is the method
        return _MODELS.validate_json(self._send(self.get_request("GET", "/models")).content)

    def create_user(self, username: str, password: str, is_admin: bool = False) -> User:
        """Administrators only."""
        return self._parse(User, self._send(self.user_request(username, password, is_admin)))


class AsyncClient(_Calls):
    """The same methods as `Client`, awaitable; for asyncio (or trio) programs."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        page_size: int = MAX_PAGE,
    ) -> None:
        super().__init__(base_url, token, page_size)
        self._http = httpx.AsyncClient(base_url=self.base_url, transport=transport, timeout=timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: _Request) -> httpx.Response:
        try:
            response = await self._http.request(call.method, call.path, **call.kwargs)
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc
        return self._check(call, response)

    async def login(self, username: str, password: str) -> Token:
        token = self._parse(Token, await self._send(self.login_request(username, password)))
        self.token = token.access_token
        return token

    async def submit(
        self, image: ImageSource, *, idempotency_key: str | None = None, callback_url: str | None = None, filename: str | None = None
    ) -> Task:
        call = await anyio.to_thread.run_sync(self.submit_request, image, filename, idempotency_key, callback_url)
        return self._parse(Task, await self._send(call))

    async def submit_batch(
        self, images: list[ImageSource], *, idempotency_key: str | None = None, callback_url: str | None = None
    ) -> list[BatchItem]:
        call = await anyio.to_thread.run_sync(self.batch_request, images, idempotency_key, callback_url)
        return self._parse(BatchSubmitted, await self._send(call)).items

    async def get(self, task_id: TaskId) -> Task:
        return self._parse(Task, await self._send(self.get_request("GET", f"/tasks/{task_id}")))

    async def wait(self, task_id: TaskId, timeout: float | None = 300.0) -> Task:
        backoff, last = Backoff(timeout), None
        while True:
            call = self.events_request(task_id, backoff)
            events = TaskEvents(task_id)
            try:
                async with self._http.stream(call.method, call.path, **call.kwargs) as response:
                    if response.status_code not in call.ok:
                        await response.aread()
                        self._check(call, response)
                    async for line in response.aiter_lines():
                        if (task := events.feed(line)) is not None:
                            last = task
                            if task.finished:
                                return task
                        if backoff.expired():
                            break
            except httpx.ConnectError as exc:
                raise unreachable(self.base_url, exc) from exc
            except httpx.TransportError:  # the stream broke off or fell silent: open it again
                pass
            if (delay := backoff.next_delay()) is None:
                raise _timed_out(last or await self.get(task_id), timeout)
            await anyio.sleep(delay)

    async def result(self, task_id: TaskId) -> Result:
        return self._parse(Result, await self._send(self.get_request("GET", f"/tasks/{task_id}/result")))

    async def input(self, task_id: TaskId) -> bytes:
        return (await self._send(self.get_request("GET", f"/tasks/{task_id}/input"))).content

    async def page(self, status: str | None = None, limit: int = 20, cursor: str | None = None) -> TaskPage:
        return self._parse(TaskPage, await self._send(self.page_request(status, limit, cursor)))

    async def iter_tasks(self, status: str | None = None, limit: int | None = None, *, after: str | None = None) -> AsyncIterator[Task]:
        seen, cursor = 0, after
        while limit is None or seen < limit:
            page = await self.page(status, _page_size(self.page_size, limit, seen), cursor)
            for task in page.items[: None if limit is None else limit - seen]:
                seen += 1
                yield task
            if page.next is None or not page.items:
                return
            cursor = page.next

    async def list(self, status: str | None = None, limit: int | None = None, *, after: str | None = None) -> list[Task]:
        return [task async for task in self.iter_tasks(status, limit, after=after)]

    async def delete(self, task_id: TaskId) -> None:
        await self._send(self.get_request("DELETE", f"/tasks/{task_id}", ok=(204,)))

    async def models(self) -> builtins.list[ModelInfo]:  # builtins: `list` here is the method
        return _MODELS.validate_json((await self._send(self.get_request("GET", "/models"))).content)

    async def create_user(self, username: str, password: str, is_admin: bool = False) -> User:
        return self._parse(User, await self._send(self.user_request(username, password, is_admin)))


__all__ = ["API", "AsyncClient", "Client", "normalise_url"]
