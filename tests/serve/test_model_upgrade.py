"""A live model upgrade (1.1.0 → the shipped release) with work queued and running: Serve swaps
the Detector and Classifier replicas, no task is lost or doubled, every result names the
models that made it, and rolling back is the same step with the old weights.
(`scripts/upgrade_models.py` runs it with `serve deploy` under load, docs/upgrade.md.)"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from ray import serve

from tests.serve.support import API, APP, Service, held_out_image, result_rows, submit_many, wait_for
from tests.support.paths import PROJECT_ROOT

WEIGHTS = PROJECT_ROOT / "weights"
PREVIOUS = WEIGHTS / "1.1.0"


def _models_of(weights: Path) -> dict[str, str]:
    detector = json.loads((weights / "primitive-detector.json").read_text())
    classifier = json.loads((weights / "scene-classifier.json").read_text())
    return {"detector": f"{detector['name']}:{detector['version']}", "classifier": f"{classifier['name']}:{classifier['version']}"}


def _deploy_models(service: Service, weights: Path) -> None:
    """What `serve deploy` of a config with other weights does: an in-place update of the app,
    then wait until the new replicas serve alone."""
    service.deploy(detector_weights=weights / "primitive-detector.pt", classifier_weights=weights / "scene-classifier.pt")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        app = serve.status().applications[APP]
        if app.status == "RUNNING" and all(d.status == "HEALTHY" for d in app.deployments.values()):
            return
        time.sleep(0.5)
    raise AssertionError(f"the update did not finish: {serve.status().applications[APP]}")


def _versions_of_a_new_task(http: httpx.Client, token: dict[str, str]) -> dict[str, str]:
    task = http.post(f"{API}/tasks", files={"image": ("i", held_out_image(5).encoded)}, headers={**token, "Prefer": "wait=60"}).json()
    [done] = wait_for(http, token, [task["id"]]).values()
    return http.get(f"{API}/tasks/{done['id']}/result", headers=token).json()["models"]


def test_models_upgraded_and_rolled_back_live_lose_no_task(http: httpx.Client, token: dict[str, str], service: Service) -> None:
    old, new = _models_of(PREVIOUS), _models_of(WEIGHTS)
    assert old != new, "weights/1.1.0 should hold the release before the shipped one"
    try:
        _deploy_models(service, PREVIOUS)
        assert _versions_of_a_new_task(http, token) == old
        ids = submit_many(service, token, 36)
        _deploy_models(service, WEIGHTS)  # while those tasks are queued and running
        finished = wait_for(http, token, ids, timeout_s=240)
        assert [t["status"] for t in finished.values()] == ["succeeded"] * len(ids)
        assert set(result_rows(service.database_url, ids).values()) == {1}  # none lost, none doubled
        seen = {(m["detector"], m["classifier"]) for m in (http.get(f"{API}/tasks/{i}/result", headers=token).json()["models"] for i in ids)}
        assert seen <= {(d, c) for d in (old["detector"], new["detector"]) for c in (old["classifier"], new["classifier"])}
        print(f"\nupgrade under load: {len(ids)}/{len(ids)} succeeded; results by models: {sorted(seen)}")
        assert _versions_of_a_new_task(http, token) == new

        _deploy_models(service, PREVIOUS)  # the rollback is the same step
        assert _versions_of_a_new_task(http, token) == old
    finally:
        service.deploy()  # the shipped models, as the other tests expect
