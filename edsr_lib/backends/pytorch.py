"""PyTorch, the backend of every device: a fused copy of the model, in ``channels_last``, optionally compiled.

The model itself is never touched: :func:`torch_runner` runs a private copy
(``res_scale`` and the mean shifts folded into convolutions by :meth:`~edsr_lib.SRModel.fuse`,
gradients off, moved to the device and cast to the precision), kept per model until its
weights change (:func:`edsr_lib.backends.memo.kept`).
"""

from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn

from ..models import SRModel
from .base import Backend, BackendError, Runner
from .memo import kept

__all__ = ["PyTorchBackend", "fast_model", "torch_runner"]

#: The precisions PyTorch runs and their dtype (int8 runs in OpenVINO).
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Float32(nn.Module):
    """A layer run in float32 outside autocast.

    The fused tail convolution carries ``1 / rgb_range`` in its weights (see
    :meth:`~edsr_lib.SRModel.fuse`): about 40% of them fall below float16's smallest normal
    number, so under float16 autocast it runs in float32 (its output is the image, three
    channels: the cost is small).
    """

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer on ``x`` in float32, autocast off."""
        with torch.autocast(x.device.type, enabled=False):
            return self.layer(x.float())


def fast_model(
    model: SRModel,
    device: torch.device,
    channels_last: bool,
    compile: bool,
    dtype: torch.dtype = torch.float32,
    autocast: torch.dtype | None = None,
) -> nn.Module:
    """A fused, inference-only copy of ``model`` on ``device`` in ``dtype``, kept until its weights change.

    Under float16 ``autocast`` the tail convolution stays in float32 (see :class:`Float32`).
    """
    tail = getattr(model, "tail_module", None)  # the last convolution, where the model declares one
    fp32_tail = autocast == torch.float16 and tail is not None and isinstance(getattr(model, tail, None), nn.Conv2d)

    def make() -> nn.Module:
        fast = copy.deepcopy(model).eval().requires_grad_(False)
        fast.to(torch.float32)  # fused in float32 whatever the model's dtype (a half model's fold would round)
        fast.fuse()
        if fp32_tail:
            setattr(fast, tail, Float32(getattr(fast, tail)))
        fast.to(device, dtype)
        if channels_last:
            fast.to(memory_format=torch.channels_last)
        return torch.compile(fast) if compile else fast

    return kept(model, ("torch", device, channels_last, compile, dtype, fp32_tail), make)


def torch_runner(
    model: SRModel,
    scale: int,
    *,
    device: torch.device,
    half: torch.dtype | None = None,
    channels_last: bool = True,
    compile: bool = False,
) -> Runner:
    """PyTorch's :data:`~edsr_lib.backends.Runner`: the fused fast copy of ``model`` at ``scale`` on ``device``.

    On a CPU, bf16 runs a bf16 copy of the model: every op of these networks (convolution,
    ReLU, add, pixel shuffle) would run in bf16 under autocast too, and the copy saves
    autocast's per-call weight casts (1.7x against 1.4x the fp32 path, measured
    alternately). On an accelerator, ``half`` runs under autocast.

    Args:
        model: The model (not modified).
        scale: A scale the model serves (not checked again).
        device: Where the model runs.
        half: The half-precision dtype (:func:`edsr_lib.inference.resolve_half`), or ``None`` for float32.
        channels_last: Run in ``channels_last`` memory format.
        compile: Run a :func:`torch.compile` d copy.
    """
    weights_dtype = half if device.type == "cpu" and half is not None else torch.float32
    autocast = half if weights_dtype == torch.float32 else None
    net = fast_model(model, device, channels_last, compile, weights_dtype, autocast)

    def run(batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(device, weights_dtype, non_blocking=True)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=autocast) if autocast else contextlib.nullcontext():
            y = net(batch, scale=scale)
        return y.float()

    return run


class PyTorchBackend(Backend):
    """``"torch"``: PyTorch on any device; fp32, bf16 (accelerators, CPUs with native bf16), fp16 (accelerators)."""

    name = "torch"
    precisions = ("fp32", "bf16", "fp16")
    cpu_only = False

    def check(self, precision: str, device: torch.device) -> None:
        """See :meth:`Backend.check`; int8 runs in OpenVINO, and half precision's rule is :func:`resolve_half`'s."""
        if precision == "int8":
            raise BackendError("int8 runs with backend='openvino' (or 'auto'), not 'torch'")
        super().check(precision, device)

    def runner(
        self,
        model: SRModel,
        scale: int,
        precision: str,
        *,
        device: torch.device,
        channels_last: bool = True,
        compile: bool = False,
    ) -> Runner:
        """:func:`torch_runner` in ``precision``."""
        return torch_runner(
            model, scale, device=device, half=DTYPES[precision], channels_last=channels_last, compile=compile
        )
