"""The Kubernetes manifests (k8s/) and the Dockerfile, checked offline: no cluster, no kubectl.

- k8s/base is rendered here the way `kubectl kustomize` would (resources and `images:`).
- The RayService is validated against KubeRay's own CRD schema (../shared/kuberay/), with
  unknown fields rejected as the API server's strict field validation does.
- Every Pod template, and every other manifest, is validated strictly against the Kubernetes
  schemas that `kubernetes-validate` ships.
- serveConfigV2 is configs/cluster.yaml (Ray's schema and scripts/check_serve_config.py).
- Ray versions, image names, Secret references and PRIMSCENE_* names agree with the code.
"""

from __future__ import annotations

import copy
import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import ray
import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from sqlalchemy.engine import make_url

from scripts import render_k8s
from scripts.chaos import nodes
from serve_app import settings as settings_module
from tests.support.paths import PROJECT_ROOT as ROOT

BASE = ROOT / "k8s" / "base"
OVERLAY = ROOT / "k8s" / "overlays" / "example"
# CI clones the project next to `shared/`; PRIMSCENE_KUBERAY_CRD may point elsewhere.
CRD = Path(os.environ.get("PRIMSCENE_KUBERAY_CRD", ROOT.parent / "shared" / "kuberay" / "ray.io_rayservices.yaml"))
# The Kubernetes version the manifests are validated for (kubernetes-validate ships 1.25 and up).
KUBERNETES = "1.32"
IMAGE = "primscene"  # the logical image name in the manifests; kustomize `images:` sets the rest

try:
    _Loader = yaml.CSafeLoader  # the CRD is about 1 MB of YAML
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader


# --- a small kustomize: resources and images -------------------------------------------------

KUSTOMIZE_KEYS = {"apiVersion", "kind", "resources", "images"}


def split_image(reference: str) -> tuple[str, str | None, str | None]:
    """`registry:5000/name:tag@sha256:…` → (name, tag, digest)."""
    reference, _, digest = reference.partition("@")
    name, tag = reference, None
    if ":" in reference.rsplit("/", 1)[-1]:
        name, tag = reference.rsplit(":", 1)
    return name, tag, digest or None


def retag(reference: str, images: list[dict]) -> str:
    name, tag, digest = split_image(reference)
    for image in images:
        if image["name"] == name:
            name = image.get("newName", name)
            if "digest" in image:
                tag, digest = None, image["digest"]
            elif "newTag" in image:
                tag, digest = str(image["newTag"]), None
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def apply_images(node: Any, images: list[dict]) -> None:
    """kustomize's images transformer: every `containers`/`initContainers` list, at any depth
    (so the Pod templates nested in the RayService too)."""
    if isinstance(node, dict):
        for key in ("containers", "initContainers"):
            for container in node.get(key) or []:
                if isinstance(container, dict) and "image" in container:
                    container["image"] = retag(container["image"], images)
        for value in node.values():
            apply_images(value, images)
    elif isinstance(node, list):
        for value in node:
            apply_images(value, images)


