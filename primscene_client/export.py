"""Results as JSON Lines (one result per line, the API's JSON) or CSV (one primitive per row)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import TextIO

from primscene_client.models import Result

CSV_COLUMNS = [
    "task_id", "image_width", "image_height", "scene", "scene_confidence", "detector_model", "classifier_model",
    "class_id", "class_name", "x", "y", "width", "height", "rotation", "confidence",
]
PRIMITIVE_COLUMNS = ("class_id", "class_name", "x", "y", "width", "height", "rotation", "confidence")


def csv_rows(result: Result) -> list[dict[str, object]]:
    """One row per primitive; a result without primitives still gets one row (empty primitive
    columns) so that its scene is not lost."""
    task = {
        "task_id": str(result.task_id),
        "image_width": result.image.width,
        "image_height": result.image.height,
        "scene": result.scene.class_name,
        "scene_confidence": result.scene.confidence,
        "detector_model": result.models.detector,
        "classifier_model": result.models.classifier,
    }
    if not result.primitives:
        return [{**task, **dict.fromkeys(PRIMITIVE_COLUMNS, "")}]
    return [{**task, **{name: getattr(p, name) for name in PRIMITIVE_COLUMNS}} for p in result.primitives]


class Writer:
    """Writes results one at a time, so an export of many tasks streams."""

    def __init__(self, out: TextIO, fmt: str) -> None:
        self.out, self.fmt = out, fmt
        self._csv: csv.DictWriter | None = None
        if fmt == "csv":
            self._csv = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
            self._csv.writeheader()

    def write(self, result: Result) -> None:
        if self._csv is not None:
            self._csv.writerows(csv_rows(result))
        else:
            self.out.write(json.dumps(result.model_dump(mode="json"), ensure_ascii=False) + "\n")

    def write_all(self, results: Iterable[Result]) -> None:
        for result in results:
            self.write(result)
