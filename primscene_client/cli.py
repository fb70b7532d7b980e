"""`primscene`: the command line over the Python client.

Exit codes: 0 done; 1 something failed (a file refused, a task failed or not found, …);
2 wrong usage; 3 not logged in or the token expired; 4 the service cannot be reached.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from enum import Enum
from importlib import metadata
from pathlib import Path
from typing import Annotated, NoReturn, ParamSpec, TypeVar

import typer
from rich.markup import escape

from primscene_client import batch, render
from primscene_client.client import Client
from primscene_client.config import TOKEN_ENV, Config
from primscene_client.errors import AuthError, NotFinished, PrimsceneError, ServerUnavailable
from primscene_client.export import Writer
from primscene_client.models import SUCCEEDED, Result

EXIT_FAILED, EXIT_AUTH, EXIT_UNREACHABLE = 1, 3, 4

app = typer.Typer(
    name="primscene",
    help="Find geometric primitives and scenes in images with a Primscene service.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals would include tokens and passwords
)
users_app = typer.Typer(help="Manage users (administrators only).", no_args_is_help=True)
app.add_typer(users_app, name="users")

P = ParamSpec("P")
R = TypeVar("R")

Url = Annotated[
    str | None,
    typer.Option("--url", help="Service URL (default: $PRIMSCENE_URL, else the URL of the last login, else http://127.0.0.1:8000).", show_default=False),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table.")]


class StatusName(str, Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class ExportFormat(str, Enum):
    jsonl = "jsonl"
    csv = "csv"


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    render.consoles()[1].print(f"[red]Error:[/] {escape(message)}")
    raise typer.Exit(code)


def exit_code(error: PrimsceneError) -> int:
    if isinstance(error, AuthError):
        return EXIT_AUTH
    if isinstance(error, ServerUnavailable):
        return EXIT_UNREACHABLE
    return EXIT_FAILED


def friendly(command: Callable[P, R]) -> Callable[P, R]:
    """Expected failures end with one clear line on stderr and an exit code, never a traceback."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except PrimsceneError as exc:
            fail(str(exc), exit_code(exc))
        except KeyboardInterrupt:
            fail("interrupted.", 130)

    return run


def connect(url_option: str | None) -> Client:
    """A client for the chosen service, with its token."""
    config = Config.load()
    url = config.resolve_url(url_option)
    token = config.token_for(url)
    if token is None:
        raise AuthError(f"Not logged in to {url} — run `primscene login --url {url}`.")
    return Client(url, token)


def print_json(value: object) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def version_callback(value: bool) -> None:
    if value:
        try:
            typer.echo(f"primscene {metadata.version('primscene-client')}")
        except metadata.PackageNotFoundError:
            typer.echo("primscene (not installed)")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Show the version.")] = False,
) -> None:
    """Find geometric primitives and scenes in images with a Primscene service."""


@app.command()
@friendly
def login(
    username: Annotated[str, typer.Option("--username", "-u", prompt=True, help="Your user name.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, envvar="PRIMSCENE_PASSWORD", show_envvar=True,
        help="Asked for (hidden) when not given.")],
    url: Url = None,
) -> None:
    """Log in and keep the token (and the URL, for later commands) in your config dir."""
    try:
        config = Config.load()
    except PrimsceneError:
        config = Config()  # unreadable: start afresh, login rewrites it
    server = config.resolve_url(url)
    with Client(server) as client:
        token = client.login(username, password)
    config.remember(server, token.access_token, username, token.expires_in)
    path = config.save()
    out, err = render.consoles()
    minutes = max(1, round(token.expires_in / 60))
    out.print(f"Logged in to {escape(server)} as [bold]{escape(username)}[/]; the token is valid for {minutes} min (kept in {escape(str(path))}).",
        soft_wrap=True)
    if os.environ.get(TOKEN_ENV):
        err.print(f"[yellow]Note:[/] ${TOKEN_ENV} is set and is used instead of the stored token.")


@app.command()
@friendly
def logout(url: Url = None) -> None:
    """Forget the stored token for the service."""
    config = Config.load()
    server = config.resolve_url(url)
    out = render.consoles()[0]
    if config.forget(server):
        config.save()
        out.print(f"Logged out of {escape(server)}.", soft_wrap=True)
    else:
        out.print(f"Not logged in to {escape(server)}.", soft_wrap=True)


@app.command()
@friendly
def submit(
    paths: Annotated[list[Path], typer.Argument(exists=True, help="Images, or folders searched recursively for .jpg .jpeg .png .webp .bmp")],
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Wait for every task to finish and show scenes.")] = False,
    timeout: Annotated[float, typer.Option(help="With --wait: give up waiting after this many seconds.")] = 600.0,
    callback_url: Annotated[str | None, typer.Option(help="Webhook: the service POSTs each outcome here.")] = None,
    as_json: AsJson = False,
    url: Url = None,
) -> None:
    """Upload images as tasks. A refused file is reported and the others go on."""
    out, err = render.consoles()
    files = batch.find_images(paths)
    if not files:
        fail("no images found (looked for .jpg .jpeg .png .webp .bmp).")
    with connect(url) as client:
        rows, stopped = batch.upload_all(client, files, err, callback_url)
        if wait and stopped is None:
            batch.wait_all(client, rows, err, timeout)
    if as_json:
        print_json(batch.as_json(rows))
    elif stopped is None or any(row.task for row in rows):
        batch.show(out, rows, waited=wait and stopped is None)
    if stopped is not None:
        fail(str(stopped), exit_code(stopped))
    if (problems := batch.summary(rows)) is not None:
        fail(problems)