def build(directory: Path) -> list[dict]:
    """Render a kustomization that uses only `resources` and `images` (anything else fails)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - KUSTOMIZE_KEYS
    assert not unsupported, f"{directory}: this loader does not render {sorted(unsupported)}; extend it"
    docs: list[dict] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            docs += build(path)
        else:
            docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    apply_images(docs, kustomization.get("images", []))
    return docs


@cache
def _rendered() -> tuple[dict, ...]:
    return tuple(build(BASE))


def rendered() -> list[dict]:
    return copy.deepcopy(list(_rendered()))


def one(kind: str, docs: list[dict] | None = None) -> dict:
    found = [doc for doc in (docs or rendered()) if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def rayservice() -> dict:
    return one("RayService")


def cluster(service: dict | None = None) -> dict:
    return (service or rayservice())["spec"]["rayClusterConfig"]


def groups(service: dict | None = None) -> dict[str, dict]:
    """Head and worker groups by name, each with `template` and `rayStartParams`."""
    config = cluster(service)
    return {"head": config["headGroupSpec"], **{g["groupName"]: g for g in config["workerGroupSpecs"]}}


def pod_templates() -> dict[str, dict]:
    """Every Pod template in the rendered base, by a readable name."""
    templates = {f"RayService {name}": group["template"] for name, group in groups().items()}
    for doc in rendered():
        if doc["kind"] in ("StatefulSet", "Job"):
            templates[f"{doc['kind']} {doc['metadata']['name']}"] = doc["spec"]["template"]
    return templates


def containers(template: dict) -> list[dict]:
    spec = template["spec"]
    return spec["containers"] + spec.get("initContainers", [])


def serve_config() -> dict:
    return yaml.safe_load(rayservice()["spec"]["serveConfigV2"])


# --- KubeRay's CRD schema as JSON Schema -------------------------------------------------------

SCHEMA_LISTS = ("anyOf", "allOf", "oneOf")


def structural_to_jsonschema(schema: dict) -> dict:
    """A Kubernetes structural (OpenAPI v3) schema as a JSON Schema that `jsonschema` checks the
    way the API server does:

    - `x-kubernetes-int-or-string: true` → anyOf integer/string (controller-gen also writes the
      anyOf, but the extension alone is legal);
    - `nullable: true` → null allowed;
    - an object with `properties` rejects other fields (the API server prunes them, and kubectl's
      default strict field validation reports them as errors) unless it has
      `additionalProperties` or `x-kubernetes-preserve-unknown-fields`.
    `x-kubernetes-validations` (CEL) rules are not evaluated; the manifests set none of the
    fields that carry them.
    """
    out = {key: value for key, value in schema.items() if not key.startswith("x-kubernetes-")}
    if "properties" in schema:
        out["properties"] = {name: structural_to_jsonschema(sub) for name, sub in schema["properties"].items()}
    if isinstance(schema.get("items"), dict):
        out["items"] = structural_to_jsonschema(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = structural_to_jsonschema(schema["additionalProperties"])
    for key in SCHEMA_LISTS:
        if key in schema:
            out[key] = [structural_to_jsonschema(sub) for sub in schema[key]]
    if isinstance(schema.get("not"), dict):
        out["not"] = structural_to_jsonschema(schema["not"])
    if schema.get("x-kubernetes-int-or-string") and not any(key in schema for key in SCHEMA_LISTS):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def rayservice_validator() -> jsonschema.Draft7Validator:
    assert CRD.is_file(), f"KubeRay's RayService CRD not found at {CRD} (clone the project next to shared/)"
    crd = yaml.load(CRD.read_text(), Loader=_Loader)
    assert crd["spec"]["names"]["kind"] == "RayService"
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    assert version["served"] and version["storage"]
    schema = structural_to_jsonschema(version["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def crd_errors(doc: dict) -> list[str]:
    return [
        f"{'.'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in rayservice_validator().iter_errors(doc)
    ]


# --- the layout ----------------------------------------------------------------------------------


def test_the_base_lists_every_manifest_in_its_folder() -> None:
    listed = set(yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_the_base_renders_the_expected_objects() -> None:
    assert sorted((doc["kind"], doc["metadata"]["name"]) for doc in rendered()) == [
        ("Ingress", "primscene"),
        ("Job", "primscene-migrate"),
        ("RayService", "primscene"),
        ("Secret", "primscene-app"),
        ("Secret", "primscene-postgres"),
        ("Service", "primscene-postgres"),
        ("StatefulSet", "primscene-postgres"),
    ]


def test_every_object_has_a_deployment_stage_label() -> None:
    """docs/deploy.md applies the base in stages with `-l app.kubernetes.io/component=…`."""
    stages = {doc["metadata"]["labels"]["app.kubernetes.io/component"] for doc in rendered()}
    assert stages == {"config", "database", "migration", "serve", "ingress"}
    assert all(doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "primscene" for doc in rendered())


# --- the RayService against KubeRay's CRD ------------------------------------------------------


def test_the_rayservice_matches_kuberays_crd() -> None:
    service = rayservice()
    assert service["apiVersion"] == "ray.io/v1"
    assert crd_errors(service) == []
    # The CRD leaves metadata to the API server: check it as any object's metadata.
    kubernetes_validate.validate(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": service["metadata"]}, KUBERNETES, strict=True
    )


def _set(path: str, value: Any) -> Any:
    def mutate(doc: dict) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value

    return mutate


def _delete(path: str) -> Any:
    def mutate(doc: dict) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]

    return mutate


HEAD = "spec.rayClusterConfig.headGroupSpec"
CPU_GROUP = "spec.rayClusterConfig.workerGroupSpecs.0"


@pytest.mark.parametrize(
    "mutate, where",
    [
        (_set(f"{HEAD}.rayStartParams.num-cpus", 0), "rayStartParams.num-cpus"),  # must be a string
        (_set(f"{CPU_GROUP}.replicas", "1"), "replicas"),
        (_set(f"{CPU_GROUP}.template.spec.containers.0.resources.limits.cpu", 0.5), "limits.cpu"),  # int or string only
        (_set(f"{CPU_GROUP}.template.spec.containers.0.resources.limits.memory", "8 GiB"), "limits.memory"),
        (_set("spec.rayClusterConfig.enableInTreeAutoScaling", True), "rayClusterConfig"),  # misspelt
        (_set(f"{HEAD}.template.spec.containers.0.readinessprobe", {}), "containers.0"),  # misspelt
        (_set("spec.serveConfigV2", {"applications": []}), "serveConfigV2"),  # a string, not a mapping
        (_set("spec.rayClusterConfig.autoscalerOptions.upscalingMode", "Fast"), "upscalingMode"),
        (_delete(f"{CPU_GROUP}.groupName"), "workerGroupSpecs.0"),
    ],
    ids=[
        "ray-start-param-not-a-string", "replicas-as-string", "fractional-cpu-number", "bad-quantity",
        "misspelt-cluster-field", "misspelt-container-field", "serve-config-as-mapping", "unknown-enum-value",
        "missing-group-name",
    ],
)
def test_the_crd_check_catches_broken_copies(mutate, where: str) -> None:
    broken = rayservice()
    mutate(broken)
    errors = crd_errors(broken)
    assert errors, "a broken RayService passed validation"
    assert any(where in error for error in errors), errors


def test_int_or_string_extension_alone_becomes_integer_or_string() -> None:
    schema = structural_to_jsonschema(
        {"type": "object", "properties": {"port": {"x-kubernetes-int-or-string": True}, "n": {"type": "integer", "nullable": True}}}
    )
    validator = jsonschema.Draft7Validator(schema)
    assert validator.is_valid({"port": 8000}) and validator.is_valid({"port": "http"}) and validator.is_valid({"n": None})
    assert not validator.is_valid({"port": 1.5})
    assert not validator.is_valid({"port": ["http"]})
    assert not validator.is_valid({"prot": 8000})


# --- Pod templates and the other manifests, against Kubernetes' schemas -----------------------


@pytest.mark.parametrize("name", sorted(pod_templates()))
def test_every_pod_template_is_a_valid_pod_template(name: str) -> None:
    template = pod_templates()[name]
    wrapped = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "check"}, "template": template}
    kubernetes_validate.validate(wrapped, KUBERNETES, strict=True)


def test_strict_pod_template_validation_rejects_unknown_fields() -> None:
    template = copy.deepcopy(pod_templates()["RayService cpu"])
    template["spec"]["containers"][0]["resource"] = {"limits": {"cpu": "4"}}
    wrapped = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "check"}, "template": template}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrapped, KUBERNETES, strict=True)


@pytest.mark.parametrize(
    "kind_name", [(d["kind"], d["metadata"]["name"]) for d in build(BASE) if d["kind"] != "RayService"], ids=str
)
def test_every_other_manifest_is_valid_kubernetes(kind_name: tuple[str, str]) -> None:
    (doc,) = [d for d in rendered() if (d["kind"], d["metadata"]["name"]) == kind_name]
    kubernetes_validate.validate(doc, KUBERNETES, strict=True)


# --- serveConfigV2 -------------------------------------------------------------------------------


def test_serve_config_is_configs_cluster_yaml() -> None:
    text = (ROOT / "configs" / "cluster.yaml").read_text()
    assert serve_config() == yaml.safe_load(text)
    assert rayservice()["spec"]["serveConfigV2"] == text, "run `python scripts/render_k8s.py`"
    assert render_k8s.main(["--check"]) == 0


def test_render_script_rewrites_only_the_serve_config_block() -> None:
    manifest = "spec:\n  # keep me\n  serveConfigV2: |\n    old: 1\n\n    older: 2\n\n  rayClusterConfig:\n    rayVersion: x\n"
    rendered_text = render_k8s.render(manifest, "# new\nnew:\n  - 1\n\nfinal: true\n")
    assert rendered_text == (
        "spec:\n  # keep me\n  serveConfigV2: |\n    # new\n    new:\n      - 1\n\n    final: true\n\n"
        "  rayClusterConfig:\n    rayVersion: x\n"
    )
    assert render_k8s.render(rendered_text, "# new\nnew:\n  - 1\n\nfinal: true\n") == rendered_text
    assert yaml.safe_load(rendered_text)["spec"]["serveConfigV2"] == "# new\nnew:\n  - 1\n\nfinal: true\n"


def test_serve_config_passes_rays_schema_and_the_project_checks() -> None:
    from ray.serve.schema import ServeDeploySchema

    from scripts.check_serve_config import check

    ServeDeploySchema.model_validate(serve_config())
    check(serve_config())


def test_serve_config_routes_and_env() -> None:
    config = serve_config()
    (app,) = config["applications"]
    assert app["import_path"] == "serve_app.app:build_app"
    env = app["runtime_env"]["env_vars"]
    assert env["PRIMSCENE_ENVIRONMENT"] == "production"
    # A short lease, so a lost node's tasks run again soon; it outlives two missed heartbeats.
    assert float(env["PRIMSCENE_LEASE_S"]) <= 10 and 3 * float(env["PRIMSCENE_HEARTBEAT_S"]) <= float(env["PRIMSCENE_LEASE_S"])
    # Code and weights are in the image: nothing for Ray to download at start.
    assert not {"working_dir", "py_modules", "pip", "conda", "uv"} & set(app["runtime_env"])


# --- versions and the image ------------------------------------------------------------------


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pin(package: str) -> str:
    for requirement in _pyproject()["project"]["dependencies"]:
        match = re.fullmatch(rf"{re.escape(package)}(\[[^\]]*\])?==(?P<version>\S+)", requirement.strip())
        if match:
            return match["version"]
    raise AssertionError(f"{package} is not pinned with == in pyproject.toml")


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = pending + line
        pending = ""
        instruction, _, arguments = full.strip().partition(" ")
        instructions.append((instruction.upper(), arguments.strip()))
    return instructions


def docker_base_image() -> str:
    (base,) = [arguments for instruction, arguments in dockerfile() if instruction == "FROM"]
    return base


def test_ray_versions_agree() -> None:
    """rayVersion, the image's Ray and the installed Ray are one version."""
    match = re.fullmatch(r"rayproject/ray:(?P<ray>\d+\.\d+\.\d+)-py(?P<py>\d)(?P<minor>\d+)(-cpu)?", docker_base_image())
    assert match, f"unexpected base image {docker_base_image()!r}"
    assert cluster()["rayVersion"] == match["ray"] == ray.__version__ == _pin("ray")
    # The build asserts the Ray it finds in the base image.
    runs = " ".join(arguments for instruction, arguments in dockerfile() if instruction == "RUN")
    assert f"ray.__version__ == '{ray.__version__}'" in runs
    requires = _pyproject()["project"]["requires-python"]  # e.g. ">=3.11,<3.12"
    assert f">={match['py']}.{match['minor']}," in requires


