"""Model routes: list the served models, run one synchronously (for debugging and integration)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from deployments.contract import ImagePayload, ImageRejected, ModelInfo, ModelPrediction, UnknownModel
from serve_app.deps import ReadingUser, ServicesDep
from serve_app.errors import error_responses
from serve_app.routes.uploads import IMAGE_PART_OPENAPI, ImageField, read_upload

router = APIRouter(prefix="/models", tags=["models"])


@router.get(
    "",
    response_model=list[ModelInfo],
    responses=error_responses(401),
    # An OpenAPI link, as on the task routes: clients (and the stateful API tests) can run a listed model.
    openapi_extra={
        "responses": {
            "200": {
                "links": {
                    "Predict": {
                        "operationId": "predict",
                        "parameters": {"name": "$response.body#/0/name"},
                        "description": "Run the first listed model on an image.",
                    }
                }
            }
        }
    },
)
async def list_models(_user: ReadingUser, services: ServicesDep) -> list[ModelInfo]:
    """The detector and the classifier: name, kind, version, classes and input size."""
    return await services.models.list_models()


@router.post(
    "/{name}/predict",
    response_model=ModelPrediction,
    responses=error_responses(400, 401, 404, 413, 415, 422),
    openapi_extra=IMAGE_PART_OPENAPI,
)
async def predict(name: str, image: ImageField, _user: ReadingUser, services: ServicesDep) -> ModelPrediction:
    """Run one model on an image and wait for its answer. Nothing is stored."""
    upload = await read_upload(image, services.settings.limits)
    payload = ImagePayload(data=upload.data, content_type=upload.content_type, width=upload.width, height=upload.height)
    try:
        return await services.models.predict(name, payload)
    except UnknownModel:
        known = ", ".join(m.name for m in await services.models.list_models())
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"No model named {name!r}; known models: {known}.") from None
    except ImageRejected as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"The model cannot process this image: {exc}") from None
