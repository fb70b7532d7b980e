"""The Serve configs validate against Ray's schema, and nothing in them is silently ignored."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from scripts.check_serve_config import ConfigError, check, check_file
from tests.support.paths import PROJECT_ROOT

CONFIGS = sorted((PROJECT_ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    check_file(path)


def _local() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "configs" / "local.yaml").read_text())


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["applications"][0]["deployments"][2].update(max_concurrent_queries=3), "max_concurrent_queries"),
        (lambda c: c["applications"][0]["deployments"][2].update(num_replicas="auto",
            autoscaling_config={"target_num_ongoing_requests_per_replica": 2}), "target_num_ongoing_requests_per_replica"),
        (lambda c: c["applications"][0]["deployments"][2]["ray_actor_options"].update(num_cpu=1), "num_cpu"),
        (lambda c: c["http_options"].update(location="EveryNode"), "location"),
        (lambda c: c["applications"][0]["args"].update(runtme="onnx"), "runtme"),
        (lambda c: c["applications"][0]["deployments"][2]["user_config"].update(conf=0.3), "conf"),
        (lambda c: c["applications"][0]["deployments"][0].update(user_config={"x": 1}), "takes no user_config"),
        (lambda c: c["applications"][0]["deployments"].pop(), "expected"),
    ],
)
def test_unknown_or_renamed_keys_are_rejected(mutate, message: str) -> None:
    config = copy.deepcopy(_local())
    mutate(config)
    with pytest.raises(ConfigError, match=message):
        check(config)
