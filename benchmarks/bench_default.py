"""What the defaults cost: ``Upscaler(model)`` against the best path and one pass; each path against its runtime.

Two tables, every row timed alternately with the others in one process (median of
``--rounds``), so that a loaded machine slows all of them alike and the ratios hold:

1. Photos of several sizes (crops of the DIV2K images in ``../shared/datasets``, or
   synthetic where they are absent): the default ``Upscaler(model)`` (precision, backend
   and tiles as it picks them), the same backend and precision in one pass
   (``tile=None``: what the tiling costs), and the explicit paths in one pass
   (``backend="openvino"`` in bf16 where the CPU has it, ...). Ratios are times over the
   default's.
2. Each path inside the ``Upscaler`` (fp32, bf16 where native, int8 where shipped)
   against the same OpenVINO file compiled alone with its fastest settings for this CPU
   (for int8, the bf16 hint on a CPU with native bf16, which runs the file's unquantised
   parts in bf16; the ``Upscaler`` uses the same), on one input: ``alone / in Upscaler``,
   the goal being at least 0.95 (the median of the rounds' own ratios: each pair runs back to back).

Usage::

    python benchmarks/bench_default.py                    # edsr_baseline_x2, four photo sizes, 5 rounds
    python benchmarks/bench_default.py --sizes 640x480 1400x1000 --rounds 7
    python benchmarks/bench_default.py --quick            # the smoke test's small run
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import edsr_lib
from edsr_lib import backends
from edsr_lib.inference import cpu_has_native_bf16

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
SIZES = ("640x480", "640x600", "1024x768", "1400x1000")


def _photo(width: int, height: int, index: int) -> np.ndarray:
    """A ``height x width`` crop of a DIV2K image (LR-sized photo), or a smooth synthetic one."""
    files = sorted((DATASETS / "DIV2K_train_partial" / "HR").glob("*.png"))
    for path in files[index:] + files[:index]:
        image = edsr_lib.io.read_image(path)
        if image.ndim == 3 and image.shape[0] >= height and image.shape[1] >= width:
            return np.ascontiguousarray(image[:height, :width, :3])
    generator = torch.Generator().manual_seed(index)
    coarse = torch.rand(1, 3, max(2, height // 40), max(2, width // 40), generator=generator)
    smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    return (smooth.clamp(0, 1)[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


def _rounds(runs: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each run in each round, the runs alternated round by round after one warm-up round.

    The order is reversed every other round (A B, B A, ...), so that what runs first in a
    round (colder caches, a CPU still at another clock) is not always the same run.
    """
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(rounds + 1):
        for name, run in list(runs.items())[:: -1 if round_ % 2 else 1]:
            start = time.perf_counter()
            run()
            if round_:
                times[name].append(time.perf_counter() - start)
    return times


