"""The Ingress deployment: serves the FastAPI app. It only serves HTTP: the Dispatcher deployment
feeds queued tasks through the model graph (Detector, then Classifier)."""

from __future__ import annotations

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from serve_app.api import create_app
from serve_app.ray_models import ServeModelCatalog
from serve_app.settings import Settings


@serve.deployment(name="Ingress", max_ongoing_requests=256, ray_actor_options={"num_cpus": 0.2})
@serve.ingress()
class Ingress:
    def __init__(
        self, settings: Settings, detector: DeploymentHandle, classifier: DeploymentHandle, dispatcher: DeploymentHandle
    ) -> None:
        # The dispatcher's handle is taken so that it is part of the application (and so
        # deployed, scaled and deleted with it); requests never call it.
        self._dispatcher = dispatcher
        self._app = create_app(settings, models=ServeModelCatalog(detector, classifier))

    def __serve_build_asgi_app__(self) -> FastAPI:
        # Built per replica, after the constructor, so the app can use the handles above.
        return self._app
