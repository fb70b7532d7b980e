"""`primscene submit`: find the images, upload them several per request (a refused file does
not stop the others), and optionally wait for all of them."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from primscene_client.client import Client
from primscene_client.errors import APIError, AuthError, Busy, PrimsceneError, Refused, WaitTimeout
from primscene_client.models import FAILED, SUCCEEDED, Result, Task
from primscene_client.render import percent, progress, show_notes, status_text

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
BUSY_PATIENCE_S = 600.0  # how long one file may wait for a busy service before the run gives up
MAX_RETRY_WAIT_S = 30.0


def find_images(paths: Iterable[Path]) -> list[Path]:
    """Files as given (the server judges them), folders searched recursively for image suffixes;
    each file once, in a stable order."""
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                        found.setdefault(Path(root) / name)
        else:
            found.setdefault(path)
    return list(found)


@dataclass
class Submission:
    path: Path
    task: Task | None = None
    result: Result | None = None
    problem: str | None = None  # why this file has no (successful) task
    refused: bool = False  # the server refused the upload (the reason is in `problem`)


def _upload(client: Client, path: Path, say: Console, callback_url: str | None) -> Task:
    """Submit one file, waiting out 429/503 answers as the server's Retry-After asks."""
    patience = time.monotonic() + BUSY_PATIENCE_S
    while True:
        try:
            return client.submit(path, callback_url=callback_url)
        except Busy as exc:
            pause = min(MAX_RETRY_WAIT_S, exc.retry_after or 1.0)
            if time.monotonic() + pause > patience:
                raise
            say.print(f"[yellow]…[/] {escape(exc.detail or str(exc))} Retrying {escape(str(path))} in {pause:g} s.")
            time.sleep(pause)


BATCH = 8  # images per request: one `POST /batches` each


def upload_all(
    client: Client, files: list[Path], err: Console, callback_url: str | None = None
) -> tuple[list[Submission], PrimsceneError | None]:
    """Upload every file, BATCH per request; returns the submissions and the error that stopped
    the run, if one did (not logged in, server gone, still busy after a long wait). A file the
    server refuses refuses only itself; one refused because a queue is full is sent again on
    its own, waiting as `Retry-After` asks."""
    rows = [Submission(path) for path in files]
    with progress(err) as bar:
        job = bar.add_task("Uploading", total=len(rows))
        for start in range(0, len(rows), BATCH):
            chunk = rows[start : start + BATCH]
            bar.update(job, description=f"Uploading {escape(chunk[0].path.name)}" + (f" and {len(chunk) - 1} more" if len(chunk) > 1 else ""))
            readable = [row for row in chunk if _readable(row)]
            try:
                items = client.submit_batch([row.path for row in readable], callback_url=callback_url) if readable else []
                for row, item in zip(readable, items):
                    if item.task is not None:
                        row.task = item.task
                    elif item.status_code in (429, 503):  # a full queue: wait it out for this file
                        row.task = _upload(client, row.path, bar.console, callback_url)
                    else:  # 409, 413, 415, 422: this file is not acceptable; the next may be
                        row.problem, row.refused = item.detail or f"HTTP {item.status_code}", True
            except (AuthError, Busy) as exc:
                return _stop(rows, exc)
            except APIError as exc:  # a fault with this request (or a refusal on the retry)
                for row in readable:
                    if row.task is None and row.problem is None:
                        row.problem = exc.detail if isinstance(exc, Refused) and exc.detail else str(exc)
                        row.refused = isinstance(exc, Refused)
            except PrimsceneError as exc:  # server unreachable
                return _stop(rows, exc)
            for row in chunk:
                if row.problem:
                    what = "refused" if row.refused else "not submitted"
                    bar.console.print(f"[red]✗[/] {escape(str(row.path))} {what}: {escape(row.problem)}")
            bar.advance(job, len(chunk))
        bar.update(job, description="Uploaded")
    return rows, None


def _readable(row: Submission) -> bool:
    try:
        with row.path.open("rb"):
            return True
    except OSError as exc:
        row.problem = f"cannot read the file: {exc.strerror or exc}"
        return False


def _stop(rows: list[Submission], error: PrimsceneError) -> tuple[list[Submission], PrimsceneError]:
    for row in rows:
        if row.task is None and row.problem is None:
            row.problem = "not submitted"
    return rows, error


def wait_all(client: Client, rows: list[Submission], err: Console, timeout: float | None) -> None:
    """Wait for the submitted tasks until each has finished (or time is up), following one task's
    event stream at a time (each ends as soon as its task finishes), then fetch the results."""
    waiting = [r for r in rows if r.task is not None and not r.task.finished]
    total = sum(1 for r in rows if r.task is not None)
    deadline = None if timeout is None else time.monotonic() + timeout
    with progress(err) as bar:
        job = bar.add_task("Processing", total=total, completed=total - len(waiting))
        for row in waiting:
            assert row.task is not None
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                row.task = client.wait(row.task.id, timeout=left)
            except WaitTimeout as exc:
                row.task = exc.task or row.task
                row.problem = f"still {row.task.status} after {timeout:g} s"
                continue
            bar.advance(job)
    for row in rows:
        if row.task is not None and row.task.status == SUCCEEDED:
            row.result = client.result(row.task.id)


def show(console: Console, rows: list[Submission], waited: bool) -> None:
    """A table of file, task, status (and scene), then why each file that did not succeed did not."""
    columns = ["File", "Task", "Status"] + (["Scene", "Primitives"] if waited else [])
    out = Table(*columns, box=box.SIMPLE)
    out.columns[0].overflow = "fold"  # a long path is folded, never cut
    out.columns[1].no_wrap = out.columns[2].no_wrap = True  # ids are copied: never cut or wrapped
    for row in rows:
        task = row.task
        state = status_text(task.status) if task else f"[red]{'refused' if row.refused else 'not submitted'}[/]"
        cells = [escape(str(row.path)), str(task.id) if task else "—", state]
        if waited:
            scene = row.result.scene if row.result else None
            cells += [f"{escape(scene.class_name)} {percent(scene.confidence)}" if scene else "", str(len(row.result.primitives)) if row.result else ""]
        out.add_row(*cells)
    console.print(out)
    show_notes(console, ((str(r.path), note) for r in rows if (note := r.problem or (r.task.error if r.task else None))))


def summary(rows: list[Submission]) -> str | None:
    """What went wrong, counted: e.g. `1 file refused, 1 task failed (of 4 files)`; None if nothing."""
    def plural(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    refused = sum(row.refused for row in rows)
    unsent = sum(1 for row in rows if row.task is None and not row.refused)
    failed = sum(1 for row in rows if row.task is not None and row.task.status == FAILED)
    unfinished = sum(1 for row in rows if row.task is not None and row.task.status != FAILED and row.problem)
    parts = [
        f"{plural(refused, 'file')} refused" if refused else "",
        f"{plural(unsent, 'file')} not submitted" if unsent else "",
        f"{plural(failed, 'task')} failed" if failed else "",
        f"{plural(unfinished, 'task')} not finished in time" if unfinished else "",
    ]
    said = ", ".join(p for p in parts if p)
    return f"{said} (of {plural(len(rows), 'file')})." if said else None


def as_json(rows: list[Submission]) -> list[dict[str, object]]:
    return [
        {
            "file": str(row.path),
            "task": row.task.model_dump(mode="json") if row.task else None,
            "result": row.result.model_dump(mode="json") if row.result else None,
            "problem": row.problem,
            "refused": row.refused,
        }
        for row in rows
    ]
