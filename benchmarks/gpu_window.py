"""One command that makes a short GPU window count: the GPU tests, the speed tables, and an MDSR fine-tune.

Planned to end within 8 minutes on an H200 (``--minutes``), in this order, each part
written to ``--out`` as soon as it is done (a window cut short keeps what it did):

1. the tests marked ``gpu`` (``pytest -m gpu``), their summary in ``gpu_tests.txt``;
2. inference on a 1020x678 LR image (x2) for ``edsr_baseline_x2``, ``mdsr`` and
   ``edsr_x2``: the plain reference forward (unfused, NCHW) against ``upscale`` in float32
   (TF32 stated, as PyTorch runs it by default), bfloat16 and float16 autocast,
   channels_last against NCHW, ``torch.compile`` on and off; output megapixels per
   second, peak memory, and the largest difference from the reference in full float32;
3. training steps per second of the same three models in bfloat16 (batch 16, 48x48 LR
   patches, the real ``Trainer.train_step``);
4. ``mdsr`` fine-tuned from ``mdsr.t291`` on the packed crops (``tools/pack_gpu_data.py``:
   one crop from each of the split's 528 training images) for the minutes left: the step
   count is calibrated on the first steps, the cosine schedule then fits the time; the
   weights are chosen on the held-out crops, compared there and on Set5 with ``mdsr.t291``
   and ``mdsr_baseline.t528`` at every scale, and written in float16 (no file over 16 MiB);
5. TensorRT, where ``trtexec`` is on the PATH (skipped, and said so, where it is not): the
   fp16 ONNX file of ``edsr_baseline_x2`` in the GPU upscalers' conventions
   (``edsr-lib export --precision fp16 --io-names community``) built and timed by
   :func:`trtexec_command` (``--stronglyTyped``: the file's own float16, as TensorRT 10 and
   later want it), its throughput and GPU compute time in the report.

``--out`` receives at most 8 files: ``report.md`` (the tables), ``results.json`` (the same
numbers), ``gpu_tests.txt``, ``train_log.jsonl`` (the fine-tune's log) and
``mdsr_finetuned/`` (``model.safetensors``, ``config.json``, ``README.md``).

``--dry-run`` runs every step on the CPU with tiny models and sizes, in seconds: CI runs
it (``tests/test_gpu_window.py``), so the script cannot rot before a GPU arrives.

Usage::

    python tools/make_split.py && python tools/pack_gpu_data.py       # here, once: .data/gpu (16 MB)
    python benchmarks/gpu_window.py --out /tmp/window                 # on any CUDA machine
    python benchmarks/gpu_window.py --dry-run --out /tmp/window       # on a CPU, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the GPU machine runs a copy of the tree, not an installed package

import torch  # noqa: E402
from bench_inference import plain_copy, timed  # noqa: E402

import edsr_lib  # noqa: E402
from edsr_lib._device import cpu_has_native_bf16, full_float32, resolve_device, uses_tf32  # noqa: E402
from edsr_lib.train import PatchSampler, TrainConfig, Trainer, make_lr_images, read_run  # noqa: E402
from edsr_lib.train.data import read_folder  # noqa: E402
from edsr_lib.train.trainer import tuned_convolutions  # noqa: E402

#: The models of the speed tables, all timed at x2.
MODELS = ("edsr_baseline_x2", "mdsr", "edsr_x2")
#: What comes back from a lent machine: at most this many files, none larger.
MAX_FILES, MAX_FILE_BYTES = 8, 16 * 2**20


class Window:
    """The clock, the sizes of a real or a dry run, and the report as it grows."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dry = args.dry_run
        self.start = time.monotonic()
        self.deadline = self.start + args.minutes * 60
        self.device = torch.device("cpu") if self.dry else resolve_device(args.device)
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.data = Path(args.data)
        self.lines: list[str] = []
        self.results: dict[str, Any] = {"dry_run": self.dry, "phases": {}}
        tiny = {"n_resblocks": 1, "n_feats": 8}
        self.model_kwargs: dict[str, Any] = tiny if self.dry else {}
        # LR image, training batch and LR patch, steps of each timing, calibration steps
        self.lr_size = (22, 34) if self.dry else (678, 1020)
        self.batch, self.patch = (2, 8) if self.dry else (16, 48)
        self.repeats, self.timed_steps, self.calibration = (1, 2, 3) if self.dry else (3, 20, 200)

    def left(self) -> float:
        """Seconds until the planned end."""
        return self.deadline - time.monotonic()

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def say(self, *lines: str) -> None:
        """Add lines to the report, and rewrite it and the results (a cut-short window keeps them)."""
        self.lines += lines
        for line in lines:
            print(line, flush=True)
        (self.out / "report.md").write_text("\n".join(self.lines) + "\n")
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1) + "\n")

    def phase(self, name: str, run: Callable[[], None]) -> None:
        t0 = time.monotonic()
        try:
            run()
            status = "done"
        except Exception as exc:  # one failing part must not cost the window the others
            status = f"failed: {type(exc).__name__}: {exc}"
            self.say("", f"**{name} failed**: `{type(exc).__name__}: {str(exc)[:500]}`")
        self.results["phases"][name] = {"seconds": round(time.monotonic() - t0, 1), "status": status}
        self.say(f"_{name}: {time.monotonic() - t0:.0f} s; {self.left():.0f} s left_")


