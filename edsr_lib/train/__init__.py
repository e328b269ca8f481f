"""Training: the paper's recipe as a :class:`TrainConfig`, run by a resumable, DDP-ready :class:`Trainer`.

From Python::

    from edsr_lib.train import TrainConfig, Trainer
    cfg = TrainConfig(model="edsr_baseline_x2", train_dirs=["T91/HR", "BSD200/HR"], val_dir="Set5",
                      output_dir="runs/x2")
    Trainer(cfg, resume=True).train()

or from the command line: ``edsr-lib train --model edsr_baseline_x2 --train-dir T91/HR ...``,
also under ``torchrun --nproc_per_node=K -m edsr_lib train ...``.
"""

from .config import TrainConfig
from .data import PatchDraw, PatchSampler, make_lr_images
from .degrade import DegradeChain
from .init_weights import load_init_weights
from .runlog import Run, read_run
from .trainer import CHECKPOINT_NAME, Trainer, branch_parameters

__all__ = [
    "CHECKPOINT_NAME",
    "DegradeChain",
    "PatchDraw",
    "PatchSampler",
    "Run",
    "TrainConfig",
    "Trainer",
    "branch_parameters",
    "load_init_weights",
    "make_lr_images",
    "read_run",
]
