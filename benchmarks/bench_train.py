"""Training benchmark: steps per second of the real ``Trainer.train_step`` per precision and layout.

For each setting (float32 or bfloat16/float16 autocast, NCHW or ``channels_last``) it
builds a ``Trainer`` on synthetic images (random uint8 pictures, LR made with the library's
MATLAB bicubic, as in training) and times whole training steps: patch sampling,
augmentation, forward, L1 loss, backward, Adam and the EMA update. The settings are timed
alternately within one process (one round of every setting, repeated) and the fastest
round is kept: on a shared machine other processes only ever add time. Speeds are shown
as steps and samples per second and as a ratio to the float32 NCHW baseline.

bfloat16 on a CPU is only fast where the CPU has native bfloat16 instructions (AVX512-BF16
or AMX); elsewhere it is emulated and slower than float32. The script prints whether
oneDNN reports native support.

Usage::

    python benchmarks/bench_train.py                               # EDSR-baseline x2, batch 16, CPU or CUDA
    python benchmarks/bench_train.py --model mdsr_baseline --scale 4 --threads 2
    python benchmarks/bench_train.py --quick                       # a few steps, to check it runs
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import tempfile
import time

import numpy as np
import torch

from edsr_lib._device import resolve_device, uses_tf32
from edsr_lib.train import TrainConfig, Trainer
from edsr_lib.train.data import PatchSampler, make_lr_images
from edsr_lib.train.trainer import tuned_convolutions


def _sampler(scale: int, patch: int, device: torch.device) -> PatchSampler:
    rng = np.random.default_rng(0)
    hr = [rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8) for _ in range(4)]
    return PatchSampler(hr, {scale: make_lr_images(hr, scale)}, patch, device=device)


def _trainer(
    args: argparse.Namespace, device: torch.device, sampler: PatchSampler, amp: str, channels_last: bool, out: str
) -> Trainer:
    config = TrainConfig(
        model=args.model,
        scales=[args.scale],
        batch_size=args.batch_size,
        lr_patch_size=args.patch,
        amp=amp,
        channels_last=channels_last,
        device=str(device),
        num_threads=args.threads,
        val_dir=None,
        output_dir=out,
        steps=10**9,
    )
    with contextlib.redirect_stdout(io.StringIO()):
        return Trainer(config, sampler=sampler)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> None:
    """Print the steps-per-second table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="edsr_baseline_x2")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch", type=int, default=48, help="LR patch side")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on a CPU")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the fastest is kept")
    parser.add_argument("--quick", action="store_true", help="batch 2, 16x16 patches, 1 step, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_size, args.patch, args.steps, args.repeats = 2, 16, 1, 1

    device = resolve_device(args.device)
    half = "bf16" if device.type != "cuda" or torch.cuda.is_bf16_supported() else "fp16"
    settings = [("none", False), ("none", True), (half, False), (half, True)]
    sampler = _sampler(args.scale, args.patch, device)  # one set of images for every setting
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {s: _trainer(args, device, sampler, *s, out=f"{tmp}/{i}") for i, s in enumerate(settings)}
        with tuned_convolutions(device):  # cuDNN's benchmark mode, as Trainer.train runs its steps
            for t in trainers.values():  # warm-up: allocator, oneDNN/cuDNN algorithm choice
                t.train_step()
                t.train_step()
            best = dict.fromkeys(settings, float("inf"))
            for _ in range(args.repeats):
                for s, t in trainers.items():
                    _sync(device)
                    start = time.perf_counter()
                    for _ in range(args.steps):
                        t.train_step()
                    _sync(device)
                    best[s] = min(best[s], (time.perf_counter() - start) / args.steps)

    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
        cpu = platform.processor() or platform.machine()
        where = f"{cpu}, {torch.get_num_threads()} threads, native bf16: {native}"
    print(f"{args.model} x{args.scale}, batch {args.batch_size}, LR patch {args.patch}, {device.type} ({where})")
    fp32 = "tf32" if uses_tf32(device) else "float32"
    if fp32 == "tf32":
        print("tf32: float32 settings, whose convolutions run in TF32 (cuDNN's default on this GPU)")
    print(f"{'precision':<10} {'layout':<14} {'s/step':>8} {'steps/s':>8} {'samples/s':>10} {f'vs {fp32} NCHW':>13}")
    base = best[settings[0]]
    for (amp, cl), dt in best.items():
        name = fp32 if amp == "none" else amp
        layout = "channels_last" if cl else "NCHW"
        print(f"{name:<10} {layout:<14} {dt:>8.3f} {1 / dt:>8.2f} {args.batch_size / dt:>10.1f} {base / dt:>12.2f}x")


if __name__ == "__main__":
    main()
