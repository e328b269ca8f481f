"""Split the training photographs into a training pool and a held-out validation set.

Steps and checkpoints are chosen on images that neither train the model nor are reported:
the benchmark sets (Set5, Set14, B100) stay out of both. This tool takes every
``--holdout-every``-th image (sorted by name) of each extra set as validation, writes a
centre crop of it (a side divisible by 2, 3 and 4, so one crop serves every scale) to
``OUT/val/HR/``, and links every other image into ``OUT/train/<set>/`` for ``--train-dir``.
Nothing is copied into the repository: ``OUT`` is a git-ignored folder (``.data/`` by default).

Example (the split the ``t291x`` weights were trained and selected on)::

    python tools/make_split.py --data $DATA -o .data/split
    edsr-lib train --train-dir .data/split/train/* --val-dir .data/split/val ...
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from PIL import Image

#: Sets used whole for training (the classic 291 images).
TRAIN_ONLY = ("T91", "BSD200")
#: Extra sets split into training and validation; how many images of each to hold out is
#: set by ``--holdout-every`` (Flickr2K_partial and DIV2K_train_partial, 4 and 2 images, train only).
SPLIT = ("BSDS500_test", "LIVE1", "McMaster")
EXTRA_TRAIN = ("Flickr2K_partial", "DIV2K_train_partial")


def main() -> None:
    """Write the split; print what went where."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/datasets"), help="the datasets folder ($DATA)")
    p.add_argument("-o", "--output", type=Path, default=Path(".data/split"))
    p.add_argument("--holdout-every", type=int, default=16, help="hold out every N-th image of each split set")
    p.add_argument("--crop", type=int, default=240, help="side of the validation centre crops (divisible by 12)")
    args = p.parse_args()
    if args.crop % 12:
        raise SystemExit(f"--crop must be divisible by 2, 3 and 4 (12), got {args.crop}")
    val_dir = args.output / "val" / "HR"
    val_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, dict[str, object]] = {}
    for name in (*TRAIN_ONLY, *SPLIT, *EXTRA_TRAIN):
        files = sorted(p for p in (args.data / name / "HR").iterdir() if p.suffix.lower() == ".png")
        held = set(files[args.holdout_every // 2 :: args.holdout_every]) if name in SPLIT else set()
        train_dir = args.output / "train" / name
        train_dir.mkdir(parents=True, exist_ok=True)
        for f in files:
            if f in held:
                with Image.open(f) as img:
                    w, h = img.size
                    s = min(args.crop, w - w % 12, h - h % 12)
                    left, top = (w - s) // 2, (h - s) // 2
                    img.convert("RGB").crop((left, top, left + s, top + s)).save(val_dir / f"{name}_{f.name}")
            else:
                link = train_dir / f.name
                if not link.exists():
                    os.symlink(f.resolve(), link)
        record[name] = {"train": len(files) - len(held), "validation": [f.name for f in sorted(held)]}
        print(f"{name}: {len(files) - len(held)} train, {len(held)} validation")
    (args.output / "split.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
