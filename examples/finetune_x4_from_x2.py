"""Fine-tune EDSR-baseline x4 from a trained x2 (all weights but the upsampler), as the paper does.

    python examples/finetune_x4_from_x2.py                # from the shipped edsr_baseline_x2 weights
    python examples/finetune_x4_from_x2.py --init-from runs/edsr_baseline_x2/best_ema
    python examples/finetune_x4_from_x2.py --smoke     # trains a tiny x2, then starts x4 from it

Starting from x2 trains faster and ends better than starting from scratch (paper, Fig. 4).
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
    parser.add_argument(
        "--init-from", default="edsr_baseline_x2", help="trained x2 weights: a run folder or a pretrained model name"
    )
    parser.add_argument("--output-dir", default="runs/edsr_baseline_x4")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument(
        "--amp",
        default=TrainConfig.amp,
        choices=("auto", "none", "bf16", "fp16"),
        help="bf16: 2-3x faster on CPUs with native bf16",
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny x2 for a few steps, then x4 from it")
    args = parser.parse_args()

    settings = {
        "model": "edsr_baseline_x4",
        "train_dirs": [str(args.datasets / "T91" / "HR"), str(args.datasets / "BSD200" / "HR")],
        "val_dir": str(args.datasets / "Set5"),
        "init_from": args.init_from,
        "output_dir": args.output_dir,
        "steps": args.steps,
        "amp": args.amp,
    }
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            from _smoke import smoke_settings

            tiny = smoke_settings(tmp)
            x2_run = Path(tmp) / "x2"
            Trainer(TrainConfig(model="edsr_baseline_x2", output_dir=str(x2_run), **tiny)).train()
            settings |= tiny | {"init_from": str(x2_run / "final"), "output_dir": str(Path(tmp) / "x4")}
        summary = Trainer(TrainConfig(**settings), resume=True).train()
    print(f"step {summary['step']}: best validation PSNR {summary.get('best')}")


if __name__ == "__main__":
    main()
