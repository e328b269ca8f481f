"""Inference benchmark: edsr-lib's fast path against a plain PyTorch EDSR/MDSR.

For each model and scale it prints throughput (megapixels of output per second),
achieved GFLOP/s (convolution FLOPs, ``2 * Cin * Cout * k * k * H * W`` each, of one
untiled pass, so tiled rows show the cost of the overlap as a lower rate), peak memory
during the call and the speed ratio against the plain implementation. All variants are
timed alternately within one process (one round of every variant, repeated), and the
fastest round is reported: on a shared machine other processes only ever add time. A
same-run sgemm (``torch.mm`` of large float32 matrices) gives the practical limit of the
machine; the GFLOP/s column is also shown as a fraction of it. On a CPU with native
bfloat16 (:func:`edsr_lib.inference.cpu_has_native_bf16`), ``upscale(half="bf16")`` is timed
too and its speed-up over the fp32 fast path printed.

On a CPU, each installed runtime (:mod:`edsr_lib.backends`: OpenVINO, ONNX Runtime) gets two
rows per precision it runs here (fp32; bf16 on OpenVINO where the CPU has native bf16; int8
on OpenVINO where an int8 model is shipped for the weights, :mod:`edsr_lib.weights.int8`):
``upscale(backend=...)``, the library with its tiling and checks around the runtime, and
"standalone", the runtime alone on the file that ``edsr-lib export-onnx`` writes (for int8,
the shipped IR): the fastest a user could get by calling the runtime directly. The
header names the CPU, its flags (AVX2, AVX-512, AVX-512 BF16, VNNI, AMX) and the versions
of the runtimes; the largest difference of each row's output from the fp32 fast path is
printed under the table.

The plain implementation is written out below, independent of the library: the
reference code's structure (mean shifts as 1x1 convolutions, ``res_scale`` multiplied at
run time), NCHW, a plain forward under ``torch.no_grad``. It loads the library model's
weights, and its output is checked against the library's.

Usage::

    python benchmarks/bench_inference.py                     # the table, on CUDA if present
    python benchmarks/bench_inference.py --quick             # EDSR-baseline x2 only: plain, fast, bf16, runtimes
    python benchmarks/bench_inference.py --device cpu --size 256 --repeats 3
"""

from __future__ import annotations

import argparse
import copy
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

import edsr_lib
from edsr_lib import backends
from edsr_lib._device import full_float32, uses_tf32
from edsr_lib.backends.openvino import import_openvino
from edsr_lib.export import INPUT_NAME, export_onnx
from edsr_lib.inference import cpu_has_native_bf16, torch_runner

PLAIN = "plain (NCHW, unfused)"
FAST = "upscale (fused, channels_last)"
BF16_CPU = "upscale bf16 (CPU)"

# ----------------------------------------------------------------------------- plain reference


class PlainMeanShift(nn.Conv2d):
    """The reference code's mean shift: a fixed 1x1 convolution."""

    def __init__(self, rgb_range: float, rgb_mean: list[float], sign: int) -> None:
        super().__init__(3, 3, kernel_size=1)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1)
        self.bias.data = sign * rgb_range * torch.tensor(rgb_mean)
        self.requires_grad_(False)


class PlainResBlock(nn.Module):
    def __init__(self, n_feats: int, kernel_size: int, res_scale: float) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, kernel_size, padding=pad),
            nn.ReLU(True),
            nn.Conv2d(n_feats, n_feats, kernel_size, padding=pad),
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mul(self.res_scale) + x


