"""The trainer: the paper's recipe on timm's optimiser, schedulers and EMA, resumable exactly, DDP-ready."""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timm.optim import create_optimizer_v2, get_optimizer_info
from timm.scheduler import CosineLRScheduler, StepLRScheduler
from timm.utils import ModelEmaV3
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .._device import amp_dtype, resolve_amp, resolve_device
from .._files import atomic_path
from ..evaluation import evaluate, set_name
from ..hub import model_card, save_pretrained
from ..models import SRModel
from ..registry import PretrainedCfg, create_model
from .config import TrainConfig
from .data import PatchSampler, default_cache_dir
from .distributed import DistInfo, all_gather_object, init_distributed
from .init_weights import load_init_weights
from .runlog import (
    CHECKPOINT_NAME,
    RUN_CONFIG_NAME,
    WEIGHT_FOLDERS,
    RunLog,
    previous_checkpoint,
    read_run,
    weights_folder,
)

__all__ = ["CHECKPOINT_NAME", "Trainer", "branch_parameters", "tuned_convolutions"]

_CHECKPOINT_FORMAT = "edsr_lib.train/1"
_SCHEDULE_SETTINGS = ("steps", "sched", "lr", "decay_steps", "decay_rate", "min_lr", "warmup_steps", "warmup_lr")
#: Under DDP, steps between two looks at rank 0's clock (each look is a collective that waits for the device).
_CLOCK_EVERY = 10


def branch_parameters(model: SRModel, scale: int) -> list[nn.Parameter]:
    """The parameters of every scale-specific branch *except* ``scale``'s.

    Branches are those the model declares in :attr:`~edsr_lib.SRModel.scale_branch_modules`
    (MDSR's ``pre_process`` and ``upsample``). A step at ``scale`` must leave these
    untouched: the trainer sets their gradients to ``None`` so that Adam skips them (a zero
    gradient would still move a parameter that has optimiser state).
    """
    return [
        p
        for per_scale in model.scale_branches().values()
        for s, branch in per_scale.items()
        if s != scale
        for p in branch.parameters()
    ]


def _seed_for(seed: int, *stream: int) -> int:
    # independent, well-mixed seeds per (seed, stream), so rank r's patches never repeat rank 0's
    return int(np.random.SeedSequence([seed, *stream]).generate_state(1, np.uint64)[0] >> 1)


@contextlib.contextmanager
def tuned_convolutions(device: torch.device) -> Iterator[None]:
    """cuDNN benchmark mode on CUDA for the block: training shapes are fixed, so timing the algorithms pays once.

    :meth:`Trainer.train` runs its steps inside it; so do benchmarks that call
    :meth:`Trainer.train_step` themselves. The setting is put back afterwards.

    Args:
        device: The training device (nothing changes off CUDA).
    """
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved


