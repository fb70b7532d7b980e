"""The classes our models know: primitive shapes (detector) and scenes (classifier).

The order is the class id, so it must never change for shipped weights; add at the end.
"""

from __future__ import annotations

PRIMITIVES: tuple[str, ...] = ("circle", "ellipse", "triangle", "rectangle", "square", "pentagon", "hexagon", "star")
SCENES: tuple[str, ...] = ("house", "car", "snowman", "traffic_light", "tree", "face", "none")