def test_dockerfile_installs_the_project_offline_ready() -> None:
    instructions = dockerfile()
    runs = " ".join(arguments for instruction, arguments in instructions if instruction == "RUN")
    # The same torch/torchvision as pyproject.toml, then the project itself.
    for package in ("torch", "torchvision"):
        assert f'"{package}=={_pin(package)}"' in runs
    assert "pip install -e ." in runs
    env: dict[str, str] = {}
    for instruction, arguments in instructions:
        if instruction == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(arguments))
    assert env["YOLO_OFFLINE"] == "1"
    assert env["YOLO_AUTOINSTALL"] == "false"
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["RAY_USAGE_STATS_ENABLED"] == "0"
    assert env["RAY_worker_niceness"] == "0"  # the Ingress above the model replicas
    workdir = [arguments for instruction, arguments in instructions if instruction == "WORKDIR"][-1]
    assert env["YOLO_CONFIG_DIR"].startswith(workdir + "/")
    copies = [shlex.split(arguments) for instruction, arguments in instructions if instruction == "COPY"]
    assert any(args[-2:] == [".", "."] for args in copies), "the project (weights included) is copied into WORKDIR"


def dockerignored(path: str) -> bool:
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return any(fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.split("/")[0], pattern) for pattern in patterns)


def test_dockerignore_keeps_weights_and_drops_local_state() -> None:
    for kept in ("weights/primitive-detector.pt", "weights/scene-classifier.pt", "configs/cluster.yaml",
                 "serve_app/app.py", "db/migrations/env.py", "alembic.ini", "pyproject.toml"):
        assert not dockerignored(kept), kept
    for dropped in (".venv", "data", "runs", "var", "test-artifacts", ".env", ".git",
                    "k8s/overlays/example/app-secrets.env"):
        assert dockerignored(dropped), dropped
    # Every detector runtime the Serve config can choose ships in weights/.
    assert (ROOT / "weights" / "primitive-detector_int8_openvino_model").is_dir()


