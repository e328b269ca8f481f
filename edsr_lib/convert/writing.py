"""Writing: a library model's weights in a third-party layout (:func:`export_state_dict`, :func:`export_checkpoint`)."""

from __future__ import annotations

import collections
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._files import atomic_write
from .._hub import check_finite_weights
from .._loading import resolve_weights
from ..models import SRModel
from ..models.base import scale_key
from .base import WRITTEN_BY, conv_names, upsampler_convs
from .layouts import WRITABLE_LAYOUTS, get_layout
from .library import library_names

__all__ = ["ExportedCheckpoint", "export_checkpoint", "export_state_dict"]


@dataclass(frozen=True)
class ExportedCheckpoint:
    """A library model written in a third-party layout (by :func:`export_state_dict`).

    Attributes:
        layout: The layout, one of :data:`WRITABLE_LAYOUTS`.
        state_dict: The tensors under the layout's key names, mean shifts included where
            the layout stores them.
        options: The arguments of the layout's own model class (or command line) that
            rebuild the model around these tensors.
        notes: What a user of the file must know, in words.
        wrapper: The key the layout's own code saves the state dict under (``None``: bare).
        settings: What the layout's tensors do not hold (``res_scale``; ``rgb_range`` and
            ``rgb_mean`` where the layout keeps them in options), as reading them back needs.
    """

    layout: str
    state_dict: dict[str, torch.Tensor]
    options: dict[str, Any]
    notes: tuple[str, ...] = ()
    wrapper: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def checkpoint(self) -> dict[str, Any]:
        """What the layout's own code saves with ``torch.save``: the state dict, wrapped where it wraps it.

        The state dict records, in its ``_metadata`` (which ``load_state_dict`` ignores), that
        edsr-lib wrote it in this layout with these :attr:`settings`, so that
        :func:`~edsr_lib.convert.convert` reads it back without being told the layout.
        """
        tagged = collections.OrderedDict(self.state_dict)
        tagged._metadata = collections.OrderedDict(  # type: ignore[attr-defined]
            {"": {WRITTEN_BY: {"layout": self.layout, "settings": dict(self.settings)}}}
        )
        return {self.wrapper: tagged} if self.wrapper else tagged


def export_state_dict(model: SRModel, layout: str) -> ExportedCheckpoint:
    """Write a library model's weights in a third-party layout (the reverse of :func:`convert_state_dict`).

    The tensors are renamed to the layout's keys (:class:`Layout` holds them, the same
    tables reading uses), the fixed mean shifts are added where the layout has them, and
    a model whose ``rgb_range`` differs from the one the layout's code runs at (255) is
    rescaled exactly: the head weights times ``rgb_range / 255``, the tail weights and
    bias divided by it.

    Args:
        model: An unfused edsr-lib EDSR or MDSR.
        layout: One of :data:`WRITABLE_LAYOUTS` (``"edsr-pytorch"``, ``"basicsr"``,
            ``"torchsr"``). Only EDSR-PyTorch has an MDSR.

    Returns:
        The state dict, the options that rebuild the layout's model around it, and notes.

    Raises:
        TypeError: If ``model`` is not an edsr-lib model.
        ValueError: If the layout is not written, or its code cannot hold this model
            (another block, kernel size or number of colours; MDSR outside EDSR-PyTorch);
            :class:`~edsr_lib.inference.NonFiniteError` if its weights hold NaN or infinity.
    """
    target = get_layout(layout)
    if not target.writable:
        raise ValueError(f"edsr-lib does not write the {layout} layout; it writes {', '.join(WRITABLE_LAYOUTS)}")
    if not isinstance(model, SRModel):
        raise TypeError(f"expected an edsr-lib model, got {type(model).__name__}")
    if model.fused:
        raise ValueError("this model is fused (for inference): write the unfused model")
    check_finite_weights(model)
    config = model.config
    architecture = config["architecture"]
    names = target.names(architecture)
    if problems := target.unwritable(config):
        raise ValueError(f"{target.title}'s {architecture.upper()} cannot hold this model: {'; '.join(problems)}")

    scales = config["scales"] if architecture == "mdsr" else [config["scale"]]
    ours = [(scale_key(s), upsampler_convs(s)) for s in scales]
    theirs = [(str(i) if architecture == "mdsr" else "", upsampler_convs(s)) for i, s in enumerate(scales)]
    source = conv_names(library_names(architecture), config["n_resblocks"], ours)
    destination = conv_names(names, config["n_resblocks"], theirs)
    tensors = model.state_dict()
    out = {
        f"{d}.{p}": tensors[f"{s}.{p}"].detach().cpu().clone()
        for s, d in zip(source, destination, strict=True)
        for p in ("weight", "bias")
    }
    notes: list[str] = []
    factor = config["rgb_range"] / target.rgb_range
    if factor != 1.0:
        # head(r * (x - m)) = (head.weight * r / R) applied to R * (x - m); the tail's output is divided by r, not R
        out[f"{names.head}.weight"] = out[f"{names.head}.weight"] * factor
        out[f"{names.tail}.weight"] = out[f"{names.tail}.weight"] / factor
        out[f"{names.tail}.bias"] = out[f"{names.tail}.bias"] / factor
        notes.append(
            f"rescaled from rgb_range {config['rgb_range']:g} to the {target.rgb_range:g} that {target.title} works at "
            f"(head weights x {factor:g}, tail weights and bias / {factor:g})"
        )
    out.update(target.extra_tensors(config["rgb_mean"]))
    notes += target.write_notes(config)
    settings = {"res_scale": config["res_scale"], "rgb_range": target.rgb_range, "rgb_mean": list(config["rgb_mean"])}
    return ExportedCheckpoint(target.name, out, target.options(config), tuple(notes), target.wrapper, settings)


def export_checkpoint(src: SRModel | str | Path, dst: str | Path, layout: str) -> ExportedCheckpoint:
    """Write a model of the library as a checkpoint file in a third-party layout (atomically).

    Args:
        src: A model, a registered name with pretrained weights (``"edsr_baseline_x2"``,
            ``"mdsr_baseline.t291"``), or a folder written by ``save_pretrained``.
        dst: The file to write with ``torch.save`` (``.pt``; BasicSR's are ``.pth``).
        layout: One of :data:`WRITABLE_LAYOUTS`.

    Returns:
        What was written (see :func:`export_state_dict`).

    Raises:
        ValueError: If ``src`` is neither a model, a registered name nor a folder, if
            ``dst`` is a folder or a ``.safetensors`` name, or if the layout cannot hold it.
    """
    model = _resolve_model(src)
    exported = export_state_dict(model, layout)
    path = Path(dst)
    if path.is_dir():
        raise ValueError(f"{path} is a folder: pass the file to write, e.g. {path / 'model.pt'}")
    if path.suffix == ".safetensors":
        raise ValueError(f"{path}: the {layout} code loads torch.save files; name the file .pt or .pth")
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(exported.checkpoint, buffer)
    atomic_write(path, buffer.getvalue())
    return exported


def _resolve_model(src: SRModel | str | Path) -> SRModel:
    if isinstance(src, SRModel):
        return src
    found = resolve_weights(src)
    if found.kind == "file" and found.folder is None:
        raise ValueError(
            f"{src} is a file: pass a registered model name or a folder written by save_pretrained "
            "(to read a third-party checkpoint, convert it without --to)"
        )
    return found.load_model()
