"""The web app at `/`: served next to the API, and used like a person would in a real headless
Chromium (Playwright) against the test app behind a real HTTP server.

Chromium is Debian's (/usr/bin/chromium); Playwright's own browser download is never used. The
browser tests are skipped when either is missing. Screenshots go to test-artifacts/web/.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw

from deployments.contract import ImagePayload, PipelineResult, Primitive
from serve_app.api import create_app
from serve_app.security import TokenCodec
from serve_app.settings import Settings
from tests.support.api import API, Users
from tests.support.databases import ADMIN_PASSWORD, empty_tables, make_settings, run_outside_event_loop
from tests.support.live_server import live_server
from tests.support.paths import PROJECT_ROOT
from tests.support.pipeline import BoundingBoxCatalog, BoundingBoxPipeline

try:
    from playwright import sync_api
except ImportError:  # only the browser tests need it (the `dev` extra has it)
    sync_api = None

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "web"
USERNAME, PASSWORD = "carol", "carol-password-1"
SESSION_KEY = "primscene.session"  # where serve_app/web/js/auth.js keeps the session
EXPIRED_MESSAGE = "Your session has expired, log in again"

IMAGE_SIZE = (320, 200)
BOX = (60, 40, 219, 119)  # the red rectangle drawn, inclusive: its bounding box is 60..220 × 40..120
DECOY = Primitive(class_id=1, class_name="ellipse", x=0.5, y=0.5, width=0.25, height=0.1, rotation=math.pi / 6, confidence=0.55)
WAIT_MS = 20_000
MAX_UPLOAD_BYTES = 256 * 1024


# --- Serving: `/` is the web app, everything else still the API --------------------------------


async def test_root_serves_the_web_app_and_the_api_still_answers(client: httpx.AsyncClient, users: Users) -> None:
    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/web/js/main.js">' in page.text
    assert (await client.get("/web/index.html")).text == page.text
    for path, media_type in (("/web/style.css", "text/css"), ("/web/js/main.js", "javascript"), ("/web/js/api.js", "javascript")):
        asset = await client.get(path)
        assert asset.status_code == 200 and media_type in asset.headers["content-type"], path

    # The API, probes and docs are untouched by the web app (its page is `/`, its files `/web/…`).
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200
    assert (await client.get("/docs")).status_code == 200
    assert "/api/v1/tasks" in (await client.get("/openapi.json")).json()["paths"]
    listed = await client.get(f"{API}/tasks", headers=users.alice)
    assert listed.status_code == 200 and listed.json()["items"] == []
    assert (await client.get(f"{API}/tasks")).status_code == 401

    # Paths nobody serves are JSON 404s, not the page; the mount gives no way out of its folder.
    for path in (f"{API}/no-such-route", "/web/no-such-file.js", "/web/../serve_app/api.py", "/web/%2e%2e/api.py"):
        missing = await client.get(path)
        assert missing.status_code == 404 and missing.json() == {"detail": "Not Found"}, path
    # A wrong method on an API route still names the methods it has.
    refused = await client.put(f"{API}/tasks")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, POST"


# --- A real browser --------------------------------------------------------------------------------

browser_needed = pytest.mark.skipif(
    sync_api is None or not Path(CHROMIUM).exists(), reason=f"needs Playwright (the dev extra) and Chromium at {CHROMIUM}"
)
expect = sync_api.expect if sync_api else None
if expect:
    expect.set_options(timeout=WAIT_MS)


class DecoyPipeline(BoundingBoxPipeline):
    """The test pipeline (the real bounding box of what differs from the background, confidence
    1.0) plus one fixed, rotated, less confident primitive of another class, so that the class
    toggles, the threshold and rotated boxes all have something to show."""

    async def __call__(self, image: ImagePayload) -> PipelineResult:
        found = await super().__call__(image)
        if found.primitives:
            found.primitives.append(DECOY)
        return found


@dataclass
class Site:
    url: str
    settings: Settings
    user_id: str
    headers: dict[str, str]  # the user's, for checks through the API


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless=new"])
        yield browser
        browser.close()


@pytest.fixture
def site(request: pytest.FixtureRequest, migrated_urls: dict[str, str], tmp_path: Path) -> Iterator[Site]:
    """The test app on PostgreSQL behind uvicorn on a free loopback port, with one user. A test
    may change the limits and the pipeline's delay by indirect parametrization with a dict."""
    options = {"delay_s": 0.4, "max_upload_bytes": MAX_UPLOAD_BYTES, **getattr(request, "param", {})}
    delay_s = options.pop("delay_s")
    url = migrated_urls["postgresql"]
    run_outside_event_loop(asyncio.run, empty_tables(url))
    settings = make_settings(url, tmp_path, **options)
    app = create_app(settings, models=BoundingBoxCatalog(), pipeline=DecoyPipeline(delay_s=delay_s, reject_below_width=40))
    with live_server(app) as base, httpx.Client(base_url=base, timeout=20) as http:
        token = http.post(f"{API}/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}).json()["access_token"]
        created = http.post(
            f"{API}/users", json={"username": USERNAME, "password": PASSWORD}, headers={"Authorization": f"Bearer {token}"}
        )
        assert created.status_code == 201, created.text
        user_token = http.post(f"{API}/auth/token", data={"username": USERNAME, "password": PASSWORD}).json()["access_token"]
        yield Site(base, settings, created.json()["id"], {"Authorization": f"Bearer {user_token}"})


@pytest.fixture
def context(browser, site: Site) -> Iterator[object]:
    """A fresh browser profile per test, closed before the server stops (its streams with it)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(WAIT_MS)
    yield context
    context.close()


@pytest.fixture
def page(context) -> Iterator[object]:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    assert errors == [], f"uncaught errors in the page: {errors}"


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def png(path: Path, size: tuple[int, int] = IMAGE_SIZE, box: tuple[int, int, int, int] | None = BOX) -> Path:
    image = Image.new("RGB", size, "white")
    if box:
        ImageDraw.Draw(image).rectangle(box, fill="red")
    image.save(path, format="PNG")
    return path


def log_in(page, site: Site) -> None:
    page.goto(site.url)
    form = page.locator("#login-form")
    expect(form).to_be_visible()
    form.get_by_label("Username").fill(USERNAME)
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Log in").click()
    expect(page.locator("#app-view")).to_be_visible()
    expect(page.locator("#stream-state")).to_have_attribute("data-state", "live")


def choose_files(page, *paths: Path) -> None:
    """Through the "Choose images…" button and the browser's file chooser."""
    with page.expect_file_chooser() as chooser:
        page.get_by_text("Choose images…").click()
    chooser.value.set_files([str(p) for p in paths])


def drop_file(page, name: str, content: bytes, media_type: str) -> None:
    """Drag a file onto the drop zone (the events a browser sends for a real drop)."""
    page.evaluate(
        """([name, base64, type]) => {
            const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type }));
            const zone = document.querySelector('#dropzone');
            for (const kind of ['dragenter', 'dragover', 'drop']) {
                zone.dispatchEvent(new DragEvent(kind, { bubbles: true, cancelable: true, dataTransfer: transfer }));
            }
        }""",
        [name, base64.b64encode(content).decode(), media_type],
    )


def polygon_points(polygon) -> list[tuple[float, float]]:
    return [tuple(float(v) for v in pair.split(",")) for pair in polygon.get_attribute("points").split()]


def corners(primitive: dict, width: int, height: int) -> list[tuple[float, float]]:
    """The API's contract (Ultralytics xywhr): centre and size normalised, rotation clockwise in
    image coordinates (y down). Corners in the order top-left, top-right, bottom-right, bottom-left
    of the unrotated box."""
    cx, cy = primitive["x"] * width, primitive["y"] * height
    hw, hh = primitive["width"] * width / 2, primitive["height"] * height / 2
    cos, sin = math.cos(primitive["rotation"]), math.sin(primitive["rotation"])
    return [(cx + dx * cos - dy * sin, cy + dx * sin + dy * cos) for dx, dy in ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh))]


