"""The Python client (`primscene_client`) and the `primscene` command line, as a user drives them.

The async client talks to the in-process app over httpx's ASGI transport. The blocking client
and the command line talk HTTP to a real uvicorn server of the same test app on a free loopback
port (httpx's blocking client cannot use an ASGI app). Answers are checked against the API
itself, read with plain httpx, not against the client under test.
"""

from __future__ import annotations

import csv
import io
import json
import socket
import stat
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from PIL import Image
from typer.testing import CliRunner, Result

import primscene_client as ps
from db import users
from db.engine import create_engine, session_factory
from primscene_client.cli import app as cli_app
from serve_app.security import TokenCodec
from serve_app.settings import Settings
from tests.support.apps import make_app
from tests.support.databases import ADMIN_PASSWORD, make_settings
from tests.support.images import encode, rectangle_image
from tests.support.live_server import live_server
from tests.support.pipeline import BoundingBoxPipeline

API = "/api/v1"
ALICE = ("alice", "alice-password-1")
BOB = ("bob", "bob-password-123")
NARROW_WIDTH = 20  # the test pipeline fails images narrower than this, as a model refuses one
GARBAGE = b"this is a text file, not an image\n" * 4
SQLITE_ONLY = pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def pipeline() -> BoundingBoxPipeline:
    return BoundingBoxPipeline(reject_below_width=NARROW_WIDTH)


# A real server ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def password_hashes() -> dict[str, str]:
    """Each test password hashed once, as the test settings hash (tests/support/databases.py)."""
    passwords = make_settings("sqlite+aiosqlite://", Path()).passwords()
    return {password: passwords.hash(password) for password in (ADMIN_PASSWORD, ALICE[1])}


@pytest.fixture
async def seeded(settings: Settings, password_hashes: dict[str, str]) -> dict[str, uuid.UUID]:
    """The admin and alice, stored before the server starts (so it need not hash a password)."""
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as session:
            admin = await users.create(session, username="admin", hashed_password=password_hashes[ADMIN_PASSWORD], is_admin=True)
            alice = await users.create(session, username=ALICE[0], hashed_password=password_hashes[ALICE[1]])
            return {"admin": admin.id, "alice": alice.id}
    finally:
        await engine.dispose()


@pytest.fixture
def server(app: FastAPI, seeded: dict[str, uuid.UUID]) -> Iterator[str]:
    with live_server(app) as url:
        yield url


