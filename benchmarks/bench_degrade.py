"""The data loader's share of a training step, with the on-the-fly degradation chain and without.

For each scale it builds two ``Trainer`` objects on the same synthetic photographs (smooth
random images): one cropping the MATLAB-bicubic LR images (clean training) and one making
every LR patch from its HR crop with the :class:`~edsr_lib.train.degrade.DegradeChain`
(``--degrade``). It times :meth:`Trainer.batch` (cropping, augmentation and, with the chain,
blur, downscale, noise and JPEG) and whole :meth:`Trainer.train_step` calls (the batch, then
forward, loss, backward, Adam and EMA), alternately within one process, keeping the fastest
round of each (other processes on a shared machine only ever add time). The share is
batch time over step time; the chain's cost is also given per sample.

Usage::

    python benchmarks/bench_degrade.py --threads 2             # x2 and x4, batch 16, 48x48 LR patches
    python benchmarks/bench_degrade.py --quick                 # a few small steps, to check it runs
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time

import numpy as np
import torch

from edsr_lib.backends import cpu_info
from edsr_lib.ops.imresize import imresize
from edsr_lib.train import TrainConfig, Trainer
from edsr_lib.train.data import PatchSampler, make_lr_images


def _photos(n: int = 4, size: tuple[int, int] = (240, 320)) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        imresize(rng.integers(0, 256, size=(size[0] // 8, size[1] // 8, 3), dtype=np.uint8), size=size)
        for _ in range(n)
    ]


def _trainer(args: argparse.Namespace, scale: int, degrade: bool, out: str) -> Trainer:
    hr = _photos()
    lr = {scale: None} if degrade else {scale: make_lr_images(hr, scale)}
    config = TrainConfig(
        model=f"edsr_baseline_x{scale}",
        batch_size=args.batch_size,
        lr_patch_size=args.patch,
        amp=args.amp,
        device="cpu",
        num_threads=args.threads,
        degrade={} if degrade else None,
        output_dir=out,
        steps=10**9,
    )
    with contextlib.redirect_stdout(io.StringIO()):
        return Trainer(config, sampler=PatchSampler(hr, lr, args.patch))


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    """Print the table; returns its rows."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch", type=int, default=48, help="LR patch side")
    parser.add_argument("--amp", default="bf16", choices=("none", "bf16"), help="autocast, as the real runs (bf16)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the fastest is kept")
    parser.add_argument("--quick", action="store_true", help="batch 2, 16x16 patches, 1 step, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_size, args.patch, args.steps, args.repeats = 2, 16, 1, 1
    info = cpu_info()
    print(f"cpu: {info}; torch {torch.__version__}, {args.threads or torch.get_num_threads()} threads")
    print(f"edsr_baseline_x<s>, batch {args.batch_size}, LR patch {args.patch}, autocast {args.amp}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in args.scales:
            trainers = {
                kind: _trainer(args, scale, kind == "degrade", f"{tmp}/{scale}{kind}") for kind in ("clean", "degrade")
            }
            for t in trainers.values():  # warm-up: allocator, oneDNN's algorithm choice
                t.train_step()
            best = {(kind, what): float("inf") for kind in trainers for what in ("batch", "step")}
            for _ in range(args.repeats):
                for kind, t in trainers.items():
                    start = time.perf_counter()
                    for _ in range(args.steps):
                        t.batch(scale)
                    best[kind, "batch"] = min(best[kind, "batch"], (time.perf_counter() - start) / args.steps)
                    start = time.perf_counter()
                    for _ in range(args.steps):
                        t.train_step()
                    best[kind, "step"] = min(best[kind, "step"], (time.perf_counter() - start) / args.steps)
            for kind in trainers:
                batch, step = best[kind, "batch"], best[kind, "step"]
                rows.append({"scale": scale, "kind": kind, "batch_s": batch, "step_s": step, "share": batch / step})
                r = rows[-1]
                if len(rows) == 1:
                    print(
                        f"{'scale':<6} {'LR patches':<11} {'batch s':>8} {'ms/sample':>10} {'step s':>8} "
                        f"{'data share':>11}"
                    )
                per_sample = 1000 * r["batch_s"] / args.batch_size
                print(
                    f"x{r['scale']:<5} {r['kind']:<11} {r['batch_s']:>8.4f} {per_sample:>10.2f} {r['step_s']:>8.3f} "
                    f"{100 * r['share']:>10.1f}%",
                    flush=True,
                )
    return rows


if __name__ == "__main__":
    main()