def assert_close(points, expected, tolerance: float) -> None:
    assert len(points) == len(expected)
    for (x, y), (ex, ey) in zip(points, expected):
        assert abs(x - ex) <= tolerance and abs(y - ey) <= tolerance, (points, expected)


def no_horizontal_scroll(page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"


@browser_needed
def test_upload_follow_inspect_download_and_delete(page, site: Site, tmp_path: Path) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url.removeprefix(site.url)))
    log_in(page, site)
    screenshot(page, "01-logged-in")
    page.evaluate("window.sameDocument = true")  # gone if the page were reloaded

    # One good image and one the pipeline refuses (narrower than 40 px), chosen together.
    choose_files(page, png(tmp_path / "rectangle.png"), png(tmp_path / "too-narrow.png", size=(30, 30), box=(5, 5, 20, 20)))
    accepted = page.locator("#upload-log li[data-state=accepted]")
    expect(accepted).to_have_count(2)
    ids = {name: accepted.filter(has_text=name).get_attribute("data-task-id") for name in ("rectangle.png", "too-narrow.png")}
    good, bad = page.locator(f"li.task[data-id='{ids['rectangle.png']}']"), page.locator(f"li.task[data-id='{ids['too-narrow.png']}']")

    # The list follows the tasks by itself: to succeeded with the scene, or failed with the reason.
    expect(good).to_have_attribute("data-status", "succeeded")
    expect(good.locator(".badge")).to_have_text("succeeded")
    expect(good.locator(".task-scene")).to_have_text("shape 0.90")
    expect(bad).to_have_attribute("data-status", "failed")
    failed = httpx.get(f"{site.url}{API}/tasks/{ids['too-narrow.png']}", headers=site.headers).json()
    assert "images must be at least 40 pixels wide" in failed["error"]
    expect(bad.locator(".task-error")).to_have_text(failed["error"])
    assert page.evaluate("window.sameDocument") is True
    assert f"{API}/events" in requests
    polled = [url for url in requests if url.rstrip("/") in {f"{API}/tasks/{task_id}" for task_id in ids.values()} or url.startswith(f"{API}/tasks?")]
    assert polled == [], f"the list polled instead of following the stream: {polled}"
    screenshot(page, "02-task-list")

    # The result view: the image with one polygon per primitive, where the API puts them.
    task_id = ids["rectangle.png"]
    result = httpx.get(f"{site.url}{API}/tasks/{task_id}/result", headers=site.headers).json()
    width, height = result["image"]["width"], result["image"]["height"]
    assert (width, height) == IMAGE_SIZE
    good.locator(".task-open").click()
    expect(page).to_have_url(f"{site.url}/#/tasks/{task_id}")
    view = page.locator("#result-view")
    polygons = view.locator("#result-svg polygon")
    expect(polygons).to_have_count(len(result["primitives"]))
    assert view.locator("#result-svg").get_attribute("viewBox") == f"0 0 {width} {height}"
    assert [p.get_attribute("data-class") for p in polygons.all()] == [p["class_name"] for p in result["primitives"]]
    assert [float(p.get_attribute("data-confidence")) for p in polygons.all()] == [p["confidence"] for p in result["primitives"]]
    for polygon, primitive in zip(polygons.all(), result["primitives"]):
        assert_close(polygon_points(polygon), corners(primitive, width, height), tolerance=0.01)
    rectangle = view.locator("polygon[data-class=rectangle]")
    ellipse = view.locator("polygon[data-class=ellipse]")
    left, top, right, bottom = BOX
    assert_close(polygon_points(rectangle), [(left, top), (right + 1, top), (right + 1, bottom + 1), (left, bottom + 1)], tolerance=1.0)
    (x0, y0), (x1, y1) = polygon_points(ellipse)[:2]
    assert math.degrees(math.atan2(y1 - y0, x1 - x0)) == pytest.approx(30, abs=0.5)  # turned clockwise on screen
    expect(view.locator("#result-svg text")).to_have_text(["rectangle 1.00", "ellipse 0.55"])
    expect(view.locator(".scene-name")).to_have_text("Scene: shape (0.90)")
    expect(view.locator(".top-k li")).to_have_count(len(result["scene"]["top_k"]))
    screenshot(page, "03-result")

    # Filters: a class off hides its boxes; the threshold hides the less confident ones.
    view.get_by_label("rectangle (1)").uncheck()
    expect(rectangle).to_be_hidden()
    expect(ellipse).to_be_visible()
    view.get_by_label("rectangle (1)").check()
    view.locator("#threshold").fill("0.6")
    expect(view.locator("#threshold-value")).to_have_text("0.60")
    expect(ellipse).to_be_hidden()
    expect(rectangle).to_be_visible()
    expect(view.locator("#shown-count")).to_have_text("1 of 2 primitives shown")
    screenshot(page, "04-filtered")

    # Downloads: the result JSON, and the annotated PNG fetched with the token.
    with page.expect_download() as download:
        view.get_by_role("button", name="Download JSON").click()
    assert download.value.suggested_filename == f"primscene-{task_id}.json"
    assert json.loads(Path(download.value.path()).read_text()) == result
    with page.expect_download() as download:
        view.get_by_role("button", name="Download annotated PNG").click()
    assert download.value.suggested_filename == f"primscene-{task_id}.png"
    with Image.open(io.BytesIO(Path(download.value.path()).read_bytes())) as annotated:
        assert annotated.format == "PNG" and annotated.size == IMAGE_SIZE
    assert f"{API}/tasks/{task_id}/result.png" in requests

    # Delete, after saying yes: gone from the view, the list and the API.
    dialogs: list[str] = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    view.get_by_role("button", name="Delete task").click()
    expect(good).to_have_count(0)
    expect(view).to_be_hidden()
    assert "rectangle.png" in dialogs[0]
    assert httpx.get(f"{site.url}{API}/tasks/{task_id}", headers=site.headers).status_code == 404
    expect(bad).to_have_count(1)

    # A task deleted elsewhere (another tab, another client) vanishes too: the stream says so.
    assert httpx.delete(f"{site.url}{API}/tasks/{ids['too-narrow.png']}", headers=site.headers).status_code == 204
    expect(bad).to_have_count(0)
    expect(page.locator("#tasks-empty")).to_be_visible()
    assert page.evaluate("window.sameDocument") is True
    screenshot(page, "05-deleted")


