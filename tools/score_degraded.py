#!/usr/bin/env python
"""Score weights on degraded LR (JPEG, noise): the table that says which tag suits which input.

A maintainer's tool, run from the repository root::

    python tools/score_degraded.py edsr_baseline_x2.t528 -o runs/scores/edsr_baseline_x2.t528.json
    python tools/score_degraded.py edsr_baseline_x2.t528 -o runs/scores/edsr_baseline_x2.t528.json --write

For each set (``--sets``, default Set5, Set14 and B100 in ``$EDSR_LIB_DATASETS``, else
``../shared/datasets``), each scale the model serves and each setting (``--settings``,
default :data:`SETTINGS`: JPEG 30, 50 and 75, noise 5 and 15, and noise 5 then JPEG 50),
it runs :func:`edsr_lib.evaluate` with ``degrade=`` that
:class:`~edsr_lib.ops.degrade.LRDegradation` (the MATLAB-bicubic LR, then the noise seeded
per image, then the JPEG: docs/evaluation.md), and records the scores under
``"<set>_<key>"`` (``"Set5_jpeg50"``), the metrics keys of :class:`edsr_lib.PretrainedCfg`.
The output JSON is written after every score and read back on a rerun, so an interrupted
run continues where it stopped. ``--write`` adds the scores to the tag's
``edsr_lib/weights/<arch.tag>/pretrained.json`` (then ``tools/refresh_cards.py`` brings its
card's front matter up to date).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import edsr_lib
from edsr_lib.hub import atomic_write
from edsr_lib.ops.degrade import LRDegradation
from edsr_lib.weights import PROVENANCE_NAME

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS_DIR = Path(os.environ.get("EDSR_LIB_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))
DEFAULT_SETS = ("Set5", "Set14", "B100")
#: The degradations the ``real`` tags are compared on, by metrics key.
SETTINGS: dict[str, LRDegradation] = {
    d.key: d
    for d in (
        LRDegradation(jpeg=30),
        LRDegradation(jpeg=50),
        LRDegradation(jpeg=75),
        LRDegradation(noise=5),
        LRDegradation(noise=15),
        LRDegradation(noise=5, jpeg=50),
    )
}


def score(
    name: str,
    sets: Sequence[Path],
    settings: Sequence[str],
    output: Path,
    *,
    clean: bool = False,
    weights: Path | None = None,
) -> dict[str, Any]:
    """Score ``name`` on every set, scale and setting, keeping what ``output`` already holds.

    Args:
        name: A registered ``arch.tag`` (its pretrained weights), or with ``weights`` an architecture.
        sets: Set folders.
        settings: Keys of :data:`SETTINGS`.
        output: The JSON file of the scores.
        clean: Also score the clean LR.
        weights: A weights folder or file (a training run's ``best_ema/``) to score instead.

    Returns:
        The metrics, ``{"Set5_jpeg50": {"x2": {"psnr", "ssim"}}, ...}`` (and ``"Set5"`` with ``clean``).
    """
    model = edsr_lib.create_model(name, weights=weights) if weights else edsr_lib.create_model(name, pretrained=True)
    metrics: dict[str, Any] = json.loads(output.read_text()) if output.is_file() else {}
    plan = [(None, "")] * clean + [(SETTINGS[key], f"_{key}") for key in settings]
    for folder in sets:
        for degrade, suffix in plan:
            key = folder.name + suffix
            for s in model.scales:
                if f"x{s}" in metrics.get(key, {}):
                    continue
                result = edsr_lib.evaluate(model, folder, s, degrade=degrade, device="cpu")
                metrics.setdefault(key, {})[f"x{s}"] = {
                    "psnr": round(result["psnr"], 3),
                    "ssim": round(result["ssim"], 4),
                }
                output.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(output, (json.dumps(metrics, indent=2) + "\n").encode())
                print(f"  {key:<22} x{s}: {result['psnr']:.3f} dB / {result['ssim']:.4f} ({result['seconds']:.0f} s)")
    return metrics


def write_pretrained(name: str, metrics: dict[str, Any], weights_dir: Path) -> Path:
    """Add ``metrics`` to the tag's ``pretrained.json`` (scores already there are replaced)."""
    path = weights_dir / name / PROVENANCE_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {path}: the tag is not shipped in this repository")
    provenance = json.loads(path.read_text(encoding="utf-8"))
    for key, per_scale in metrics.items():
        provenance["metrics"].setdefault(key, {}).update(per_scale)
    atomic_write(path, (json.dumps(provenance, indent=2) + "\n").encode("utf-8"))
    return path


def _set_folder(value: str) -> Path:
    """A set's folder: ``value`` itself when it is a folder, else the set of that name in :data:`DATASETS_DIR`."""
    path = Path(value)
    return path if path.is_dir() or path.is_absolute() else DATASETS_DIR / value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(prog="score_degraded.py", description=__doc__.splitlines()[1])
    p.add_argument("name", help="a registered arch.tag with weights (edsr_baseline_x2.t528), or with --weights a model")
    p.add_argument("--weights", type=Path, help="score these weights (a run's best_ema/ folder) as NAME's architecture")
    p.add_argument("-o", "--output", type=Path, required=True, help="JSON file of the scores (read back on a rerun)")
    p.add_argument(
        "--sets",
        nargs="+",
        type=_set_folder,
        default=[DATASETS_DIR / n for n in DEFAULT_SETS],
        help=f"set folders, or names of sets in {DATASETS_DIR} (default: {' '.join(DEFAULT_SETS)})",
    )
    p.add_argument("--settings", nargs="*", choices=tuple(SETTINGS), default=list(SETTINGS))
    p.add_argument("--clean", action="store_true", help="also score the clean LR (under the set's own name)")
    p.add_argument("--write", action="store_true", help="add the scores to the tag's pretrained.json")
    p.add_argument("--weights-dir", type=Path, default=REPO_ROOT / "edsr_lib" / "weights")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Score, write, and print the scores; returns the exit status."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    missing = [str(s) for s in args.sets if not (s / "HR").is_dir()]
    if missing:
        raise FileNotFoundError(f"set folders without an HR/ subfolder: {', '.join(missing)}")
    t0 = time.perf_counter()
    if args.write and args.weights:
        raise ValueError("--write adds to a registered tag's pretrained.json; --weights scores unregistered weights")
    metrics = score(args.name, args.sets, args.settings, args.output, clean=args.clean, weights=args.weights)
    print(f"scored in {time.perf_counter() - t0:.0f} s")
    if args.write:
        print(f"wrote {write_pretrained(args.name, metrics, args.weights_dir)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, FileNotFoundError) as err:
        print(f"score_degraded.py: error: {err}", file=sys.stderr)
        sys.exit(2)