def plain_upsampler(scale: int, n_feats: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for factor in [3] if scale == 3 else [2] * (scale.bit_length() - 1):
        layers += [nn.Conv2d(n_feats, factor * factor * n_feats, 3, padding=1), nn.PixelShuffle(factor)]
    return nn.Sequential(*layers)


class PlainSR(nn.Module):
    """EDSR (one scale) or MDSR (``multi=True``) as the reference code writes them, for inputs in [0, 1]."""

    def __init__(self, config: dict, multi: bool) -> None:
        super().__init__()
        n_feats, rgb_range = config["n_feats"], config["rgb_range"]
        self.rgb_range = rgb_range
        self.sub = PlainMeanShift(rgb_range, config["rgb_mean"], -1)
        self.add = PlainMeanShift(rgb_range, config["rgb_mean"], 1)
        self.head = nn.Conv2d(3, n_feats, 3, padding=1)
        self.body = nn.Sequential(
            *[PlainResBlock(n_feats, 3, config["res_scale"]) for _ in range(config["n_resblocks"])],
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
        )
        self.tail = nn.Conv2d(n_feats, 3, 3, padding=1)
        self.multi = multi
        if multi:
            k = config["preprocess_kernel_size"]
            scales = config["scales"]
            self.pre_process = nn.ModuleDict(
                {f"x{s}": nn.Sequential(PlainResBlock(n_feats, k, 1.0), PlainResBlock(n_feats, k, 1.0)) for s in scales}
            )
            self.upsample = nn.ModuleDict({f"x{s}": plain_upsampler(s, n_feats) for s in scales})
        else:
            self.upsampler = plain_upsampler(config["scale"], n_feats)

    def forward(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        x = self.head(self.sub(x * self.rgb_range))
        if self.multi:
            x = self.pre_process[f"x{scale}"](x)
        x = self.body(x) + x
        x = self.upsample[f"x{scale}"](x) if self.multi else self.upsampler(x)
        return self.add(self.tail(x)) / self.rgb_range


def plain_copy(model: edsr_lib.SRModel) -> PlainSR:
    plain = PlainSR(model.config, multi=isinstance(model, edsr_lib.MDSR))
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("sub.", "add.")) for k in missing), (missing, unexpected)
    return plain.eval()


# ----------------------------------------------------------------------------- measurement