class Trainer:
    """Train an edsr-lib model on random patches of HR image folders.

    One optimiser update per step on a batch of LR/HR patch pairs; a multi-scale model
    draws one scale per step (the same on every process) and only that scale's branches
    run and are updated. Under ``torchrun`` every process trains on its own patches
    (``batch_size / world_size`` each) through PyTorch DDP; only rank 0 logs, validates
    and writes files.

    The run folder (``config.output_dir``) receives ``config.json``, ``log.jsonl``,
    ``checkpoint.pt`` (every ``save_every`` steps and at the end, written atomically, and
    before the validation of that step), ``best/`` and ``best_ema/`` (the weights with the
    best validation PSNR so far) and ``final/`` and ``final_ema/`` (``save_pretrained``
    folders written whenever training stops: at the end, or early through ``until`` or
    ``time_limit``), in the format :mod:`edsr_lib.train.runlog` owns and reads back.

    A checkpoint resumes on another device (a run started on the CPU continues on a GPU,
    and back): the weights and optimiser state move, and the data sampler's random stream,
    whose state is device-specific, starts afresh from the seed and the step.

    Args:
        config: The settings.
        resume: ``True`` to continue from ``<output_dir>/checkpoint.pt`` when it exists
            (a fresh start otherwise), or the path of a checkpoint to continue from.
        sampler: Patches to train on; built from ``config.train_dirs`` when omitted.
        command: The command line that started the run, for the model cards.

    Example:
        >>> cfg = TrainConfig(train_dirs=["T91/HR"], val_dir="Set5", steps=1000, output_dir="runs/x2")
        >>> Trainer(cfg).train()
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        resume: bool | str | Path = False,
        sampler: PatchSampler | None = None,
        command: str | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self.command = command
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        self.device = resolve_device(config.device)
        self.dist: DistInfo = init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        if config.batch_size % self.dist.world_size:
            raise ValueError(
                f"batch_size {config.batch_size} is the total over {self.dist.world_size} processes "
                "and must be divisible by it"
            )
        self.local_batch = config.batch_size // self.dist.world_size
        self.output_dir = Path(config.output_dir)
        self.run_log = RunLog(self.output_dir)

        torch.manual_seed(config.seed)  # same initial weights on every rank
        model = create_model(config.model, **config.model_kwargs)
        if not isinstance(model, SRModel):
            raise TypeError(f"{config.model} is not an edsr-lib super-resolution model")
        self.scales = tuple(config.scales or model.scales)
        for s in self.scales:
            model.resolve_scale(s)
        if config.init_from:
            load_init_weights(model, config.init_from)
        model.train().to(self.device)
        if config.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model: SRModel = model
        self._inactive = {s: branch_parameters(model, s) for s in self.scales}

        self.amp = resolve_amp(config.amp, self.device.type)
        self.amp_dtype = amp_dtype(self.amp)
        self.grad_scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        info = get_optimizer_info(config.opt)
        opt_kwargs: dict[str, Any] = {}
        if info.has_betas:
            opt_kwargs["betas"] = config.betas
        if info.has_eps:
            opt_kwargs["eps"] = config.eps
        self.optimizer = create_optimizer_v2(
            model, opt=config.opt, lr=config.lr, weight_decay=config.weight_decay, **opt_kwargs
        )
        self.scheduler = self._make_scheduler()
        self.ema = ModelEmaV3(model, decay=config.ema_decay, use_warmup=config.ema_warmup) if config.ema else None

        self._train_model: nn.Module = model
        if self.dist.enabled:
            self._train_model = DistributedDataParallel(
                model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                # a multi-scale model leaves the other scales' branches unused in every step
                find_unused_parameters=len(model.scales) > 1,
            )
        if config.compile:
            self._train_model = torch.compile(self._train_model)

        self.degrade = config.degrade_chain()
        self.val_degrade = config.val_degradation()
        self.sampler = sampler if sampler is not None else self._build_sampler()
        if self.degrade is None and not self.sampler.has_lr:
            raise ValueError("the sampler holds no LR images: train it with a degradation chain (config.degrade)")
        self.data_generator = torch.Generator(device=self.sampler.device)
        self.data_generator.manual_seed(_seed_for(config.seed, 1, self.dist.rank))
        self.scale_generator = torch.Generator()
        self.scale_generator.manual_seed(_seed_for(config.seed, 2))

        self.step = 0
        self.elapsed = 0.0
        #: Seconds spent making batches (cropping, and degrading with a chain), for the log's data share.
        self.data_seconds = 0.0
        self.best: dict[str, float] = {}
        self._tb = None
        if config.tensorboard and self.dist.is_main:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ValueError("tensorboard=True needs the tensorboard package: pip install tensorboard") from exc
            self._tb = SummaryWriter(str(self.output_dir / "tensorboard"))
        if resume:
            path = self.output_dir / CHECKPOINT_NAME if resume is True else Path(resume)
            if path.is_file():
                self.load_checkpoint(path)
                self._recall_logged_best()
            elif resume is not True:
                raise FileNotFoundError(f"no checkpoint to resume from at {path}")

    # ---------------------------------------------------------------- set-up
    def _make_scheduler(self) -> Any:
        c = self.config
        common = {"warmup_t": c.warmup_steps, "warmup_lr_init": c.warmup_lr, "t_in_epochs": False}
        if c.sched == "cosine":
            return CosineLRScheduler(self.optimizer, t_initial=c.steps, lr_min=c.min_lr, **common)
        if c.sched == "step":
            return StepLRScheduler(self.optimizer, decay_t=c.decay_steps, decay_rate=c.decay_rate, **common)
        return StepLRScheduler(self.optimizer, decay_t=c.steps, decay_rate=1.0, **common)

    def _build_sampler(self) -> PatchSampler:
        c = self.config
        if c.cache_dir is None:
            cache_dir: Path | None = default_cache_dir()
        else:
            cache_dir = Path(c.cache_dir) if c.cache_dir else None

        # under DDP each rank reads, and makes the LR of, only its shard of the images
        return PatchSampler.from_folders(
            c.train_dirs,
            self.scales,
            c.lr_patch_size,
            n_colors=self.model.n_colors,
            cache_dir=cache_dir,
            augment=c.augment,
            sample_by=c.sample_by,
            device=self.device if c.data_on_device else "cpu",
            shard=(self.dist.rank, self.dist.world_size) if self.dist.enabled else None,
            # degraded LR is made per patch from the HR crop: no bicubic LR images, no cache
            make_lr=self.degrade is None,
        )

    # ------------------------------------------------------------- training
    def _draw_scale(self) -> int:
        if len(self.scales) == 1:
            return self.scales[0]
        return self.scales[int(torch.randint(len(self.scales), (1,), generator=self.scale_generator))]

    def _loss(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "l1":
            return nn.functional.l1_loss(sr, hr)
        return nn.functional.mse_loss(sr, hr)

    def batch(self, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch of LR and HR patches (float NCHW in [0, 1]) at ``scale``.

        With a degradation chain, the LR patches are made from the HR crops, each from
        the generator of ``(seed, step, rank, sample)``: the same for a resumed run.
        """
        if self.degrade is None:
            return self.sampler.sample(self.local_batch, scale, self.data_generator)
        hr = self.sampler.crop_hr(self.sampler.draw(self.local_batch, scale, self.data_generator))
        lr = self.degrade.degrade_batch(hr, scale, seed=self.config.seed, step=self.step, rank=self.dist.rank)
        return lr.float().div_(255), hr.float().div_(255)

    def train_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One update: draw a scale and a batch, forward, backward, optimiser step, EMA update.

        Returns:
            The loss and the batch's mean squared error of the clamped output (detached
            device tensors, so that no step waits for the device).
        """
        scale = self._draw_scale()
        tick = time.perf_counter()
        lr, hr = self.batch(scale)
        self.data_seconds += time.perf_counter() - tick
        lr, hr = lr.to(self.device, non_blocking=True), hr.to(self.device, non_blocking=True)
        if not self.config.channels_last:
            lr, hr = lr.contiguous(), hr.contiguous()
        self.scheduler.step_update(self.step)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            sr = self._train_model(lr, scale=scale)
        sr = sr.float()
        loss = self._loss(sr, hr)
        (self.grad_scaler.scale(loss) if self.grad_scaler else loss).backward()
        for p in self._inactive[scale]:
            p.grad = None
        if self.grad_scaler:
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            self.optimizer.step()
        self.step += 1
        if self.ema is not None:
            self.ema.update(self.model, step=self.step)
        with torch.no_grad():
            mse = (sr.detach().clamp(0, 1) - hr).square().mean()
        return loss.detach(), mse

    def train(self, *, until: int | None = None, time_limit: float | None = None) -> dict[str, Any]:
        """Train until ``config.steps``, checkpointing, validating and logging on the way.

        Args:
            until: Stop at this step instead, to continue later with ``resume``; the
                schedule still runs to ``config.steps``.
            time_limit: Stop after this many seconds of this call, for time-sliced
                machines. The clock is the host's, read after every step (under DDP,
                rank 0's, every few steps), so no step waits for the device.

        Every stop writes a checkpoint, validates (with ``val_dir``) and writes the
        ``final/`` (and ``final_ema/``) weights; an early stop is logged as a ``stop``
        event, the end of the schedule as ``end``.

        Returns:
            The last log record, with the last validation and the best scores.
        """
        with tuned_convolutions(self.device):
            return self._train(until, time_limit)

    def _train(self, until: int | None, time_limit: float | None) -> dict[str, Any]:
        c = self.config
        main = self.dist.is_main
        per_rank = all_gather_object({f"x{s}": self.sampler.num_images(s) for s in self.scales}, self.dist)
        if main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            c.save(self.output_dir / RUN_CONFIG_NAME)
            images = {key: sum(r[key] for r in per_rank) for key in per_rank[0]}
            self._log(
                "start",
                step=self.step,
                world_size=self.dist.world_size,
                device=str(self.device),
                threads=torch.get_num_threads(),
                images=images,
                **({"images_per_rank": per_rank} if self.dist.enabled else {}),
                command=self.command,
                amp=self.amp,
                echo=not c.progress,
            )
        bar = tqdm(
            total=c.steps, initial=self.step, disable=not (c.progress and main), desc="train", dynamic_ncols=True
        )
        summary: dict[str, Any] = {"step": self.step}
        loss_sum = torch.zeros((), device=self.device)
        mse_sum = torch.zeros((), device=self.device)
        window, busy, data_mark = 0, 0.0, self.data_seconds
        stop = min(c.steps, until if until is not None else c.steps)
        deadline = time.monotonic() + time_limit if time_limit is not None else math.inf
        out_of_time = False
        while self.step < stop:
            tick = time.perf_counter()
            loss, mse = self.train_step()
            loss_sum += loss
            mse_sum += mse
            window += 1
            out_of_time = self._out_of_time(deadline)
            done = self.step == stop or out_of_time
            log_due = self.step % c.log_every == 0 or done
            if log_due:
                loss_mean, mse_mean = loss_sum.item() / window, mse_sum.item() / window  # waits for the device
            # only training counts towards speed: validation and checkpoints are left out
            busy += time.perf_counter() - tick
            self.elapsed += time.perf_counter() - tick
            bar.update(1)
            if log_due:
                summary = {
                    "step": self.step,
                    "loss": loss_mean,
                    "psnr": -10 * math.log10(max(mse_mean, 1e-12)),
                    "lr": self.optimizer.param_groups[0]["lr"],
                    "steps_per_s": window / busy,
                    # the share of the training time spent making the batches (cropping, degrading)
                    "data_share": round((self.data_seconds - data_mark) / busy, 4),
                    "train_s": round(self.elapsed, 1),
                }
                bar.set_postfix(loss=f"{loss_mean:.4f}", psnr=f"{summary['psnr']:.2f}", it_s=f"{window / busy:.3f}")
                self._log(None, **summary, echo=not c.progress)
                loss_sum.zero_()
                mse_sum.zero_()
                window, busy, data_mark = 0, 0.0, self.data_seconds
            # the checkpoint first, so that a validation that fails loses no training
            if self.step % c.save_every == 0 or done:
                self.save_checkpoint()
            if main and c.val_dir and (self.step % c.validate_every == 0 or done):
                summary["val"] = self.validate_and_keep_best()
            if done:
                break
        bar.close()
        if main:
            # every stop leaves usable weights, not only a checkpoint: a time-sliced run is worth something
            val = summary.get("val", {})
            self.export(self.output_dir / weights_folder(best=False, ema=False), ema=False, scores=val.get("raw"))
            if self.ema is not None:
                self.export(self.output_dir / weights_folder(best=False, ema=True), ema=True, scores=val.get("ema"))
            summary["best"] = dict(self.best)
            if self.step == c.steps:
                self._log("end", **summary, echo=not c.progress)
            else:
                reason = "time_limit" if out_of_time else "until"
                self._log("stop", reason=reason, **summary, echo=not c.progress)
        return summary

    def _out_of_time(self, deadline: float) -> bool:
        """Whether the time is up, from the host's clock: no step waits for the device to ask."""
        if deadline == math.inf:
            return False
        if not self.dist.enabled:
            return time.monotonic() >= deadline
        # every rank must stop at the same step: rank 0's clock decides, every few steps
        if self.step % _CLOCK_EVERY:
            return False
        late = torch.tensor([time.monotonic() >= deadline], dtype=torch.uint8)
        late = late.to(self.device) if self.device.type == "cuda" else late  # NCCL sends device tensors only
        torch.distributed.broadcast(late, src=0)
        return bool(late.item())

    # ------------------------------------------------------------- validation
    def _score(self, net: nn.Module, scale: int) -> dict[str, float]:
        was_training = net.training
        result = evaluate(net, self.config.val_dir, scale, device=self.device, degrade=self.val_degrade)
        net.train(was_training)
        return {"psnr": result["psnr"], "ssim": result["ssim"]}

    def validate(self) -> dict[str, dict[str, dict[str, float]]]:
        """Score the raw (and EMA) weights on ``config.val_dir`` at every trained scale.

        Through :func:`edsr_lib.evaluate` with the benchmark protocol: outputs quantised
        to 8 bits, PSNR and SSIM on the Y channel, ``scale`` pixels ignored at each border.

        Returns:
            ``{"raw": {"x2": {"psnr": ..., "ssim": ...}}, "ema": {...}}``.
        """
        if not self.config.val_dir:
            raise ValueError("no validation set: set val_dir to a folder of HR images (e.g. Set5)")
        nets: dict[str, nn.Module] = {"raw": self.model}
        if self.ema is not None:
            nets["ema"] = self.ema.module
        return {name: {f"x{s}": self._score(net, s) for s in self.scales} for name, net in nets.items()}

    def validate_and_keep_best(self) -> dict[str, Any]:
        """Validate, log the scores, and export the weights that beat the best mean PSNR so far.

        The raw weights go to ``best/`` and the EMA weights to ``best_ema/``.
        """
        t0 = time.perf_counter()
        scores = self.validate()
        for name, per_scale in scores.items():
            mean_psnr = sum(v["psnr"] for v in per_scale.values()) / len(per_scale)
            if mean_psnr > self.best.get(name, -math.inf):
                self.best[name] = mean_psnr
                self.best[f"{name}_step"] = self.step
                ema = name == "ema"
                self.export(self.output_dir / weights_folder(best=True, ema=ema), ema=ema, scores=per_scale)
        self._log(
            "val",
            step=self.step,
            val=scores,
            best=dict(self.best),
            val_s=round(time.perf_counter() - t0, 2),
            echo=True,
        )
        return scores

    # ----------------------------------------------------------------- export
    def export(self, directory: str | Path, *, ema: bool = False, scores: dict[str, Any] | None = None) -> Path:
        """Write the raw or EMA weights as a ``save_pretrained`` folder with a model card.

        Args:
            directory: Destination folder.
            ema: Export the EMA weights instead of the raw ones.
            scores: Validation scores per scale to put in the card (``{"x2": {"psnr": ...}}``).
        """
        if ema and self.ema is None:
            raise ValueError("this run keeps no EMA weights (config.ema is False)")
        net = self.ema.module if ema else self.model
        c = self.config
        cfg = PretrainedCfg(
            training_data=" + ".join(set_name(d) for d in c.train_dirs) or None,
            training_command=self.command,
            steps=self.step,
            metrics={set_name(c.val_dir): scores} if scores and c.val_dir else {},
            description=f"{'EMA' if ema else 'raw'} weights after {self.step} steps",
            architecture=self.model.variant or c.model,
        )
        return save_pretrained(net, directory, model_card=model_card(net, cfg))

    # ------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, EMA, optimiser, scheduler, RNG states, step.

        Collective under DDP (every rank's data-sampler state is gathered): call it on all ranks.
        """
        data_states = all_gather_object(self.data_generator.get_state(), self.dist)
        on_cuda = self.device.type == "cuda"
        state: dict[str, Any] = {
            "format": _CHECKPOINT_FORMAT,
            "step": self.step,
            "elapsed": self.elapsed,
            "best": dict(self.best),
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "grad_scaler": self.grad_scaler.state_dict() if self.grad_scaler else None,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if on_cuda else None,
                "scale": self.scale_generator.get_state(),
                "data": data_states,
                # a generator's state is device-specific (a CPU one is 5 kB, a CUDA one 16 bytes)
                "data_device": self.data_generator.device.type,
            },
        }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (the model must be the same architecture).

        Raises:
            ValueError: If ``state`` is not a checkpoint of this trainer.
        """
        if not isinstance(state, dict) or state.get("format") != _CHECKPOINT_FORMAT:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"not an edsr-lib training checkpoint (format {found!r})")
        old = state["config"]
        if (old["model"], old["model_kwargs"]) != (self.config.model, self.config.model_kwargs):
            raise ValueError(
                f"the checkpoint trains {old['model']} {old['model_kwargs']}, not {self.config.model} "
                f"{self.config.model_kwargs}: resume with the same model, or use another output_dir"
            )
        self.model.load_state_dict(state["model"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.module.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        if all(old.get(k) == getattr(self.config, k) for k in _SCHEDULE_SETTINGS):
            self.scheduler.load_state_dict(state["scheduler"])
        elif self.dist.is_main:
            # a changed schedule (say, more steps) is the user's intent: keep the new one
            changed = [k for k in _SCHEDULE_SETTINGS if old.get(k) != getattr(self.config, k)]
            print(f"resuming with a changed learning-rate schedule ({', '.join(changed)})", file=sys.stderr)
        if self.grad_scaler and state["grad_scaler"]:
            self.grad_scaler.load_state_dict(state["grad_scaler"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and self.device.type == "cuda" and len(rng["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.scale_generator.set_state(rng["scale"])
        here = self.data_generator.device.type
        # checkpoints older than "data_device" tell the device by the size of the state
        same_size = rng["data"][0].numel() == self.data_generator.get_state().numel()
        there = rng.get("data_device") or (here if same_size else "another device")
        if len(rng["data"]) == self.dist.world_size and there == here:
            self.data_generator.set_state(rng["data"][self.dist.rank])
        else:
            # another number of processes, or another device: the sample streams cannot continue; start fresh ones
            self.data_generator.manual_seed(_seed_for(self.config.seed, 1, self.dist.rank, state["step"]))
            if self.dist.is_main and there != here:
                print(
                    f"resuming on {here} a run whose data sampler drew on {there}: the patch stream starts afresh",
                    file=sys.stderr,
                )
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        self.best = dict(state["best"])

    def _recall_logged_best(self) -> None:
        """Take the best scores the log knows beyond the checkpoint's (the weights in ``best/`` are theirs).

        A checkpoint is written before its step's validation, so a validation that found a
        new best after the last checkpoint is known only to the log.
        """
        try:
            logged = read_run(self.output_dir).best
        except (FileNotFoundError, ValueError):
            return
        for kind in ("raw", "ema"):
            if kind in logged and logged[kind] > self.best.get(kind, -math.inf):
                self.best[kind] = logged[kind]
                self.best[f"{kind}_step"] = logged[f"{kind}_step"]

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write :meth:`state_dict` atomically (rank 0 writes; collective under DDP).

        The tensors are streamed to the file: no in-memory copy of the checkpoint is made.
        The checkpoint it replaces is kept beside it (:func:`~edsr_lib.train.runlog.previous_checkpoint`,
        ``checkpoint_previous.pt``), the way back should the new one be damaged later.

        Args:
            path: Destination; ``<output_dir>/checkpoint.pt`` by default.
        """
        path = Path(path) if path is not None else self.output_dir / CHECKPOINT_NAME
        state = self.state_dict()
        if self.dist.is_main:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path, keep=previous_checkpoint(path)) as tmp:
                torch.save(state, tmp)
            self._log("checkpoint", step=self.step, path=str(path))
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Continue from a checkpoint written by :meth:`save_checkpoint`.

        Raises:
            ValueError: If the file cannot be read as a checkpoint (cut short by a crash or a
                full disk, overwritten): one line naming it and the way back (the previous
                checkpoint, or the best weights so far).
        """
        path = Path(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # whatever the unpickler raises, it is this file that cannot be read
            raise ValueError(_damaged(path, exc)) from None
        if not isinstance(state, dict):
            raise ValueError(f"{path}: not an edsr-lib training checkpoint (it holds a {type(state).__name__})")
        self.load_state_dict(state)

    # ---------------------------------------------------------------- logging
    def _log(self, event: str | None, *, echo: bool = False, **fields: Any) -> None:
        if not self.dist.is_main:
            return
        record = self.run_log.write(event, **fields)
        if echo:
            print(json.dumps(record), file=sys.stdout, flush=True)
        if self._tb is not None:
            self._tensorboard(record)

    def _tensorboard(self, record: dict[str, Any]) -> None:
        step = record["step"]
        for key in ("loss", "psnr", "lr", "steps_per_s"):
            if key in record:
                self._tb.add_scalar(f"train/{key}", record[key], step)
        for name, per_scale in record.get("val", {}).items():
            for scale, scores in per_scale.items():
                for metric, value in scores.items():
                    self._tb.add_scalar(f"val_{name}/{metric}_{scale}", value, step)
        self._tb.flush()


def _damaged(path: Path, exc: BaseException) -> str:
    """One line for a checkpoint that cannot be read: the file, why, and the ways on."""
    if path.is_dir():
        return f"{path} is a folder, not a checkpoint"
    reason = getattr(exc, "strerror", None) or " ".join(str(exc).split())
    reason = reason.split(". ")[0]
    reason = type(exc).__name__ + (f": {reason[:120]}" if reason and reason != type(exc).__name__ else "")
    ways = []
    previous = previous_checkpoint(path)
    if previous.is_file():
        ways.append(f"resume from the checkpoint before it (move {previous} to {path})")
    weights = next((path.parent / name for name in WEIGHT_FOLDERS if (path.parent / name).is_dir()), None)
    if weights is not None:
        ways.append(f"start a new run from the weights in {weights} (--init-from {weights}; init_from= in Python)")
    ways.append("delete it to train from the start")
    return (
        f"{path} is damaged and cannot be read ({reason}): probably cut short by a crash or a full disk while "
        f"it was written. To go on, {'; or '.join(ways)}"
    )
