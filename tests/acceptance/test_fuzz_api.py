"""Property-based fuzzing of the whole HTTP API against its own OpenAPI, with schemathesis.

The app is built in-process as in the other API tests (test pipeline, migrated PostgreSQL) and
schemathesis drives it through ASGI:

- stateless: every operation gets schema-driven valid and invalid requests (examples, coverage
  and fuzzing phases) under all of schemathesis' checks: no 5xx; status code, content type,
  headers and body conform to the OpenAPI; valid data accepted, invalid data rejected; 405
  with a correct `Allow` for undeclared methods. On top, `rejects_missing_and_forged_tokens`:
  whatever the API served with a token, it refuses (401) without one or with a forged one.
- stateful: chains of calls along the OpenAPI links (create a task → read it, its input and
  result → delete it → read it again; list the models → run one), adding
  `ensure_resource_availability` (a task is there right after it is created) and
  `use_after_free` (404 once it is deleted).

Requests carry the token of a real, non-admin user whom the admin creates through the API;
`POST /users` is fuzzed as the admin. Generation is seeded and derandomized (reproducible in
CI); example counts are bounded so that the file runs in well under 90 s on two cores.
`pytest -s tests/acceptance/test_fuzz_api.py` prints how many calls were made.
"""

from __future__ import annotations

import asyncio
import io
from collections import Counter, defaultdict
from collections.abc import Iterator

import hypothesis
import jwt
import pytest
import schemathesis
from hypothesis import strategies as st
from PIL import Image, ImageDraw
from schemathesis.python.asgi import ASGIClient, shutdown_lifespans

from db import migrate
from serve_app.api import create_app
from tests.support.databases import ADMIN_PASSWORD, fresh_postgres_database, make_settings, run_outside_event_loop
from tests.support.pipeline import BoundingBoxCatalog, BoundingBoxPipeline

API = "/api/v1"
# A database of its own: the fuzzed app's dispatcher lives as long as schemathesis' ASGI
# lifespan, and must not claim tasks that other tests put in the shared test database.
FUZZ_DATABASE = "primscene_test_fuzz"
FUZZ_USER = ("fuzzer", "fuzzer-password-1")
SEED = 20240917

STATELESS_MAX_EXAMPLES = 25  # fuzzing-phase examples per operation, besides examples/coverage cases
# Scenarios. Which links a scenario can follow depends on timing (a result ready or not), so
# enough of them that every link gets walked however the timing goes (25 missed some in CI).
STATEFUL_MAX_EXAMPLES = 60
STATEFUL_STEP_COUNT = 10  # calls per scenario, at most

USER_EVENT_STREAM = "user_task_events"

FUZZ_CONFIG = {
    "seed": SEED,
    # Every check schemathesis has is on by default. The stored-failures database is off, so a
    # run does not depend on what an earlier run found.
    "generation": {"database": "none"},
    "operations": [
        {
            # `cursor` is an opaque token the server issued (the `next` of a page): no schema can
            # describe the strings it accepts, so a made-up one is rightly refused with 422.
            "include-name": f"GET {API}/tasks",
            "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "422"]}},
        },
        {
            # A password equal to the username is refused (422), which no schema can express.
            "include-name": f"POST {API}/users",
            "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "409", "422"]}},
        },
        {
            # `callback_url` must point at a host on the service's allow-list, which is
            # configuration, not schema: a well-formed URL to another host is rightly a 422.
            "include-name": f"POST {API}/tasks",
            "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "409", "422", "429"]}},
        },
        {
            # The same `callback_url` rule for the batch submit (its images are refused one by one, in a 2xx).
            # Its "invalid" multipart bodies include `callback_url` as an array of one string, or an
            # empty one: on the wire that is a single `callback_url` part, or none, which is valid
            # (two parts are refused with 422, tests/integration/test_waiting_and_batches.py). So rejection of
            # negative data is not checked here.
            "include-name": f"POST {API}/batches",
            "checks": {
                "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "422"]},
                "negative_data_rejection": {"enabled": False},
            },
        },
    ],
    # The stateful test follows the links the OpenAPI declares, not links schemathesis infers:
    # if the declared links go missing, it fails instead of quietly testing something else.
    "phases": {"stateful": {"inference": {"algorithms": []}}},
}

# What the fuzzing did, for the last test to check that it reached what it should.
STATELESS: dict[str, Counter[int]] = defaultdict(Counter)
STATEFUL: dict[str, Counter[int]] = defaultdict(Counter)
AUTH_PROBED = Counter[str]()  # operation → authenticated 2xx answers probed without a valid token
SCENARIOS = Counter[str]()


