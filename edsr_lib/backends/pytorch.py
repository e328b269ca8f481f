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

from ..models import SRModel, TrunkModel
from .base import Backend, BackendError, Runner
from .memo import kept

__all__ = ["Float32", "PyTorchBackend", "fast_model", "float32_ends", "torch_runner"]

#: The precisions PyTorch runs and their dtype (int8 runs in OpenVINO).
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Float32(nn.Module):
    """A layer run in float32 outside autocast, its output cast to ``out_dtype`` (``None``: left float32).

    In half precision, the two ends of the network run in float32 (see :func:`float32_ends`).
    """

    def __init__(self, layer: nn.Module, out_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.layer = layer
        self.out_dtype = out_dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer on ``x`` in float32, autocast off."""
        with torch.autocast(x.device.type, enabled=False):
            y = self.layer(x.float())
        return y if self.out_dtype is None else y.to(self.out_dtype)


def float32_ends(model: SRModel) -> tuple[str, ...]:
    """The modules that run in float32 when the rest runs in half precision: the input mean shift, head and tail.

    Rounding there shows in every pixel. An 8-bit input level is not a bfloat16 number (bf16
    has 8 significant bits, so ``x - mean`` loses up to half a level); the fused tail's bias
    holds the output mean (0.4488 becomes 0.4492 in bf16: +0.1 level on every pixel); and
    float16 flushes about 40% of the fused tail's weights (which carry ``1 / rgb_range``) to
    zero. Kept in float32, bf16's mean difference from fp32 falls from 0.05-0.17 grey levels
    to under 0.01 and its largest difference to a third, for under 2% of the time (the head
    has ``n_colors`` inputs, the tail ``n_colors`` outputs). A family without the EDSR trunk
    keeps only a declared convolutional tail in float32.
    """
    tail = model.tail_module
    ends = (tail,) if tail is not None and isinstance(getattr(model, tail, None), nn.Conv2d) else ()
    if isinstance(model, TrunkModel) and isinstance(getattr(model, model.head_module, None), nn.Conv2d):
        ends = ("sub_mean", model.head_module, *ends)
    return ends


def fast_model(
    model: SRModel,
    device: torch.device,
    channels_last: bool,
    compile: bool,
    dtype: torch.dtype = torch.float32,
    autocast: torch.dtype | None = None,
) -> nn.Module:
    """A fused, inference-only copy of ``model`` on ``device`` in ``dtype``, kept until its weights change.

    In half precision (bfloat16 weights, or float16/bfloat16 ``autocast``) the modules of
    :func:`float32_ends` stay in float32 (see :class:`Float32`); the copy then takes a float32 input.
    """
    ends = float32_ends(model) if dtype != torch.float32 or autocast is not None else ()
    head = model.head_module if "sub_mean" in ends else None

    def make() -> nn.Module:
        fast = copy.deepcopy(model).eval().requires_grad_(False)
        fast.to(torch.float32)  # fused in float32 whatever the model's dtype (a half model's fold would round)
        fast.fuse()
        float32 = {name: copy.deepcopy(getattr(fast, name)) for name in ends}
        fast.to(device, dtype)
        for name, layer in float32.items():
            # the head hands the half-precision body its input; the mean shift hands the head a float32 one
            setattr(fast, name, Float32(layer.to(device), dtype if name == head and dtype != torch.float32 else None))
        if channels_last:
            fast.to(memory_format=torch.channels_last)
        return torch.compile(fast) if compile else fast

    return kept(model, ("torch", device, channels_last, compile, dtype, ends), make)


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
    alternately). On an accelerator, ``half`` runs under autocast. Either way the input mean
    shift, the head and the tail run in float32 (:func:`float32_ends`), which keeps the
    output's mean within 0.01 grey levels of float32's.

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
    # the input goes in as float32 where the copy's first layers run in float32 (see float32_ends)
    input_dtype = torch.float32 if "sub_mean" in float32_ends(model) else weights_dtype

    def run(batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(device, input_dtype, non_blocking=True)
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
