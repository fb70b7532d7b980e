"""The detector's runtimes by name, importable without torch or any runtime (settings, configs,
scripts and tests that only name one)."""

from __future__ import annotations

from typing import Literal

Runtime = Literal["pytorch", "onnx", "openvino", "openvino_int8"]
RUNTIMES: tuple[Runtime, ...] = ("pytorch", "onnx", "openvino", "openvino_int8")
