"""Reading a checkpoint file: its tensors (:func:`load_state_dict`), and its whole conversion (:func:`convert`).

Files are read with safetensors, or with ``torch.load(weights_only=True)``, which never
runs code from the file; wrappers and ``module.`` prefixes are taken off.
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from .._hub import NonFiniteError, check_finite_weights
from ..models import SRModel
from .base import WRITTEN_BY, fmt, some
from .detection import AmbiguousLayoutError, detect, load_for_detection
from .layouts import REGISTRY, get_layout
from .official import identify_file

__all__ = ["convert", "load_state_dict"]

logger = logging.getLogger(__name__)

#: Wrappers around a state dict, in order of preference (BasicSR's EMA weights first).
_WRAPPERS: tuple[str, ...] = ("params_ema", "params", "state_dict", "model")


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read the state dict of a third-party checkpoint, unwrapped and without ``module.`` prefixes.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(map_location="cpu", weights_only=True)``, which never runs code from the
    file. The wrappers ``params_ema`` (preferred, BasicSR's EMA weights), ``params``,
    ``state_dict`` and ``model`` are unwrapped; what was done is logged at INFO level.

    Args:
        path: The checkpoint file.

    Raises:
        FileNotFoundError: If there is no such file.
        ValueError: If the file cannot be read as a checkpoint of tensors.
    """
    state_dict, notes, _ = _read_checkpoint(Path(path))
    for note in notes:
        logger.info("%s: %s", path, note)
    return state_dict


def _read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], list[str], dict[str, Any] | None]:
    """The state dict, what was done to unwrap it, and what edsr-lib recorded in it if it wrote it."""
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a file: pass a checkpoint file (.pt, .pth or .safetensors)")
    try:
        if path.suffix == ".safetensors":
            obj: Any = load_file(path, device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"cannot read {path} with torch.load(weights_only=True): it is not a checkpoint of tensors "
            "(edsr-lib never unpickles other Python objects)"
        ) from exc
    except Exception as exc:  # torch.load and safetensors raise many types for a damaged file
        lines = str(exc).strip().splitlines()
        reader = "safetensors" if path.suffix == ".safetensors" else "torch.load"
        raise ValueError(f"cannot read {path} with {reader}: {lines[0] if lines else type(exc).__name__}") from exc
    return _unwrap(obj)


def _unwrap(obj: Any) -> tuple[dict[str, torch.Tensor], list[str], dict[str, Any] | None]:
    notes: list[str] = []
    for _ in range(len(_WRAPPERS) + 1):
        if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        key = next((k for k in _WRAPPERS if isinstance(obj, Mapping) and isinstance(obj.get(k), Mapping)), None)
        if key is None:
            raise ValueError(f"expected a state dict (names -> tensors), found {_describe_object(obj)}")
        if key == "params_ema" and isinstance(obj.get("params"), Mapping):
            notes.append("used BasicSR's 'params_ema' (the EMA weights), not 'params'")
        else:
            notes.append(f"unwrapped '{key}'")
        obj = obj[key]
    else:
        raise ValueError(f"expected a state dict (names -> tensors), found {_describe_object(obj)}")
    written = _written(obj)
    state_dict = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in state_dict):
        state_dict = {k.removeprefix("module."): v for k, v in state_dict.items()}
        notes.append("stripped the 'module.' prefix of DataParallel")
    return state_dict, notes, written


def _written(state_dict: Any) -> dict[str, Any] | None:
    """What edsr-lib recorded in a state dict it wrote (``{"layout", "settings"}``), if it is well formed."""
    metadata = getattr(state_dict, "_metadata", None)
    root = metadata.get("") if isinstance(metadata, Mapping) else None
    record = root.get(WRITTEN_BY) if isinstance(root, Mapping) else None
    if not isinstance(record, Mapping) or record.get("layout") not in REGISTRY:
        return None
    settings = record.get("settings")
    return {"layout": record["layout"], "settings": dict(settings) if isinstance(settings, Mapping) else {}}


