"""What each model deployment accepts as `user_config` (applied without a restart)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BatchingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(8, ge=1, le=256)
    batch_wait_timeout_s: float = Field(0.01, ge=0, le=5)


class DetectorUserConfig(BatchingConfig):
    confidence: float = Field(0.25, gt=0, lt=1)
    iou: float = Field(0.5, gt=0, lt=1, description="NMS overlap above which the weaker box is dropped")
    max_detections: int = Field(100, ge=1, le=1000)
    class_agnostic_nms: bool = Field(
        True, description="NMS across classes: one shape gets one box, not one per class it resembles (docs/evaluation.md)"
    )
    tiling: bool = Field(True, description="Also look at large images in tiles, for small figures (deployments/tiling.py)")
    tile_confidence: float = Field(0.5, gt=0, lt=1, description="The least confidence of a box found in a tile")


class ClassifierUserConfig(BatchingConfig):
    top_k: int = Field(3, ge=1, le=10)

