"""Pack the data of a GPU window: training crops from every image of the split, its held-out crops, and Set5.

A lent GPU machine reaches nothing outside itself and receives a working tree of at most
64 MiB, of which the tracked files take most. This tool packs what
``benchmarks/gpu_window.py`` trains and validates on into the git-ignored ``.data/gpu/``
(carried to the machine with ``carry=[".data/gpu"]``), within a byte budget (16 MB by
default, for the three parts together):

- ``train/``: one square crop (``--side`` pixels, a multiple of 12, so that it serves x2,
  x3 and x4; smaller only where the image is) from each of the split's training images
  (``tools/make_split.py``: all 528), at a seeded random position, as lossless WebP (43% of
  the raw bytes on these photographs, against PNG's 62%; checked to decode to the same pixels);
- ``val/HR/``: the split's held-out centre crops (where the fine-tuned weights are chosen
  and compared with the shipped ones), as lossless WebP;
- ``Set5/HR/``: Set5's HR images as they are (the benchmark the speed tables use);
- ``manifest.json``: where each crop came from, the sizes, and the bytes of each part.

Nothing is written to the repository. Example::

    python tools/make_split.py --data ../shared/datasets -o .data/split
    python tools/pack_gpu_data.py --split .data/split --set5 ../shared/datasets/Set5 -o .data/gpu
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

#: Lossless WebP settings: ``method`` 4 packs within 2% of the slowest setting at 1/150 of its time.
_WEBP = {"lossless": True, "quality": 70, "method": 4}


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".webp", ".bmp", ".jpg", ".tif"))


def _webp(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", **_WEBP)
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as back:  # lossless, really: a crop is a training target
        if not np.array_equal(np.asarray(back.convert("RGB")), np.asarray(image)):
            raise RuntimeError("lossless WebP did not give back the same pixels; this Pillow cannot pack the data")
    return data


def pack(split: Path, set5: Path, output: Path, *, side: int = 144, budget: float = 16e6, seed: int = 0) -> dict:
    """Write the pack to ``output`` (replacing it) and return its manifest.

    Raises:
        FileNotFoundError: If the split or Set5 is missing.
        ValueError: If ``side`` is not a multiple of 12, or the pack would exceed ``budget`` bytes.
    """
    if side % 12:
        raise ValueError(f"--side must be a multiple of 12 (one crop serves x2, x3 and x4), got {side}")
    train_dirs = sorted(d for d in (split / "train").glob("*") if d.is_dir()) if (split / "train").is_dir() else []
    if not train_dirs or not (split / "val" / "HR").is_dir():
        raise FileNotFoundError(f"no split at {split}: make it with python tools/make_split.py -o {split}")
    if not (set5 / "HR").is_dir():
        raise FileNotFoundError(f"no Set5 at {set5} (a folder with HR/)")
    staging = output.with_name(output.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    for part in ("train", "val/HR", "Set5/HR"):
        (staging / part).mkdir(parents=True)

    rng = np.random.default_rng(seed)
    crops, sizes = [], {"train": 0, "val": 0, "Set5": 0}
    for folder in train_dirs:
        for path in _images(folder):
            with Image.open(path) as img:
                img = img.convert("RGB")
                w, h = img.size
                s = min(side, w - w % 12, h - h % 12)
                left, top = int(rng.integers(0, w - s + 1)), int(rng.integers(0, h - s + 1))
                data = _webp(img.crop((left, top, left + s, top + s)))
            name = f"{folder.name}_{path.stem}.webp"
            (staging / "train" / name).write_bytes(data)
            sizes["train"] += len(data)
            crops.append({"file": name, "source": f"{folder.name}/{path.name}", "box": [left, top, s, s]})
    for path in _images(split / "val" / "HR"):
        with Image.open(path) as img:
            data = _webp(img.convert("RGB"))
        (staging / "val" / "HR" / f"{path.stem}.webp").write_bytes(data)
        sizes["val"] += len(data)
    for path in _images(set5 / "HR"):
        shutil.copyfile(path, staging / "Set5" / "HR" / path.name)
        sizes["Set5"] += path.stat().st_size
    total = sum(sizes.values())
    if total > budget:
        shutil.rmtree(staging)
        raise ValueError(
            f"the pack would take {total / 1e6:.1f} MB, over the {budget / 1e6:.1f} MB budget: lower --side"
        )
    manifest = {
        "split": str(split),
        "images": len(crops),
        "side": side,
        "seed": seed,
        "bytes": {**sizes, "total": total},
        "crops": crops,
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(output, ignore_errors=True)
    staging.rename(output)
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Pack, and print what went in."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--split", type=Path, default=Path(".data/split"), help="the folder tools/make_split.py wrote")
    p.add_argument("--set5", type=Path, default=Path("../shared/datasets/Set5"), help="Set5 (a folder with HR/)")
    p.add_argument("-o", "--output", type=Path, default=Path(".data/gpu"))
    p.add_argument("--side", type=int, default=144, help="side of the training crops (a multiple of 12)")
    p.add_argument("--budget-mb", type=float, default=16.0, help="most bytes (MB) the pack may take")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        manifest = pack(args.split, args.set5, args.output, side=args.side, budget=args.budget_mb * 1e6, seed=args.seed)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    b = manifest["bytes"]
    print(
        f"{args.output}: {manifest['images']} training crops of up to {args.side}x{args.side} "
        f"({b['train'] / 1e6:.2f} MB), held-out crops ({b['val'] / 1e6:.2f} MB), Set5 ({b['Set5'] / 1e6:.2f} MB); "
        f"{b['total'] / 1e6:.2f} MB in all"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
