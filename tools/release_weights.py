#!/usr/bin/env python
"""Release weights this project trained: score them, ship them in the package, describe them.

A maintainer's tool, run from the repository root on a run folder written by ``edsr-lib train``::

    .venv/bin/python tools/release_weights.py runs/edsr_baseline_x2 --variant edsr_baseline_x2 \\
        --tag t291 --ensemble-sets Set5 Set14

It

1. reads the run through :mod:`edsr_lib.train.runlog` and loads the chosen weights folder
   (``--which``; ``auto`` takes the better of ``best_ema/`` and ``best/`` by the run's
   validation PSNR) as ``VARIANT``, whose default architecture it must match;
2. scores them with :func:`edsr_lib.evaluate` (benchmark protocol) on each set (``--sets``,
   default Set5, Set14 and B100 in ``$EDSR_LIB_DATASETS``, else ``../shared/datasets``) and
   each scale the model serves, with and without self-ensemble, and prints the table;
3. writes ``edsr_lib/weights/<variant>.<tag>/`` (``--out-dir`` replaces ``edsr_lib/weights``):
   ``model.safetensors`` and ``config.json`` through :func:`edsr_lib.hub.save_pretrained`;
   ``pretrained.json``, the provenance and scores the registry reads into the pretrained
   config (training data, every command that started or resumed the run, steps, metrics);
   a ``README.md`` model card (those, plus time, device, comparison with VDSR and the
   paper); and ``training_log.jsonl``, the run's validation records, for the docs' training
   curve. Paths under the datasets folder are written as ``$DATA/...`` and paths under the
   repository relative to it, so that no file names a folder of this machine (any
   absolute path left is warned about);
   With ``--scores`` (files of ``tools/score_degraded.py --weights``), the scores on degraded
   LR join the metrics (``"Set5_jpeg50"``); with ``--compare NAME``, the card gets a table of
   every score against those the registry holds for ``NAME`` (the weights a user would
   otherwise pick); a run trained with degradations (``--degrade``) has its chain in the card;
4. prints the ``PretrainedCfg(...)`` entry (Hub organisation, sha256, licence,
   description) for the model file's ``default_cfgs``. For a new ``arch.tag``, or new
   weights under an old one (another sha256), paste it there by hand: this tool writes
   data files only, never Python source.

Metrics follow :class:`edsr_lib.PretrainedCfg`: ``{"Set5": {"x2": {"psnr", "ssim"}}}`` per
set, and the self-ensemble scores under the set name with a ``+`` (``"Set5+"``), the
paper's notation for them. Nothing is pushed to the Hub: ``edsr-lib/<variant>.<tag>`` is
the repository the files are ready for.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

import edsr_lib
from edsr_lib import evaluate, published
from edsr_lib._card import against_table, ordered_metrics
from edsr_lib._pretrained import INPUTS
from edsr_lib.evaluation import set_name
from edsr_lib.hub import WeightsNotFoundError, atomic_write, model_card, resolve_weights, save_pretrained, sha256sum
from edsr_lib.io import list_images
from edsr_lib.metrics import format_score
from edsr_lib.ops.degrade import split_metric_key
from edsr_lib.published import Scores
from edsr_lib.registry import PretrainedCfg
from edsr_lib.train.degrade import DegradeChain
from edsr_lib.train.runlog import WEIGHT_FOLDERS, Run, read_run
from edsr_lib.weights import PROVENANCE_FIELDS, PROVENANCE_NAME

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The image sets live beside the repository (``EDSR_LIB_DATASETS`` points elsewhere).
DATASETS_DIR = Path(os.environ.get("EDSR_LIB_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))
DEFAULT_SETS = ("Set5", "Set14", "B100")
HUB_ORG = "edsr-lib"
LICENSE = "mit"
TRAINING_LOG_NAME = "training_log.jsonl"
#: The card's note on the paths its commands name (see :func:`portable`).
PATHS_LINE = (
    "- Paths: `$DATA` is the folder of the image sets (`../shared/datasets` beside the repository, or "
    "`$EDSR_LIB_DATASETS`); other relative paths are relative to the repository."
)
#: Images left out at a scale are named up to this many, and counted beyond.
MAX_NAMED = 3

VDSR_LABEL = "VDSR (291 images)"
#: The published numbers each card compares with (edsr_lib.published owns them), by column label.
REFERENCES: dict[str, Scores] = {"bicubic": published.BICUBIC, VDSR_LABEL: published.VDSR}

#: The paper's own numbers (DIV2K-trained), per model family: (column label, label in sentences, scores).
PAPER: dict[str, tuple[str, str, Scores]] = {
    # issue 4: the paper publishes no other baseline number, so MDSR-baseline is held against EDSR-baseline's too
    "baseline": ("EDSR-baseline, paper (DIV2K)", "the paper's EDSR-baseline", published.PAPER_EDSR_BASELINE),
    "edsr": ("EDSR, paper (DIV2K)", "the paper's EDSR", published.PAPER_EDSR),
    "mdsr": ("MDSR, paper (DIV2K)", "the paper's MDSR", published.PAPER_MDSR),
}


def paper_reference(variant: str) -> tuple[str, str, Scores]:
    """The paper's numbers to hold ``variant`` against: (column label, sentence label, scores)."""
    if "baseline" in variant:
        return PAPER["baseline"]
    return PAPER["mdsr"] if variant.startswith("mdsr") else PAPER["edsr"]