def bearer(url: str, username: str, password: str) -> dict[str, str]:
    response = httpx.post(f"{url}{API}/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def accounts(server: str, settings: Settings, seeded: dict[str, uuid.UUID]) -> dict[str, dict[str, str]]:
    """Auth headers of the admin and alice, with tokens the server issues for them (the login
    route itself is tested below)."""
    codec = TokenCodec(settings.jwt_secret(), timedelta(minutes=10))
    return {name: {"Authorization": f"Bearer {codec.issue(user_id)}"} for name, user_id in seeded.items()}


def add_user(url: str, admin: dict[str, str], username: str, password: str) -> dict[str, str]:
    created = httpx.post(f"{url}{API}/users", json={"username": username, "password": password}, headers=admin)
    assert created.status_code == 201, created.text
    return bearer(url, username, password)


def api_get(url: str, path: str, headers: dict[str, str], **params: object) -> httpx.Response:
    return httpx.get(f"{url}{API}{path}", headers=headers, params=params)


def api_submit(url: str, headers: dict[str, str], image: bytes) -> str:
    response = httpx.post(f"{url}{API}/tasks", files={"image": ("x.png", image, "image/png")}, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def api_wait(url: str, headers: dict[str, str], task_id: str) -> dict:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        task = api_get(url, f"/tasks/{task_id}", headers).json()
        if task["status"] in ("succeeded", "failed"):
            return task
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} did not finish: {task}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The command line -------------------------------------------------------------------------------


class Cli:
    """`primscene …` with a private config dir and none of the user's own PRIMSCENE_* settings."""

    def __init__(self, home: Path, url: str) -> None:
        self.home, self.url = home, url
        self.runner = CliRunner()
        self.env = {"XDG_CONFIG_HOME": str(home), "PRIMSCENE_CONFIG_DIR": None, "PRIMSCENE_URL": None,
                    "PRIMSCENE_TOKEN": None, "PRIMSCENE_PASSWORD": None, "COLUMNS": "200"}

    @property
    def config_file(self) -> Path:
        return self.home / "primscene" / "config.json"

    def __call__(self, *args: str, input: str | None = None, **env: str) -> Result:
        result = self.runner.invoke(cli_app, list(args), input=input, env={**self.env, **env})
        # Expected failures are a message and an exit code, never a Python traceback.
        assert "Traceback" not in result.output, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        return result

    def login(self, username: str, password: str) -> Result:
        result = self("login", "--url", self.url, input=f"{username}\n{password}\n")
        assert result.exit_code == 0, result.output
        return result


@pytest.fixture
def cli(server: str, accounts: dict[str, dict[str, str]], tmp_path: Path) -> Cli:
    return Cli(tmp_path / "config-home", server)


def test_login_keeps_the_token_for_the_owner_only_and_logout_forgets_it(cli: Cli, accounts: dict) -> None:
    refused = cli("login", "--url", cli.url, input="alice\nnot-her-password\n")
    assert refused.exit_code == 3
    assert "Incorrect username or password" in refused.stderr
    assert not cli.config_file.exists()

    logged_in = cli("login", "--url", cli.url, input=f"{ALICE[0]}\n{ALICE[1]}\n")
    assert logged_in.exit_code == 0, logged_in.output
    assert f"Logged in to {cli.url} as alice" in logged_in.stdout
    assert ALICE[1] not in logged_in.output  # the password prompt does not echo

    assert stat.S_IMODE(cli.config_file.stat().st_mode) == 0o600
    saved = json.loads(cli.config_file.read_text())
    assert saved["url"] == cli.url
    token = saved["sessions"][cli.url]["token"]
    assert ALICE[1] not in cli.config_file.read_text()
    # The stored token is alice's, and later commands use it (and the stored URL) unasked.
    hers = api_submit(cli.url, accounts["alice"], rectangle_image())
    assert api_get(cli.url, f"/tasks/{hers}", {"Authorization": f"Bearer {token}"}).status_code == 200
    listing = cli("list")
    assert listing.exit_code == 0 and hers in listing.stdout
    models = cli("models")
    assert models.exit_code == 0, models.output
    assert "bbox-detector" in models.stdout and "blank-classifier" in models.stdout
    # The token belongs to the server that issued it: another URL does not get it.
    elsewhere = f"http://127.0.0.1:{free_port()}"
    other = cli("list", "--url", elsewhere)
    assert other.exit_code == 3 and f"Not logged in to {elsewhere}" in other.stderr

    assert cli("logout").exit_code == 0
    after = cli("list")
    assert after.exit_code == 3
    assert "Not logged in" in after.stderr and "primscene login" in after.stderr


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder as a user has one: two good images (one nested, one a JPEG), one that only looks
    like an image, one the model cannot process, and a file that is no image at all."""
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    (folder / "a-rectangle.png").write_bytes(rectangle_image(size=(200, 100), box=(50, 20, 149, 59)))
    (folder / "nested" / "b-rectangle.JPG").write_bytes(rectangle_image(size=(120, 80), box=(10, 10, 59, 39), fmt="JPEG"))
    (folder / "broken.jpg").write_bytes(GARBAGE)
    (folder / "narrow.png").write_bytes(rectangle_image(size=(NARROW_WIDTH - 5, 40), box=(2, 2, 8, 8)))
    (folder / "notes.txt").write_text("not for upload")
    return folder


def test_submit_a_folder_reports_the_refused_file_and_submits_the_rest(
    cli: Cli, accounts: dict, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.login(*ALICE)
    monkeypatch.chdir(photos.parent)
    result = cli("submit", "photos/", "--wait")

    assert result.exit_code == 1  # not everything went through
    # The refusal names the file and gives the server's reason; the summary says how many.
    assert "✗ photos/broken.jpg refused: Unsupported file type: send a JPEG, PNG, WebP or BMP image." in result.stderr
    assert "Error: 1 file refused, 1 task failed (of 4 files)." in result.stderr
    tasks = api_get(cli.url, "/tasks", accounts["alice"]).json()
    assert tasks["total"] == 3  # the two rectangles and the narrow image; not broken.jpg, not notes.txt
    by_status: dict[str, list[str]] = {}
    for task in tasks["items"]:
        by_status.setdefault(task["status"], []).append(task["id"])
    assert len(by_status["succeeded"]) == 2 and len(by_status["failed"]) == 1

    # The table: one row per file, in path order, each with its task, status and scene; then why
    # each file that did not succeed did not.
    rows = [line for line in result.stdout.splitlines() if line.split()[:1] and line.split()[0].startswith("photos/") and not line.split()[0].endswith(":")]
    assert [row.split()[0] for row in rows] == ["photos/a-rectangle.png", "photos/broken.jpg", "photos/narrow.png", "photos/nested/b-rectangle.JPG"]
    good, broken, narrow, nested = rows
    for row in (good, nested):
        assert row.split()[2:] == ["succeeded", "shape", "90.0%", "1"]
        assert row.split()[1] in by_status["succeeded"]
    assert broken.split()[1:] == ["—", "refused"]
    assert narrow.split()[1:] == [by_status["failed"][0], "failed"]
    assert "photos/broken.jpg: Unsupported file type: send a JPEG, PNG, WebP or BMP image." in result.stdout
    assert f"photos/narrow.png: The image could not be processed: images must be at least {NARROW_WIDTH} pixels wide" in result.stdout


@SQLITE_ONLY
def test_submit_of_good_images_succeeds_and_prints_task_ids(cli: Cli, accounts: dict, photos: Path) -> None:
    cli.login(*ALICE)
    result = cli("submit", str(photos / "a-rectangle.png"), str(photos / "nested"), "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [Path(r["file"]).name for r in rows] == ["a-rectangle.png", "b-rectangle.JPG"]
    assert all(r["task"]["status"] in ("queued", "running", "succeeded") and r["problem"] is None for r in rows)
    listed = api_get(cli.url, "/tasks", accounts["alice"]).json()
    assert {r["task"]["id"] for r in rows} == {t["id"] for t in listed["items"]}


@SQLITE_ONLY
def test_status_result_list_delete_and_models(cli: Cli, accounts: dict) -> None:
    me = accounts["alice"]
    good = api_submit(cli.url, me, rectangle_image(size=(200, 100), box=(50, 20, 149, 59)))
    failed = api_submit(cli.url, me, rectangle_image(size=(10, 40), box=(2, 2, 5, 5)))
    api_wait(cli.url, me, good), api_wait(cli.url, me, failed)
    cli.login(*ALICE)

    status = cli("status", good)
    assert status.exit_code == 0, status.output
    assert good in status.stdout and "succeeded" in status.stdout and "1 of at most" in status.stdout
    assert json.loads(cli("status", good, "--json").stdout) == api_get(cli.url, f"/tasks/{good}", me).json()

    api_result = api_get(cli.url, f"/tasks/{good}/result", me).json()
    as_json = cli("result", good, "--json")
    assert as_json.exit_code == 0 and json.loads(as_json.stdout) == api_result
    shown = cli("result", good)
    assert "shape (90.0%)" in shown.stdout and "200 × 100 px" in shown.stdout
    assert "bbox-detector:test" in shown.stdout
    [row] = [line for line in shown.stdout.splitlines() if "rectangle" in line]
    assert [cell.strip() for cell in row.split("│")[1:-1]] == ["1", "rectangle", "0.500", "0.400", "0.500", "0.400", "0.000", "100.0%"]

    no_result = cli("result", failed)
    assert no_result.exit_code == 1
    assert f"task {failed} failed: The image could not be processed: images must be at least {NARROW_WIDTH} pixels wide" in no_result.stderr

    listing = cli("list")
    assert listing.exit_code == 0
    lines = [line.split() for line in listing.stdout.splitlines() if line.split()[:1] in ([good], [failed])]
    assert [line[:3] for line in lines] == [[failed, "failed", "1/3"], [good, "succeeded", "1/3"]]  # newest first
    assert f"{failed}: The image could not be processed: images must be at least {NARROW_WIDTH} pixels wide" in listing.stdout
    only_failed = cli("list", "--status", "failed")
    assert failed in only_failed.stdout and good not in only_failed.stdout
    limited = cli("list", "--limit", "1")
    assert failed in limited.stdout and good not in limited.stdout and "newest 1 of 2" in limited.stdout
    assert cli("list", "--status", "bogus").exit_code == 2

    models = cli("models", "--json")
    assert json.loads(models.stdout) == api_get(cli.url, "/models", me).json()

    # Bob sees none of it, and cannot delete it.
    bob_token = add_user(cli.url, accounts["admin"], *BOB)["Authorization"].removeprefix("Bearer ")
    assert "No tasks." in cli("list", PRIMSCENE_TOKEN=bob_token).stdout
    bob = cli("delete", good, PRIMSCENE_TOKEN=bob_token)
    assert bob.exit_code == 1 and "Task not found" in bob.stderr

    deleted = cli("delete", good, str(uuid.uuid4()))
    assert deleted.exit_code == 1
    assert f"Deleted {good}" in deleted.stdout and "Task not found" in deleted.stderr
    assert api_get(cli.url, f"/tasks/{good}", me).status_code == 404
    missing = cli("status", good)
    assert missing.exit_code == 1 and "Task not found" in missing.stderr


@SQLITE_ONLY
def test_export_jsonl_and_csv_match_the_api(cli: Cli, accounts: dict, tmp_path: Path) -> None:
    me = accounts["alice"]
    boxed = api_submit(cli.url, me, rectangle_image(size=(200, 100), box=(50, 20, 149, 59)))
    blank = api_submit(cli.url, me, encode(Image.new("RGB", (64, 64), "white")))  # nothing drawn: no primitive
    narrow = api_submit(cli.url, me, rectangle_image(size=(10, 40), box=(2, 2, 5, 5)))
    for task_id in (boxed, blank, narrow):
        api_wait(cli.url, me, task_id)
    api_results = {t: api_get(cli.url, f"/tasks/{t}/result", me).json() for t in (boxed, blank)}
    cli.login(*ALICE)

    jsonl = cli("export")  # default: every succeeded task, JSON Lines on stdout
    assert jsonl.exit_code == 0, jsonl.output
    lines = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert {line["task_id"]: line for line in lines} == api_results
    assert "Exported 2 results" in jsonl.stderr

    out = tmp_path / "results.csv"
    exported = cli("export", "--format", "csv", "-o", str(out))
    assert exported.exit_code == 0, exported.output
    assert exported.stdout == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == sum(max(1, len(r["primitives"])) for r in api_results.values())
    for row in rows:
        expected = api_results[row["task_id"]]
        assert row["scene"] == expected["scene"]["class_name"]
        assert float(row["scene_confidence"]) == expected["scene"]["confidence"]
        assert (row["detector_model"], row["classifier_model"]) == (expected["models"]["detector"], expected["models"]["classifier"])
        assert (int(row["image_width"]), int(row["image_height"])) == (expected["image"]["width"], expected["image"]["height"])
        if expected["primitives"]:
            [p] = expected["primitives"]
            assert row["class_name"] == p["class_name"] and int(row["class_id"]) == p["class_id"]
            for key in ("x", "y", "width", "height", "rotation", "confidence"):
                assert float(row[key]) == p[key]
        else:
            assert row["class_name"] == "" and row["x"] == ""

    chosen = cli("export", boxed, narrow, "--format", "jsonl")
    assert chosen.exit_code == 1
    assert [json.loads(line)["task_id"] for line in chosen.stdout.splitlines()] == [boxed]
    assert narrow in chosen.stderr and "failed" in chosen.stderr


@SQLITE_ONLY
def test_users_create_as_admin_and_refused_for_others(cli: Cli, accounts: dict) -> None:
    cli.login("admin", ADMIN_PASSWORD)
    created = cli("users", "create", "carol", input="carol-password-1\ncarol-password-1\n")
    assert created.exit_code == 0, created.output
    assert "Created user carol" in created.stdout and "carol-password-1" not in created.output
    assert bearer(cli.url, "carol", "carol-password-1")  # she can log in

    admin2 = cli("users", "create", "dora", "--password", "dora-password-1", "--admin")
    assert admin2.exit_code == 0 and "(administrator)" in admin2.stdout
    weak = cli("users", "create", "erin", "--password", "erin")
    assert weak.exit_code == 1 and "password" in weak.stderr and "10 characters" in weak.stderr
    exists = cli("users", "create", "carol", "--password", "carol-password-2")
    assert exists.exit_code == 1 and "User 'carol' already exists" in exists.stderr

    cli.login(*ALICE)
    refused = cli("users", "create", "mallory", "--password", "mallory-password-1")
    assert refused.exit_code == 1
    assert "Only administrators may do this." in refused.stderr
    assert httpx.post(f"{cli.url}{API}/auth/token", data={"username": "mallory", "password": "mallory-password-1"}).status_code == 401


@SQLITE_ONLY
def test_expired_or_invalid_token_says_to_log_in_again(cli: Cli, accounts: dict, settings: Settings) -> None:
    cli.login(*ALICE)
    # Age the stored token: the same user, signed with the server's key, already expired.
    saved = json.loads(cli.config_file.read_text())
    user_id = TokenCodec(settings.jwt_secret(), timedelta(minutes=1)).subject(saved["sessions"][cli.url]["token"])
    saved["sessions"][cli.url]["token"] = TokenCodec(settings.jwt_secret(), timedelta(seconds=-30)).issue(user_id)
    cli.config_file.write_text(json.dumps(saved))

    expired = cli("list")
    assert expired.exit_code == 3
    assert "Token expired or invalid — run `primscene login`." in expired.stderr
    assert expired.stdout == ""

    invalid = cli("submit", __file__, PRIMSCENE_TOKEN="not-a-token")
    assert invalid.exit_code == 3 and "Token expired or invalid — run `primscene login`." in invalid.stderr
    assert invalid.stdout == ""

    cli.login(*ALICE)  # and logging in again fixes it
    assert cli("list").exit_code == 0


def test_a_server_that_is_not_running_is_named(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    cli = Cli(tmp_path, url)
    down = cli("login", "--url", url, input="alice\nalice-password-1\n")
    assert down.exit_code == 4
    assert f"cannot reach {url} — is the service running?" in down.stderr
    listing = cli("list", PRIMSCENE_TOKEN="whatever", PRIMSCENE_URL=url)
    assert listing.exit_code == 4 and f"cannot reach {url}" in listing.stderr
    with pytest.raises(ps.ServerUnavailable, match="is the service running"):
        ps.Client(url, "token").models()


# The Python client ------------------------------------------------------------------------------


@pytest.fixture
async def asgi_app(app: FastAPI, settings: Settings) -> AsyncIterator[httpx.ASGITransport]:
    async with LifespanManager(app):
        yield httpx.ASGITransport(app=app)


async def test_async_client_flow_and_errors(asgi_app: httpx.ASGITransport) -> None:
    base = "http://primscene.test"
    async with ps.AsyncClient(base, transport=asgi_app) as admin:
        with pytest.raises(ps.AuthError, match="Incorrect username or password"):
            await admin.login("admin", "wrong-password-1")
        token = await admin.login("admin", ADMIN_PASSWORD)
        assert token.expires_in > 0 and admin.token == token.access_token
        alice = await admin.create_user(*ALICE)
        assert alice.username == "alice" and not alice.is_admin
        with pytest.raises(ps.Conflict, match="already exists"):
            await admin.create_user(*ALICE)

    async with ps.AsyncClient(base, transport=asgi_app, page_size=2) as me:
        with pytest.raises(ps.AuthError, match="Not logged in"):
            await me.list()
        await me.login(*ALICE)
        image = rectangle_image(size=(200, 100), box=(50, 20, 149, 59))
        task = await me.submit(image, idempotency_key="first-photo")
        assert task.status in ("queued", "running", "succeeded")
        assert (await me.submit(image, idempotency_key="first-photo")).id == task.id  # replayed
        done = await me.wait(task.id, timeout=20)
        assert done.status == "succeeded" and done.finished_at is not None
        result = await me.result(task.id)
        assert isinstance(result, ps.Result) and result.task_id == task.id
        assert result.scene.class_name == "shape" and result.image == ps.ImageSize(width=200, height=100)
        [box] = result.primitives
        assert (box.class_name, box.x, box.y, box.width, box.height) == ("rectangle", 0.5, 0.4, 0.5, 0.4)
        assert result.models.detector == "bbox-detector:test"
        assert await me.input(task.id) == image

        ids = [task.id]
        for width in (40, 50, 60, 70):
            ids.append((await me.submit(rectangle_image(size=(width, 30), box=(5, 5, 20, 20)))).id)
        listed = await me.list()  # five tasks, pages of two: follows `next` twice
        assert [t.id for t in listed] == ids[::-1]
        assert [t.id for t in await me.list(limit=3)] == ids[::-1][:3]
        assert {m.kind for m in await me.models()} == {"detector", "classifier"}

        with pytest.raises(ps.Refused, match="Unsupported file type") as refused:
            await me.submit(GARBAGE)
        assert refused.value.status_code == 415
        with pytest.raises(ps.Refused, match="corrupt|decoded|truncated"):
            await me.submit(rectangle_image()[:60])
        # The webhook field reaches the server, which judges it (no hosts are allowed here).
        with pytest.raises(ps.Refused, match="(?i)webhook|callback_url") as no_webhooks:
            await me.submit(image, callback_url="https://hooks.example.com/primscene")
        assert no_webhooks.value.status_code == 422
        narrow = await me.wait((await me.submit(rectangle_image(size=(10, 40), box=(2, 2, 5, 5)))).id)
        assert narrow.status == "failed"
        with pytest.raises(ps.NotFinished) as not_finished:
            await me.result(narrow.id)
        assert not_finished.value.task_status == "failed" and "pixels wide" in not_finished.value.error
        with pytest.raises(ps.Forbidden, match="Only administrators"):
            await me.create_user("mallory", "mallory-password-1")

        await me.delete(task.id)
        for call in (me.get, me.result, me.input, me.delete):
            with pytest.raises(ps.NotFound, match="Task not found"):
                await call(task.id)

        me.token = "expired-or-forged"
        with pytest.raises(ps.AuthError, match="run `primscene login`") as expired:
            await me.get(ids[1])
        assert expired.value.status_code == 401


@SQLITE_ONLY
def test_sync_client_against_a_real_server(server: str, accounts: dict, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(rectangle_image(size=(200, 100), box=(50, 20, 149, 59)))
    with ps.Client(server + "/api/v1/") as me:  # a pasted API URL works too
        me.login(*ALICE)
        task = me.submit(photo)
        assert me.wait(task.id, timeout=20).status == "succeeded"
        assert me.result(task.id).model_dump(mode="json") == api_get(server, f"/tasks/{task.id}/result", accounts["alice"]).json()
        assert me.input(task.id) == photo.read_bytes()
        assert [t.id for t in me.list(status="succeeded")] == [task.id]
        assert me.list(status="failed") == []
        me.delete(task.id)
        assert me.list() == []


@SQLITE_ONLY
def test_busy_service_and_wait_timeout(database_url: str, tmp_path: Path, seeded: dict[str, uuid.UUID]) -> None:
    settings = make_settings(database_url, tmp_path, max_queued_per_user=1, retry_after_s=3)
    with live_server(make_app(settings, BoundingBoxPipeline(delay_s=1.5))) as url, ps.Client(url) as me:
        me.login("admin", ADMIN_PASSWORD)
        first = me.submit(rectangle_image())
        with pytest.raises(ps.Busy, match="unfinished tasks") as busy:
            me.submit(rectangle_image(size=(100, 50)))
        assert busy.value.status_code == 429 and busy.value.retry_after == 3
        with pytest.raises(ps.WaitTimeout, match=f"task {first.id} is still (queued|running)"):
            me.wait(first.id, timeout=0.2)
        assert me.wait(first.id, timeout=20).status == "succeeded"


class RecordingTransport(httpx.HTTPTransport):
    """httpx's own transport, noting the path of every request sent."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return super().handle_request(request)


@SQLITE_ONLY
def test_wait_is_one_request_the_task_event_stream(database_url: str, tmp_path: Path, seeded: dict[str, uuid.UUID]) -> None:
    """However long the task runs, `wait` sends one request, the task's event stream, and
    returns when the stream says it finished; a task deleted meanwhile is NotFound."""
    settings = make_settings(database_url, tmp_path)
    transport = RecordingTransport()
    with live_server(make_app(settings, BoundingBoxPipeline(delay_s=1.0))) as url, ps.Client(url, transport=transport) as me:
        me.login("admin", ADMIN_PASSWORD)
        task = me.submit(rectangle_image())
        headers = {"Authorization": f"Bearer {me.token}"}
        transport.paths.clear()
        finished = me.wait(task.id, timeout=20)
        assert transport.paths == [f"{API}/tasks/{task.id}/events"]
        assert finished.status == "succeeded"
        shown = finished.model_dump(mode="json")
        assert shown == {field: value for field, value in api_get(url, f"/tasks/{task.id}", headers).json().items() if field in shown}

        doomed = me.submit(rectangle_image(size=(90, 40)))
        deleting = threading.Timer(0.3, httpx.delete, args=(f"{url}{API}/tasks/{doomed.id}",), kwargs={"headers": headers})
        deleting.start()
        with pytest.raises(ps.NotFound, match=f"task {doomed.id} was deleted"):
            me.wait(doomed.id, timeout=20)
        deleting.join()