def refusal(site: Site, name: str, content: bytes) -> tuple[int, str]:
    """What the API answers to this upload: status and detail."""
    answer = httpx.post(f"{site.url}{API}/tasks", files={"image": (name, content, "application/octet-stream")}, headers=site.headers)
    return answer.status_code, answer.json()["detail"]


@browser_needed
@pytest.mark.parametrize("site", [{"delay_s": 30, "max_queued_per_user": 1}], indirect=True, ids=["one-task-queue"])
def test_refused_uploads_show_the_servers_reason(page, site: Site, tmp_path: Path) -> None:
    log_in(page, site)
    # Each refusal as the API gives it: not an image, corrupt, too large (stopped while the body
    # streams in, before the browser has finished sending it).
    corrupt = png(tmp_path / "broken.png").read_bytes()[:60]
    huge = b"x" * (4 * MAX_UPLOAD_BYTES)
    refused = {
        "notes.txt": (b"not an image", "text/plain", refusal(site, "notes.txt", b"not an image")),
        "broken.png": (corrupt, "image/png", refusal(site, "broken.png", corrupt)),
        "huge.png": (huge, "image/png", refusal(site, "huge.png", huge)),
    }
    assert [status for *_, (status, _) in refused.values()] == [415, 422, 413]
    for name, (content, media_type, _) in refused.items():
        drop_file(page, name, content, media_type)
    lines = page.locator("#upload-log li[data-state=refused]")
    expect(lines).to_have_count(len(refused))
    for name, (*_, (status, detail)) in refused.items():
        line = lines.filter(has_text=name)
        expect(line).to_have_text(f"{name}: refused — {detail}")
        assert line.get_attribute("data-status") == str(status)
    expect(page.locator("li.task")).to_have_count(0)

    # A full queue (one unfinished task allowed; the pipeline takes 30 s): 429, with the wait named.
    choose_files(page, png(tmp_path / "first.png"), png(tmp_path / "second.png"))
    expect(page.locator("#upload-log li[data-state=accepted]").filter(has_text="first.png")).to_have_count(1)
    full = page.locator("#upload-log li[data-state=refused]").filter(has_text="second.png")
    expect(full).to_contain_text("second.png: refused — You have 1 unfinished tasks, the most allowed; wait for some to finish.")
    expect(full).to_contain_text(f"(the server asks to wait {site.settings.limits.retry_after_s} seconds before trying again)")
    assert full.get_attribute("data-status") == "429"
    expect(full.get_by_role("button")).to_be_disabled()  # "Retry in N s", usable once the wait is over
    expect(page.locator("li.task")).to_have_count(1)
    screenshot(page, "06-refused-uploads")

    # Deleting the running task from the list frees the queue (and stops its work at once).
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("li.task").filter(has_text="first.png").get_by_role("button", name="Delete").click()
    expect(page.locator("li.task")).to_have_count(0)