def test_every_primscene_container_runs_the_one_image() -> None:
    base_tag = yaml.safe_load((BASE / "kustomization.yaml").read_text())["images"]
    assert base_tag == [{"name": IMAGE, "newTag": _pyproject()["project"]["version"]}]
    images = {
        container["image"]
        for template in pod_templates().values()
        for container in containers(template)
        if not container["image"].startswith("postgres:")
    }
    assert images == {f"{IMAGE}:{_pyproject()['project']['version']}"}


# --- the Ray cluster ---------------------------------------------------------------------------


def test_cluster_shape() -> None:
    service = rayservice()
    config = cluster(service)
    by_name = groups(service)
    assert service["spec"]["upgradeStrategy"] == {"type": "NewCluster"}
    assert config["enableInTreeAutoscaling"] is True
    assert by_name["head"]["rayStartParams"]["num-cpus"] == "0"  # no Serve replicas on the head
    for name, group in by_name.items():
        if name != "head":
            assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], name
        port = group["rayStartParams"]["metrics-export-port"]
        (ray_container,) = group["template"]["spec"]["containers"]
        assert {"name": "metrics", "containerPort": int(port)} in ray_container["ports"], name
        assert {"name": "serve", "containerPort": serve_config()["http_options"]["port"]} in ray_container["ports"], name
        resources = ray_container["resources"]
        assert resources["requests"]["cpu"] == resources["limits"]["cpu"], name
        assert resources["requests"]["memory"] == resources["limits"]["memory"], name
    gpu = by_name["gpu"]
    assert gpu["replicas"] == gpu["minReplicas"] == 0 < gpu["maxReplicas"]
    assert gpu["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1


def _cpus(quantity: str | int) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def test_the_cpu_group_holds_serves_smallest_and_largest_scale() -> None:
    """Serve's autoscaling (cluster.yaml) can reach its maximum within the group's maxReplicas,
    and its minimum runs on minReplicas Pods without waiting for the autoscaler."""
    smallest = largest = 0.0
    for deployment in serve_config()["applications"][0]["deployments"]:
        cpus = deployment.get("ray_actor_options", {}).get("num_cpus", 1)
        autoscaling = deployment.get("autoscaling_config")
        low = autoscaling.get("min_replicas", 1) if autoscaling else deployment["num_replicas"]
        high = autoscaling.get("max_replicas", 1) if autoscaling else deployment["num_replicas"]
        smallest += low * cpus
        largest += high * cpus
    cpu = groups()["cpu"]
    per_pod = _cpus(cpu["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"])
    assert smallest <= cpu["minReplicas"] * per_pod
    assert largest <= cpu["maxReplicas"] * per_pod


def test_ray_containers_leave_the_probes_to_kuberay() -> None:
    """A probe set here would replace KubeRay's (raylet/GCS; Serve proxy on workers), and one
    on the application's /readyz would keep the head from ever becoming Ready."""
    for name, group in groups().items():
        for container in group["template"]["spec"]["containers"]:
            assert not {"readinessProbe", "livenessProbe", "startupProbe"} & set(container), name


def _env(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container.get("env", [])}


def test_ray_containers_share_the_production_environment() -> None:
    environments = [
        {name: item for name, item in _env(container).items() if name.startswith("PRIMSCENE_")}
        for group in groups().values()
        for container in group["template"]["spec"]["containers"]
    ]
    assert all(env == environments[0] for env in environments), "head and workers must see the same settings"
    env = environments[0]
    assert env["PRIMSCENE_ENVIRONMENT"]["value"] == "production"
    for secret in ("PRIMSCENE_DATABASE_URL", "PRIMSCENE_JWT_SECRET", "PRIMSCENE_ADMIN_PASSWORD"):
        assert "value" not in env[secret] and "secretKeyRef" in env[secret]["valueFrom"], secret


def test_the_head_declares_a_lost_node_dead_in_seconds() -> None:
    """The GCS, on the head, health-checks every raylet; the values are the ones the multi-node
    run measured (scripts/chaos/nodes.py, docs/multinode.md)."""
    [head] = groups()["head"]["template"]["spec"]["containers"]
    ray_env = {name: item["value"] for name, item in _env(head).items() if name.startswith("RAY_")}
    assert ray_env == nodes.ray_environment(nodes.NODE_FAILURE_DETECTION)
    assert ray_env == {"RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}


# --- names that must match something else --------------------------------------------------------


def settings_env_names() -> set[str]:
    names = set()
    for value in vars(settings_module).values():
        if isinstance(value, type) and issubclass(value, BaseSettings) and value is not BaseSettings:
            prefix = value.model_config.get("env_prefix", "")
            names |= {f"{prefix}{field}".upper() for field in value.model_fields}
    return names


def unknown_primscene_names(names: set[str]) -> set[str]:
    return {name for name in names if name.startswith("PRIMSCENE_")} - settings_env_names()


def env_names_in_manifests() -> set[str]:
    names = {
        item["name"]
        for template in pod_templates().values()
        for container in containers(template)
        for item in container.get("env", [])
    }
    for app in serve_config()["applications"]:
        names |= set(app.get("runtime_env", {}).get("env_vars", {}))
    return names


def test_primscene_variables_in_the_manifests_are_settings() -> None:
    names = env_names_in_manifests()
    assert {"PRIMSCENE_DATABASE_URL", "PRIMSCENE_JWT_SECRET", "PRIMSCENE_ADMIN_PASSWORD", "PRIMSCENE_ENVIRONMENT"} <= names
    assert unknown_primscene_names(names) == set()
    assert unknown_primscene_names({"PRIMSCENE_DATABSE_URL", "PRIMSCENE_JWT_SECRET"}) == {"PRIMSCENE_DATABSE_URL"}


def secret_refs() -> Iterator[tuple[str, str]]:
    for template in pod_templates().values():
        for container in containers(template):
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    yield ref["name"], ref["key"]


def test_every_secret_reference_resolves_in_the_base() -> None:
    secrets = {doc["metadata"]["name"]: doc["stringData"] for doc in rendered() if doc["kind"] == "Secret"}
    refs = set(secret_refs())
    assert refs and all(key in secrets.get(name, {}) for name, key in refs), refs
    assert {(name, key) for name, data in secrets.items() for key in data} == refs, "every Secret key is used"


def test_placeholder_secrets_cannot_go_live() -> None:
    """The base's example JWT key is refused by the production settings."""
    from serve_app.settings import AuthSettings, GeneralSettings, Settings

    placeholders = one("Secret", [d for d in rendered() if d["metadata"]["name"] == "primscene-app"])["stringData"]
    assert all("REPLACE-ME" in value for value in placeholders.values())
    with pytest.raises(ValidationError, match="PRIMSCENE_JWT_SECRET"):
        Settings(general=GeneralSettings(environment="production"), auth=AuthSettings(jwt_secret=placeholders["jwt-secret"]))


def test_database_url_points_at_the_postgres_service() -> None:
    docs = rendered()
    url = make_url(one("Secret", [d for d in docs if d["metadata"]["name"] == "primscene-app"])["stringData"]["database-url"])
    service = one("Service", docs)
    statefulset = one("StatefulSet", docs)
    (postgres,) = statefulset["spec"]["template"]["spec"]["containers"]
    env = _env(postgres)
    assert url.drivername == "postgresql+asyncpg"
    assert (url.host, url.port) == (service["metadata"]["name"], service["spec"]["ports"][0]["port"])
    assert (url.username, url.database) == (env["POSTGRES_USER"]["value"], env["POSTGRES_DB"]["value"])
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["selector"].items() <= statefulset["spec"]["template"]["metadata"]["labels"].items()


def test_postgres_statefulset() -> None:
    statefulset = one("StatefulSet")
    (postgres,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert postgres["image"] == "postgres:15"
    assert postgres["readinessProbe"]["exec"]["command"][0] == "pg_isready"
    assert postgres["resources"]["requests"] and postgres["resources"]["limits"]
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/var/lib/postgresql/data"} in postgres["volumeMounts"]


def test_migration_job_runs_db_migrate_with_the_app_image() -> None:
    job = one("Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "db.migrate"]
    assert (ROOT / "db" / "migrate.py").is_file()
    assert container["image"] == groups()["head"]["template"]["spec"]["containers"][0]["image"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_ingress_sends_traffic_to_kuberays_serve_service() -> None:
    ingress = one("Ingress")
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    backend = path["backend"]["service"]
    assert backend["name"] == f"{rayservice()['metadata']['name']}-serve-svc"
    assert backend["port"]["number"] == serve_config()["http_options"]["port"]
    # Uploads up to PRIMSCENE_MAX_UPLOAD_BYTES must get through ingress-nginx (default 1m).
    body = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert int(body.removesuffix("m")) * 1024 * 1024 > settings_module.LimitsSettings.model_fields["max_upload_bytes"].default


def test_podmonitor_selects_the_ray_pods_metrics_port() -> None:
    monitor = yaml.safe_load((ROOT / "k8s" / "extras" / "podmonitor.yaml").read_text())
    selector = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    for name, group in groups().items():
        assert selector.items() <= group["template"]["metadata"]["labels"].items(), name
        assert endpoint["port"] in {port["name"] for port in group["template"]["spec"]["containers"][0]["ports"]}


# --- the example overlay --------------------------------------------------------------------------


def _env_file_keys(path: Path) -> set[str]:
    return {
        line.split("=", 1)[0]
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }


def test_example_overlay_sets_the_image_and_replaces_the_secrets() -> None:
    overlay = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    assert overlay["resources"] == ["../../base"]
    (image,) = overlay["images"]
    assert image["name"] == IMAGE and "/" in image["newName"]
    docs = rendered()
    apply_images(docs, overlay["images"])
    assert retag(f"{IMAGE}:0.1.0", overlay["images"]) == f"{image['newName']}:{image['newTag']}"
    assert one("Job", docs)["spec"]["template"]["spec"]["containers"][0]["image"] == f"{image['newName']}:{image['newTag']}"
    base_secrets = {d["metadata"]["name"]: set(d["stringData"]) for d in rendered() if d["kind"] == "Secret"}
    generated = {g["name"]: g for g in overlay["secretGenerator"]}
    assert set(generated) == set(base_secrets)
    assert overlay["generatorOptions"]["disableNameSuffixHash"] is True  # the RayService names them directly
    for name, generator in generated.items():
        assert generator["behavior"] == "replace"
        (env_file,) = generator["envs"]
        assert _env_file_keys(OVERLAY / f"{env_file}.example") == base_secrets[name], name
    assert "*.env" in (OVERLAY / ".gitignore").read_text().split()
    for patch in overlay.get("patches", []):
        target = patch["target"]
        one(target["kind"], [d for d in docs if d["metadata"]["name"] == target["name"]])


# --- where kubectl is installed: the real kustomize agrees -------------------------------------

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed (its kustomize runs offline)")


def kubectl_kustomize(directory: Path) -> list[dict]:
    result = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _by_id(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}


@needs_kubectl
def test_the_loader_renders_the_base_as_kubectl_kustomize_does() -> None:
    assert _by_id(kubectl_kustomize(BASE)) == _by_id(rendered())


@needs_kubectl
def test_the_example_overlay_renders_with_its_example_secrets(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "k8s", tmp_path / "k8s")
    overlay = tmp_path / "k8s" / "overlays" / "example"
    for example in overlay.glob("*.env.example"):
        shutil.copy(example, overlay / example.name.removesuffix(".example"))
    docs = _by_id(kubectl_kustomize(overlay))
    assert set(docs) == set(_by_id(rendered()))
    assert {doc["metadata"]["namespace"] for doc in docs.values()} == {"primscene"}
    for (kind, name), doc in docs.items():
        if kind == "Secret":
            # Replaced, not merged: a leftover stringData placeholder would win over data.
            assert "stringData" not in doc and doc["data"], name
            assert doc["metadata"]["labels"]["app.kubernetes.io/component"] == "config"
        elif kind == "RayService":
            assert crd_errors(doc) == []
        else:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    images = set()
    for doc in docs.values():
        for template in _templates_of(doc):
            images |= {container["image"] for container in containers(template)}
    assert images == {"postgres:15", "registry.example.com/vision/primscene:0.1.0"}


def _templates_of(doc: dict) -> list[dict]:
    if doc["kind"] == "RayService":
        return [group["template"] for group in groups(doc).values()]
    if doc["kind"] in ("StatefulSet", "Job"):
        return [doc["spec"]["template"]]
    return []
