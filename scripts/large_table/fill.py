"""Fill a migrated PostgreSQL database with users and tasks as the service stores them, by COPY.

Every finished task has its input (one of a few small real images), primitives and a scene, as
the models produce them; queued tasks have their input only. Finished tasks are spread over the
past year, newest last; `old` of them finished long before, for the retention job to delete.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from PIL import Image, ImageDraw
from sqlalchemy.engine import make_url

CHUNK = 50_000
PRIMITIVES_PER_TASK = 3
YEAR = timedelta(days=365)
OLD_AGE = timedelta(days=500)  # `old` tasks finished this long ago; the rest within a year


@dataclass(frozen=True)
class Filled:
    user_ids: list[uuid.UUID]
    finished: int
    queued: int
    old: int


def _images() -> list[tuple[bytes, int, int]]:
    """A few small PNGs (bytes, width, height): a rectangle, an ellipse, a triangle."""
    drawn = []
    for i, shape in enumerate(("rectangle", "ellipse", "triangle")):
        width, height = 200 + 20 * i, 120
        image = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(image)
        if shape == "triangle":
            draw.polygon([(30, 100), (100, 15), (170, 100)], outline="black", width=3)
        else:
            getattr(draw, shape)((40, 20, 160, 100), outline="black", width=3)
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        drawn.append((buffer.getvalue(), width, height))
    return drawn


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def fill(url: str, *, users: int, finished: int, queued: int, old: int, password_hash: str) -> Filled:
    """Add `users` users, `finished` succeeded tasks (of which `old` are past retention) and
    `queued` queued tasks, shared out over the users in turn."""
    connection = await asyncpg.connect(_dsn(url))
    try:
        now = datetime.now(UTC)
        user_ids = [uuid.uuid4() for _ in range(users)]
        await connection.copy_records_to_table(
            "users", columns=["id", "username", "hashed_password", "is_admin", "created_at"],
            records=[(uid, f"scale-user-{i}", password_hash, False, now - 2 * OLD_AGE) for i, uid in enumerate(user_ids)],
        )
        # A bulk load, as a restore is: the change notifications (migration 0005) are for
        # listening replicas, and none listens to rows that were never new to anyone.
        await connection.execute("ALTER TABLE tasks DISABLE TRIGGER USER")
        images = [(data, width, height, hashlib.sha256(data).hexdigest()) for data, width, height in _images()]
        top_k = json.dumps([{"class_name": "house", "confidence": 0.91}, {"class_name": "robot", "confidence": 0.05}])
        for start in range(0, finished + queued, CHUNK):
            numbers = range(start, min(start + CHUNK, finished + queued))
            tasks, inputs, primitives, scenes = [], [], [], []
            for n in numbers:
                task_id, owner = uuid.uuid4(), user_ids[n % users]
                data, width, height, sha = images[n % len(images)]
                if n < finished:
                    age = OLD_AGE + timedelta(seconds=n) if n < old else YEAR * (1 - n / finished)
                    created = now - age
                    tasks.append((task_id, owner, "succeeded", 1, 3, created, created, created, created + timedelta(seconds=1)))
                    primitives.extend(
                        (task_id, k, k, "rectangle", 0.5, 0.5, 0.3, 0.2, 0.0, 0.95) for k in range(PRIMITIVES_PER_TASK)
                    )
                    scenes.append((task_id, 0, "house", 0.91, top_k, "primitive-detector:1.1.0", "scene-classifier:1.1.0"))
                else:
                    created = now - timedelta(seconds=finished + queued - n)
                    tasks.append((task_id, owner, "queued", 0, 3, created, created, None, None))
                inputs.append((task_id, "image/png", len(data), width, height, sha, data))
            await connection.copy_records_to_table(
                "tasks", records=tasks,
                columns=["id", "owner_id", "status", "attempts", "max_attempts", "run_after", "created_at", "started_at", "finished_at"],
            )
            await connection.copy_records_to_table(
                "task_inputs", records=inputs, columns=["task_id", "content_type", "size_bytes", "width", "height", "sha256", "data"]
            )
            await connection.copy_records_to_table(
                "primitives", records=primitives,
                columns=["task_id", "ordinal", "class_id", "class_name", "x", "y", "width", "height", "rotation", "confidence"],
            )
            await connection.copy_records_to_table(
                "scene_results", records=scenes,
                columns=["task_id", "class_id", "class_name", "confidence", "top_k", "detector_model", "classifier_model"],
            )
        await connection.execute("ALTER TABLE tasks ENABLE TRIGGER USER")
        await connection.execute("VACUUM ANALYZE")  # as autovacuum soon would after so many inserts
    finally:
        await connection.close()
    return Filled(user_ids=user_ids, finished=finished, queued=queued, old=old)
