"""What a set of pretrained weights is: :class:`PretrainedCfg`, plain data that imports nothing of the library.

The registry (:mod:`edsr_lib.registry`) keeps one per ``arch.tag``; the hub
(:mod:`edsr_lib.hub`) reads where the weights live and checks their sha256 from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["INPUTS", "PretrainedCfg"]

#: What the weights are for (:attr:`PretrainedCfg.for_input`) -> the inputs, in words.
INPUTS: dict[str, str] = {
    "clean": "clean downscales and benchmarks (bicubic LR)",
    "real": "photos and compressed images (JPEG, sensor noise, mild blur)",
}


@dataclass(frozen=True)
class PretrainedCfg:
    """Where a set of pretrained weights lives and what it reaches.

    A model file states only the name, the sha256, the licence and a description (and
    ``hf_hub_id="org/"``, completed with ``arch.tag`` as timm does); at registration the
    package's ``edsr_lib/weights/<arch.tag>/`` adds ``package_file`` and, from its
    ``pretrained.json``, the training data, command, steps and metrics.

    Weights published by someone else in another code base's format (a *third-party file*)
    are named by their Hub repository, file, revision (a full commit hash) and sha256, with
    the converter's ``layout`` they are in: ``pretrained=True`` downloads the file, checks
    its sha256 before reading it, converts it and keeps the result in the library's own
    format, so that later loads never read the original again. Their ``license``,
    ``attribution`` and ``metrics_source`` say whose they are and whose the scores are.

    Attributes:
        hf_hub_id: Hugging Face Hub repository id (``"org/name"``); an id ending in ``/``
            is completed with ``arch.tag`` at registration.
        filename: Weights file inside the repository (or inside the package folder).
        sha256: Hex digest the weights file must have.
        revision: Hub branch, tag or (best) commit hash to download the weights from, so
            that a later push to the repository cannot change what ``pretrained=True``
            loads; ``None`` for the default branch. The sha256 still checks the file.
        license: Licence of the weights.
        training_data: What the weights were trained on.
        training_command: The command that produced them (data paths as ``$DATA/...``).
        steps: Number of optimiser steps.
        metrics: Scores per set and scale, e.g. ``{"Set5": {"x2": {"psnr": 37.6, "ssim": 0.959}}}``
            (benchmark protocol: Y channel, ``crop_border = scale``); self-ensemble scores sit
            under the set name with a ``+`` (``"Set5+"``), the paper's notation, and scores on
            degraded LR under the set name and the degradation's key (``"Set5_jpeg50"``,
            :attr:`edsr_lib.ops.degrade.LRDegradation.key`).
        package_file: Path relative to ``edsr_lib/weights/`` of a copy shipped inside the
            package, if any (found at registration).
        description: One line for the model zoo.
        layout: The converter layout (:data:`edsr_lib.convert.LAYOUTS`) of a third-party
            ``filename``, converted on load; ``None`` for a file in the library's own format.
        file: A local copy of the weights file, used instead of the Hub (set for one call
            with ``create_model(..., pretrained_cfg_overlay={"file": PATH})``).
        download_size: Size in bytes of the file ``pretrained=True`` downloads (where
            known), for listings and the offline message.
        attribution: Who made the weights and what they build on (code base, data set,
            architecture's authors), for model cards and listings.
        metrics_source: Whose scores ``metrics`` are and how they were measured, when not
            edsr-lib's own benchmark protocol (``edsr-lib evaluate``); ``None`` for edsr-lib's.
        for_input: What input the weights are for, a key of :data:`INPUTS`: ``"clean"``
            (trained on bicubic downscales: benchmarks) or ``"real"`` (trained with
            degradations: JPEG and noisy photos).
        architecture: Variant name, filled in at registration.
        tag: Tag name, filled in at registration.
    """

    hf_hub_id: str | None = None
    filename: str = "model.safetensors"
    sha256: str | None = None
    revision: str | None = None
    license: str | None = None
    training_data: str | None = None
    training_command: str | None = None
    steps: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    package_file: str | None = None
    description: str | None = None
    layout: str | None = None
    file: str | None = None
    download_size: int | None = None
    attribution: str | None = None
    metrics_source: str | None = None
    for_input: str = "clean"
    architecture: str | None = None
    tag: str | None = None

    def __post_init__(self) -> None:
        if self.for_input not in INPUTS:
            raise ValueError(f"for_input must be one of {', '.join(INPUTS)}, got {self.for_input!r}")

    @property
    def name(self) -> str:
        """``architecture.tag``."""
        return f"{self.architecture}.{self.tag}" if self.tag else str(self.architecture)

    @property
    def has_weights(self) -> bool:
        """True when the config says where weights can be found."""
        return bool(self.hf_hub_id or self.package_file or self.file)

    @property
    def third_party(self) -> bool:
        """True when the weights file is in another code base's format, converted on load.

        That is a config with a ``layout``, or a local ``file`` that is not safetensors
        (whose layout the converter then tells from the file).
        """
        return self.layout is not None or bool(self.file and not str(self.file).endswith(".safetensors"))

    @property
    def source(self) -> str:
        """Where the weights file lives, in words: the package, a local file, or ``org/name/file@revision``."""
        if self.file:
            return str(self.file)
        if self.package_file:
            return f"package (edsr_lib/weights/{self.package_file})"
        if self.hf_hub_id:
            return f"{self.hf_hub_id}/{self.filename}" + (f"@{self.revision}" if self.revision else "")
        return "nowhere"