#: The TensorRT timing's input shapes (LR, batch 1): the smallest, the one timed, the largest the engine takes.
TRT_SHAPES = {"min": (64, 64), "opt": (678, 1020), "max": (1080, 1920)}


def trtexec_command(onnx: Path, shapes: dict[str, tuple[int, int]] = TRT_SHAPES, name: str = "input") -> list[str]:
    """The ``trtexec`` command line that builds and times an fp16 ONNX file of ``edsr-lib export --precision fp16``.

    ``--stronglyTyped`` builds the network in the file's own types (float16, the last
    convolution float32): TensorRT 10 deprecated, and TensorRT 11 removed, the ``--fp16``
    builder flag that let it cast a float32 file. The height and width are dynamic, so the
    engine is built for a range of shapes and timed at ``opt``.
    """
    dims = {k: f"{name}:1x3x{h}x{w}" for k, (h, w) in shapes.items()}
    return [
        "trtexec",
        f"--onnx={onnx}",
        "--stronglyTyped",
        f"--minShapes={dims['min']}",
        f"--optShapes={dims['opt']}",
        f"--maxShapes={dims['max']}",
        f"--shapes={dims['opt']}",
        "--noDataTransfers",
        "--useCudaGraph",
    ]


def tensorrt(w: Window) -> None:
    from edsr_lib.export import export_onnx

    w.say("", "## TensorRT (fp16 ONNX, trtexec)", "")
    model = edsr_lib.create_model("edsr_baseline_x2", pretrained=not w.dry, **w.model_kwargs)
    with tempfile.TemporaryDirectory() as tmp:  # the file stays here: only the report comes back
        onnx = export_onnx(model, Path(tmp) / "edsr_baseline_x2_fp16.onnx", precision="fp16", io_names="community")
        command = trtexec_command(onnx)
        w.results["tensorrt"] = {"command": " ".join(trtexec_command(Path(onnx.name)))}
        if shutil.which("trtexec") is None:
            w.results["tensorrt"]["skipped"] = "trtexec is not on the PATH"
            w.say(
                "Skipped: `trtexec` (TensorRT) is not on the PATH. The command it would run:",
                "",
                f"`{w.results['tensorrt']['command']}`",
            )
            return
        budget = max(60, min(300, w.left() - 60))
        done = subprocess.run(command, capture_output=True, text=True, timeout=budget)
    text = done.stdout + done.stderr
    throughput = re.search(r"Throughput: ([\d.]+) qps", text)
    compute = re.search(r"GPU Compute Time: min = [\d.]+ ms, max = [\d.]+ ms, mean = ([\d.]+) ms", text)
    version = re.search(r"TensorRT version: ([\d.]+)", text)
    h, wd = TRT_SHAPES["opt"]
    mp = 4 * h * wd / 1e6  # output megapixels of one x2 frame
    w.results["tensorrt"] |= {
        "returncode": done.returncode,
        "tensorrt": version.group(1) if version else None,
        "qps": float(throughput.group(1)) if throughput else None,
        "gpu_ms": float(compute.group(1)) if compute else None,
    }
    if done.returncode != 0 or throughput is None:
        raise RuntimeError(f"trtexec failed (exit {done.returncode}): {' / '.join(text.strip().splitlines()[-3:])}")
    qps = float(throughput.group(1))
    w.say(
        f"TensorRT {w.results['tensorrt']['tensorrt'] or '?'}, `edsr_baseline_x2` fp16, {h}x{wd} LR: "
        f"{qps:.1f} frames/s ({qps * mp:.1f} MP/s out), GPU compute {w.results['tensorrt']['gpu_ms']} ms mean",
        "",
        f"`{w.results['tensorrt']['command']}`",
    )


