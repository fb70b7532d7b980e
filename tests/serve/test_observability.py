"""What operators see of the real deployment: Primscene's metrics on Ray's Prometheus endpoint,
next to Serve's own, and the task and user id on every log line about a task."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import ray

from tests.serve.support import API, METRICS_PORT, held_out_image, submit, wait_for

METRICS = [
    "ray_primscene_tasks_created",
    "ray_primscene_tasks_succeeded",
    "ray_primscene_queue_depth",
    "ray_primscene_queue_wait_seconds_bucket",
    "ray_primscene_stage_seconds_bucket",
    "ray_primscene_task_seconds_bucket",
    "ray_primscene_batch_size_bucket",
    "ray_serve_num_http_requests",  # Serve's own, on the same endpoint
]


SUCCEEDED = "ray_primscene_tasks_succeeded(?:_total)?"


def _scrape(tasks: int, timeout_s: float = 60) -> str:
    """The node's metrics once every name above is there and `tasks` have succeeded (values
    are exported every second, so they lag a little)."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = httpx.get(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=10).text
        ready = all(name in text for name in METRICS) and _value(text, SUCCEEDED) >= tasks
        if ready or time.monotonic() > deadline:
            return text
        time.sleep(1)


def _value(text: str, pattern: str) -> float:
    return sum(float(m.group(1)) for m in re.finditer(rf"^{pattern}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M))


def test_task_metrics_appear_next_to_serves_own(http: httpx.Client, token: dict[str, str]) -> None:
    ids = [submit(http, token, held_out_image(i).encoded).json()["id"] for i in range(4)]
    wait_for(http, token, ids)
    text = _scrape(tasks=4)
    names = sorted({m.group(1) for m in re.finditer(r"^(ray_primscene_\w+?)(?:_bucket|_count|_sum)?[{ ]", text, re.M)})
    print(f"\nPrimscene metrics on :{METRICS_PORT}/metrics: {', '.join(names)}")
    missing = [name for name in METRICS if name not in text]
    assert not missing, f"not exported: {missing}"
    assert _value(text, "ray_primscene_tasks_created(?:_total)?") >= 4
    assert _value(text, SUCCEEDED) >= 4
    assert re.search(r'ray_primscene_stage_seconds_count\{[^}]*stage="detection"', text)
    assert re.search(r'ray_primscene_batch_size_count\{[^}]*model="classifier"', text)


def test_every_log_line_about_a_task_names_the_task_and_its_user(http: httpx.Client, token: dict[str, str]) -> None:
    task_id = submit(http, token, held_out_image(7).encoded).json()["id"]
    wait_for(http, token, [task_id])
    user_id = http.get(f"{API}/users/me", headers=token).json()["id"]
    logs = Path(ray._private.worker.global_worker.node.get_logs_dir_path()) / "serve"
    deadline = time.monotonic() + 20
    while True:  # log files are flushed by the replicas, shortly
        # Accepted by the Ingress, started and finished by the Dispatcher.
        paths = [*logs.glob("replica_*Ingress*.log"), *logs.glob("replica_*Dispatcher*.log")]
        lines = [line for path in paths for line in path.read_text().splitlines() if task_id in line]
        if len(lines) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    messages = " | ".join(lines)
    assert "accepted" in messages and "started" in messages and "succeeded" in messages, messages
    assert all(f"task={task_id} user={user_id}" in line for line in lines), messages
