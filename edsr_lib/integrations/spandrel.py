"""EDSR and MDSR for `spandrel <https://github.com/chaiNNer-org/spandrel>`_, the loader of ComfyUI and chaiNNer.

After :func:`install`, ``spandrel.ModelLoader().load_from_file(path)`` loads EDSR and MDSR
checkpoints in four layouts and returns an ``ImageModelDescriptor`` whose ``model`` is the
library's :class:`~edsr_lib.EDSR` or :class:`~edsr_lib.MDSR`:

- the official EDSR-PyTorch files (``edsr_baseline_x2-1bc95232.pt``, ``mdsr-4a78bedf.pt``,
  ...) and torchSR's, which keep EDSR-PyTorch's key names and fixed mean-shift tensors;
- BasicSR's ``EDSR`` (``params_ema`` preferred, as spandrel unwraps it), with BasicSR's
  default ``img_range`` 255 and DIV2K mean, which its state dicts do not store;
- edsr-lib's own ``model.safetensors``.

Files are identified through the converter: a foreign state dict by the layouts of
:mod:`edsr_lib.convert` (the first of :data:`~edsr_lib.convert.LAYOUTS` whose key names it
has, then :func:`edsr_lib.convert.detect`, told that layout: EDSR-PyTorch's key names mean
EDSR-PyTorch here), the library's own by the names its model classes declare
(:mod:`edsr_lib.convert.library`). super-image checkpoints share EDSR-PyTorch's names but
skip the mean shifts and work on [0, 1], which no tensor tells: convert them first
(``edsr-lib convert --layout super-image``) and load the result.

Spandrel sees only the tensors, never the ``config.json`` beside edsr-lib's weights, and
edsr-lib's state dict holds no ``rgb_range``, ``rgb_mean`` or ``res_scale``: a file
whose shapes are those of a registered variant gets that variant's settings, any other
the family's defaults. A model saved with other values loads correctly only through
:func:`load` (which reads the ``config.json``) or :func:`edsr_lib.from_pretrained`.

One MDSR file serves several scales, a spandrel descriptor one: ``ModelLoader`` gives the
descriptor of the largest scale (x4 for the paper's MDSR), and :func:`at_scale` gives the
others, sharing the same model and weights.

Example:
    >>> import spandrel
    >>> from edsr_lib.integrations import spandrel as edsr_spandrel
    >>> edsr_spandrel.install()
    >>> sr = spandrel.ModelLoader().load_from_file("edsr_baseline_x2-1bc95232.pt")  # doctest: +SKIP
    >>> sr.scale, edsr_spandrel.tile_overlap(sr)  # doctest: +SKIP
    (2, 36)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import spandrel
import torch
from spandrel import Architecture, ImageModelDescriptor, ModelTiling

from ..convert import LAYOUTS, detect, get_layout
from ..convert.library import library_numbers
from ..hub import CONFIG_NAME, WEIGHTS_NAME, from_pretrained
from ..models import EDSR, MDSR, SRModel, architectures
from ..registry import create_model, list_models

__all__ = ["EDSRArch", "MDSRArch", "at_scale", "install", "load", "read_state_dict", "tile_overlap"]

logger = logging.getLogger(__name__)

#: What reading an odd state dict can raise (a refusal, a missing key, an impossible size).
_NOT_OURS = (ValueError, KeyError, IndexError, TypeError, RuntimeError)


# ------------------------------------------------------------------------ reading
def read_state_dict(state_dict: Mapping[str, torch.Tensor]) -> tuple[SRModel, str] | None:
    """The edsr-lib model a state dict holds, with its weights, and the layout it was in.

    Args:
        state_dict: An unwrapped state dict (as spandrel hands it to an architecture).

    Returns:
        ``(model, layout)`` with ``layout`` one of ``"edsr-pytorch"``, ``"basicsr"`` or
        ``"edsr-lib"``; ``None`` if the state dict is not a complete EDSR or MDSR in one
        of them (a key missing or left over, a wrong shape).
    """
    found = _identify(state_dict)
    if found is None:
        return None
    _, layout, build = found
    return build(), layout


def _identify(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, str, Callable[[], SRModel]] | None:
    """``(architecture, layout, builder)`` from key names and shapes alone; the builder loads the weights."""
    keys = set(state_dict)
    layout = next((name for name in LAYOUTS if get_layout(name).architecture(keys) is not None), None)
    if layout is not None:
        try:
            spec = detect(state_dict, layout=layout)
        except _NOT_OURS as err:  # spandrel asks every architecture: a refusal is an answer, not an error
            logger.debug("not an EDSR/MDSR %s state dict: %s", layout, err)
            return None
        return spec.architecture, layout, lambda: spec.load(state_dict)
    try:
        config = _own_layout(state_dict)
    except _NOT_OURS as err:
        logger.debug("not an EDSR/MDSR edsr-lib state dict: %s", err)
        return None
    if config is None:
        return None

    def build() -> SRModel:
        model = architectures()[config["architecture"]](**{k: v for k, v in config.items() if k != "architecture"})
        model.load_state_dict(dict(state_dict), strict=True)
        return model.eval()

    return config["architecture"], "edsr-lib", build


def _own_layout(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    """The config of a state dict in edsr-lib's own layout, if its keys and shapes are exactly one model's."""
    shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    for numbers in library_numbers(state_dict):
        config = _settings(numbers)
        cls = architectures()[config["architecture"]]
        with torch.device("meta"):  # shapes only
            reference = cls(**{k: v for k, v in config.items() if k != "architecture"}).state_dict()
        if shapes == {k: tuple(v.shape) for k, v in reference.items()}:
            return config
    return None


def _settings(numbers: Mapping[str, Any]) -> dict[str, Any]:
    """The config of the registered variant with these numbers (its ``res_scale``, range, mean), else ``numbers``."""
    for name in list_models():
        with torch.device("meta"):
            config = create_model(name).config
        if all(config.get(k) == v for k, v in numbers.items()):
            return config
    return dict(numbers)


# -------------------------------------------------------------------- descriptors
def _descriptor(model: SRModel, arch: Architecture[Any], scale: int, tags: list[str]) -> ImageModelDescriptor[Any]:
    multi = len(model.scales) > 1
    return ImageModelDescriptor(
        model,
        model.state_dict(),
        architecture=arch,
        purpose="SR",
        tags=[*tags, f"x{scale}"],
        # measured on the shipped EDSR-/MDSR-baseline: mean error 4e-4 in float16, 1.4e-3 in bfloat16
        supports_half=True,
        supports_bfloat16=True,
        scale=scale,
        input_channels=model.n_colors,
        output_channels=model.n_colors,
        # fully convolutional, any size; tiles that overlap by tile_overlap() give the one-pass result
        tiling=ModelTiling.SUPPORTED,
        call_fn=(lambda m, image: m(image, scale=scale)) if multi else None,
    )


def _tags(model: SRModel, layout: str) -> list[str]:
    config = model.config
    return [f"{config['n_resblocks']}nb", f"{config['n_feats']}nf", layout]


class _EDSRLibArch(Architecture[SRModel]):
    """A spandrel architecture for one edsr-lib family; ``detect`` accepts only state dicts that map completely."""

    family: type[SRModel]

    def __init__(self, arch_id: str) -> None:
        super().__init__(id=arch_id, name=arch_id, detect=self._detect)

    def _detect(self, state_dict: Mapping[str, torch.Tensor]) -> bool:
        found = _identify(state_dict)
        return found is not None and found[0] == self.family.architecture

    def load(self, state_dict: Mapping[str, torch.Tensor]) -> ImageModelDescriptor[SRModel]:
        """Load an EDSR/MDSR state dict (see :func:`read_state_dict`) as a descriptor.

        Raises:
            ValueError: If the state dict is not one of this family.
        """
        found = read_state_dict(state_dict)
        if found is None or not isinstance(found[0], self.family):
            raise ValueError(f"not an {self.name} state dict in a layout edsr-lib reads")
        model, layout = found
        return _descriptor(model, self, max(model.scales), _tags(model, layout))


class EDSRArch(_EDSRLibArch):
    """spandrel's view of :class:`~edsr_lib.EDSR` (single scale)."""

    family = EDSR

    def __init__(self) -> None:
        super().__init__("EDSR")