# ----------------------------------------------------------------------- parts
def environment(w: Window) -> None:
    d = w.device
    where = torch.cuda.get_device_name(d) if d.type == "cuda" else (platform.processor() or platform.machine())
    cuda = f", CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}" if d.type == "cuda" else ""
    tf32 = "float32 convolutions in TF32 (cuDNN's default)" if uses_tf32(d) else "float32 in full precision"
    w.results["device"] = {"name": where, "type": d.type, "torch": torch.__version__, "tf32": uses_tf32(d)}
    w.say(
        f"# GPU window{' (dry run)' if w.dry else ''}",
        "",
        f"{where}{cuda}; torch {torch.__version__}; {tf32}; planned for {w.args.minutes:g} minutes",
    )


def gpu_tests(w: Window) -> None:
    # only the files that hold gpu tests: collecting the others would import every optional package
    targets = [str(p) for p in sorted((REPO / "tests").glob("test_*.py")) if "pytest.mark.gpu" in p.read_text()]
    # a dry run only collects and skips, but collecting six test files takes 18 s on a loaded 2-core machine
    budget = 120 if w.dry else max(30, min(100, w.left() - 360))
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "-rfEs", *targets]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    try:
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=budget, env=env)
        text, rc = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        text, rc = f"{partial}\n(stopped after {budget:.0f} s)", "timeout"
    (w.out / "gpu_tests.txt").write_text(text)
    summary = text.strip().splitlines()[-1] if text.strip() else "(no output)"
    w.results["gpu_tests"] = {"returncode": rc, "summary": summary}
    w.say("", "## GPU tests", "", f"`pytest -m gpu`: {summary} (exit {rc}; the whole output in gpu_tests.txt)")


