"""``benchmarks/gpu_window.py --dry-run`` end to end on the CPU, on a pack made by ``tools/pack_gpu_data.py``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import edsr_lib

REPO = Path(__file__).resolve().parents[1]


def _picture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.random((h // 6 + 2, w // 6 + 2, 3))
    img = Image.fromarray((coarse * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)
    return np.asarray(img)


def _split(root: Path) -> tuple[Path, Path]:
    """A miniature of tools/make_split.py's output (train/<set>/, val/HR/) and a Set5 folder."""
    for i, (h, w) in enumerate([(70, 60), (56, 80), (64, 64), (40, 50)]):
        folder = root / "split" / "train" / ("T91" if i < 2 else "LIVE1")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_picture(h, w, i)).save(folder / f"im{i}.png")
    (root / "split" / "val" / "HR").mkdir(parents=True)
    Image.fromarray(_picture(36, 36, 10)).save(root / "split" / "val" / "HR" / "v0.png")
    (root / "Set5" / "HR").mkdir(parents=True)
    for i in range(2):
        Image.fromarray(_picture(24, 36, 20 + i)).save(root / "Set5" / "HR" / f"s{i}.png")
    return root / "split", root / "Set5"


def _pack(split: Path, set5: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "tools" / "pack_gpu_data.py"), "--split", str(split), "--set5", str(set5)]
    return subprocess.run([*cmd, "-o", str(out), *extra], capture_output=True, text=True, timeout=120)


def test_the_pack_takes_one_lossless_crop_from_every_training_image(tmp_path: Path) -> None:
    split, set5 = _split(tmp_path)
    done = _pack(split, set5, tmp_path / "pack", "--side", "48")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "pack" / "manifest.json").read_text())
    assert manifest["images"] == 4 and len(list((tmp_path / "pack" / "train").iterdir())) == 4
    crop = next(c for c in manifest["crops"] if c["source"] == "LIVE1/im3.png")
    assert crop["box"][2:] == [36, 36]  # im3 is 40x50: the largest multiple of 12 it holds
    left, top, s, _ = crop["box"]
    with Image.open(tmp_path / "pack" / "train" / crop["file"]) as packed:
        assert np.array_equal(np.asarray(packed.convert("RGB")), _picture(40, 50, 3)[top : top + s, left : left + s])
    assert sorted(p.name for p in (tmp_path / "pack" / "Set5" / "HR").iterdir()) == ["s0.png", "s1.png"]
    packed_bytes = sum(p.stat().st_size for p in (tmp_path / "pack").rglob("*") if p.is_file() and p.suffix != ".json")
    assert manifest["bytes"]["total"] == packed_bytes

    over = _pack(split, set5, tmp_path / "small", "--side", "48", "--budget-mb", "0.001")
    assert over.returncode == 2 and "over the 0.0 MB budget: lower --side" in over.stderr
    assert not (tmp_path / "small").exists()
    bad = _pack(split, set5, tmp_path / "bad", "--side", "50")
    assert bad.returncode == 2 and "--side must be a multiple of 12" in bad.stderr


@pytest.mark.slow
def test_gpu_window_dry_run_end_to_end(tmp_path: Path) -> None:
    split, set5 = _split(tmp_path)
    assert _pack(split, set5, tmp_path / "pack", "--side", "48").returncode == 0
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "benchmarks" / "gpu_window.py"), "--dry-run", "--data", str(tmp_path / "pack")]
    done = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    results = json.loads((out / "results.json").read_text())
    assert all(p["status"] == "done" for p in results["phases"].values()), results["phases"]
    assert {"gpu tests", "inference", "data", "training speed", "fine-tune", "compare and export"} <= set(
        results["phases"]
    )
    assert "skipped" in results["gpu_tests"]["summary"]  # no CUDA here: every gpu test skips
    if shutil.which("trtexec") is None:  # the TensorRT part skips, naming the command it would have run
        assert results["tensorrt"]["skipped"] == "trtexec is not on the PATH"
        assert results["tensorrt"]["command"].startswith("trtexec --onnx=edsr_baseline_x2_fp16.onnx --stronglyTyped")
    models = {"edsr_baseline_x2", "mdsr", "edsr_x2"}
    assert {r["model"] for r in results["inference"]} == models == {r["model"] for r in results["training"]}
    reference = [r for r in results["inference"] if r["variant"].startswith("reference")]
    assert len(reference) == 3 and all(r["max_error"] < 1e-4 for r in results["inference"] if "fp32" in r["variant"])
    tune = results["fine_tune"]
    assert tune["steps"] == tune["planned_steps"] > tune["calibration"]["steps"]
    references = {edsr_lib.get_pretrained_cfg(arch).name for arch in ("mdsr", "mdsr_baseline")}  # the shipped defaults
    assert set(tune["psnr"]) == {f"fine-tuned ({tune['weights']}, step {tune['weights_step']})", *references}
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [
        "gpu_tests.txt",
        "mdsr_finetuned/README.md",
        "mdsr_finetuned/config.json",
        "mdsr_finetuned/model.safetensors",
        "report.md",
        "results.json",
        "train_log.jsonl",
    ]
    assert all((out / f).stat().st_size < 16 * 2**20 for f in files)
    from safetensors import safe_open

    with safe_open(out / "mdsr_finetuned" / "model.safetensors", "pt") as f:
        assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {"torch.float16"}  # noqa: SIM118
    report = (out / "report.md").read_text()
    assert "## Inference" in report and "## Training steps per second" in report and "## MDSR fine-tuned" in report