class MDSRArch(_EDSRLibArch):
    """spandrel's view of :class:`~edsr_lib.MDSR`: the descriptor of its largest scale (see :func:`at_scale`)."""

    family = MDSR

    def __init__(self) -> None:
        super().__init__("MDSR")


def install(registry: spandrel.ArchRegistry | None = None) -> None:
    """Add :class:`EDSRArch` and :class:`MDSRArch` to spandrel's registry; calling it again changes nothing.

    They are detected after every architecture already there, so no model that spandrel
    loaded before loads differently.

    Args:
        registry: The registry to add to; default ``spandrel.MAIN_REGISTRY``, which
            ``spandrel.ModelLoader()`` uses.
    """
    registry = spandrel.MAIN_REGISTRY if registry is None else registry
    for arch in (EDSRArch(), MDSRArch()):
        present = registry.get(arch.id)
        if present is None:
            registry.add(spandrel.ArchSupport.from_architecture(arch))
        elif not isinstance(present.architecture, _EDSRLibArch):
            logger.warning("spandrel already has an architecture %r; edsr-lib's is not added", arch.id)


def at_scale(descriptor: ImageModelDescriptor[SRModel], scale: int) -> ImageModelDescriptor[SRModel]:
    """The descriptor of another scale of a multi-scale (MDSR) model; same model object, no copy.

    Args:
        descriptor: A descriptor of an edsr-lib model.
        scale: One of ``descriptor.model.scales``.

    Raises:
        ValueError: If the model does not serve ``scale``.
    """
    model = descriptor.model
    scale = model.resolve_scale(scale)
    tags = [t for t in descriptor.tags if t != f"x{descriptor.scale}"]
    return _descriptor(model, descriptor.architecture, scale, tags)