def _image(h: int, w: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    coarse = torch.rand(1, 3, h // 8 + 2, w // 8 + 2, generator=gen)
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)


def inference(w: Window) -> None:
    d, (h, wd) = w.device, w.lr_size
    x = _image(h, wd).to(d)
    tf32 = " (TF32)" if uses_tf32(d) else ""
    halves = [p for p in ("bf16", "fp16") if d.type == "cuda" or (p == "bf16" and cpu_has_native_bf16())]
    w.say(
        "",
        f"## Inference, {wd}x{h} LR to x2",
        "",
        f"Best of {w.repeats} rounds after a warm-up; error: largest difference from the reference forward "
        "in full float32. (TF32): float32 whose convolutions run in TF32.",
        "",
        "| model | variant | MP/s out | peak MB | vs reference | error |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    )
    shipped = {n.split(".")[0] for n in edsr_lib.list_models(pretrained=True)}
    for name in MODELS:
        if w.left() < 200 and not w.dry:  # the training parts need the rest
            w.say(f"| {name} | skipped: {w.left():.0f} s left | | | | |")
            continue
        # shipped weights where there are some (fp16's precision depends on them); speed does not
        _time_model(w, name, x, pretrained=not w.dry and name in shipped, halves=halves, tf32=tf32)
        if d.type == "cuda":
            torch.cuda.empty_cache()
    if not halves:
        w.say("", "bf16 and fp16 rows: not run (a CPU without native bf16; fp16 needs CUDA)")


def _time_model(w: Window, name: str, x: torch.Tensor, *, pretrained: bool, halves: list[str], tf32: str) -> None:
    d, (h, wd) = w.device, w.lr_size
    model = edsr_lib.create_model(name, pretrained=pretrained, **w.model_kwargs).eval().to(d)
    reference = plain_copy(model).to(d).eval()
    with torch.no_grad(), full_float32():
        truth = reference(x, 2)

    def ups(half: str | bool = False, cl: bool = True, compile: bool = False) -> Callable[[], torch.Tensor]:
        return lambda: edsr_lib.upscale(model, x, 2, half=half, channels_last=cl, compile=compile)

    def plain() -> torch.Tensor:
        with torch.no_grad():
            return reference(x, 2)

    variants: dict[str, Callable[[], torch.Tensor]] = {
        f"reference forward, NCHW{tf32}": plain,
        f"upscale fp32, channels_last{tf32}": ups(),
        f"upscale fp32, NCHW{tf32}": ups(cl=False),
    }
    for half in halves:
        variants[f"upscale {half}, channels_last"] = ups(half)
        variants[f"upscale {half}, NCHW"] = ups(half, cl=False)
    # compiling takes 20 to 60 s a model (and, on a CPU, minutes and a C++ compiler)
    if not w.dry and w.left() > 260:
        variants[f"upscale fp32, channels_last, compile{tf32}"] = ups(compile=True)
        variants["upscale bf16, channels_last, compile"] = ups("bf16", compile=True)
    elif not w.dry:
        w.say(f"| {name} | compile rows skipped: {w.left():.0f} s left | | | | |")
    errors, warm = {}, {}
    for label, fn in list(variants.items()):
        t0 = time.monotonic()
        try:  # a variant that cannot run here (say, compile without a compiler) costs only its row
            with torch.no_grad():
                errors[label] = (fn().float() - truth).abs().max().item()
        except Exception as exc:
            del variants[label]
            w.say(f"| {name} | {label}: failed, `{type(exc).__name__}: {str(exc)[:200]}` | | | | |")
            continue
        w.sync()
        warm[label] = time.monotonic() - t0
    best = dict.fromkeys(variants, math.inf)
    peak = dict.fromkeys(variants, 0.0)
    for _ in range(w.repeats):
        for label, fn in variants.items():
            seconds, mb = timed(fn, d)
            best[label], peak[label] = min(best[label], seconds), max(peak[label], mb)
    base = best[next(iter(variants))]
    out_mp = 4 * h * wd / 1e6
    for label in variants:
        row = {
            "model": name,
            "weights": "shipped" if pretrained else "random",
            "variant": label,
            "mp_per_s": out_mp / best[label],
            "peak_mb": peak[label],
            "vs_reference": base / best[label],
            "max_error": errors[label],
            "first_call_s": warm[label],
        }
        w.results.setdefault("inference", []).append(row)
        w.say(
            f"| {name} | {label} | {row['mp_per_s']:.2f} | {row['peak_mb']:.0f} | {row['vs_reference']:.2f}x "
            f"| {row['max_error']:.1e} |"
        )


def _samplers(w: Window) -> tuple[PatchSampler, PatchSampler, dict[str, Any]]:
    """Two samplers over the packed crops: LR 48 patches at x2 for speed, and x2/x3/x4 for the fine-tune."""
    manifest = json.loads((w.data / "manifest.json").read_text())
    _, hr = read_folder(w.data / "train")
    # MATLAB's bicubic, once per crop and scale: 25 CPU-seconds for the 528 crops, shared out among the cores
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        lr = {s: list(pool.map(lambda img, s=s: make_lr_images([img], s)[0], hr)) for s in (2, 3, 4)}
    ft_patch = min(48, manifest["side"] // 4)  # the recipe's 48, or what every scale of a crop allows
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        speed = PatchSampler(hr, {2: lr[2]}, w.patch, device=w.device)
        fine = PatchSampler(hr, lr, ft_patch, device=w.device)
    info = {"images": len(hr), "patch": ft_patch, "left_out": [str(c.message) for c in caught]}
    return speed, fine, info


def training_speed(w: Window, sampler: PatchSampler) -> None:
    amp = "bf16" if w.device.type == "cuda" else "none"
    precision = amp if amp != "none" else "tf32" if uses_tf32(w.device) else "float32"
    w.say(
        "",
        f"## Training steps per second, {precision}, channels_last",
        "",
        f"Batch {w.batch}, {sampler.lr_patch_size}x{sampler.lr_patch_size} LR patches at x2 from the packed crops; "
        f"{w.timed_steps} steps after 3 of warm-up (sampling, forward, L1, backward, Adam, EMA).",
        "",
        "| model | steps/s | samples/s | peak MB |",
        "| --- | ---: | ---: | ---: |",
    )
    rows = w.results.setdefault("training", [])
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            if w.left() < 150 and not w.dry:  # the fine-tune needs the rest
                w.say(f"| {name} | skipped: {w.left():.0f} s left | | |")
                continue
            cfg = TrainConfig(
                model=name,
                model_kwargs=w.model_kwargs,
                scales=[2],
                batch_size=w.batch,
                lr_patch_size=sampler.lr_patch_size,
                amp=amp,
                device=str(w.device),
                steps=10**9,
                output_dir=f"{tmp}/{name}",
                progress=False,
            )
            try:  # one model that fails (say, out of memory) costs only its row
                rate, peak = _steps_per_second(w, cfg, sampler)
            except Exception as exc:
                w.say(f"| {name} | failed: `{type(exc).__name__}: {str(exc)[:200]}` | | |")
                continue
            finally:
                if w.device.type == "cuda":
                    torch.cuda.empty_cache()
            rows.append({"model": name, "precision": precision, "steps_per_s": rate, "samples_per_s": rate * w.batch})
            w.say(f"| {name} | {rate:.2f} | {rate * w.batch:.0f} | {peak:.0f} |")


def _steps_per_second(w: Window, cfg: TrainConfig, sampler: PatchSampler) -> tuple[float, float]:
    with contextlib.redirect_stdout(io.StringIO()):
        trainer = Trainer(cfg, sampler=sampler)
    with tuned_convolutions(w.device):  # as Trainer.train runs its steps
        for _ in range(3):
            trainer.train_step()
        w.sync()
        if w.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(w.device)
        t0 = time.perf_counter()
        for _ in range(w.timed_steps):
            trainer.train_step()
        w.sync()
    rate = w.timed_steps / (time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(w.device) / 1e6 if w.device.type == "cuda" else 0.0
    return rate, peak


def fine_tune(w: Window, sampler: PatchSampler, info: dict[str, Any], run_dir: Path) -> None:
    amp = "bf16" if w.device.type == "cuda" else "none"
    settings = {
        "model": "mdsr",
        "model_kwargs": w.model_kwargs,
        "init_from": None if w.dry else "mdsr",  # the shipped (t291) weights
        "batch_size": w.batch,
        "lr_patch_size": sampler.lr_patch_size,
        "lr": 1e-4,
        "sched": "cosine",
        "min_lr": 1e-6,
        "warmup_steps": 1 if w.dry else 100,
        "warmup_lr": 1e-5,
        "amp": amp,
        "device": str(w.device),
        "val_dir": str(w.data / "val"),
        "output_dir": str(run_dir),
        "log_every": 1 if w.dry else 50,
        "progress": False,
        "cache_dir": "",
    }
    reserve = 5 if w.dry else 45  # the comparison and the export, after training
    first = Trainer(TrainConfig(**settings, steps=10**6, save_every=10**6), sampler=sampler)
    t0 = time.monotonic()
    first.train(until=w.calibration)
    per_step = first.elapsed / w.calibration  # training only
    stop_cost = time.monotonic() - t0 - first.elapsed  # a validation, a checkpoint and an export
    # four validations and checkpoints on the way, and the last one, besides the steps
    budget = max(0.0, w.left() - reserve - 5 * stop_cost)
    steps = w.calibration + (2 * w.calibration if w.dry else int(0.9 * budget / per_step))
    every = max(1, (steps - w.calibration) // 4)
    second = Trainer(TrainConfig(**settings, steps=steps, save_every=every), sampler=sampler, resume=True)
    second.train(time_limit=1e6 if w.dry else max(1.0, w.left() - reserve))
    w.results["fine_tune"] = {
        "images": info["images"],
        "lr_patch": sampler.lr_patch_size,
        "left_out": info["left_out"],
        "calibration": {"steps": w.calibration, "seconds_per_step": per_step, "stop_seconds": stop_cost},
        "planned_steps": steps,
        "steps": second.step,
        "best": second.best,
    }
    shutil.copyfile(run_dir / "log.jsonl", w.out / "train_log.jsonl")


def compare_and_export(w: Window, run_dir: Path) -> None:
    run = read_run(run_dir)
    which, step = run.pick_weights("auto")
    tuned = edsr_lib.from_pretrained(run_dir / which).eval()
    candidates = {f"fine-tuned ({which}, step {step})": tuned}
    for ref in ("mdsr.t291", "mdsr_baseline.t528"):
        candidates[ref] = edsr_lib.create_model(ref, pretrained=True).eval()
    sets = {"held-out crops": w.data / "val", "Set5": w.data / "Set5"}
    w.say(
        "",
        "## MDSR fine-tuned on the packed crops",
        "",
        f"{w.results['fine_tune']['steps']} steps ({w.results['fine_tune']['planned_steps']} planned after "
        f"{w.calibration} steps at {w.results['fine_tune']['calibration']['seconds_per_step']:.3f} s each), "
        f"{w.batch}x{w.results['fine_tune']['lr_patch']}px LR patches; PSNR (dB, Y channel, scale pixels "
        "shaved, float32 without TF32) on the held-out crops (which chose the step) and Set5:",
        "",
        "| weights | set | x2 | x3 | x4 |",
        "| --- | --- | ---: | ---: | ---: |",
    )
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for label, model in candidates.items():
        for set_label, folder in sets.items():
            with full_float32():  # comparable with the CPU-measured tables of the docs
                per = {f"x{s}": edsr_lib.evaluate(model, folder, s, device=w.device)["psnr"] for s in (2, 3, 4)}
            scores.setdefault(label, {})[set_label] = per
            w.say(f"| {label} | {set_label} | {per['x2']:.3f} | {per['x3']:.3f} | {per['x4']:.3f} |")
    tuned_val = scores[next(iter(candidates))]["held-out crops"]
    bar = scores["mdsr_baseline.t528"]["held-out crops"]
    beats = all(tuned_val[k] > bar[k] for k in bar)
    w.results["fine_tune"] |= {"weights": which, "weights_step": step, "psnr": scores, "beats_t528": beats}
    folder = w.out / "mdsr_finetuned"
    card = (run_dir / which / "README.md").read_text() if (run_dir / which / "README.md").is_file() else None
    edsr_lib.hub.save_pretrained(tuned, folder, model_card=card, dtype=torch.float16)
    w.say(
        "",
        f"Beats `mdsr_baseline.t528` on the held-out crops at every scale: **{'yes' if beats else 'no'}**. "
        f"Weights (float16): `mdsr_finetuned/`.",
    )


def check_output(w: Window) -> None:
    files = sorted(p for p in w.out.rglob("*") if p.is_file())
    big = [f"{p.relative_to(w.out)} ({p.stat().st_size / 2**20:.1f} MiB)" for p in files]
    big = [b for b, p in zip(big, files, strict=True) if p.stat().st_size > MAX_FILE_BYTES]
    w.results["output_files"] = {str(p.relative_to(w.out)): p.stat().st_size for p in files}
    problems = ([f"{len(files)} files (at most {MAX_FILES} come back)"] if len(files) > MAX_FILES else []) + big
    w.say("", f"Output: {len(files)} files, the largest {max(p.stat().st_size for p in files) / 2**20:.1f} MiB")
    if problems:
        raise RuntimeError("the output would not all come back: " + "; ".join(problems))


def main(argv: list[str] | None = None) -> int:
    """Run the window; returns 0 when every part succeeded."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.environ.get("OUT", "gpu_window_out"), help="output folder (default $OUT)")
    p.add_argument("--data", default=str(REPO / ".data" / "gpu"), help="the pack of tools/pack_gpu_data.py")
    p.add_argument("--device", default="cuda", help="the device (cuda, cuda:N)")
    p.add_argument("--minutes", type=float, default=8.0, help="planned length of the whole window")
    p.add_argument("--dry-run", action="store_true", help="every step on the CPU, tiny sizes, in seconds")
    args = p.parse_args(argv)
    if not (Path(args.data) / "manifest.json").is_file():
        print(f"error: no pack at {args.data}: run python tools/pack_gpu_data.py first", file=sys.stderr)
        return 2
    w = Window(args)
    if w.dry:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    environment(w)
    w.phase("gpu tests", lambda: gpu_tests(w))
    w.phase("inference", lambda: inference(w))
    holder: dict[str, Any] = {}
    w.phase("data", lambda: holder.update(zip(("speed", "fine", "info"), _samplers(w), strict=True)))
    if holder:
        w.phase("training speed", lambda: training_speed(w, holder["speed"]))
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(tmp) / "mdsr_run"
            w.phase("fine-tune", lambda: fine_tune(w, holder["fine"], holder["info"], run_dir))
            if "fine_tune" in w.results:
                w.phase("compare and export", lambda: compare_and_export(w, run_dir))
    w.phase("tensorrt", lambda: tensorrt(w))
    w.phase("output check", lambda: check_output(w))
    w.say(f"Total: {time.monotonic() - w.start:.0f} s")
    failed = [name for name, ph in w.results["phases"].items() if ph["status"] != "done"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
