"""How the command line shows things: Rich tables on stdout, messages and progress on stderr.
Anything that came from a file name or the server is escaped, never read as Rich markup."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from datetime import datetime

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from primscene_client.models import ModelInfo, Result, Task

STATUS_STYLE = {"queued": "yellow", "running": "cyan", "succeeded": "green", "failed": "red"}


def consoles() -> tuple[Console, Console]:
    """(stdout, stderr). Piped output gets a wide page, so ids and tables are not cut."""
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
    return Console(width=width, soft_wrap=False), Console(stderr=True, soft_wrap=True)


def progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, redirect_stdout=False, redirect_stderr=False,
    )


def when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "—"


def status_text(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{escape(status)}[/]"


def percent(confidence: float) -> str:
    return f"{confidence:.1%}"


def show_notes(console: Console, notes: Iterable[tuple[str, str]]) -> None:
    """Free text (errors, refusals) goes under a table, one `what: why` line each, so that tables
    keep short columns and read at any terminal width."""
    for what, why in notes:
        console.print(f"[bold]{escape(what)}[/]: {escape(why)}", soft_wrap=True)


def show_tasks(console: Console, tasks: list[Task]) -> None:
    table = Table("Task", "Status", "Tries", "Created", box=box.SIMPLE)
    for column in table.columns[:3]:  # ids are copied: never cut or wrapped
        column.no_wrap = True
    for t in tasks:
        table.add_row(str(t.id), status_text(t.status), f"{t.attempts}/{t.max_attempts}", when(t.created_at))
    console.print(table)
    show_notes(console, ((str(t.id), t.error) for t in tasks if t.error))


def task_details(task: Task) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("Task", str(task.id))
    grid.add_row("Status", status_text(task.status))
    grid.add_row("Attempts", f"{task.attempts} of at most {task.max_attempts}")
    if task.error:
        grid.add_row("Error", escape(task.error))
    grid.add_row("Created", when(task.created_at))
    grid.add_row("Started", when(task.started_at))
    grid.add_row("Finished", when(task.finished_at))
    return grid


def result_summary(result: Result) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    scene = result.scene
    grid.add_row("Task", str(result.task_id))
    grid.add_row("Scene", f"[bold]{escape(scene.class_name)}[/] ({percent(scene.confidence)})")
    others = ", ".join(f"{escape(s.class_name)} {percent(s.confidence)}" for s in scene.top_k if s.class_name != scene.class_name)
    if others:
        grid.add_row("Also", others)
    grid.add_row("Image", f"{result.image.width} × {result.image.height} px")
    grid.add_row("Models", f"{escape(result.models.detector)}, {escape(result.models.classifier)}")
    return grid


def primitives_table(result: Result) -> Table:
    table = Table(
        "#", "Primitive", "x", "y", "Width", "Height", "Rotation (rad)", "Confidence",
        caption="x, y: box centre; width, height: box size; all as fractions of the image",
    )
    for i, p in enumerate(result.primitives, 1):
        table.add_row(
            str(i), escape(p.class_name), f"{p.x:.3f}", f"{p.y:.3f}", f"{p.width:.3f}", f"{p.height:.3f}",
            f"{p.rotation:.3f}", percent(p.confidence),
        )
    return table


def models_table(models: Iterable[ModelInfo]) -> Table:
    table = Table("Name", "Kind", "Version", "Input size", "Classes", box=box.SIMPLE)
    for m in models:
        table.add_row(escape(m.name), m.kind, escape(m.version), f"{m.input_size} px", escape(", ".join(m.classes)))
    return table