def _describe_object(obj: Any) -> str:
    if not isinstance(obj, Mapping):
        return f"a {type(obj).__name__}"
    if not obj:
        return "an empty dict"
    odd = [f"{k} ({type(v).__name__})" for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    return f"a dict with non-tensor entries {some(odd)} and none of the wrappers {', '.join(_WRAPPERS)}"


def convert(
    src: str | Path,
    dst_dir: str | Path | None = None,
    *,
    layout: str | None = None,
    variant: str | None = None,
    **overrides: Any,
) -> SRModel:
    """Convert a third-party checkpoint file into the library's model (and format).

    Reads the file (:func:`load_state_dict`), recognises a file that edsr-lib wrote (by
    what :func:`~edsr_lib.convert.export_checkpoint` records in it: its layout, and the settings
    the layout's tensors do not hold), recognises official EDSR-PyTorch files by
    sha256 (:func:`identify_file`; their layout is then known, and the variant they
    should hold is checked), recognises super-image checkpoints by the ``config.json``
    beside them, detects the model (:func:`detect`) and loads the weights. A super-image
    file named for its scale (``pytorch_model_2x.pt``) converts at that scale even where
    the one ``config.json`` of a folder of several scales names another.

    Args:
        src: The checkpoint file (``.pt``, ``.pth`` or ``.safetensors``).
        dst_dir: If given, the model is written there with ``save_pretrained``
            (``model.safetensors`` + ``config.json``).
        layout: Force a layout (one of :data:`LAYOUTS`) instead of detecting it; needed
            where the key names fit several layouts and nothing beside the file tells.
        variant: A registered variant name (``"edsr_baseline_x2"``) the checkpoint must
            match; a mismatch raises. Means stored in float16 match to float16 rounding.
        **overrides: What the tensors do not fix (see :func:`detect`).

    Returns:
        The model in eval mode; ``model.conversion`` is the :class:`ConvertedSpec`, whose
        ``notes`` say what was recognised, assumed and carried over.

    Raises:
        FileNotFoundError: If ``src`` does not exist.
        AmbiguousLayoutError: If the layout cannot be told and ``layout`` is not given.
        ValueError: If it cannot be read or mapped, or does not match the expected variant;
            :class:`~edsr_lib.inference.NonFiniteError` if its weights hold NaN or infinity
            and ``dst_dir`` is given (nothing is written, as ``upscale`` refuses such weights).
    """
    path = Path(src)
    state_dict, notes, written = _read_checkpoint(path)
    official = identify_file(path)
    if official is not None:
        how = "sha256" if official.full_digest else "the sha256 prefix in its name"
        notes.append(f"recognised official checkpoint {official.filename} (by {how})")
        layout = layout or "edsr-pytorch"
    if written is not None and layout in (None, written["layout"]):
        layout = written["layout"]
        allowed = get_layout(layout).allowed_overrides(state_dict)
        recorded = {k: v for k, v in written["settings"].items() if k in allowed and k not in overrides}
        overrides = {**recorded, **overrides}
        notes.append(f"written by edsr-lib in the {layout} layout, as the file records" + _settings_note(recorded))
    sidecars = {name: found for name, known in REGISTRY.items() if (found := known.sidecar(path, layout)) is not None}
    if layout is None and len(sidecars) == 1:
        layout = next(iter(sidecars))
        notes.append(f"{path.with_name('config.json')} says {layout} {sidecars[layout].get('model_type', '')}".rstrip())
    sidecar = sidecars.get(layout) if layout is not None else None
    if sidecar is not None:
        overrides = {**get_layout(layout).sidecar_overrides(sidecar, overrides, notes), **overrides}
    try:
        spec = detect(state_dict, layout=layout, **overrides)
    except AmbiguousLayoutError as exc:
        named = [
            f"{path.name} is named as {get_layout(n).title} names its files"
            for n in exc.layouts
            if get_layout(n).file_scale(path) is not None
        ]
        hint = "; ".join(named) + (", but has no config.json beside it" if named else "")
        raise AmbiguousLayoutError(exc.readings, hint=hint) from None
    spec = get_layout(spec.layout).check_file(spec, path, sidecar)
    spec = dataclasses.replace(spec, notes=(*notes, *spec.notes), official=official, source=str(path))
    model = load_for_detection(spec, state_dict, variant)
    if dst_dir is not None:
        try:
            check_finite_weights(model)
        except NonFiniteError as err:
            raise NonFiniteError(f"{path}: {err}; nothing written") from None
        model.save_pretrained(dst_dir)
    return model


def _settings_note(settings: Mapping[str, Any]) -> str:
    if not settings:
        return ""
    shown = ", ".join(f"{k} {fmt(v) if isinstance(v, list) else format(v, 'g')}" for k, v in settings.items())
    return f", with {shown}"
