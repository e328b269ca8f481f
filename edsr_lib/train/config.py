"""The training configuration: the paper's recipe as defaults, every part a setting."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._device import AMP_CHOICES
from .._files import atomic_write
from ..ops.degrade import LRDegradation
from .degrade import DegradeChain

__all__ = ["TrainConfig"]

_CHOICES = {
    "loss": ("l1", "mse"),
    "sched": ("step", "cosine", "constant"),
    "amp": AMP_CHOICES,
    "sample_by": ("area", "image"),
}


@dataclass
class TrainConfig:
    """Everything a training run needs; the defaults are the paper's recipe (SPEC, "Training recipe").

    Attributes:
        model: Registered model name (``"edsr_baseline_x2"``, ``"mdsr_baseline"``, ...).
        model_kwargs: Overrides for the model constructor (``{"n_resblocks": 1}``).
        scales: The scales to train; ``None`` trains every scale of the model. A multi-scale
            model draws one of them per step and runs and updates only that scale's branches.
        init_from: Weights to start from: a ``save_pretrained`` directory, a ``.safetensors``
            file, a training checkpoint or a pretrained model name. Every tensor outside the
            upsampler is copied and must match; the upsampler is copied too when the source
            has the same one (same scale), and is left fresh otherwise (the paper starts
            EDSR x3/x4 from a trained x2). A multi-scale model also takes a list of
            single-scale sources, one per scale, and a deeper model starts from a shallower
            one of the same width with the added blocks as the identity (see
            ``load_init_weights``).
        train_dirs: Folders of HR training images (several are concatenated).
        lr_patch_size: Side of the LR training patches (48 in the paper); HR patches are
            ``scale`` times larger.
        augment: Random horizontal and vertical flips and transposition (the 8 dihedral
            transforms, i.e. flips and 90-degree rotations).
        sample_by: ``"area"`` draws images in proportion to their number of pixels (every
            pixel equally likely, which keeps T91's small images from being over-sampled);
            ``"image"`` draws them uniformly.
        cache_dir: Where the LR images (made once per image with the MATLAB bicubic) are
            cached as ``.npz``; ``None`` for the user cache folder, ``""`` for no disk cache.
        degrade: Make each LR patch from its HR crop with the on-the-fly degradation chain
            (:class:`~edsr_lib.train.degrade.DegradeChain` settings; ``{}`` for its defaults),
            instead of cropping the MATLAB-bicubic LR images; no LR image is then made or
            cached. ``None`` trains on clean bicubic LR.
        val_degrade: Degrade the validation LR images with
            :class:`~edsr_lib.ops.degrade.LRDegradation` (``{"noise": 5, "jpeg": 50}``), so
            that a degradation-trained run is chosen on degraded input; ``None`` for clean.
        data_on_device: Keep the uint8 images on the training device and crop there, so the
            data path never starves a GPU.
        batch_size: Patches per update, summed over all processes (16 in the paper).
        steps: Number of updates.
        loss: ``"l1"`` (the paper's) or ``"mse"``.
        opt: Optimiser name for ``timm.optim.create_optimizer_v2``.
        lr: Peak learning rate (1e-4 in the paper).
        betas: Adam betas.
        eps: Adam epsilon.
        weight_decay: Weight decay.
        sched: ``"step"`` (multiply by ``decay_rate`` every ``decay_steps``, the paper's),
            ``"cosine"`` (to ``min_lr`` at ``steps``) or ``"constant"``; timm schedulers,
            stepped once per update.
        decay_steps: Updates between two decays of the step schedule.
        decay_rate: Factor of each decay of the step schedule.
        min_lr: Final learning rate of the cosine schedule.
        warmup_steps: Linear warm-up updates from ``warmup_lr``.
        warmup_lr: Learning rate at the first update of the warm-up.
        ema: Keep an exponential moving average of the weights (``timm.utils.ModelEmaV3``),
            validated and exported beside the raw weights.
        ema_decay: EMA decay.
        ema_warmup: Ramp the EMA decay up from 0 (timm's ``use_warmup``) so early EMA
            weights are not dominated by the initialisation.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        amp: Autocast precision: ``"auto"`` (bf16 on CUDA, none on CPU), ``"none"``,
            ``"bf16"`` or ``"fp16"`` (with a gradient scaler).
        channels_last: Use the channels-last memory format (faster for these convolutions on
            CUDA and, measured, on CPU too).
        compile: Run the model through ``torch.compile``.
        num_threads: CPU threads for torch (``torch.set_num_threads``); ``None`` keeps the default.
        seed: Seed of the initialisation, the data sampler and the scale draws.
        output_dir: Run folder: checkpoints, logs, best and final weights.
        save_every: Updates between checkpoints (a killed run loses at most these).
        val_every: Updates between validations; ``None`` validates at every checkpoint.
        val_dir: Set folder (with ``HR/``) to validate on; ``None`` for no validation.
        log_every: Updates between log records.
        progress: Show a progress bar (with loss, PSNR and steps per second).
        tensorboard: Also write TensorBoard scalars (needs the ``tensorboard`` package).
    """

    model: str = "edsr_baseline_x2"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    scales: list[int] | None = None
    init_from: str | list[str] | None = None

    train_dirs: list[str] = field(default_factory=list)
    lr_patch_size: int = 48
    augment: bool = True
    sample_by: str = "area"
    cache_dir: str | None = None
    degrade: dict[str, Any] | None = None
    val_degrade: dict[str, Any] | None = None
    data_on_device: bool = True

    batch_size: int = 16
    steps: int = 300_000
    loss: str = "l1"
    opt: str = "adam"
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    sched: str = "step"
    decay_steps: int = 200_000
    decay_rate: float = 0.5
    min_lr: float = 0.0
    warmup_steps: int = 0
    warmup_lr: float = 0.0
    ema: bool = True
    ema_decay: float = 0.999
    ema_warmup: bool = True

    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = True
    compile: bool = False
    num_threads: int | None = None
    seed: int = 0

    output_dir: str = "runs/train"
    save_every: int = 1000
    val_every: int | None = None
    val_dir: str | None = None
    log_every: int = 100
    progress: bool = True
    tensorboard: bool = False

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)  # JSON gives lists
        if isinstance(self.train_dirs, str | os.PathLike):
            self.train_dirs = [self.train_dirs]
        self.train_dirs = [str(d) for d in self.train_dirs]
        if self.scales is not None:
            self.scales = [int(s) for s in self.scales]
        self.validate()
        if self.degrade is not None:
            # every setting spelled out, so that a run's config.json keeps its chain if the defaults change
            self.degrade = self.degrade_chain().to_dict()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first setting that is out of range."""
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r} is not one of {allowed}")
        positive = ("lr_patch_size", "batch_size", "steps", "save_every", "log_every", "decay_steps")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.val_every is not None and self.val_every < 1:
            raise ValueError(f"val_every must be a positive integer or None, got {self.val_every!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {self.num_threads}")
        if self.degrade is not None:
            self.degrade_chain()
        if self.val_degrade is not None:
            self.val_degradation()

    def degrade_chain(self) -> DegradeChain | None:
        """The training degradation chain of ``degrade`` (``None`` for clean bicubic LR).

        Raises:
            ValueError: If ``degrade`` is not a mapping of valid settings.
        """
        if self.degrade is None:
            return None
        if not isinstance(self.degrade, dict):
            raise ValueError(f"degrade must be a mapping of DegradeChain settings, got {self.degrade!r}")
        return DegradeChain.from_dict(self.degrade)

    def val_degradation(self) -> LRDegradation | None:
        """The degradation of the validation LR images (``None`` for clean).

        Raises:
            ValueError: If ``val_degrade`` is not a mapping of valid ``LRDegradation`` settings.
        """
        if self.val_degrade is None:
            return None
        if not isinstance(self.val_degrade, dict) or set(self.val_degrade) - {"noise", "jpeg", "seed"}:
            raise ValueError(f"val_degrade takes noise, jpeg and seed, got {self.val_degrade!r}")
        return LRDegradation(**self.val_degrade)

    @property
    def validate_every(self) -> int:
        """Updates between validations (``val_every``, or ``save_every`` when unset)."""
        return self.val_every or self.save_every

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy of the settings."""
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build a config from :meth:`to_dict` output.

        Raises:
            ValueError: For a key that is not a setting.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known: {sorted(names)}")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        """Write the settings as JSON (atomically)."""
        atomic_write(path, (json.dumps(self.to_dict(), indent=2) + "\n").encode())

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read settings written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))
