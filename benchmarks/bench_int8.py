"""int8 on the CPU: what post-training quantisation (NNCF on OpenVINO) gains in speed and costs in PSNR.

The decision rule of issue #21: offer int8 only where it is at least 1.3x the best fp32 path
of the machine and costs at most 0.05 dB PSNR on each of Set5, Set14 and B100 at every
scale. This script measures both for one shipped model:

- calibration (and, for ``--mode accuracy``, the validation that NNCF's accuracy control
  reverts layers against) on LR crops of *training* images (BSD200, DIV2K_train_partial,
  Flickr2K_partial), never on a reported set;
- speed: the int8 model against OpenVINO fp32 (the fastest fp32 path on the machine of
  docs/speed.md) on a 256x256 input, alternated, best of the rounds;
- PSNR (Y channel, ``scale`` border pixels, 8-bit outputs) of fp32 and int8 on each set, with
  the benchmark protocol of :func:`edsr_lib.evaluation.evaluate`.

Usage::

    python benchmarks/bench_int8.py --scale 2 --max-drop 0.01 --validation 32   # the variant closest to the rule
    python benchmarks/bench_int8.py --scale 2 --sets Set5 --mode ptq --ignore-ends
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import nncf
import numpy as np
import openvino as ov
import torch

import edsr_lib
from edsr_lib import backends
from edsr_lib.evaluation import _hr_files, _load_pair
from edsr_lib.io import read_image, to_tensor
from edsr_lib.metrics import psnr
from edsr_lib.ops.imresize import imresize

TRAINING_SETS = ("BSD200", "DIV2K_train_partial", "Flickr2K_partial")


def training_crops(datasets: Path, scale: int, count: int, size: int, rng: random.Random) -> list[tuple]:
    """``count`` (LR array, HR tensor) pairs: random HR crops of training images and their MATLAB-bicubic LR."""
    files = sorted(p for name in TRAINING_SETS for p in (datasets / name / "HR").glob("*.png"))
    pairs = []
    for path in rng.sample(files, count):
        hr = read_image(path)
        side = size * scale
        y, x = rng.randrange(hr.shape[0] - side), rng.randrange(hr.shape[1] - side)
        crop = np.ascontiguousarray(hr[y : y + side, x : x + side, :3])
        pairs.append((to_tensor(imresize(crop, 1 / scale)).numpy(), to_tensor(crop)))
    return pairs


def score(compiled: ov.CompiledModel, lr: np.ndarray, hr: torch.Tensor, scale: int) -> float:
    """PSNR (Y channel, ``scale`` border pixels) of the 8-bit output."""
    sr = torch.from_numpy(compiled({0: lr})[0]).clamp(0, 1)
    return float(psnr(torch.round(sr * 255) / 255, hr, crop_border=scale, test_y_channel=True)[0])


def set_pairs(folder: Path, scale: int) -> list[tuple]:
    """The set's (LR array, HR tensor) pairs under the benchmark protocol; gray images as three equal channels."""
    pairs = []
    for hr_path in _hr_files(folder):
        hr, lr = _load_pair(hr_path, folder / "LR_bicubic", scale)
        if lr.ndim == 2 or lr.shape[2] == 1:
            lr = np.repeat(lr.reshape(*lr.shape[:2], 1), 3, 2)
            hr = np.repeat(hr.reshape(*hr.shape[:2], 1), 3, 2)
        pairs.append(
            (to_tensor(np.ascontiguousarray(lr[:, :, :3])).numpy(), to_tensor(np.ascontiguousarray(hr[:, :, :3])))
        )
    return pairs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=2, help="the shipped edsr_baseline_x<scale> model")
    parser.add_argument("--datasets", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "datasets"))
    parser.add_argument("--sets", default="Set5,Set14,B100", help="comma-separated reported sets to score")
    parser.add_argument("--mode", choices=("ptq", "accuracy"), default="accuracy")
    parser.add_argument("--max-drop", type=float, default=0.05, help="accuracy mode: dB allowed on the training crops")
    parser.add_argument("--ignore-ends", action="store_true", help="ptq mode: first and last convolutions in fp32")
    parser.add_argument("--calibration", type=int, default=32, help="calibration crops")
    parser.add_argument("--validation", type=int, default=16, help="accuracy mode: validation crops")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    datasets, scale, rng = Path(args.datasets), args.scale, random.Random(0)
    model = edsr_lib.create_model(f"edsr_baseline_x{scale}", pretrained=True).eval()
    fp32 = ov.Core().read_model(backends.load_runtime(model, scale, "openvino").path)
    calibration = nncf.Dataset([lr for lr, _ in training_crops(datasets, scale, args.calibration, 64, rng)])
    start = time.perf_counter()
    if args.mode == "accuracy":
        validation = training_crops(datasets, scale, args.validation, 64, rng)
        quantized = nncf.quantize_with_accuracy_control(
            fp32,
            calibration,
            nncf.Dataset(validation),
            lambda compiled, data: float(np.mean([score(compiled, lr, hr, scale) for lr, hr in data])),
            max_drop=args.max_drop,
            drop_type=nncf.DropType.ABSOLUTE,
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=args.calibration,
        )
    else:
        convs = [op.get_friendly_name() for op in fp32.get_ordered_ops() if op.get_type_name() == "Convolution"]
        quantized = nncf.quantize(
            fp32,
            calibration,
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=args.calibration,
            ignored_scope=nncf.IgnoredScope(names=[convs[0], convs[-1]] if args.ignore_ends else []),
        )
    print(f"quantised in {time.perf_counter() - start:.0f} s ({args.mode})")
    config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    config["INFERENCE_NUM_THREADS"] = torch.get_num_threads()
    compiled = {name: ov.Core().compile_model(m, "CPU", config) for name, m in (("fp32", fp32), ("int8", quantized))}
    x = np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)
    best = dict.fromkeys(compiled, float("inf"))
    for round_ in range(args.repeats + 1):
        for name, c in compiled.items():
            start = time.perf_counter()
            c({0: x})
            if round_:
                best[name] = min(best[name], time.perf_counter() - start)
    threads = torch.get_num_threads()
    print(f"{backends.cpu_info()}, {threads} threads; {backends.runtime_versions()}; nncf {nncf.__version__}")
    speed = best["fp32"] / best["int8"]
    print(f"x{scale} 256x256: OpenVINO fp32 {best['fp32']:.3f} s, int8 {best['int8']:.3f} s: {speed:.2f}x")
    for name in args.sets.split(","):
        pairs = set_pairs(datasets / name, scale)
        fp, q = (np.mean([score(compiled[k], lr, hr, scale) for lr, hr in pairs]) for k in ("fp32", "int8"))
        print(f"{name} x{scale}: fp32 {fp:.3f} dB, int8 {q:.3f} dB, cost {fp - q:.3f} dB")


if __name__ == "__main__":
    main()
