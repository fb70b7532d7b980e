"""The detector network on one runtime: a letterboxed batch in, Ultralytics' raw OBB output out.

Each backend is given its thread count, because a Ray replica owns a fraction of the machine
and a runtime that spreads over every core only fights the other replicas. The exported ONNX
and OpenVINO models (float, and INT8 quantized) were exported for one image (1×3×S×S): ONNX
Runtime runs a batch image by image; OpenVINO compiles the model for each batch size it meets
and runs a batch as one inference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from deployments.runtimes import Runtime


def weights_for(checkpoint: Path, runtime: Runtime) -> Path:
    """Where a runtime's weights sit beside the PyTorch checkpoint (as Ultralytics exports them)."""
    return {
        "pytorch": checkpoint.with_suffix(".pt"),
        "onnx": checkpoint.with_suffix(".onnx"),
        "openvino": checkpoint.with_name(f"{checkpoint.stem}_openvino_model"),
        "openvino_int8": checkpoint.with_name(f"{checkpoint.stem}_int8_openvino_model"),  # quantized (NNCF)
    }[runtime]


class Backend(Protocol):
    def __call__(self, batch: np.ndarray) -> torch.Tensor:
        """(N, 3, S, S) float32 RGB in [0, 1] → (N, 4 + classes + 1, anchors) raw predictions."""


class TorchBackend:
    def __init__(self, checkpoint: Path, threads: int, device: str = "cpu") -> None:
        from ultralytics import YOLO
        from ultralytics.nn.tasks import BaseModel

        if device == "cpu":
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        net = YOLO(str(checkpoint), task="obb").model
        if not isinstance(net, BaseModel):  # a checkpoint always holds one; the name form does not
            raise ValueError(f"{checkpoint} holds no detector network")
        self._net: torch.nn.Module = net.fuse().eval().to(self.device)

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> torch.Tensor:
        out = self._net(torch.from_numpy(batch).to(self.device))
        return (out[0] if isinstance(out, (list, tuple)) else out).cpu()


class OnnxBackend:
    def __init__(self, model: Path, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> torch.Tensor:
        outputs = [self._session.run(None, {self._input: image[None]})[0] for image in batch]
        return torch.from_numpy(np.concatenate(outputs))


class OpenVinoBackend:
    """The exported IR compiled once per batch size it is given (static shapes, N×3×S×S), so a
    batch is one inference: on CPU that costs about half the time per image of running the
    images one by one (docs/benchmarks.md). A dynamic batch dimension was tried first: it was
    slower than static shapes and crashed OpenVINO on a small (64-pixel) export. One synchronous
    request at a time (LATENCY hint, one stream); the caller keeps calls on one thread.

    Float layers run in f32 on every CPU. OpenVINO's default on a CPU with AMX or AVX-512 BF16 is
    bfloat16, so the same image and weights gave other boxes on such a host (the foreign set's
    precision 0.910 against 0.914 for INT8: docs/evaluation.md); one model version must answer
    the same wherever its replica runs. Measured on such a host (1 thread, batch 8, network
    only): INT8 7.26 ms an image in f32 against 6.75 in bf16; the float IR 14.9 against 5.5."""

    def __init__(self, model_dir: Path, threads: int) -> None:
        import openvino

        self._core = openvino.Core()
        self._xml = next(model_dir.glob("*.xml"))
        self._config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "INFERENCE_PRECISION_HINT": "f32"}
        self._by_batch: dict[int, object] = {}
        self.compiled(1)

    def compiled(self, batch: int):  # -> openvino.CompiledModel
        """The model compiled for `batch` images (compiled on first use, about 0.7 s, then kept)."""
        if batch not in self._by_batch:
            model = self._core.read_model(self._xml)
            _, channels, height, width = model.input().get_partial_shape()
            model.reshape([batch, channels, height, width])
            self._by_batch[batch] = self._core.compile_model(model, "CPU", self._config)
        return self._by_batch[batch]

    def __call__(self, batch: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.compiled(len(batch))(batch)[0])


def load_backend(checkpoint: Path, runtime: Runtime, threads: int, device: str = "cpu") -> Backend:
    path = weights_for(checkpoint, runtime)
    if runtime == "pytorch":
        return TorchBackend(path, threads, device)
    if runtime == "onnx":
        return OnnxBackend(path, threads)
    return OpenVinoBackend(path, threads)  # float or INT8 IR alike