def tile_overlap(descriptor: ImageModelDescriptor[SRModel]) -> int:
    """The least tile overlap, in input (LR) pixels, that gives the one-pass result: the receptive radius.

    It holds for tilers that crop each tile's margin (edsr-lib's ``upscale(tile=...)``);
    a tiler that blends tiles across the overlap, as ComfyUI's does, needs more (see the
    integrations page of the docs).

    Args:
        descriptor: A descriptor of an edsr-lib model.
    """
    return descriptor.model.receptive_radius(descriptor.scale)


def load(path: str | Path, scale: int | None = None) -> ImageModelDescriptor[SRModel]:
    """A descriptor for a checkpoint file or an edsr-lib model folder, with its ``config.json`` when there is one.

    Unlike ``spandrel.ModelLoader``, this reads the ``config.json`` of an edsr-lib folder
    (or beside a ``model.safetensors``), so models saved with a non-default
    ``rgb_range``, ``rgb_mean`` or ``res_scale`` load correctly too.

    Args:
        path: A checkpoint file (any layout :func:`read_state_dict` reads) or a folder
            written by ``save_pretrained``.
        scale: For a multi-scale model, the scale of the descriptor (default the largest).

    Raises:
        spandrel.UnsupportedModelError: If the file is not an EDSR/MDSR checkpoint.
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent if path.name == WEIGHTS_NAME else None
    if folder is not None and _is_own_config(folder / CONFIG_NAME):
        model = from_pretrained(folder)
        arch = EDSRArch() if isinstance(model, EDSR) else MDSRArch()
        descriptor = _descriptor(model, arch, max(model.scales), _tags(model, "edsr-lib"))
    else:
        install()
        descriptor = spandrel.ModelLoader().load_from_file(path)
        if not isinstance(descriptor.model, SRModel):
            raise spandrel.UnsupportedModelError(f"{path} holds a {descriptor.architecture.name} model, not EDSR/MDSR")
    return descriptor if scale is None else at_scale(descriptor, scale)


def _is_own_config(path: Path) -> bool:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("architecture") in architectures()
