"""int8 on the CPU: quantise a shipped model with NNCF for OpenVINO, measure what it gains and costs, ship it.

The rule of issue #21 (owned by :mod:`edsr_lib.weights.int8`): int8 is offered only where it
is at least 1.3x the fastest fp32 path of the machine and costs at most 0.05 dB PSNR on each
of Set5, Set14 and B100 at every scale. This script makes the int8 model and measures both:

- quantisation: NNCF on the OpenVINO model that ``backend="openvino"`` exports, calibrated
  (and, for ``--mode accuracy``, validated: NNCF's accuracy control puts back in fp32 the
  operations that cost most on the validation crops) on LR crops of *training* images
  (BSD200, DIV2K_train_partial, Flickr2K_partial), never on a reported set;
- speed: the int8 model against every fp32 path of the machine (OpenVINO, ONNX Runtime,
  PyTorch's fast path), each as ``upscale`` runs it, on a 256x256 input, alternated, the
  best of the rounds;
- PSNR: :func:`edsr_lib.evaluate` (the benchmark protocol: Y channel, ``scale`` border
  pixels, 8-bit outputs) with ``backend="openvino"``, in fp32 and with ``int8=True``.

Usage::

    # quantise into a temporary folder and measure (nothing kept)
    python benchmarks/bench_int8.py --scale 2
    # quantise and ship: edsr_lib/weights/<arch.tag>/openvino_int8_x<scale>/ with its int8.json
    python benchmarks/bench_int8.py --scale 2 --save
    # measure the shipped int8 model on this machine and add the measurement to its int8.json
    python benchmarks/bench_int8.py --scale 2 --measure
    # variants: plain post-training quantisation, with the first and last convolutions in fp32
    python benchmarks/bench_int8.py --scale 2 --mode ptq --ignore-ends --sets Set5

Needs the ``quantize`` extra (``pip install ".[quantize]"``: NNCF and OpenVINO) and the image
sets of ``--datasets``.
"""

from __future__ import annotations

import argparse
import datetime
import random
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import edsr_lib
from edsr_lib import backends
from edsr_lib._files import atomic_folder
from edsr_lib._version import __version__
from edsr_lib.backends.openvino import import_openvino, telemetry_off
from edsr_lib.io import read_image, to_tensor
from edsr_lib.metrics import psnr
from edsr_lib.ops.imresize import imresize
from edsr_lib.weights import int8 as shipped_int8

TRAINING_SETS = ("BSD200", "DIV2K_train_partial", "Flickr2K_partial")
#: Synthetic graphics (flat saturated colours, hard edges, fine rings), far from the photographs of the crops.
GRAPHICS = Path(__file__).resolve().parents[1] / "examples" / "data" / "sample.png"
PACKAGE_WEIGHTS = Path(edsr_lib.__file__).resolve().parent / "weights"


def _contrast(crop: np.ndarray) -> float:
    gray = crop.astype(np.float32).mean(-1)
    return float(np.abs(np.diff(gray, axis=0)).mean() + np.abs(np.diff(gray, axis=1)).mean())


def training_crops(
    datasets: Path, scale: int, count: int, size: int, rng: random.Random, pick: str = "random"
) -> list[tuple]:
    """``count`` (LR array, HR tensor) pairs: HR crops of training images and their MATLAB-bicubic LR.

    ``pick="random"``: one random crop of each of ``count`` random images; ``"contrast"``: of
    four times as many random crops, the ``count`` with the strongest edges (mean absolute
    difference of neighbouring pixels), which reach the activations' extremes.
    """
    files = sorted(p for name in TRAINING_SETS for p in (datasets / name / "HR").glob("*.png"))
    drawn = count * (4 if pick == "contrast" else 1)
    if len(files) < drawn:
        raise SystemExit(f"bench_int8: {datasets} has {len(files)} training images in {', '.join(TRAINING_SETS)}")
    crops = []
    for path in rng.sample(files, drawn):
        hr = read_image(path)
        side = size * scale
        y, x = rng.randrange(hr.shape[0] - side), rng.randrange(hr.shape[1] - side)
        crops.append(np.ascontiguousarray(hr[y : y + side, x : x + side, :3]))
    if pick == "contrast":
        crops = sorted(crops, key=_contrast, reverse=True)[:count]
    return [(to_tensor(imresize(crop, 1 / scale)).numpy(), to_tensor(crop)) for crop in crops]


def crop_psnr(compiled: Any, lr: np.ndarray, hr: torch.Tensor, scale: int) -> float:
    """PSNR (Y channel, ``scale`` border pixels) of the 8-bit output of an OpenVINO compiled model."""
    sr = torch.from_numpy(compiled({0: lr})[0]).clamp(0, 1)
    return float(psnr(torch.round(sr * 255) / 255, hr, crop_border=scale, test_y_channel=True)[0])