# ------------------------------------------------------------------------------ the run
def training_images(run: Run, scales: Sequence[int]) -> tuple[int, dict[int, list[str]]]:
    """How many training images the run had, and those left out at each scale.

    An image is left out at a scale when its LR is smaller than an LR patch (as the
    trainer's patch sampler decides); they are named only when that count agrees with the
    log's ``images`` record, and the folders are still there to look at.
    """
    dirs = [Path(d) for d in run.config.get("train_dirs", [])]
    if not all(d.is_dir() for d in dirs):
        return 0, {}
    paths = list_images(dirs)
    sizes = {}
    for p in paths:
        with Image.open(p) as image:  # reads the header only
            sizes[f"{set_name(str(p.parent))}/{p.name}"] = image.size
    patch = int(run.config.get("lr_patch_size", 48))
    logged = run.starts[-1].get("images", {})
    left_out: dict[int, list[str]] = {}
    for s in scales:
        small = [f"{name} ({w}x{h})" for name, (w, h) in sizes.items() if min(w // s, h // s) < patch]
        if small and logged.get(f"x{s}") == len(paths) - len(small):
            left_out[s] = small
    return len(paths), left_out


def training_sets(run: Run) -> str:
    """The names of the run's training sets (``"T91 + BSD200"``)."""
    return " + ".join(set_name(d) for d in run.config.get("train_dirs", [])) or "unknown data"


def training_data_text(run: Run, scales: Sequence[int]) -> str:
    """One line on the training images: the sets, how many, and any left out."""
    names = training_sets(run)
    total, left_out = training_images(run, scales)
    text = f"{names} ({total} images)" if total else names
    patch = int(run.config.get("lr_patch_size", 48))
    logged = run.starts[-1].get("images", {})
    for s in scales:
        if s in left_out and len(left_out[s]) > MAX_NAMED:  # counted, not named
            small = left_out[s]
            sets = _and(sorted({name.split("/")[0] for name in small}))
            side = patch * s
            text += f"; at x{s}, the {len(small)} {sets} images smaller than a {side}x{side} HR patch were left out"
        elif s in left_out:
            small = left_out[s]
            one = len(small) == 1
            text += (
                f"; at x{s}, {', '.join(small)} {'is' if one else 'are'} smaller than a {patch * s}x{patch * s} "
                f"HR patch and {'was' if one else 'were'} left out"
            )
        elif total and logged.get(f"x{s}", total) < total:
            text += f"; at x{s}, {logged[f'x{s}']} of them served patches"
    return text


def portable(text: str) -> str:
    """``text`` with the paths of this machine made portable.

    Paths under the datasets folder become ``$DATA/...``; paths under the repository (or the
    working folder) become relative to it.
    """
    roots = [(DATASETS_DIR, "$DATA/"), (REPO_ROOT, ""), (Path.cwd(), "")]
    for root, replacement in roots:
        for form in dict.fromkeys([str(root), str(root.resolve())]):
            text = text.replace(form.rstrip("/") + "/", replacement)
    return text


#: An absolute POSIX path of two components or more (not the tail of a URL or of another path).
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/$~-])/[\w.-]+(?:/[\w.-]+)+")


