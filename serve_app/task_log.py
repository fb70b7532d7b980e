"""Log lines about a task carry its id and its owner's id: in the text (`task=… user=…`, as
Serve's text format shows no extra attributes) and as record attributes `task_id`, `user_id`
(fields of Serve's JSON format, `logging_config: {encoding: JSON}`). So one task's story can be
found across replicas with a plain grep or a log query."""

from __future__ import annotations

import logging
import uuid
from collections.abc import MutableMapping
from typing import Any

# A child of Serve's own logger: inside a replica its lines go to that replica's Serve log (at
# Serve's level and in its encoding, `logging_config`); elsewhere they reach the root logger.
TASK_LOGGER = logging.getLogger("ray.serve.primscene.tasks")


class TaskLog(logging.LoggerAdapter):
    def __init__(self, task_id: uuid.UUID, user_id: uuid.UUID | None) -> None:
        super().__init__(TASK_LOGGER, {"task_id": str(task_id), "user_id": str(user_id) if user_id else None})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        fields = dict(self.extra or {})  # always set in __init__; typeshed allows None
        kwargs["extra"] = {**fields, **kwargs.get("extra", {})}
        return f"task={fields['task_id']} user={fields['user_id']} {msg}", kwargs
