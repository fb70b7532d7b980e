"""The user flow through the Serve proxy, with the real models on generated test images."""

from __future__ import annotations

import io
import json
from collections import Counter

import httpx
from PIL import Image

from tests.serve.support import API, held_out_image, submit, wait_for
from tests.support.api import submit_with_urllib

IMAGES = [0, 1, 2, 3, 4, 5, 6]  # one of each scene


def test_tasks_through_the_proxy_match_the_ground_truth(http: httpx.Client, token: dict[str, str]) -> None:
    samples = [held_out_image(i) for i in IMAGES]
    ids = []
    for s in samples:
        response = submit(http, token, s.encoded)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    finished = wait_for(http, token, ids)
    assert {t["status"] for t in finished.values()} == {"succeeded"}

    scenes_right = primitives_found = primitives_total = 0
    for task_id, s in zip(ids, samples):
        result = http.get(f"{API}/tasks/{task_id}/result", headers=token).json()
        assert result["image"] == {"width": s.image.width, "height": s.image.height}
        assert result["models"]["detector"].startswith("primitive-detector:")
        scenes_right += result["scene"]["class_name"] == s.scene
        found = Counter(p["class_name"] for p in result["primitives"])
        truth = Counter(o.shape.kind for o in s.objects)
        primitives_found += sum((found & truth).values())
        primitives_total += sum(truth.values())
        assert http.get(f"{API}/tasks/{task_id}/input", headers=token).content == s.encoded
    assert scenes_right >= len(samples) - 1
    assert primitives_found / primitives_total >= 0.8


def test_predict_endpoints_answer_like_the_task(http: httpx.Client, token: dict[str, str]) -> None:
    s = held_out_image(8)
    task_id = submit(http, token, s.encoded).json()["id"]
    wait_for(http, token, [task_id])
    result = http.get(f"{API}/tasks/{task_id}/result", headers=token).json()
    files = {"image": ("image", s.encoded)}

    detected = http.post(f"{API}/models/primitive-detector/predict", files=files, headers=token)
    assert detected.status_code == 200, detected.text
    assert detected.json()["primitives"] == result["primitives"]
    classified = http.post(f"{API}/models/scene-classifier/predict", files=files, headers=token)
    assert classified.status_code == 200, classified.text
    assert classified.json()["scene"] == result["scene"]
    assert http.post(f"{API}/models/nothing/predict", files=files, headers=token).status_code == 404

    models = http.get(f"{API}/models", headers=token).json()
    assert [m["name"] for m in models] == ["primitive-detector", "scene-classifier"]


def test_live_events_and_the_drawn_result_through_the_proxy(http: httpx.Client, token: dict[str, str], service) -> None:
    """Serve's proxy streams the events as they happen, and serves the annotated picture."""
    task_id = submit(http, token, held_out_image(9).encoded).json()["id"]
    statuses = []
    with httpx.stream("GET", f"{service.url}{API}/tasks/{task_id}/events", headers=token, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():  # the stream ends by itself after the last state
            if line.startswith("data:"):
                statuses.append(json.loads(line.removeprefix("data:"))["status"])
    assert statuses[-1] == "succeeded"
    picture = http.get(f"{API}/tasks/{task_id}/result.png", headers=token)
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(picture.content)).size == held_out_image(9).image.size


def test_an_oversized_upload_from_urllib_reads_the_413_through_the_proxy(service) -> None:
    """Python's urllib sends all 30 MB before it reads the answer; it reads the 413 and its
    detail, not "connection reset by peer"."""
    status, detail = submit_with_urllib(service.url, 30_000_000)
    assert status == 413 and "at most 10485760 bytes" in detail