def quantize(model: edsr_lib.SRModel, scale: int, args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The NNCF-quantised OpenVINO model of ``model`` at ``scale``, and the recipe that made it."""
    with telemetry_off():  # NNCF, like OpenVINO, starts OpenVINO's telemetry when imported
        import nncf
        import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    datasets, rng = Path(args.datasets), random.Random(args.seed)
    fp32 = ov.Core().read_model(backends.load_runtime(model, scale, "openvino").path)
    crops = training_crops(datasets, scale, args.calibration, args.crop, rng, args.crops)
    calibration = nncf.Dataset([lr for lr, _ in crops])
    recipe: dict[str, Any] = {
        "method": f"nncf.{'quantize_with_accuracy_control' if args.mode == 'accuracy' else 'quantize'}",
        "preset": "mixed",
        "calibration": f"{args.calibration} LR crops of {args.crop}x{args.crop} from {', '.join(TRAINING_SETS)}",
        "crops": args.crops,
        "seed": args.seed,
        "activation_ranges": args.activation_ranges,
    }
    advanced = AdvancedQuantizationParameters()
    if args.activation_ranges == "minmax":  # the extremes of the crops, not the mean of each crop's extremes
        advanced.activations_range_estimator_params = RangeEstimatorParametersSet.MINMAX
    start = time.perf_counter()
    if args.mode == "accuracy":
        validation = training_crops(datasets, scale, args.validation, args.crop, rng, args.crops)
        recipe["validation"] = f"{args.validation} other LR crops of the same sets, PSNR on the Y channel"
        recipe["max_drop_db"] = args.max_drop
        quantized = nncf.quantize_with_accuracy_control(
            fp32,
            calibration,
            nncf.Dataset(validation),
            lambda compiled, data: float(np.mean([crop_psnr(compiled, lr, hr, scale) for lr, hr in data])),
            max_drop=args.max_drop,
            drop_type=nncf.DropType.ABSOLUTE,
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=args.calibration,
            advanced_quantization_parameters=advanced,
        )
    else:
        convs = [op.get_friendly_name() for op in fp32.get_ordered_ops() if op.get_type_name() == "Convolution"]
        recipe["fp32_convolutions"] = "first and last" if args.ignore_ends else "none"
        quantized = nncf.quantize(
            fp32,
            calibration,
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=args.calibration,
            ignored_scope=nncf.IgnoredScope(names=[convs[0], convs[-1]] if args.ignore_ends else []),
            advanced_parameters=advanced,
        )
    ops = [op.get_type_name() for op in quantized.get_ordered_ops()]
    recipe["fake_quantize_ops"] = ops.count("FakeQuantize")
    recipe["convolutions"] = ops.count("Convolution")
    print(f"quantised in {time.perf_counter() - start:.0f} s ({args.mode}): {recipe}", flush=True)
    return quantized, recipe


def save(quantized: Any, folder: Path, record: shipped_int8.Int8Record) -> None:
    """Write the IR and its record to ``folder`` in one step (no measurement yet)."""
    ov = import_openvino()

    folder.parent.mkdir(parents=True, exist_ok=True)
    with atomic_folder(folder) as tmp:
        ov.save_model(quantized, tmp / "model.xml", compress_to_fp16=False)
        shipped_int8.write_record(tmp, record)


def measure(model: edsr_lib.SRModel, scale: int, args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Speed and PSNR of the int8 model that ``int8=True`` finds for ``model`` at ``scale``, on this machine."""
    cpu = torch.device("cpu")
    paths = {"int8": backends.make_runner(model, scale, "openvino", "int8", device=cpu)[0]}
    paths["torch fp32"] = backends.make_runner(model, scale, "torch", "fp32", device=cpu)[0]
    for name in backends.installed_runtimes():
        paths[f"{name} fp32"] = backends.make_runner(model, scale, name, "fp32", device=cpu)[0]
    x = torch.rand(1, model.n_colors, args.size, args.size, generator=torch.Generator().manual_seed(0))
    best = dict.fromkeys(paths, float("inf"))
    with torch.inference_mode():
        for round_ in range(args.repeats + 1):
            for name, run in paths.items():
                start = time.perf_counter()
                run(x)
                if round_:  # the first round warms up
                    best[name] = min(best[name], time.perf_counter() - start)
    fastest = min((k for k in best if k != "int8"), key=best.__getitem__)
    print(
        f"x{scale} {args.size}x{args.size}: "
        + ", ".join(f"{k} {v:.3f} s" for k, v in best.items())
        + f"; int8 is {best[fastest] / best['int8']:.2f}x {fastest}",
        flush=True,
    )
    scores = {}
    for name in args.sets.split(","):
        data = Path(args.datasets) / name
        fp = edsr_lib.evaluate(model, data, scale, backend="openvino", device="cpu")["psnr"]
        q = edsr_lib.evaluate(model, data, scale, int8=True, device="cpu")["psnr"]
        scores[name] = {"fp32": round(fp, 4), "int8": round(q, 4)}
        print(f"{name} x{scale}: fp32 {fp:.3f} dB, int8 {q:.3f} dB, cost {fp - q:.3f} dB", flush=True)
    # how far int8 strays from fp32 on an image unlike the calibration crops (not part of the rule)
    graphics = to_tensor(read_image(GRAPHICS)[:, :, :3])
    fp, q = (edsr_lib.upscale(model, graphics, scale, backend="openvino", int8=i).clamp(0, 1) for i in (False, True))
    agreement = float(psnr(q, fp, crop_border=0, test_y_channel=False)[0])  # RGB, 8-bit levels
    print(f"{GRAPHICS.name} (synthetic graphics): int8 against fp32 {agreement:.2f} dB PSNR", flush=True)
    info = backends.cpu_info()
    return {
        "cpu": info.model,
        "flags": [name for name, has in info.flags.items() if has],
        "threads": torch.get_num_threads(),
        "input": f"1x{model.n_colors}x{args.size}x{args.size}, best of {args.repeats} rounds, alternated",
        "seconds": {k: round(v, 4) for k, v in best.items()},
        "psnr": scores,
        "int8_vs_fp32_db": {GRAPHICS.name: round(agreement, 2)},
        "versions": backends.runtime_versions(),
        "date": datetime.date.today().isoformat(),
        "command": command,
    }


def _command(argv: list[str] | None) -> str:
    return shlex.join(["python", "benchmarks/bench_int8.py", *(sys.argv[1:] if argv is None else argv)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a registered model with shipped weights (default edsr_baseline_x<scale>)")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--datasets", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "datasets"))
    parser.add_argument("--sets", default=",".join(shipped_int8.RULE_SETS), help="comma-separated sets to score")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--save", action="store_true", help="write the int8 model beside the package's weights")
    action.add_argument("--measure", action="store_true", help="measure the shipped int8 model; add to its record")
    parser.add_argument("--mode", choices=("ptq", "accuracy"), default="accuracy")
    parser.add_argument("--max-drop", type=float, default=0.01, help="accuracy mode: dB allowed on the validation")
    parser.add_argument(
        "--activation-ranges",
        choices=("default", "minmax"),
        default="default",
        help="NNCF's range estimator for activations: its default, or the min and max over all crops",
    )
    parser.add_argument("--ignore-ends", action="store_true", help="ptq mode: first and last convolutions in fp32")
    parser.add_argument("--calibration", type=int, default=32, help="calibration crops")
    parser.add_argument("--validation", type=int, default=32, help="accuracy mode: validation crops")
    parser.add_argument("--crop", type=int, default=64, help="side of the LR crops")
    parser.add_argument(
        "--crops",
        choices=("random", "contrast"),
        default="random",
        help="random crops, or the strongest-edged quarter of four times as many",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the crops")
    parser.add_argument("--size", type=int, default=256, help="side of the timed LR input")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds")
    args = parser.parse_args(argv)
    scale = args.scale
    model = edsr_lib.create_model(args.model or f"edsr_baseline_x{scale}", pretrained=True).eval()
    cfg = model.pretrained_cfg
    source = f"{cfg.architecture}.{cfg.tag}"
    print(f"{backends.cpu_info()}, {torch.get_num_threads()} threads; {backends.runtime_versions()}", flush=True)

    if args.measure:
        found = backends.int8_model(model, scale)
        record = found.record
        folder = found.xml.parent
    else:
        with telemetry_off():
            import nncf
            import openvino as ov

        if args.save:
            if not cfg.package_file:
                raise SystemExit(f"bench_int8: {source} is not shipped in the package; --save ships beside it")
            root = PACKAGE_WEIGHTS
            if (root / source / shipped_int8.folder_name(scale)).exists():
                raise SystemExit(f"bench_int8: {source} x{scale} has an int8 model; remove its folder to make another")
        quantized, recipe = quantize(model, scale, args)
        if not args.save:
            root = Path(tempfile.mkdtemp(prefix="bench_int8-"))
            shipped_int8.search_path.insert(0, root)
        folder = root / source / shipped_int8.folder_name(scale)
        record = shipped_int8.Int8Record(
            source=source,
            scale=scale,
            weights_sha256=backends.weights_sha256(model),
            command=_command(argv),
            recipe=recipe,
            versions={"nncf": nncf.__version__, "openvino": ov.__version__, "torch": torch.__version__}
            | {"edsr_lib": __version__},
        )
        save(quantized, folder, record)
    try:
        measurement = measure(model, scale, args, _command(argv))
    finally:
        if not (args.save or args.measure):  # the temporary int8 model goes
            shipped_int8.search_path.remove(root)
            shutil.rmtree(root, ignore_errors=True)
    problems = shipped_int8.rule_problems(measurement)
    print(f"the rule: {'; '.join(problems) if problems else 'passes'}")
    if args.save or args.measure:
        same_machine = (measurement["cpu"], measurement["flags"], measurement["threads"])
        record.measurements = [
            m for m in record.measurements if (m["cpu"], m["flags"], m["threads"]) != same_machine
        ] + [measurement]
        print(f"wrote {shipped_int8.write_record(folder, record)}")


if __name__ == "__main__":
    main()
