"""The scene classifier: images plus their primitives in, scene with top-k out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from deployments import offline  # noqa: F401  (no hub access from timm)
from deployments.contract import ClassScore, ModelInfo, Primitive, Scene
from deployments.images import ImageInput, to_rgb
from deployments.scene_model import SceneNet, encode_primitives, image_tensor


@dataclass(frozen=True)
class ClassifierConfig:
    weights: Path  # the .pt checkpoint; its .json sits beside it
    top_k: int = 3


def load_scene_net(weights: Path) -> tuple[SceneNet, dict]:
    meta = json.loads(weights.with_suffix(".json").read_text())
    net = SceneNet(meta["backbone"], len(meta["classes"]), use_primitives=meta["uses_primitives"])
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net.eval(), meta


class SceneClassifier:
    def __init__(self, config: ClassifierConfig) -> None:
        self.config = config
        self._net, self.meta = load_scene_net(config.weights)
        self.classes: list[str] = self.meta["classes"]
        self.imgsz: int = self.meta["imgsz"]
        self.top_k = config.top_k

    @property
    def version(self) -> str:
        return f"{self.meta['name']}:{self.meta['version']}"

    def info(self) -> ModelInfo:
        return ModelInfo(name=self.meta["name"], kind="classifier", version=self.meta["version"], classes=self.classes, input_size=self.imgsz)

    @torch.inference_mode()
    def probabilities(self, images: Sequence[ImageInput], primitives: Sequence[list[Primitive]]) -> torch.Tensor:
        pictures = [to_rgb(image, at_least=self.imgsz) for image in images]
        batch = torch.stack([image_tensor(p, self.imgsz) for p in pictures])
        encoded = [encode_primitives(prims, p.size) for p, prims in zip(pictures, primitives)]
        objects = torch.stack([o for o, _ in encoded])
        mask = torch.stack([m for _, m in encoded])
        return self._net(batch, objects, mask).softmax(dim=1)

    def predict(self, images: Sequence[ImageInput], primitives: Sequence[list[Primitive]]) -> list[Scene]:
        if not images:
            return []
        scenes = []
        k = min(self.top_k, len(self.classes))
        for row in self.probabilities(images, primitives):
            confidences, indices = row.topk(k)
            top = [ClassScore(class_name=self.classes[i], confidence=float(c)) for c, i in zip(confidences.tolist(), indices.tolist())]
            scenes.append(Scene(class_id=indices[0].item(), class_name=top[0].class_name, confidence=top[0].confidence, top_k=top))
        return scenes
