"""Train MDSR (x2, x3 and x4 in one network) on T91 + BSD200 and validate on Set5 at every scale.

    python examples/train_mdsr.py                          # MDSR-baseline, the paper's recipe
    python examples/train_mdsr.py --model mdsr             # the 80-block MDSR
    python examples/train_mdsr.py --init-from edsr_baseline_x2 edsr_baseline_x3 edsr_baseline_x4
    python examples/train_mdsr.py --smoke                  # a few seconds on synthetic images

Each step draws one scale; only that scale's pre-processing and upsampling branches run
and are updated, while the body is shared by all three.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from edsr_lib.train import TrainConfig, Trainer

DATASETS = Path(os.environ.get("EDSR_LIB_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=DATASETS, help="folder holding T91/, BSD200/ and Set5/")
    parser.add_argument("--model", default="mdsr_baseline", choices=("mdsr_baseline", "mdsr"))
    parser.add_argument("--output-dir", default=None, help="default: runs/<model>")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument(
        "--init-from",
        nargs="+",
        help="start from trained weights: an MDSR, or one single-scale model per scale "
        "(edsr_baseline_x2 edsr_baseline_x3 edsr_baseline_x4 for mdsr_baseline)",
    )
    parser.add_argument(
        "--amp",
        default=TrainConfig.amp,
        choices=("auto", "none", "bf16", "fp16"),
        help="bf16: 2-3x faster on CPUs with native bf16",
    )
    parser.add_argument("--smoke", action="store_true", help="a few steps of a tiny model on synthetic images")
    args = parser.parse_args()

    settings = {
        "model": args.model,
        "scales": [2, 3, 4],
        "train_dirs": [str(args.datasets / "T91" / "HR"), str(args.datasets / "BSD200" / "HR")],
        "val_dir": str(args.datasets / "Set5"),
        "output_dir": args.output_dir or f"runs/{args.model}",
        "steps": args.steps,
        "amp": args.amp,
        "init_from": args.init_from,
    }
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            from _smoke import smoke_settings

            settings |= smoke_settings(tmp) | {"output_dir": str(Path(tmp) / "run"), "steps": 6, "init_from": None}
        summary = Trainer(TrainConfig(**settings), resume=True).train()
    print(f"step {summary['step']}: best validation PSNR {summary.get('best')}")


if __name__ == "__main__":
    main()