@browser_needed
def test_error_messages_and_the_event_stream_parser(page, site: Site) -> None:
    """The app's own modules, in the browser: the Retry-After wait is named, and the SSE parser
    copes with events split anywhere (even between CR and LF)."""
    page.goto(site.url)
    outcome = page.evaluate(
        """async () => {
            const { ApiError, describeError } = await import('/web/js/api.js');
            const { SseParser } = await import('/web/js/sse.js');
            const events = [];
            const parser = new SseParser((event) => events.push(event));
            const stream = ': keep-alive\\r\\nevent: task\\r\\ndata: {"id":\\r\\ndata: 1}\\r\\n\\r\\n'
                + 'data:plain\\n\\nevent: deleted\\rdata: {"id": 2}\\r\\rid: 7\\nretry: 50\\n';
            for (const piece of stream.match(/[\\s\\S]{1,3}/g)) parser.push(piece);
            return {
                events,
                queueFull: describeError(new ApiError(429, 'You have 5 unfinished tasks, the most allowed; wait for some to finish.', 30)),
                busy: describeError(new ApiError(503, 'The service is at capacity; try again shortly.', 1)),
                tooLarge: describeError(new ApiError(413, 'The image is too large.')),
            };
        }"""
    )
    assert outcome["events"] == [
        {"type": "task", "data": '{"id":\n1}', "id": ""},
        {"type": "message", "data": "plain", "id": ""},
        {"type": "deleted", "data": '{"id": 2}', "id": ""},
    ]
    assert outcome["queueFull"].endswith("(the server asks to wait 30 seconds before trying again)")
    assert outcome["busy"].endswith("(the server asks to wait 1 second before trying again)")
    assert outcome["tooLarge"] == "The image is too large."


