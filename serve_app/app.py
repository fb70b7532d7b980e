"""The Ray Serve application: `serve run configs/local.yaml`, or `serve run serve_app.app:build_app`.

`build_app` takes the `args:` of a Serve config; `app` is the same application with defaults,
for `serve build serve_app.app:app`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from ray.serve import Application
from ray.serve.deployment import Deployment

from deployments.classifier import Classifier
from deployments.detector import Detector
from deployments.runtimes import Runtime
from serve_app.dispatcher_deployment import DispatcherDeployment
from serve_app.ingress import Ingress
from serve_app.settings import DatabaseSettings, GeneralSettings, LimitsSettings, Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = GeneralSettings().weights_dir  # PRIMSCENE_WEIGHTS_DIR, else weights/ of the checkout


class AppArgs(BaseModel):
    """What a Serve config's `args:` may set. Anything else comes from PRIMSCENE_* variables."""

    model_config = ConfigDict(extra="forbid")

    database_url: SecretStr | None = Field(
        None, description="Unset: PRIMSCENE_DATABASE_URL, else the embedded SQLite file. Prefer the variable: it holds a password."
    )
    data_dir: Path | None = Field(None, description="Unset: PRIMSCENE_DATA_DIR, else var/ in the project.")
    detector_weights: Path = WEIGHTS / "primitive-detector.pt"
    classifier_weights: Path = WEIGHTS / "scene-classifier.pt"
    runtime: Runtime = Field("openvino_int8", description="Detector runtime: pytorch, onnx, openvino or openvino_int8.")
    model_threads: int = Field(1, ge=1, description="CPU threads per model replica (torch, ONNX Runtime, OpenVINO).")
    model_niceness: int = Field(
        10, ge=0, le=19, description="Unix nice of model replicas: on shared cores, inference yields to the ingress (0: equal)."
    )
    max_upload_bytes: int | None = None
    max_queued_per_user: int | None = None
    max_queued_total: int | None = None

    def settings(self) -> Settings:
        """Environment settings, with what the args set on top."""
        general = GeneralSettings(data_dir=self.data_dir) if self.data_dir else GeneralSettings()
        database = DatabaseSettings(database_url=self.database_url) if self.database_url else DatabaseSettings()
        limits = {k: v for k, v in {
            "max_upload_bytes": self.max_upload_bytes,
            "max_queued_per_user": self.max_queued_per_user,
            "max_queued_total": self.max_queued_total,
        }.items() if v is not None}
        from_environment = LimitsSettings().model_dump()
        return Settings(general=general, database=database, limits=LimitsSettings.model_validate({**from_environment, **limits}))


def build_app(args: dict | AppArgs | None = None) -> Application:
    args = AppArgs.model_validate(args or {})
    detector = deployment(Detector).bind(str(args.detector_weights), args.runtime, args.model_threads, args.model_niceness)
    classifier = deployment(Classifier).bind(str(args.classifier_weights), args.model_threads, args.model_niceness)
    settings = args.settings()
    dispatcher = deployment(DispatcherDeployment).bind(settings, detector, classifier)
    return deployment(Ingress).bind(settings, detector, classifier, dispatcher)


def deployment(decorated: object) -> Deployment:
    """`@serve.deployment` turns a class into a Deployment; type checkers still see the class."""
    assert isinstance(decorated, Deployment), decorated
    return decorated


app = build_app()