def conv_flops(model: nn.Module, x: torch.Tensor, scale: int) -> int:
    """Convolution FLOPs of one forward pass (2 * Cin/groups * Cout * k * k per output pixel)."""
    total = 0

    def hook(conv: nn.Conv2d, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        k = conv.kernel_size[0] * conv.kernel_size[1]
        total += 2 * conv.in_channels // conv.groups * conv.out_channels * k * output.shape[-2] * output.shape[-1]

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(x, scale=scale)
    for h in handles:
        h.remove()
    return total


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """Seconds and peak extra memory (MB) of one call: CUDA peak allocation, or peak RSS above the start."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the peak RSS (VmHWM) of this process
        before = _status_kib("VmRSS") * 1024
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated(device) - before
    else:
        seconds = time.perf_counter() - start
        peak = _status_kib("VmHWM") * 1024 - before
    return seconds, max(peak, 0) / 1e6


def sgemm_gflops(device: torch.device, n: int = 4096, repeats: int = 3) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        best = min(best, timed(lambda: torch.mm(a, b), device)[0])
    return 2 * n**3 / best / 1e9


def cpu_precisions(backend: str, model: edsr_lib.SRModel, scale: int) -> list[str]:
    """The precisions ``backend`` runs here: fp32; bf16 where the CPU has it natively; int8 where it is offered."""
    runs = list(backends.get_backend(backend).precisions)
    offered = []
    for precision in runs:
        try:
            if precision != "fp32":
                backends.resolve_backend(backend, precision)
            if precision == "int8":
                backends.int8_model(model, scale)
        except backends.BackendError:
            continue
        offered.append(precision)
    return offered


def standalone(backend: str, onnx_path: Path, precision: str) -> Callable[[np.ndarray], object]:
    """The runtime alone on the exported file (an int8 model's IR), set up as its documentation says.

    The runtimes use as many threads as PyTorch.
    """
    if backend == "onnxruntime":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        # its threads would otherwise spin after each run and slow down the row timed next
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {INPUT_NAME: x})
    ov = import_openvino()

    # int8: the quantised operations run in int8 whatever the hint; the others in fp32
    config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32", "PERFORMANCE_HINT": "LATENCY"}
    config["INFERENCE_NUM_THREADS"] = torch.get_num_threads()
    compiled = ov.Core().compile_model(str(onnx_path), "CPU", config)
    return lambda x: compiled(x)


def runtime_variants(
    model: edsr_lib.SRModel, scale: int, x: torch.Tensor, folder: Path
) -> dict[str, Callable[[], object]]:
    """Per installed runtime and precision: upscale(backend=...) and the runtime alone on the exported file."""
    out: dict[str, Callable[[], object]] = {}
    installed = backends.installed_runtimes()
    if not installed:
        return out
    onnx_path = export_onnx(model, folder / f"{model.architecture}_x{scale}.onnx", scale, check=False)
    x_np = x.numpy()
    for backend in installed:
        for precision in cpu_precisions(backend, model, scale):
            half, int8 = ("bf16" if precision == "bf16" else False), precision == "int8"
            out[f"upscale {backend} {precision}"] = lambda b=backend, h=half, q=int8: edsr_lib.upscale(
                model, x, scale, backend=b, half=h, int8=q
            )
            path = backends.int8_model(model, scale).xml if int8 else onnx_path
            run = standalone(backend, path, precision)
            out[f"standalone {backend} {precision}"] = lambda run=run: run(x_np)
    return out


def auto_choice(model: edsr_lib.SRModel, scale: int) -> str:
    """What ``backend="auto"`` picks for ``model`` at ``scale`` here, per precision, with the times it measured."""
    lines = []
    for precision in ["fp32", "bf16"] if cpu_has_native_bf16() else ["fp32"]:
        half = torch.bfloat16 if precision == "bf16" else None
        fast = torch_runner(model, scale, device=torch.device("cpu"), half=half)
        winner = backends.fastest_backend(model, scale, precision, fast)
        seconds = (backends.auto_measurement(model, scale, precision) or {}).get("seconds", {})
        measured = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in sorted(seconds.items(), key=lambda kv: kv[1]))
        lines.append(f"{model.architecture} x{scale} {precision}: {winner}" + (f" ({measured})" if measured else ""))
    return "; ".join(lines)


def variants(
    model: edsr_lib.SRModel,
    scale: int,
    x: torch.Tensor,
    device: torch.device,
    tile: int,
    quick: bool,
    folder: Path,
) -> dict[str, Callable[[], object]]:
    plain = plain_copy(model).to(device)
    unfused_cl = copy.deepcopy(model).to(device, memory_format=torch.channels_last).eval()
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), full_float32():  # TF32 alone would differ by about 1e-3
        gap = (plain(x, scale) - edsr_lib.upscale(model, x, scale)).abs().max().item()
    assert gap < 1e-3, f"plain and library outputs differ by {gap}"

    def run_plain() -> object:
        with torch.no_grad():
            return plain(x, scale)

    def run_unfused_cl() -> object:
        with torch.inference_mode():
            return unfused_cl(x_cl, scale=scale)

    out: dict[str, Callable[[], object]] = {
        PLAIN: run_plain,
        FAST: lambda: edsr_lib.upscale(model, x, scale),
    }
    if device.type == "cpu" and cpu_has_native_bf16():
        out[BF16_CPU] = lambda: edsr_lib.upscale(model, x, scale, half="bf16")
    if device.type == "cpu":
        out |= runtime_variants(model, scale, x, folder)
    if quick:
        return out
    out |= {
        "channels_last, unfused": run_unfused_cl,
        "upscale fused, NCHW": lambda: edsr_lib.upscale(model, x, scale, channels_last=False),
        f"upscale tile={tile}": lambda: edsr_lib.upscale(model, x, scale, tile=tile),
        "upscale tile=auto": lambda: edsr_lib.upscale(model, x, scale, tile="auto"),
    }
    if device.type == "cuda":
        out |= {
            "upscale fp16 autocast": lambda: edsr_lib.upscale(model, x, scale, half="fp16"),
            "upscale bf16 autocast": lambda: edsr_lib.upscale(model, x, scale, half="bf16"),
            "upscale torch.compile": lambda: edsr_lib.upscale(model, x, scale, compile=True),
        }
    return out


def set_psnr(data: str, scale: int, sr_fn: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """Mean PSNR (Y channel, ``scale`` border pixels ignored) of ``sr_fn(LR)`` over a set's official LR files."""
    from pathlib import Path

    from edsr_lib.io import read_image, to_tensor
    from edsr_lib.metrics import psnr
    from edsr_lib.ops import modcrop

    scores = []
    for hr_path in sorted((Path(data) / "HR").glob("*.png")):
        hr = modcrop(read_image(hr_path), scale)
        lr = read_image(Path(data) / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png")
        sr = sr_fn(to_tensor(lr))
        scores.append(float(psnr(sr, to_tensor(hr), crop_border=scale, test_y_channel=True)[0]))
    return sum(scores) / len(scores)


def quality(data: str) -> None:
    """What bf16 and ``outscale`` cost in PSNR, with the shipped EDSR-baseline weights."""
    models = {s: edsr_lib.create_model(f"edsr_baseline_x{s}", pretrained=True) for s in (2, 3, 4)}
    print(f"PSNR (dB, Y channel) on {data}, shipped EDSR-baseline weights")
    print("| scale | fp32 | bf16 | bf16 cost |")
    print("|---|---:|---:|---:|")
    for s, model in models.items():
        fp32 = set_psnr(data, s, lambda lr, m=model, s=s: edsr_lib.upscale(m, lr, s))
        if cpu_has_native_bf16() or torch.cuda.is_available():
            bf16 = set_psnr(data, s, lambda lr, m=model, s=s: edsr_lib.upscale(m, lr, s, half="bf16"))
            print(f"| x{s} | {fp32:.3f} | {bf16:.3f} | {fp32 - bf16:.3f} |")
        else:
            print(f"| x{s} | {fp32:.3f} | (no native bf16) | |")
    print()
    print("| output scale | how | PSNR | vs the native model |")
    print("|---|---|---:|---:|")
    for s in (3, 4):
        native = set_psnr(data, s, lambda lr, s=s: edsr_lib.upscale(models[s], lr, s))
        bicubic = set_psnr(data, s, lambda lr, s=s: edsr_lib.imresize(lr, s))
        print(f"| x{s} | edsr_baseline_x{s} (native) | {native:.3f} | 0 |")
        for via in (2, 4) if s == 3 else (2,):
            got = set_psnr(data, s, lambda lr, via=via, s=s: edsr_lib.upscale(models[via], lr, outscale=s))
            passes = edsr_lib.inference.plan_passes((via,), s)
            how = " then ".join([*(f"x{p}" for p in passes), *(["bicubic"] if math.prod(passes) != s else [])])
            print(f"| x{s} | edsr_baseline_x{via}, outscale={s} ({how}) | {got:.3f} | {got - native:+.3f} |")
        print(f"| x{s} | MATLAB bicubic | {bicubic:.3f} | {bicubic - native:+.3f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=256, help="LR input height and width")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (after one warm-up round)")
    parser.add_argument("--tile", type=int, default=128, help="tile size of the tiled rows")
    parser.add_argument(
        "--models",
        default="edsr_baseline_x2,edsr_baseline_x3,edsr_baseline_x4,mdsr_baseline",
        help="comma-separated registered models (MDSR runs every scale)",
    )
    parser.add_argument("--sgemm-size", type=int, default=4096, help="matrix size of the sgemm reference")
    parser.add_argument(
        "--psnr", metavar="SET_DIR", help="instead of timing: PSNR cost of bf16 and of outscale on a set (e.g. Set5)"
    )
    parser.add_argument("--quick", action="store_true", help="only EDSR-baseline x2: plain vs fast, with sgemm")
    args = parser.parse_args(argv)
    if args.psnr:
        quality(args.psnr)
        return
    device = torch.device(args.device)
    torch.manual_seed(0)
    names = ["edsr_baseline_x2"] if args.quick else args.models.split(",")

    cpu = backends.cpu_info()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu}, {torch.get_num_threads()} threads"
    versions = ", ".join(f"{name} {version}" for name, version in backends.runtime_versions().items())
    print(f"device: {where}; {versions}; input {args.size}x{args.size}; best of {args.repeats} rounds")
    if uses_tf32(device):
        print("float32 rows marked (TF32) run their convolutions in TF32, cuDNN's default on this GPU")

    sgemm = [sgemm_gflops(device, args.sgemm_size)]
    ratios: list[str] = []
    agreement: list[str] = []
    picks: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="bench_inference_"))
    header = (
        f"| {'model':<17}| {'scale':<6}| {'variant':<32}| {'MP/s out':>9}| {'GFLOP/s':>8}| {'% sgemm':>8}"
        f"| {'peak MB':>8}| {'vs plain':>9}|"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name in names:
        # the shipped weights where the package has them (the int8 rows need them), else random ones
        shipped = [cfg for cfg in edsr_lib.list_pretrained(name) if cfg.architecture == name][:1]
        pretrained = bool(shipped and shipped[0].package_file)
        model = edsr_lib.create_model(name, pretrained=pretrained).eval().to(device)
        for scale in model.scales:
            x = torch.rand(1, 3, args.size, args.size, device=device)
            flops = conv_flops(model, x, scale)
            runs = variants(model, scale, x, device, args.tile, args.quick, folder)
            reference = edsr_lib.upscale(model, x, scale)
            for label, fn in runs.items():  # warm-up: caches, oneDNN kernels, compilation, exports
                y = fn()
                y = y[0] if isinstance(y, list | tuple) or type(y).__name__ == "OVDict" else y
                y = torch.as_tensor(np.asarray(y)) if not isinstance(y, torch.Tensor) else y
                agreement.append(f"{name} x{scale} {label}: {(y.to(reference) - reference).abs().max().item():.1e}")
            times: dict[str, list[float]] = {k: [] for k in runs}
            peaks: dict[str, float] = dict.fromkeys(runs, 0.0)
            for _ in range(args.repeats):
                for label, fn in runs.items():
                    seconds, peak = timed(fn, device)
                    times[label].append(seconds)
                    peaks[label] = max(peaks[label], peak)
                sgemm.append(sgemm_gflops(device, args.sgemm_size, repeats=1))
            limit = max(sgemm)
            plain_time = min(times[PLAIN])
            if BF16_CPU in times:
                ratios.append(f"{name} x{scale}: {min(times[FAST]) / min(times[BF16_CPU]):.2f}x")
            if device.type == "cpu":
                picks.append(auto_choice(model, scale))
            for label in runs:
                t = min(times[label])
                shown = f"{label} (TF32)" if uses_tf32(device) and "16" not in label else label
                gflops = flops / t / 1e9
                mp_out = (args.size * scale) ** 2 / t / 1e6
                print(
                    f"| {name:<17}| x{scale:<5}| {shown:<32}| {mp_out:>9.3f}| {gflops:>8.1f}| {gflops / limit:>8.0%}"
                    f"| {peaks[label]:>8.0f}| {plain_time / t:>8.2f}x|"
                )
    n = args.sgemm_size
    print(f"sgemm (torch.mm {n}x{n} float32, best of the run): {max(sgemm):.1f} GFLOP/s")
    if ratios:
        print(f"bf16 (CPU) vs the fp32 fast path: {', '.join(ratios)}")
    elif device.type == "cpu":
        print("bf16 (CPU): not run, this CPU has no native bf16")
    if picks:
        print("backend='auto' (measured once on this machine, 96x96 windows, then remembered):")
        print("\n".join(f"  {line}" for line in picks))
    if agreement:
        print("largest difference from the fp32 fast path (bf16 and int8 rows: rounded inside):")
        print("\n".join(f"  {line}" for line in agreement))


if __name__ == "__main__":
    main()
