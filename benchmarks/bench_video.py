"""Video benchmark: :func:`edsr_lib.upscale_video` throughput, the model's share of the wall time, and peak memory.

Each row upscales a clip made here with PyAV (a moving colour gradient, H.264, 24 fps) in a
fresh Python process, so that each peak RSS is that run's own: frames per second, the
fraction of the wall time the model was busy (decoding and encoding run beside it; 100%
means they never made it wait), and the peak resident memory. Two clips of one size, a
short and a long one (10 s and 120 s by default), show whether memory grows with the
clip's length: the last line prints the long clip's peak RSS as a multiple of the short
one's. The CPU (model name and whether it has AVX-512 and native bf16) heads the output.

Usage::

    python benchmarks/bench_video.py                      # edsr_baseline_x2 on a 4 s clip; RSS 10 s vs 120 s
    python benchmarks/bench_video.py --quick              # tiny model, tiny clips (seconds)
    python benchmarks/bench_video.py --model edsr_baseline_x4 --size 160x90 --seconds 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

RATE = 24


def cpu_description() -> str:
    """The CPU (model name and the instruction sets the model's speed depends on), torch's threads, the CPUs."""
    import torch

    from edsr_lib.backends import cpu_info

    return f"{cpu_info()}, {torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs"


def make_clip(path: Path, seconds: float, size: tuple[int, int]) -> Path:
    """An H.264 clip of a moving colour gradient with AAC sound."""
    import av

    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=RATE, options={"crf": "18", "preset": "veryfast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.time_base = Fraction(1, RATE)
        sound = out.add_stream("aac", rate=48000)
        sound.layout = "mono"
        frames = round(seconds * RATE)
        for i in range(frames):
            phase = i / RATE
            rgb = np.stack(
                [
                    127 + 100 * np.sin(x / 17 + phase * 3),
                    127 + 100 * np.sin(y / 11 - phase * 2),
                    127 + 100 * np.sin((x + y) / 23 + phase),
                ],
                axis=-1,
            ).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for k in range(round(seconds * 48000 / 1024) + 1):
            chunk = av.AudioFrame.from_ndarray(
                (0.2 * np.sin(np.arange(1024, dtype=np.float32) / 9 + k))[None], format="flt", layout="mono"
            )
            chunk.sample_rate, chunk.pts = 48000, k * 1024
            out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))
    return path


def child(model_name: str, src: str, dst: str, half: str) -> None:
    """Run one upscale_video in this process and print its figures as JSON (with this process's peak RSS)."""
    import torch

    import edsr_lib

    if model_name == "tiny":
        torch.manual_seed(0)
        model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=2, n_feats=8)
    else:
        model = edsr_lib.create_model(model_name, pretrained=True)
    result = edsr_lib.upscale_video(model, src, dst, precision=half)  # fp32: PyTorch, no backend measured
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {"frames": result.frames, "fps": result.fps, "model_share": result.model_share, "rss_mib": peak_kib / 1024}
        )
    )


def run_row(model_name: str, src: Path, dst: Path, half: str) -> dict:
    here = str(Path(__file__).parent)
    script = f"import sys; sys.path.insert(0, {here!r}); import bench_video; bench_video.child(*sys.argv[1:])"
    done = subprocess.run(
        [sys.executable, "-c", script, model_name, str(src), str(dst), half],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default="edsr_baseline_x2", help="model for the speed row (default edsr_baseline_x2)"
    )
    parser.add_argument("--size", default="320x180", help="frame size WxH of the clips (default 320x180)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of the speed row's clip (default 4)")
    parser.add_argument(
        "--rss-seconds",
        default="10,120",
        help="short and long clip for the memory rows, run with a tiny model (default 10,120)",
    )
    parser.add_argument("--half", default="fp32", choices=["fp32", "bf16"], help="precision of the speed row")
    parser.add_argument("--quick", action="store_true", help="tiny model and clips: that it runs")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    if args.quick:
        args.model, width, height, args.seconds, args.rss_seconds = "tiny", 64, 36, 0.5, "0.5,2"
    short, long = (float(v) for v in args.rss_seconds.split(","))

    print(f"CPU: {cpu_description()}")
    header = f"| {'model':<18}| {'clip':>12}| {'frames':>7}| {'frames/s':>9}| {'model busy':>11}| {'peak RSS MiB':>13}|"
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    rss: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows = [(args.model, args.seconds, args.half), ("tiny", short, "fp32"), ("tiny", long, "fp32")]
        for i, (name, seconds, half) in enumerate(rows):
            src = make_clip(Path(tmp) / f"clip{i}.mp4", seconds, (width, height))
            figures = run_row(name, src, Path(tmp) / f"out{i}.mp4", half)
            label = name if half == "fp32" else f"{name} {half}"
            print(
                f"| {label:<18}| {f'{seconds:g} s {width}x{height}':>12}| {figures['frames']:>7}| "
                f"{figures['fps']:>9.2f}| {figures['model_share']:>10.0%} | {figures['rss_mib']:>13.0f}|"
            )
            if i:
                rss.append(figures["rss_mib"])
            src.unlink()
    print(f"peak RSS, {long:g} s clip / {short:g} s clip (tiny model): {rss[1] / rss[0]:.3f}x")


if __name__ == "__main__":
    main()