def absolute_paths(text: str) -> list[str]:
    """The absolute paths ``text`` still names (after :func:`portable`), to warn about."""
    return list(dict.fromkeys(_ABSOLUTE_PATH.findall(text)))


def training_command(run: Run) -> str:
    """The command that trained the weights; the distinct commands in order, joined by `` ; ``, if resumes differed."""
    return portable(" ; ".join(run.commands))


# ------------------------------------------------------------------------------ scores
def score(
    model: Any,
    sets: Sequence[Path],
    scales: Sequence[int],
    ensemble_sets: Sequence[str],
    *,
    device: str | None = None,
) -> tuple[dict[str, dict[str, dict[str, float]]], list[dict[str, Any]]]:
    """Score ``model`` on every set and scale, and with self-ensemble on ``ensemble_sets``.

    Returns:
        The metrics (``{"Set5": {"x2": {"psnr", "ssim"}}, "Set5+": ...}``, PSNR rounded to
        3 decimals and SSIM to 4) and one row per evaluation for the table.
    """
    metrics: dict[str, dict[str, dict[str, float]]] = {}
    rows: list[dict[str, Any]] = []
    for folder in sets:
        for ensemble in (False, True):
            if ensemble and folder.name not in ensemble_sets:
                continue
            key = folder.name + ("+" if ensemble else "")
            for s in scales:
                result = evaluate(model, folder, s, self_ensemble=ensemble, protocol="benchmark", device=device)
                metrics.setdefault(key, {})[f"x{s}"] = {
                    "psnr": round(result["psnr"], 3),
                    "ssim": round(result["ssim"], 4),
                }
                rows.append({"set": key, "scale": s, **result})
                print(
                    f"  {key:<8} x{s}: {result['psnr']:.3f} dB / {result['ssim']:.4f} "
                    f"({len(result['images'])} images, {result['seconds']:.1f} s)",
                    flush=True,
                )
    return metrics, rows


def score_table(metrics: dict[str, dict[str, dict[str, float]]], variant: str) -> list[str]:
    """Markdown rows: each set and scale, with and without self-ensemble, beside the references."""
    label, _, paper = paper_reference(variant)
    references = {**REFERENCES, label: paper}
    refs = list(references)
    lines = [
        "| set | scale | this model | self-ensemble (+) | " + " | ".join(refs) + " |",
        "|---|---|---|---|" + "---|" * len(refs),
    ]

    def cell(psnr: float | None, ssim: float | None) -> str:
        return "-" if psnr is None else format_score(psnr, ssim)

    for name, per_scale in metrics.items():
        if name.endswith("+") or split_metric_key(name)[1] is not None:  # degraded input: no published reference
            continue
        for s, scores in per_scale.items():
            plus = metrics.get(name + "+", {}).get(s, {})
            ref_cells = [cell(*references[r].get(name, {}).get(s, (None, None))) for r in refs]
            lines.append(
                f"| {name} | {s} | {cell(scores['psnr'], scores['ssim'])} | "
                f"{cell(plus.get('psnr'), plus.get('ssim'))} | " + " | ".join(ref_cells) + " |"
            )
    return lines


def comparison_lines(metrics: dict[str, dict[str, dict[str, float]]], variant: str) -> list[str]:
    """Sentences: how far this model is from VDSR and from the paper's own model, per set and scale."""
    _, paper_name, paper = paper_reference(variant)
    references = {VDSR_LABEL: REFERENCES[VDSR_LABEL], paper_name: paper}
    names = {VDSR_LABEL: "VDSR ({:.2f} dB, same 291 images)", paper_name: paper_name + " (about {:.2f} dB, DIV2K)"}
    lines = []
    for name, per_scale in metrics.items():
        if name.endswith("+") or split_metric_key(name)[1] is not None:  # degraded input: no published reference
            continue
        for s, scores in per_scale.items():
            gaps = []
            for ref, label in names.items():
                if s in references[ref].get(name, {}):
                    theirs = references[ref][name][s][0]
                    gap = scores["psnr"] - theirs
                    gaps.append(f"{abs(gap):.2f} dB {'above' if gap >= 0 else 'below'} {label.format(theirs)}")
            if gaps:
                plus = metrics.get(name + "+", {}).get(s)
                ours = f"{scores['psnr']:.2f} dB" + (f" ({plus['psnr']:.2f} dB with self-ensemble)" if plus else "")
                lines.append(f"- {name} {s}: {ours}; {', '.join(gaps)}.")
    return lines


