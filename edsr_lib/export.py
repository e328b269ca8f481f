"""Export a model to ONNX, with dynamic batch, height and width, and check it with onnxruntime.

An ONNX graph takes only tensors, so a model is exported at one scale: :class:`FixedScale`
wraps it (for MDSR, one file per scale). The exported graph is the fused model
(:meth:`~edsr_lib.SRModel.fuse`), which equals the unfused one to float rounding.

Needs the optional extra ``onnx`` (``pip install "edsr-lib[onnx]"``: onnx, onnxscript for
PyTorch's exporter, onnxruntime for the check).
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ._device import full_float32
from ._files import atomic_path
from .models import SRModel

__all__ = ["FixedScale", "export_onnx", "max_onnx_error"]

#: Name of the graph's input (float32 ``N x C x H x W`` in [0, 1]) and output.
INPUT_NAME, OUTPUT_NAME = "lr", "sr"


class FixedScale(nn.Module):
    """A model bound to one scale, whose ``forward`` takes only the image (for export).

    Args:
        model: The model.
        scale: One of its scales; may be omitted for a single-scale model.
    """

    def __init__(self, model: SRModel, scale: int | None = None) -> None:
        super().__init__()
        self.scale = model.resolve_scale(scale)
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale ``x`` (float NCHW in [0, 1]) by :attr:`scale`."""
        return self.model(x, scale=self.scale)


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise ImportError(f'ONNX export needs {module}: pip install "edsr-lib[onnx]"') from None


def export_onnx(
    model: SRModel,
    path: str | os.PathLike[str],
    scale: int | None = None,
    *,
    opset: int | None = None,
    check: bool = True,
) -> Path:
    """Write ``model`` at ``scale`` as an ONNX file with dynamic batch, height and width.

    The graph maps input ``"lr"`` (float32 ``N x C x H x W`` in [0, 1]) to output ``"sr"``
    (``N x C x sH x sW``, not clamped). The file is written atomically.

    Args:
        model: The model (not modified: a fused copy is exported).
        path: The ``.onnx`` file to write.
        scale: The scale to export; required for a multi-scale model.
        opset: ONNX opset; default the exporter's.
        check: Run the file with onnxruntime on two input sizes and raise unless it matches
            PyTorch within 1e-4 (see :func:`max_onnx_error`).

    Returns:
        The path written.

    Raises:
        ImportError: If the ``onnx`` extra is not installed.
        ValueError: If ``scale`` is not one of the model's scales.
        RuntimeError: If the check fails.
    """
    _require("onnxscript")
    scale = model.resolve_scale(scale)
    wrapper = FixedScale(copy.deepcopy(model).cpu().requires_grad_(False).fuse(), scale).eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.rand(1, model.n_colors, 32, 32)
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    with atomic_path(path) as tmp:
        # the exporter reports its progress on stdout; a library call should be quiet
        with contextlib.redirect_stdout(io.StringIO()):
            torch.onnx.export(
                wrapper,
                (example,),
                tmp,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes={"x": dims},
                opset_version=opset,
                external_data=False,
                dynamo=True,
            )
        if check:
            error = max_onnx_error(tmp, model, scale)
            if error > 1e-4:
                raise RuntimeError(f"the exported graph differs from PyTorch by up to {error:.3g} (more than 1e-4)")
    return path


def max_onnx_error(
    path: str | os.PathLike[str],
    model: SRModel,
    scale: int | None = None,
    shapes: tuple[tuple[int, int, int, int], ...] = ((1, 3, 32, 32), (2, 3, 19, 45)),
) -> float:
    """Largest absolute difference between onnxruntime and PyTorch outputs on random inputs.

    Args:
        path: The ONNX file.
        model: The PyTorch model it was exported from.
        scale: The exported scale.
        shapes: Input shapes to try (different sizes check that height and width are dynamic).
    """
    _require("onnxruntime")
    import onnxruntime

    scale = model.resolve_scale(scale)
    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    error = 0.0
    for shape in shapes:
        x = torch.rand((shape[0], model.n_colors, *shape[2:]), generator=generator)
        (onnx_out,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})
        with torch.inference_mode(), full_float32():  # a CUDA model in TF32 would differ by ~1e-3
            expected = model(x.to(device), scale=scale).cpu().numpy()
        if onnx_out.shape != expected.shape:
            return float("inf")
        error = max(error, float(np.abs(onnx_out - expected).max()))
    return error
