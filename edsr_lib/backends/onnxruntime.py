"""ONNX Runtime, on the CPU, in fp32: the ONNX export itself. The optional extra: ``pip install "edsr-lib[onnx]"``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..export import INPUT_NAME, OUTPUT_NAME
from .cache import FileBackend
from .machine import threads

__all__ = ["ONNXRuntimeBackend"]


class ONNXRuntimeBackend(FileBackend):
    """``"onnxruntime"``: the ONNX file, run by ONNX Runtime's CPU provider."""

    name = "onnxruntime"
    precisions = ("fp32",)
    package = "onnxruntime"
    suffix = ".onnx"

    def save(self, onnx_path: Path, folder: Path) -> Path:
        """The ONNX file is this runtime's file."""
        return onnx_path

    def compile(self, path: Path, precision: str) -> Callable[[np.ndarray], np.ndarray]:
        """An ONNX Runtime session on the CPU, with as many threads as PyTorch."""
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # idle threads sleep instead of spinning: between batches PyTorch (tiling, checks) needs the cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
        return lambda x: session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
