"""``edsr-lib train``: train a model with :class:`edsr_lib.train.Trainer` (also under ``torchrun``)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from ..options import AMP_CHOICES
from . import CLIError

#: Command-line option -> TrainConfig field, for the options that map one to one.
_FIELDS = {
    "model": "model",
    "scales": "scales",
    "init_from": "init_from",
    "train_dir": "train_dirs",
    "patch_size": "lr_patch_size",
    "augment": "augment",
    "sample_by": "sample_by",
    "cache_dir": "cache_dir",
    "data_on_device": "data_on_device",
    "batch_size": "batch_size",
    "steps": "steps",
    "loss": "loss",
    "opt": "opt",
    "lr": "lr",
    "betas": "betas",
    "eps": "eps",
    "weight_decay": "weight_decay",
    "sched": "sched",
    "decay_steps": "decay_steps",
    "decay_rate": "decay_rate",
    "min_lr": "min_lr",
    "warmup_steps": "warmup_steps",
    "warmup_lr": "warmup_lr",
    "ema": "ema",
    "ema_decay": "ema_decay",
    "ema_warmup": "ema_warmup",
    "device": "device",
    "amp": "amp",
    "channels_last": "channels_last",
    "compile": "compile",
    "threads": "num_threads",
    "seed": "seed",
    "output_dir": "output_dir",
    "save_every": "save_every",
    "val_every": "val_every",
    "val_dir": "val_dir",
    "log_every": "log_every",
    "progress": "progress",
    "tensorboard": "tensorboard",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    p = subparsers.add_parser(
        "train",
        help="train a model on folders of HR images (the paper's recipe by default)",
        description=(
            "Train EDSR/MDSR on random patches of HR image folders. Defaults are the paper's recipe "
            "(48x48 LR patches, flips and rotations, L1, Adam, batch 16, lr 1e-4 halved every 2e5 steps). "
            "Options left out come from --config, else from the run folder's config.json when resuming, "
            "else from the defaults. Runs under torchrun for several processes."
        ),
    )
    bool_opt = argparse.BooleanOptionalAction
    g = p.add_argument_group("run")
    g.add_argument("--config", type=Path, help="a TrainConfig JSON file (e.g. a run's config.json) to start from")
    g.add_argument("--output-dir", "-o", help="run folder for checkpoints, logs and weights")
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue from <output-dir>/checkpoint.pt when it exists (start fresh otherwise)",
    )
    g.add_argument("--until", type=int, help="stop (with a checkpoint) at this step; the schedule runs to --steps")
    g.add_argument("--time-limit", type=float, help="stop (with a checkpoint) after this many seconds")
    g.add_argument("--save-every", type=int, help="steps between checkpoints")
    g.add_argument("--val-every", type=int, help="steps between validations (default: every checkpoint)")
    g.add_argument("--val-dir", help="set folder to validate on (with HR/), e.g. Set5")
    g.add_argument("--log-every", type=int, help="steps between log records")
    g.add_argument("--progress", action=bool_opt, default=None, help="show a progress bar")
    g.add_argument("--tensorboard", action=bool_opt, default=None, help="write TensorBoard scalars")
    g = p.add_argument_group("model")
    g.add_argument("--model", help="registered model name, e.g. edsr_baseline_x2 or mdsr_baseline")
    g.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="constructor override, e.g. n_resblocks=32 (VALUE read as JSON when it parses)",
    )
    g.add_argument("--scales", type=int, nargs="+", help="scales to train (default: all of the model's)")
    g.add_argument(
        "--init-from",
        nargs="+",
        help="start from trained weights (folder, .safetensors, checkpoint or pretrained model name); the upsampler "
        "only from the same scale; a multi-scale model takes one source per scale (mdsr_baseline from edsr_baseline_x2 "
        "edsr_baseline_x3 edsr_baseline_x4); a deeper model starts from a shallower one with the added blocks as the "
        "identity (mdsr from mdsr_baseline)",
    )
    g = p.add_argument_group("data")
    g.add_argument("--train-dir", nargs="+", help="folders of HR training images")
    g.add_argument("--patch-size", type=int, help="LR patch side (48)")
    g.add_argument("--augment", action=bool_opt, default=None, help="random flips and 90-degree rotations")
    g.add_argument("--sample-by", choices=("area", "image"), help="draw images by area or uniformly")
    g.add_argument("--cache-dir", help="folder for cached LR images ('' for none)")
    g.add_argument(
        "--degrade",
        nargs="*",
        metavar="KEY=VALUE",
        help="make each LR patch from its HR crop with the on-the-fly degradation chain (blur, downscale, noise, "
        "JPEG; edsr_lib.train.degrade): no settings for its defaults, or overrides such as jpeg_prob=0.9 "
        "jpeg_quality=[20,90] (VALUE read as JSON); no LR cache is used",
    )
    g.add_argument(
        "--val-degrade",
        nargs="+",
        metavar="KEY=VALUE",
        help="degrade the validation LR images: noise=SIGMA jpeg=Q seed=N (noise first, then JPEG; as evaluate's)",
    )
    g.add_argument("--data-on-device", action=bool_opt, default=None, help="keep images on the training device")
    g = p.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=int, help="patches per step, over all processes (16)")
    g.add_argument("--steps", type=int, help="number of updates")
    g.add_argument("--loss", choices=("l1", "mse"))
    g.add_argument("--opt", help="timm optimiser name (adam)")
    g.add_argument("--lr", type=float, help="peak learning rate (1e-4)")
    g.add_argument("--betas", type=float, nargs=2)
    g.add_argument("--eps", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--sched", choices=("step", "cosine", "constant"), help="learning-rate schedule (step)")
    g.add_argument("--decay-steps", type=int, help="steps between decays of the step schedule (200000)")
    g.add_argument("--decay-rate", type=float, help="factor of each decay (0.5)")
    g.add_argument("--min-lr", type=float, help="final learning rate of the cosine schedule")
    g.add_argument("--warmup-steps", type=int)
    g.add_argument("--warmup-lr", type=float)
    g.add_argument("--ema", action=bool_opt, default=None, help="keep EMA weights beside the raw ones")
    g.add_argument("--ema-decay", type=float)
    g.add_argument("--ema-warmup", action=bool_opt, default=None)
    g = p.add_argument_group("speed")
    g.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--amp", choices=AMP_CHOICES)
    g.add_argument("--channels-last", action=bool_opt, default=None)
    g.add_argument("--compile", action=bool_opt, default=None, help="torch.compile the model")
    g.add_argument("--threads", type=int, help="CPU threads for torch (torch.set_num_threads)")
    g.add_argument("--seed", type=int)
    p.set_defaults(func=run)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _settings(items: list[str], option: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"{option} expects KEY=VALUE settings, got {item!r}")
        out[key] = _parse_value(value)
    return out


def _read_config(path: Path) -> dict[str, Any]:
    try:
        base = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = f"{exc.msg}, line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "not text"
        raise CLIError(
            f"{path} is damaged: not a JSON config ({reason}); fix it, or give the settings as options"
        ) from None
    if not isinstance(base, dict):
        raise CLIError(f"{path} is not a config: it holds a JSON {type(base).__name__}, not an object")
    return base


def build_config(args: argparse.Namespace) -> Any:
    """The :class:`~edsr_lib.train.TrainConfig` the parsed options describe."""
    from ..train import TrainConfig

    base: dict[str, Any] = {}
    if args.config is not None:
        if not args.config.is_file():
            raise FileNotFoundError(f"no config file at {args.config}")
        base = _read_config(args.config)
    elif args.resume and args.output_dir and (Path(args.output_dir) / "config.json").is_file():
        base = _read_config(Path(args.output_dir) / "config.json")
    for option, name in _FIELDS.items():
        value = getattr(args, option)
        if value is not None:
            base[name] = value
    if args.model_arg:
        base.setdefault("model_kwargs", {}).update(_settings(args.model_arg, "--model-arg"))
    if args.degrade is not None:
        base["degrade"] = {**(base.get("degrade") or {}), **_settings(args.degrade, "--degrade")}
    if args.val_degrade is not None:
        base["val_degrade"] = _settings(args.val_degrade, "--val-degrade")
    if isinstance(base.get("init_from"), list) and len(base["init_from"]) == 1:
        base["init_from"] = base["init_from"][0]  # one source is a plain string, as before
    if not base.get("train_dirs"):
        raise CLIError("no training images: pass --train-dir DIR [DIR ...] (folders of HR images)")
    return TrainConfig.from_dict(base)


def run(args: argparse.Namespace) -> int:
    """Train as the options say; returns the exit status."""
    from .._device import bind_local_gpu
    from ..train import Trainer
    from ..train.distributed import shutdown_distributed

    config = build_config(args)
    bind_local_gpu(config.device)  # under torchrun: this process's GPU, before anything opens one
    command = shlex.join(["edsr-lib", *sys.argv[1:]]) if "train" in sys.argv[1:] else None
    trainer = Trainer(config, resume=args.resume, command=command)
    trainer.train(until=args.until, time_limit=args.time_limit)
    shutdown_distributed()
    return 0