@st.composite
def small_images(draw: st.DrawFn, fmt: str) -> bytes:
    """A small, valid image in Pillow format `fmt`: a background with one filled rectangle."""
    width, height = draw(st.integers(8, 48)), draw(st.integers(8, 48))
    image = Image.new("RGB", (width, height), draw(st.sampled_from(["white", "black", "navy"])))
    left, top = draw(st.integers(0, width - 2)), draw(st.integers(0, height - 2))
    right, bottom = draw(st.integers(left + 1, width - 1)), draw(st.integers(top + 1, height - 1))
    ImageDraw.Draw(image).rectangle((left, top, right, bottom), fill=draw(st.sampled_from(["red", "yellow"])))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


# The upload routes declare the media types of their `image` part (`encoding.image.contentType`);
# for valid requests schemathesis draws the part from these strategies, so uploads are real
# images and tasks get created. Invalid requests still send arbitrary bytes.
for _media_type, _format in {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP", "image/bmp": "BMP"}.items():
    schemathesis.openapi.media_type(_media_type, small_images(_format))


def rejects_missing_and_forged_tokens(ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """What the API served to a token holder it refuses, with 401 and a Bearer challenge, to a
    request without a token, with a malformed one, or with the same claims signed by another key.

    schemathesis' own `ignored_auth` probes only apiKey and HTTP security schemes; ours is the
    OAuth2 password flow (FastAPI's `OAuth2PasswordBearer`), so the probes are made here.
    """
    if not case.operation.definition.raw.get("security") or not 200 <= response.status_code < 300:
        return
    served = f"{case.operation.label} answered {response.status_code}"
    headers = case.headers or {}
    authorization = next((value for name, value in headers.items() if name.lower() == "authorization"), None)
    assert authorization is not None, f"{served} to a request without a token"
    try:
        claims = jwt.decode(authorization.removeprefix("Bearer "), options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise AssertionError(f"{served} to a request with a malformed token: {authorization!r}") from None
    forged = jwt.encode(claims, "not-the-server-key-" * 4, algorithm="HS256")
    others = {name: value for name, value in headers.items() if name.lower() != "authorization"}
    for what, probe_headers in [
        ("no token", others),
        ("a malformed token", {**others, "Authorization": "Bearer not-a-token"}),
        ("a token signed with another key", {**others, "Authorization": f"Bearer {forged}"}),
    ]:
        probe = case.derive(headers=probe_headers).call()
        assert probe.status_code == 401 and probe.headers.get("www-authenticate") == ["Bearer"], (
            f"{served} with a valid token, and {probe.status_code} (WWW-Authenticate: "
            f"{probe.headers.get('www-authenticate')}) with {what}; expected 401 with WWW-Authenticate: Bearer"
        )
    AUTH_PROBED[case.operation.label] += 1


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    url = run_outside_event_loop(asyncio.run, fresh_postgres_database(FUZZ_DATABASE))
    run_outside_event_loop(migrate.upgrade, url)
    settings = make_settings(url, tmp_path_factory.mktemp("fuzz"))
    yield create_app(settings, models=BoundingBoxCatalog(), pipeline=BoundingBoxPipeline())
    shutdown_lifespans()  # stops the dispatcher and closes the engine, here rather than at exit


def _token(client: ASGIClient, username: str, password: str) -> str:
    response = client.post(f"{API}/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture(scope="module")
def api_schema(fuzz_app: object) -> schemathesis.BaseSchema:
    # Loading the schema starts the app's lifespan (schema check, first admin, dispatcher).
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app, config=schemathesis.Config.from_dict(FUZZ_CONFIG))
    with ASGIClient(fuzz_app) as client:
        admin = _token(client, "admin", ADMIN_PASSWORD)
        created = client.post(
            f"{API}/users",
            json={"username": FUZZ_USER[0], "password": FUZZ_USER[1]},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert created.status_code == 201, created.text

    class AdminLogin:
        """Only administrators may create users: `POST /users` is fuzzed as the admin."""

        credentials = ("admin", ADMIN_PASSWORD)

        def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> str:
            with ASGIClient(ctx.app) as client:
                return _token(client, *self.credentials)

        def set(self, case: schemathesis.Case, data: str, ctx: schemathesis.AuthContext) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    class UserLogin(AdminLogin):
        """Everything else as an ordinary user, logged in through the API (token cached)."""

        credentials = FUZZ_USER

    schema.auth().apply_to(path=f"{API}/users")(AdminLogin)
    schema.auth().skip_for(path=f"{API}/users")(UserLogin)
    # The caller's live event stream never ends by design (until the client leaves), so a
    # fuzzing call would wait forever; tests/integration/test_live_results.py covers it with a real client.
    return schema.exclude(operation_id=USER_EVENT_STREAM)


schema = schemathesis.pytest.from_fixture("api_schema").exclude(operation_id=USER_EVENT_STREAM)


@pytest.fixture(autouse=True)
def _schemathesis_node_id_shim(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32.5's `from_fixture` tests read and rename `Node._nodeid`, which pytest 9.2
    no longer has (the id lives in `_id`); give them the attribute to work with."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@schema.parametrize()
@hypothesis.settings(
    max_examples=STATELESS_MAX_EXAMPLES,
    deadline=None,  # two shared cores: response time is not what is tested here
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),  # as schemathesis' own state machines do
)
def test_every_operation_conforms_to_the_openapi(case: schemathesis.Case) -> None:
    response = case.call_and_validate(additional_checks=[rejects_missing_and_forged_tokens])
    STATELESS[case.operation.label][response.status_code] += 1


def test_task_lifecycle_follows_the_openapi_links(api_schema: schemathesis.BaseSchema) -> None:
    """Chains of calls along the declared links, each step under every stateless check, plus:
    a task is readable right after it is created and gone (404) once deleted."""

    class TaskWorkflow(api_schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            SCENARIOS["run"] += 1

        def after_call(self, response: schemathesis.Response, case: schemathesis.Case) -> None:
            super().after_call(response, case)
            STATEFUL[case.operation.label][response.status_code] += 1

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:  # type: ignore[no-untyped-def]
            checks = [*(additional_checks or []), rejects_missing_and_forged_tokens]
            super().validate_response(response, case, additional_checks=checks, **kwargs)

    TaskWorkflow.run(
        settings=hypothesis.settings(
            TaskWorkflow.TestCase.settings,
            max_examples=STATEFUL_MAX_EXAMPLES,
            stateful_step_count=STATEFUL_STEP_COUNT,
            deadline=None,
            derandomize=True,
            database=None,
        )
    )


def test_fuzzing_reached_every_operation(api_schema: schemathesis.BaseSchema) -> None:
    """The fuzzing above shows something only if it got past the gates: every operation was
    called and (but login, whose success the auth providers show) answered 2xx at least once, so
    the tokens worked and the uploads were real images; every secured operation had its
    token probes; and the links led from new tasks to results and to deleted tasks."""
    if not STATELESS or not STATEFUL:
        pytest.skip("checks what the two fuzzing tests above did: run the whole file")
    operations = {result.ok() for result in api_schema.get_all_operations()}
    labels = {operation.label for operation in operations}
    assert set(STATELESS) == labels
    succeeded = {label for calls in (STATELESS, STATEFUL) for label, statuses in calls.items() if any(200 <= s < 300 for s in statuses)}
    assert succeeded == labels - {f"POST {API}/auth/token"}, {k: dict(v) for k, v in STATEFUL.items()}
    # Every API route but login declares that it needs a token (health probes live outside /api/v1),
    # and each of them was probed without one and with a forged one.
    secured = {operation.label for operation in operations if operation.definition.raw.get("security")}
    assert secured == {o.label for o in operations if o.path.startswith(f"{API}/")} - {f"POST {API}/auth/token"}
    assert set(AUTH_PROBED) == secured
    assert STATEFUL[f"POST {API}/tasks"][202] > 0
    assert STATEFUL[f"GET {API}/tasks/{{task_id}}/result"][200] > 0  # the test pipeline finished some
    assert STATEFUL[f"DELETE {API}/tasks/{{task_id}}"][204] > 0
    # Stateful calls take task ids only from links, so a 404 on a read is a read after the DELETE.
    assert sum(STATEFUL[f"GET {API}/tasks/{{task_id}}{suffix}"][404] for suffix in ("", "/input", "/result")) > 0
    print(
        f"\nstateless: {sum(sum(c.values()) for c in STATELESS.values())} calls over {len(STATELESS)} operations; "
        f"stateful: {SCENARIOS['run']} scenarios, {sum(sum(c.values()) for c in STATEFUL.values())} steps; "
        f"{sum(AUTH_PROBED.values())} answers re-sent without a valid token (x3), on {len(AUTH_PROBED)} operations"
    )