@app.command()
@friendly
def status(task_id: Annotated[str, typer.Argument(help="Task id.")], as_json: AsJson = False, url: Url = None) -> None:
    """Show a task's status, attempts, error and timestamps."""
    with connect(url) as client:
        task = client.get(task_id)
    if as_json:
        print_json(task.model_dump(mode="json"))
    else:
        render.consoles()[0].print(render.task_details(task))


@app.command()
@friendly
def result(
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Wait for the task to finish first.")] = False,
    timeout: Annotated[float, typer.Option(help="With --wait: seconds to wait at most.")] = 600.0,
    as_json: AsJson = False,
    url: Url = None,
) -> None:
    """Show the primitives and scene found in a task's image."""
    with connect(url) as client:
        if wait:
            client.wait(task_id, timeout=timeout)
        try:
            found = client.result(task_id)
        except NotFinished as exc:
            if exc.task_status == "failed":
                fail(f"task {task_id} failed: {exc.error or 'no reason given'}")
            fail(f"task {task_id} is still {exc.task_status}; try again later, or use --wait.")
    if as_json:
        print_json(found.model_dump(mode="json"))
        return
    out = render.consoles()[0]
    out.print(render.result_summary(found))
    if found.primitives:
        out.print(render.primitives_table(found))
    else:
        out.print("No primitives found.", soft_wrap=True)


@app.command("list")
@friendly
def list_tasks(
    status_filter: Annotated[StatusName | None, typer.Option("--status", "-s", help="Only tasks in this status.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most this many (newest first).")] = 20,
    as_json: AsJson = False,
    url: Url = None,
) -> None:
    """List your tasks, newest first."""
    wanted = status_filter.value if status_filter else None
    with connect(url) as client:
        first = client.page(wanted, min(limit, 100))
        tasks = first.items[:limit]
        if first.next and len(tasks) < limit:
            tasks += client.list(wanted, limit - len(tasks), after=first.next)
    if as_json:
        print_json({"items": [t.model_dump(mode="json") for t in tasks], "total": first.total})
        return
    out = render.consoles()[0]
    if not tasks:
        out.print("No tasks." if wanted is None else f"No {wanted} tasks.", soft_wrap=True)
        return
    render.show_tasks(out, tasks)
    if first.total > len(tasks):
        out.print(f"Showing the newest {len(tasks)} of {first.total}; use --limit to see more.", soft_wrap=True)


@app.command()
@friendly
def delete(task_ids: Annotated[list[str], typer.Argument(help="Task ids.")], url: Url = None) -> None:
    """Delete tasks with their images and results."""
    out, err = render.consoles()
    failed = 0
    with connect(url) as client:
        for task_id in task_ids:
            try:
                client.delete(task_id)
            except (AuthError, ServerUnavailable):
                raise
            except PrimsceneError as exc:
                failed += 1
                err.print(f"[red]✗[/] {escape(task_id)}: {escape(str(exc))}")
            else:
                out.print(f"Deleted {escape(task_id)}", soft_wrap=True)
    if failed:
        fail(f"{failed} of {len(task_ids)} tasks could not be deleted.")


@app.command()
@friendly
def models(as_json: AsJson = False, url: Url = None) -> None:
    """The detector and classifier the service runs."""
    with connect(url) as client:
        found = client.models()
    if as_json:
        print_json([m.model_dump(mode="json") for m in found])
    else:
        render.consoles()[0].print(render.models_table(found))


@app.command()
@friendly
def export(
    task_ids: Annotated[list[str] | None, typer.Argument(help="Task ids (default: all your succeeded tasks).", show_default=False)] = None,
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="jsonl: one result per line; csv: one primitive per row.")] = ExportFormat.jsonl,
    output: Annotated[Path | None, typer.Option("--output", "-o", dir_okay=False, help="Write here instead of stdout.")] = None,
    url: Url = None,
) -> None:
    """Export results as JSON Lines or CSV."""
    err = render.consoles()[1]
    problems = 0
    with connect(url) as client:
        ids = task_ids or [str(t.id) for t in client.iter_tasks(SUCCEEDED)]
        results: list[Result] = []
        with render.progress(err) as bar:
            job = bar.add_task("Fetching results", total=len(ids))
            for task_id in ids:
                try:
                    results.append(client.result(task_id))
                except (AuthError, ServerUnavailable):
                    raise
                except PrimsceneError as exc:
                    problems += 1
                    bar.console.print(f"[red]✗[/] {escape(task_id)}: {escape(str(exc))}")
                bar.advance(job)
    # Written only once everything is fetched, so a failed run does not leave half a file.
    if output is None:
        Writer(sys.stdout, fmt.value).write_all(results)
        sys.stdout.flush()
    else:
        with output.open("w", encoding="utf-8", newline="") as out:
            Writer(out, fmt.value).write_all(results)
    primitives = sum(len(r.primitives) for r in results)
    where = f" to {output}" if output else ""
    err.print(f"Exported {len(results)} results ({primitives} primitives){escape(where)}.")
    if problems:
        fail(f"{problems} of {len(ids)} tasks have no result to export.")


@users_app.command("create")
@friendly
def create_user(
    username: Annotated[str, typer.Argument(help="The new user's name.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True,
        help="Asked for (hidden) when not given; 10–128 characters.")],
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an administrator.")] = False,
    url: Url = None,
) -> None:
    """Create a user (administrators only)."""
    with connect(url) as client:
        user = client.create_user(username, password, is_admin=admin)
    role = " (administrator)" if user.is_admin else ""
    render.consoles()[0].print(f"Created user [bold]{escape(user.username)}[/]{role}.", soft_wrap=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