def _alternate(runs: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each run over :func:`_rounds`."""
    return {name: statistics.median(t) for name, t in _rounds(runs, rounds).items()}


def _explicit_paths() -> list[dict[str, str]]:
    """The best explicit paths to compare with: OpenVINO in each precision this CPU runs, and PyTorch."""
    paths = [{"backend": "torch", "precision": "fp32"}]
    if cpu_has_native_bf16():
        paths.append({"backend": "torch", "precision": "bf16"})
    if "openvino" in backends.installed_runtimes():
        paths.append({"backend": "openvino", "precision": "fp32"})
        if cpu_has_native_bf16():
            paths.append({"backend": "openvino", "precision": "bf16"})
    return paths


def photos_table(model: edsr_lib.SRModel, sizes: list[str], rounds: int) -> None:
    """Table 1: the default against the best explicit path in one pass, and its own tiling against one pass."""
    default = edsr_lib.Upscaler(model)
    print(f"default: backend {default.backend}, precision {default.precision}, tile {default.options.tile}")
    ups = {"default": default, "default, one pass": edsr_lib.Upscaler(model, default.options, tile=None)}
    for path in _explicit_paths():
        ups[f"{path['backend']} {path['precision']}, one pass"] = edsr_lib.Upscaler(model, tile=None, **path)
    print(f"{'photo':>10} " + " ".join(f"{name:>24}" for name in ups))
    for index, size in enumerate(sizes):
        width, height = map(int, size.split("x"))
        photo = _photo(width, height, index)
        medians = _alternate({name: (lambda up=up, photo=photo: up(photo)) for name, up in ups.items()}, rounds)
        base = medians["default"]
        cells = [f"{medians[name]:8.2f} s {base / medians[name]:5.2f}x" for name in ups]
        print(f"{size:>10} " + " ".join(f"{cell:>24}" for cell in cells))
    print("(each cell: median seconds, and the default's time over it: below 1.00x that path is slower)")


def _alone(path: Path, hint: str) -> Callable[[np.ndarray], np.ndarray]:
    """The OpenVINO file compiled alone, for the CPU, with the inference precision ``hint``."""
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    config = {
        hints.inference_precision: ov.Type.bf16 if hint == "bf16" else ov.Type.f32,
        hints.performance_mode: hints.PerformanceMode.LATENCY,
        props.inference_num_threads: torch.get_num_threads(),
    }
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()

    def run(x: np.ndarray) -> np.ndarray:
        request.infer({0: x}, share_inputs=True)
        return request.get_output_tensor(0).data.copy()

    return run


def runtime_table(model: edsr_lib.SRModel, side: int, rounds: int) -> None:
    """Table 2: each OpenVINO path inside the Upscaler against the same file alone, at its fastest settings here."""
    if "openvino" not in backends.installed_runtimes():
        print("runtime alone: openvino is not installed")
        return
    precisions = ["fp32"] + ["bf16"] * cpu_has_native_bf16()
    scale = model.scales[0]
    try:
        backends.int8_model(model, scale)
        precisions.append("int8")
    except backends.BackendError:
        pass
    x = torch.rand(1, model.n_colors, side, side, generator=torch.Generator().manual_seed(0))
    array = np.ascontiguousarray(x.numpy())
    print(f"{'path':>6} {'in Upscaler':>12} {'alone':>10} {'alone / in Upscaler':>20}  (OpenVINO, {side}x{side})")
    print("(seconds: medians; the ratio: the median of each round's ratio)")
    for precision in precisions:
        up = edsr_lib.Upscaler(model, backend="openvino", precision=precision, tile=None)
        file = backends.load_runtime(model, scale, "openvino", precision).path
        hint = "bf16" if precision == "bf16" or (precision == "int8" and cpu_has_native_bf16()) else "fp32"
        alone = _alone(file, hint)
        times = _rounds({"upscaler": lambda up=up: up(x), "alone": lambda alone=alone: alone(array)}, rounds)
        # the median of the rounds' own ratios: each round's pair ran back to back, so a slow spell cancels out
        ratio = statistics.median(a / u for a, u in zip(times["alone"], times["upscaler"], strict=True))
        upscaler, alone_s = statistics.median(times["upscaler"]), statistics.median(times["alone"])
        print(f"{precision:>6} {upscaler:10.3f} s {alone_s:8.3f} s {ratio:19.2f}x")


def main(argv: list[str] | None = None) -> None:
    """Run both tables; see the module's docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="edsr_baseline_x2", help="registered name (pretrained) or a folder")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), metavar="WxH", help="photo sizes (LR pixels)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per row, after one warm-up")
    parser.add_argument("--side", type=int, default=256, help="input side of the runtime table")
    parser.add_argument("--quick", action="store_true", help="a small run: two small photos, one round")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.rounds, args.side = ["64x48", "96x80"], 1, 48
    cpu = backends.cpu_info()
    print(f"CPU: {cpu}; {torch.get_num_threads()} threads; runtimes {backends.runtime_versions()}")
    model = edsr_lib.inference.load_model(args.model)
    photos_table(model, args.sizes, args.rounds)
    runtime_table(model, args.side, args.rounds)


if __name__ == "__main__":
    main()
