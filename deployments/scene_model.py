"""The scene classifier's network: a timm image backbone fused with an encoding of the
detector's primitives (a set encoder over class, position, size and angle of each one).

Positions are taken relative to the joint extent of all primitives, so a car is a car wherever
it stands and however large it is drawn.
"""

from __future__ import annotations

import math
from typing import cast

import timm
import torch
from PIL import Image
from torch import nn

from deployments.contract import Primitive
from deployments.vocabulary import PRIMITIVES

MAX_OBJECTS = 16
OBJECT_FEATURES = len(PRIMITIVES) + 7  # one-hot class, x, y, w, h, sin 2θ, cos 2θ, confidence
PAD_GREY = (114, 114, 114)


def letterbox(image: Image.Image, size: int) -> Image.Image:
    """Fit the image into size × size without distorting it, padding with grey."""
    scale = size / max(image.size)
    resized = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (size, size), PAD_GREY)
    canvas.paste(resized, ((size - resized.width) // 2, (size - resized.height) // 2))
    return canvas


def image_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """uint8 CHW tensor of the letterboxed image (normalised inside the network)."""
    data = torch.frombuffer(bytearray(letterbox(image, size).tobytes()), dtype=torch.uint8)
    return data.view(size, size, 3).permute(2, 0, 1).contiguous()


def encode_primitives(primitives: list[Primitive], image_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(objects [MAX_OBJECTS, OBJECT_FEATURES], mask [MAX_OBJECTS]) for the most confident primitives."""
    width, height = image_size
    chosen = sorted(primitives, key=lambda p: -p.confidence)[:MAX_OBJECTS]
    objects = torch.zeros(MAX_OBJECTS, OBJECT_FEATURES)
    mask = torch.zeros(MAX_OBJECTS, dtype=torch.bool)
    if not chosen:
        return objects, mask
    # Work in pixels so that geometry is right for any aspect ratio.
    boxes = [(p.x * width, p.y * height, p.width * width, p.height * height) for p in chosen]
    left = min(x - w / 2 for x, _, w, _ in boxes)
    top = min(y - h / 2 for _, y, _, h in boxes)
    right = max(x + w / 2 for x, _, w, _ in boxes)
    bottom = max(y + h / 2 for _, y, _, h in boxes)
    span = max(right - left, bottom - top, 1e-6)
    for i, (p, (x, y, w, h)) in enumerate(zip(chosen, boxes)):
        objects[i, p.class_id] = 1.0
        objects[i, len(PRIMITIVES):] = torch.tensor(
            [(x - left) / span, (y - top) / span, w / span, h / span, math.sin(2 * p.rotation), math.cos(2 * p.rotation), p.confidence]
        )
        mask[i] = True
    return objects, mask


class SceneNet(nn.Module):
    def __init__(self, backbone: str, num_classes: int, use_primitives: bool = True) -> None:
        super().__init__()
        self.use_primitives = use_primitives
        self.backbone = timm.create_model(backbone, pretrained=False, num_classes=0)
        fused = cast(int, self.backbone.num_features)  # timm sets an int; nn.Module types attributes as Tensor | Module
        if use_primitives:
            self.objects = nn.Sequential(nn.Linear(OBJECT_FEATURES, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
            fused += 2 * 64 + 1
        self.head = nn.Sequential(nn.Linear(fused, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, num_classes))

    def forward(self, images: torch.Tensor, objects: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        features = [self.backbone(images.float() / 127.5 - 1.0)]
        if self.use_primitives:
            assert objects is not None and mask is not None
            encoded = self.objects(objects) * mask.unsqueeze(-1)
            count = mask.sum(dim=1, keepdim=True).clamp(min=1)
            pooled_max = encoded.masked_fill(~mask.unsqueeze(-1), 0).amax(dim=1)
            features += [encoded.sum(dim=1) / count, pooled_max, mask.sum(dim=1, keepdim=True) / MAX_OBJECTS]
        return self.head(torch.cat(features, dim=1))
