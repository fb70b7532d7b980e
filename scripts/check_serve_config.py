"""Check a Serve config file strictly: Ray's own schema, plus what Ray lets through.

    python scripts/check_serve_config.py configs/local.yaml configs/cluster.yaml

Ray's `ServeDeploySchema` accepts unknown keys for forward compatibility, so a renamed option
(`max_concurrent_queries`, `target_num_ongoing_requests_per_replica`) is silently ignored. This
rejects every key Ray does not know, checks `args` against our builder's arguments and each
`user_config` against what that deployment accepts, and requires exactly our deployments.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from ray.serve.config import AutoscalingConfig, BackpressureConfig
from ray.serve.schema import DeploymentSchema, HTTPOptionsSchema, RayActorOptionsSchema, ServeApplicationSchema, ServeDeploySchema

from deployments.user_config import ClassifierUserConfig, DetectorUserConfig

DEPLOYMENTS = {"Ingress": None, "Dispatcher": None, "Detector": DetectorUserConfig, "Classifier": ClassifierUserConfig}
NESTED = {
    "http_options": HTTPOptionsSchema,
    "autoscaling_config": AutoscalingConfig,
    "backpressure_config": BackpressureConfig,
    "ray_actor_options": RayActorOptionsSchema,
}


class ConfigError(ValueError):
    pass


def _known(where: str, data: dict[str, Any], model: type[BaseModel]) -> list[str]:
    problems = [f"{where}: unknown key {key!r}" for key in data if key not in model.model_fields]
    for key, nested in NESTED.items():
        if isinstance(data.get(key), dict) and key in model.model_fields:
            problems += _known(f"{where}.{key}", data[key], nested)
    return problems


def check(config: dict[str, Any]) -> None:
    """Raise ConfigError listing every problem."""
    from serve_app.app import AppArgs

    ServeDeploySchema.model_validate(config)
    problems = _known("config", config, ServeDeploySchema)
    for app in config.get("applications", []):
        where = f"application {app.get('name')!r}"
        problems += _known(where, app, ServeApplicationSchema)
        try:
            AppArgs.model_validate(app.get("args") or {})
        except ValueError as exc:
            problems.append(f"{where}.args: {exc}")
        names = [d.get("name") for d in app.get("deployments", [])]
        if sorted(names) != sorted(DEPLOYMENTS):
            problems.append(f"{where}: deployments {names}, expected {sorted(DEPLOYMENTS)}")
        for deployment in app.get("deployments", []):
            name = deployment.get("name")
            problems += _known(f"{where} deployment {name!r}", deployment, DeploymentSchema)
            accepted = DEPLOYMENTS.get(name)
            if "user_config" in deployment:
                if accepted is None:
                    problems.append(f"{where} deployment {name!r}: takes no user_config")
                else:
                    try:
                        accepted.model_validate(deployment["user_config"])
                    except ValueError as exc:
                        problems.append(f"{where} deployment {name!r}.user_config: {exc}")
    if problems:
        raise ConfigError("\n".join(problems))


def check_file(path: Path) -> None:
    check(yaml.safe_load(path.read_text()))


if __name__ == "__main__":
    failed = False
    for argument in sys.argv[1:]:
        try:
            check_file(Path(argument))
            print(f"{argument}: ok")
        except (ConfigError, ValueError) as exc:
            failed = True
            print(f"{argument}:\n{exc}")
    sys.exit(1 if failed else 0)
