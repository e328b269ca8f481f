"""Pretrained weights shipped inside the package, one folder per ``arch.tag``.

Each folder (for example ``edsr_baseline_x2.t291/``) holds ``model.safetensors``,
``config.json`` and a ``README.md`` model card, as :func:`edsr_lib.hub.save_pretrained`
writes them, and ``pretrained.json``: how the weights were made and what they score
(``training_data``, ``training_command``, ``steps``, ``metrics``, the
:class:`edsr_lib.PretrainedCfg` fields of those names), written by
``tools/release_weights.py``. The registry reads it into the pretrained config of that
``arch.tag`` and points the config's ``package_file`` at the folder's weights
(``"edsr_baseline_x2.t291/model.safetensors"``); :func:`edsr_lib.hub.load_pretrained`
looks here before the Hugging Face cache and the Hub.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["PROVENANCE_FIELDS", "PROVENANCE_NAME", "shipped", "shipped_size"]

#: The file beside the weights that records their provenance and scores.
PROVENANCE_NAME = "pretrained.json"
#: The keys ``pretrained.json`` may hold (each a field of ``PretrainedCfg``).
PROVENANCE_FIELDS = ("training_data", "training_command", "steps", "metrics")


def shipped(name: str, filename: str = "model.safetensors", root: Traversable | Path | None = None) -> dict[str, Any]:
    """What the package ships for ``name`` (``arch.tag``), as ``PretrainedCfg`` fields.

    Args:
        name: ``arch.tag``, the name of the folder.
        filename: The weights file the pretrained config names.
        root: The folder of weights folders; this package's by default.

    Returns:
        ``package_file`` when the folder holds ``filename``, and the contents of its
        ``pretrained.json``; empty when the package ships nothing under that name.

    Raises:
        ValueError: If ``pretrained.json`` is not a JSON object of :data:`PROVENANCE_FIELDS`.
    """
    folder = (root if root is not None else resources.files(__package__)).joinpath(name)
    found: dict[str, Any] = {}
    if folder.joinpath(filename).is_file():
        found["package_file"] = f"{name}/{filename}"
    provenance = folder.joinpath(PROVENANCE_NAME)
    if provenance.is_file():
        try:
            data = json.loads(provenance.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"edsr_lib/weights/{name}/{PROVENANCE_NAME} is not valid JSON: {err}") from None
        unknown = sorted(set(data) - set(PROVENANCE_FIELDS)) if isinstance(data, dict) else None
        if unknown is None or unknown:
            raise ValueError(
                f"edsr_lib/weights/{name}/{PROVENANCE_NAME} must be a JSON object with keys among "
                f"{', '.join(PROVENANCE_FIELDS)}" + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            )
        found.update(data)
    return found


def shipped_size(package_file: str) -> int | None:
    """Size in bytes of a file the package ships (``"edsr_baseline_x2.t291/model.safetensors"``), if installed."""
    file = resources.files(__package__).joinpath(package_file)
    if not file.is_file():
        return None
    with resources.as_file(file) as path:
        return Path(path).stat().st_size