# ----------------------------------------------------------------------------- the card
def _count(n: Any, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}{'es' if noun.endswith('s') else 's'}"


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _hours(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _weights_sha256(source: str) -> str | None:
    """The sha256 of the weights an ``init_from`` source names, when they can be found."""
    try:
        return resolve_weights(source).sha256()
    except (ValueError, WeightsNotFoundError):
        return None


def init_line(config: dict[str, Any]) -> str | None:
    """The card line on what the run started from (``init_from``), with each source's sha256."""
    source = config.get("init_from")
    if not source:
        return None
    sources = [source] if isinstance(source, str) else list(source)
    named = []
    for item in sources:
        digest = _weights_sha256(str(item))
        named.append(f"`{portable(str(item))}`" + (f" (sha256 `{digest}`)" if digest else ""))
    return (
        f"- Initialisation: from {_and(named)} through `edsr_lib.train.load_init_weights` (what is copied "
        "and what starts fresh or as the identity is described there)."
    )


def precision_line(run: Run) -> str:
    """The card line on the arithmetic the run trained in (autocast, memory format)."""
    kinds = {"bf16": "bfloat16 autocast", "fp16": "float16 autocast with a gradient scaler", "none": "float32"}
    text = kinds.get(run.amp, run.amp)
    if run.amp != "none":
        text += "; weights, gradients and optimiser state in float32"
    if run.config.get("channels_last"):
        text += "; channels_last memory format"
    return f"- Precision: {text} (on {_and(run.devices)})."


def card_sections(
    run: Run,
    which: str,
    step: int,
    metrics: dict[str, dict[str, dict[str, float]]],
    sha256: str,
    variant: str,
    notes: Sequence[str] = (),
    scales: Sequence[int] = (),
    compare: PretrainedCfg | None = None,
) -> dict[str, str]:
    """The card sections this tool gives :func:`edsr_lib.hub.model_card`, by title; ``notes`` become lines of their own.

    ``"Training"`` adds the run's details to the card's own Training section; ``"Comparison"``
    is a section of its own.
    """
    c = run.config
    vals = run.val_events
    kind = "EMA" if which.endswith("ema") else "raw"
    val_set = set_name(c["val_dir"]) if c.get("val_dir") else None
    if which.startswith("best"):
        chosen = (
            f"the {kind} weights (`{which}/`) of step {step:,}, the best of {len(vals)} validations on {val_set} "
            f"(mean PSNR over its scales), out of {c.get('steps', '?'):,} steps"
        )
    else:
        chosen = f"the {kind} weights (`{which}/`) of the last step, {step:,}"
    lines = [f"- Weights: {chosen}; `model.safetensors` has sha256 `{sha256}`."]
    recipe = [
        f"batch {c.get('batch_size')}",
        f"{c.get('lr_patch_size')}x{c.get('lr_patch_size')} LR patches"
        + (", flips and rotations" if c.get("augment") else ""),
        f"{str(c.get('loss', '')).upper()} loss",
        f"{c.get('opt')} (betas {tuple(c.get('betas', ()))}, eps {c.get('eps')})",
        f"lr {c.get('lr')} ({c.get('sched')} schedule, min {c.get('min_lr')}, {c.get('warmup_steps')} warm-up steps)",
        f"EMA decay {c.get('ema_decay')}" if c.get("ema") else "no EMA",
        f"seed {c.get('seed')}",
    ]
    lines.append(f"- Recipe: {', '.join(recipe)}; the full settings are the run's `config.json`.")
    if c.get("degrade") is not None:
        chain = DegradeChain.from_dict(c["degrade"]).describe(scales)
        lines.append(
            f"- Degradations on the fly (`--degrade`, `edsr_lib.train.degrade`, in this order): {chain}. "
            "Each sample's draws are seeded by (seed, step, sample), so the run resumes exactly."
        )
    if c.get("val_degrade"):
        val = ", ".join(f"{k} {v}" for k, v in c["val_degrade"].items())
        lines.append(f"- Validation on degraded LR ({val}: the noise, then the JPEG, as `edsr-lib evaluate`).")
    if "$DATA/" in training_command(run):
        lines.append(PATHS_LINE)
    lines += [line for line in (init_line(c), precision_line(run)) if line]
    start = run.starts[0]
    hosts = sorted(
        {
            f"{s.get('device')}, {_count(s.get('threads'), 'thread')}, {_count(s.get('world_size', 1), 'process')}"
            for s in run.starts
        }
    )
    train_s = run.train_seconds(step)
    compute = f"- Compute: {'; '.join(hosts)}"
    if train_s:
        compute += f"; {step:,} steps in {_hours(train_s)} of training ({step / train_s:.2f} steps/s)"
    last = run.end or run.records[-1]
    until = "end" if run.end else "last record"
    compute += f"; {_hours(last['time'] - start['time'])} wall clock from the first start to the {until}."
    lines.append(compute)
    if len(run.starts) > 1:
        lines.append(f"- The run was started {len(run.starts)} times (resumed from its checkpoint):")
        lines += [f"  - at step {s['step']:,}: `{portable(s.get('command') or '(not recorded)')}`" for s in run.starts]
    lines += [f"- {note}" for note in notes]
    if vals:
        lines.append(
            f"- Training curve: `{TRAINING_LOG_NAME}` holds the {len(vals)} validation records "
            f"({val_set} PSNR/SSIM of the raw and EMA weights every {vals[0]['step']:,} steps)."
        )
    if val_set and which.startswith("best") and val_set in metrics:
        others = [name for name in metrics if not name.endswith("+") and name != val_set]
        lines.append(
            f"- {val_set} chose the step, so its score is slightly optimistic"
            + (f"; {_and(others)} played no part in training or selection." if others else ".")
        )
    comparison = [
        'Benchmark protocol (Y channel, `scale` pixels ignored at each border). "+" is self-ensemble '
        "(the mean over the eight flips and rotations of the input). Reference numbers are the published "
        f"ones; VDSR was trained on the same 291 images, {paper_reference(variant)[1]} on DIV2K (800 2K images, "
        "not available here).",
        "",
        *score_table(metrics, variant),
        "",
        *comparison_lines(metrics, variant),
    ]
    sections = {"Training": "\n".join(lines), "Comparison": "\n".join(comparison)}
    if compare is not None:
        sections[f"Against {compare.name}"] = "\n".join(against_table(metrics, compare))
    return sections


def _str_literal(text: str, indent: str, prefix: int, width: int = 120) -> str:
    """A string literal starting ``prefix`` characters after ``indent``, split in parentheses if too long."""
    one = json.dumps(text, ensure_ascii=False)
    if len(indent) + prefix + len(one) + 1 <= width:
        return one
    pieces, current = [], ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if current and len(indent) + 4 + len(json.dumps(candidate + " ", ensure_ascii=False)) > width:
            pieces.append(current + " ")
            current = word
        else:
            current = candidate
    pieces.append(current)
    inner = "".join(f"\n{indent}    {json.dumps(piece, ensure_ascii=False)}" for piece in pieces)
    return f"({inner}\n{indent})"


def cfg_entry(name: str, cfg: PretrainedCfg) -> str:
    """The ``"arch.tag": PretrainedCfg(...)`` entry of a model file's ``default_cfgs``, as text to paste.

    Only what the model file holds: the Hub organisation (the registry appends ``arch.tag``),
    the sha256, the licence and the description; the rest is in ``pretrained.json``.
    """
    fields = {"hf_hub_id": f"{HUB_ORG}/", "sha256": cfg.sha256, "license": cfg.license, "description": cfg.description}
    if cfg.for_input != "clean":
        fields["for_input"] = cfg.for_input
    indent = " " * 8
    lines = [f"    {json.dumps(name)}: PretrainedCfg("]
    lines += [f"{indent}{key}={_str_literal(str(value), indent, len(key) + 1)}," for key, value in fields.items()]
    return "\n".join([*lines, "    )"])


# ------------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="release_weights.py",
        description="Score a training run's weights, ship them in edsr_lib/weights/ with their provenance "
        "(pretrained.json) and a model card, and print their PretrainedCfg entry.",
    )
    parser.add_argument("run_dir", type=Path, help="a run folder written by `edsr-lib train`")
    parser.add_argument("--variant", required=True, help="registered model the weights are for (edsr_baseline_x2)")
    parser.add_argument("--tag", required=True, help="pretrained tag (t291: trained on the 291 images)")
    parser.add_argument(
        "--which",
        choices=("auto", *WEIGHT_FOLDERS),
        default="auto",
        help="weights folder of the run (default: the better of best_ema and best by validation PSNR)",
    )
    parser.add_argument(
        "--sets",
        nargs="+",
        type=Path,
        default=[DATASETS_DIR / name for name in DEFAULT_SETS],
        help=f"set folders to score on (default: {', '.join(DEFAULT_SETS)} in {DATASETS_DIR})",
    )
    parser.add_argument(
        "--ensemble-sets", nargs="+", metavar="NAME", help="score self-ensemble only on these sets (default: all)"
    )
    parser.add_argument("--no-ensemble", action="store_true", help="no self-ensemble scores")
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=REPO_ROOT / "edsr_lib" / "weights",
        help="folder in which <variant>.<tag>/ is written (default: the package's edsr_lib/weights)",
    )
    parser.add_argument("--device", help="device to evaluate on (default: cpu)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument(
        "--dtype",
        choices=("float32", "float16"),
        default="float32",
        help="dtype of the shipped file (float16 halves it; the weights are rounded to it before scoring)",
    )
    parser.add_argument(
        "--scores",
        nargs="+",
        type=Path,
        default=[],
        metavar="FILE",
        help="JSON scores of these weights written by tools/score_degraded.py --weights (on degraded LR, and clean "
        "with --clean), added to the metrics; a set whose clean scores they hold at every scale is not scored again",
    )
    parser.add_argument(
        "--compare", metavar="NAME", help="a registered arch.tag to hold every score against in the card (t528)"
    )
    parser.add_argument(
        "--for-input",
        choices=tuple(INPUTS),
        default="clean",
        help="what input the weights are for (PretrainedCfg.for_input): clean benchmarks or real photos",
    )
    parser.add_argument(
        "--note",
        action="append",
        default=[],
        metavar="TEXT",
        help="a line for the card's training details (why a schedule changed, what a source was); repeatable",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the release; returns the exit status."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    run = read_run(args.run_dir)
    which, step = run.pick_weights(args.which)
    folder = run.path / which
    # the variant's own architecture, so that its pretrained config loads the file (a mismatch raises here)
    model = edsr_lib.create_model(args.variant, weights=folder)
    dtype = getattr(torch, args.dtype)
    if dtype != torch.float32:  # score exactly what ships: the weights as read back from the smaller file
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(dtype))
    missing = [str(s) for s in args.sets if not (s / "HR").is_dir()]
    if missing:
        raise FileNotFoundError(f"set folders without an HR/ subfolder: {', '.join(missing)}")
    ensemble_sets = [] if args.no_ensemble else (args.ensemble_sets or [s.name for s in args.sets])
    unknown = sorted(set(ensemble_sets) - {s.name for s in args.sets})
    if unknown:
        raise ValueError(
            f"--ensemble-sets names sets not scored: {', '.join(unknown)}; "
            f"the sets: {', '.join(s.name for s in args.sets)}"
        )
    print(f"{args.variant}.{args.tag}: {run.path}/{which}/ (step {step:,})", flush=True)
    given: dict[str, dict[str, Any]] = {}
    for path in args.scores:
        for key, per_scale in json.loads(path.read_text()).items():
            given.setdefault(key, {}).update(per_scale)
    measured = {key for key, per_scale in given.items() if all(f"x{s}" in per_scale for s in model.scales)}
    to_score = [s for s in args.sets if s.name not in measured or s.name in ensemble_sets]
    t0 = time.perf_counter()
    metrics, _ = score(model, to_score, model.scales, ensemble_sets, device=args.device)
    print(f"scored in {time.perf_counter() - t0:.0f} s; self-ensemble on: {', '.join(ensemble_sets) or 'none'}")
    print("\n".join(score_table(metrics, args.variant)))
    print("\n".join(comparison_lines(metrics, args.variant)))
    _check_against_log(run, which, step, metrics)
    reported = [s.name for s in args.sets]
    for key, per_scale in given.items():
        if key not in metrics and split_metric_key(key)[0] in reported:  # not measured here, of a reported set
            metrics[key] = per_scale
    metrics = ordered_metrics(metrics, reported)
    compare = edsr_lib.get_pretrained_cfg(args.compare) if args.compare else None

    name = f"{args.variant}.{args.tag}"
    out = args.out_dir / name
    save_pretrained(model, out, dtype=dtype)
    notes = list(args.note)
    if dtype != torch.float32:
        megabytes = (out / "model.safetensors").stat().st_size / 2**20
        notes.append(
            f"Storage: the tensors are stored in {args.dtype} ({megabytes:.1f} MiB, half the float32 file) and load "
            "into a float32 model; every score here is of these stored weights."
        )
    kind = "EMA" if which.endswith("ema") else "raw"
    training_data = training_data_text(run, model.scales)
    first = next(iter(metrics.values()), {})
    headline = next(iter(first.items()), None)
    trained = (
        "trained" if args.for_input == "clean" else "fine-tuned for JPEG and noisy photos (degradations on the fly)"
    )
    cfg = PretrainedCfg(
        hf_hub_id=f"{HUB_ORG}/{name}",
        sha256=sha256sum(out / "model.safetensors"),
        license=LICENSE,
        training_data=training_data,
        training_command=training_command(run),
        steps=step,
        metrics=metrics,
        package_file=f"{name}/model.safetensors",
        description=(
            f"{args.variant} {trained} by edsr-lib on {training_sets(run)}, {step:,} steps ({kind} weights)"
            + (f"; {next(iter(metrics))} {headline[0]}: {headline[1]['psnr']:.2f} dB" if headline else "")
        ),
        for_input=args.for_input,
        architecture=args.variant,
        tag=args.tag,
    )
    provenance = {key: getattr(cfg, key) for key in PROVENANCE_FIELDS}
    card = model_card(
        model,
        cfg,
        sections=card_sections(run, which, step, metrics, cfg.sha256, args.variant, notes, model.scales, compare),
    )
    atomic_write(out / PROVENANCE_NAME, (json.dumps(provenance, indent=2) + "\n").encode("utf-8"))
    atomic_write(out / "README.md", card.encode("utf-8"))
    curve = "".join(json.dumps(_curve_record(run, r)) + "\n" for r in run.val_events)
    atomic_write(out / TRAINING_LOG_NAME, curve.encode("utf-8"))
    print(f"\nwrote {out}/: {', '.join(sorted(p.name for p in out.iterdir() if not p.name.startswith('.')))}")
    for path in absolute_paths(json.dumps(provenance) + card):
        print(f"warning: the release names {path}, a path of this machine", file=sys.stderr)
    print(f"sha256 {cfg.sha256}\n")
    print(f"the entry for default_cfgs in {type(model).__module__.replace('.', '/')}.py (new weights, new sha256):\n")
    print(cfg_entry(name, cfg) + ",")
    return 0


def _curve_record(run: Run, record: dict[str, Any]) -> dict[str, Any]:
    """A validation record for the training curve: step, training seconds, scores."""
    return {"step": record["step"], "train_s": run.train_seconds(record["step"]), "val": record["val"]}


def _check_against_log(run: Run, which: str, step: int, metrics: dict[str, dict[str, dict[str, float]]]) -> None:
    """Warn when the score just measured on the validation set differs from the one the run logged."""
    if not run.config.get("val_dir"):
        return
    val_set = set_name(run.config["val_dir"])
    logged = next((r["val"] for r in run.val_events if r["step"] == step), None)
    kind = "ema" if which.endswith("ema") else "raw"
    if val_set not in metrics or not logged or kind not in logged:
        return
    for s, scores in metrics[val_set].items():
        then = logged[kind].get(s, {}).get("psnr")
        if then is not None and abs(then - scores["psnr"]) > 0.01:
            print(
                f"warning: {val_set} {s} is {scores['psnr']:.3f} dB now but was logged as {then:.3f} dB at step {step}",
                file=sys.stderr,
            )


def _cli() -> int:
    try:
        return main()
    except (ValueError, FileNotFoundError) as err:
        print(f"release_weights.py: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(_cli())