@browser_needed
def test_an_expired_session_goes_back_to_the_login_form(page, site: Site) -> None:
    expired = TokenCodec(site.settings.jwt_secret(), timedelta(minutes=-1)).issue(site.user_id)
    assert httpx.get(f"{site.url}{API}/tasks", headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    page.goto(site.url)
    # A session the browser still believes in (an hour left), but the server no longer accepts.
    page.evaluate(
        "([key, token, username]) => sessionStorage.setItem(key, JSON.stringify({ token, username, expiresAt: Date.now() + 3600000 }))",
        [SESSION_KEY, expired, USERNAME],
    )
    page.reload()
    expect(page.locator("#login-message")).to_have_text(EXPIRED_MESSAGE)
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#app-view")).to_be_hidden()
    assert page.evaluate(f"sessionStorage.getItem('{SESSION_KEY}')") is None
    screenshot(page, "07-session-expired")
    # Logging in again works and clears the message.
    log_in(page, site)
    expect(page.locator("#login-message")).to_be_hidden()


@browser_needed
def test_phone_sized_screen(browser, site: Site, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740}, device_scale_factor=2, is_mobile=True, has_touch=True)
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        log_in(page, site)
        long_name = "holiday-photo-with-a-very-long-file-name-that-does-not-fit-on-a-phone-screen-at-all.png"
        choose_files(page, png(tmp_path / long_name), png(tmp_path / "second.png", size=(640, 480), box=(100, 300, 500, 420)))
        expect(page.locator("li.task[data-status=succeeded]")).to_have_count(2)
        no_horizontal_scroll(page)
        screenshot(page, "08-phone-list")
        page.locator(".task-open").first.click()
        expect(page.locator("#result-svg polygon")).to_have_count(2)
        no_horizontal_scroll(page)
        svg_box = page.locator("#result-svg").bounding_box()
        assert svg_box["x"] >= 0 and svg_box["x"] + svg_box["width"] <= 375
        screenshot(page, "09-phone-result")
    finally:
        context.close()

