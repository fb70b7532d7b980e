"""The whole API as a user drives it: log in, submit, poll, read the result and the input,
list, look at the models, delete."""

from __future__ import annotations

import httpx

from tests.support.api import API, Users, submit, wait_until_finished
from tests.support.images import rectangle_image


async def test_user_flow_from_token_to_delete(client: httpx.AsyncClient, users: Users) -> None:
    me = users.alice
    image = rectangle_image(size=(200, 100), box=(50, 20, 149, 59))

    created = await submit(client, me, image)
    assert created.status_code == 202, created.text
    task = created.json()
    assert task["status"] in ("queued", "running", "succeeded")
    assert created.headers["Location"] == f"{API}/tasks/{task['id']}"

    finished = await wait_until_finished(client, me, task["id"])
    assert finished["status"] == "succeeded"
    assert finished["attempts"] == 1
    assert finished["started_at"] is not None and finished["finished_at"] is not None

    result = (await client.get(f"{API}/tasks/{task['id']}/result", headers=me)).json()
    assert result["task_id"] == task["id"]
    assert result["image"] == {"width": 200, "height": 100}
    [box] = result["primitives"]
    assert box["class_name"] == "rectangle"
    assert (box["x"], box["y"], box["width"], box["height"]) == (0.5, 0.4, 0.5, 0.4)
    assert result["scene"]["class_name"] == "shape"
    assert result["scene"]["top_k"][0]["class_name"] == "shape"
    assert result["models"] == {"detector": "bbox-detector:test", "classifier": "blank-classifier:test"}

    original = await client.get(f"{API}/tasks/{task['id']}/input", headers=me)
    assert original.status_code == 200
    assert original.content == image
    assert original.headers["content-type"] == "image/png"

    models = (await client.get(f"{API}/models", headers=me)).json()
    assert {m["kind"] for m in models} == {"detector", "classifier"}
    assert all(m["classes"] and m["version"] and m["input_size"] > 0 for m in models)

    listing = (await client.get(f"{API}/tasks", headers=me)).json()
    assert [t["id"] for t in listing["items"]] == [task["id"]]
    assert listing["total"] == 1 and listing["next"] is None

    assert (await client.delete(f"{API}/tasks/{task['id']}", headers=me)).status_code == 204
    for path in ("", "/input", "/result"):
        assert (await client.get(f"{API}/tasks/{task['id']}{path}", headers=me)).status_code == 404
    assert (await client.delete(f"{API}/tasks/{task['id']}", headers=me)).status_code == 404
    assert (await client.get(f"{API}/tasks", headers=me)).json()["total"] == 0


async def test_listing_filters_by_status_and_pages_newest_first(
    client: httpx.AsyncClient, users: Users
) -> None:
    me = users.alice
    ids = []
    for width in (40, 50, 60, 70, 80):
        response = await submit(client, me, rectangle_image(size=(width, 30), box=(5, 5, 20, 20)))
        ids.append(response.json()["id"])
    for task_id in ids:
        await wait_until_finished(client, me, task_id)

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"{API}/tasks", params=params, headers=me)).json()
        assert page["total"] == 5
        assert len(page["items"]) <= 2
        seen += [t["id"] for t in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == ids[::-1]

    succeeded = (await client.get(f"{API}/tasks", params={"status": "succeeded"}, headers=me)).json()
    assert succeeded["total"] == 5
    queued = (await client.get(f"{API}/tasks", params={"status": "queued"}, headers=me)).json()
    assert queued == {"items": [], "total": 0, "next": None}


async def test_bad_listing_parameters_are_422(client: httpx.AsyncClient, users: Users) -> None:
    for params in ({"status": "done"}, {"limit": 0}, {"limit": 101}, {"cursor": "not-a-cursor"}, {"cursor": "e30"}):
        response = await client.get(f"{API}/tasks", params=params, headers=users.alice)
        assert response.status_code == 422, params
        assert response.json()["detail"]


async def test_result_of_unfinished_task_is_409_with_status(
    client: httpx.AsyncClient, users: Users, pipeline
) -> None:
    pipeline.delay_s = 1.0
    task = (await submit(client, users.alice, rectangle_image())).json()
    response = await client.get(f"{API}/tasks/{task['id']}/result", headers=users.alice)
    assert response.status_code == 409
    assert response.json()["status"] in ("queued", "running")
    assert "not finished" in response.json()["detail"]


async def test_model_predict_runs_one_model(client: httpx.AsyncClient, users: Users) -> None:
    image = rectangle_image(size=(100, 100), box=(50, 0, 99, 99))
    files = {"image": ("x.png", image, "image/png")}
    detected = await client.post(f"{API}/models/bbox-detector/predict", files=files, headers=users.alice)
    assert detected.status_code == 200, detected.text
    [box] = detected.json()["primitives"]
    assert (box["x"], box["width"]) == (0.75, 0.5)
    scene = await client.post(f"{API}/models/blank-classifier/predict", files=files, headers=users.alice)
    assert scene.json()["scene"]["class_name"] == "shape"
    unknown = await client.post(f"{API}/models/nope/predict", files=files, headers=users.alice)
    assert unknown.status_code == 404
    assert "bbox-detector" in unknown.json()["detail"]
    refused = await client.post(
        f"{API}/models/bbox-detector/predict", files={"image": ("x.txt", b"hello", "text/plain")}, headers=users.alice
    )
    assert refused.status_code == 415


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": True, "models": True}


async def test_openapi_describes_every_route_and_its_errors(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operations = {(method.upper(), path): op for path, ops in spec["paths"].items() for method, op in ops.items()}
    expected = {
        ("POST", f"{API}/auth/token"): {"200", "401", "429"},
        ("POST", f"{API}/tasks"): {"200", "202", "401", "413", "415", "422", "429", "503"},
        ("POST", f"{API}/batches"): {"200", "202", "401", "413", "422", "503"},
        ("GET", f"{API}/tasks"): {"200", "401", "422"},
        ("GET", f"{API}/tasks/{{task_id}}"): {"200", "401", "404"},
        ("GET", f"{API}/tasks/{{task_id}}/input"): {"200", "404"},
        ("GET", f"{API}/tasks/{{task_id}}/result"): {"200", "404", "409"},
        ("GET", f"{API}/tasks/{{task_id}}/result.png"): {"200", "404", "409"},
        ("GET", f"{API}/tasks/{{task_id}}/webhook"): {"200", "404"},
        ("GET", f"{API}/events"): {"200", "401"},
        ("GET", f"{API}/tasks/{{task_id}}/events"): {"200", "401", "404"},
        ("GET", f"{API}/models"): {"200", "401"},
        ("DELETE", f"{API}/tasks/{{task_id}}"): {"204", "404"},
        ("POST", f"{API}/models/{{name}}/predict"): {"200", "404", "413", "415", "422"},
        ("POST", f"{API}/users"): {"201", "403", "409", "422"},
        ("GET", f"{API}/users/me"): {"200", "401"},
        ("GET", f"{API}/users/me/webhook-secret"): {"200", "401"},
        ("POST", f"{API}/users/me/webhook-secret"): {"200", "401"},
        ("GET", "/healthz"): {"200"},
        ("GET", "/readyz"): {"200", "503"},
    }
    assert set(operations) == set(expected)
    for key, codes in expected.items():
        assert codes <= set(operations[key]["responses"]), key
