#!/usr/bin/env python
"""Release weights this project trained: score them, ship them in the package, describe them.

A maintainer's tool, run from the repository root on a finished training run::

    .venv/bin/python tools/release_weights.py runs/edsr_baseline_x2 --variant edsr_baseline_x2 \\
        --tag t291 --ensemble-sets Set5 Set14 --write-cfg

It

1. loads the chosen weights folder of the run (``--which``; ``auto`` takes the better of
   ``best_ema/`` and ``best/`` by the run's validation PSNR) as ``VARIANT``, whose default
   architecture it must match;
2. scores them with :func:`edsr_lib.evaluate` (benchmark protocol) on each set and each
   scale the model serves, with and without self-ensemble, and prints the table;
3. writes ``edsr_lib/weights/<variant>.<tag>/`` (``--out-dir`` replaces ``edsr_lib/weights``):
   ``model.safetensors`` and ``config.json`` through :func:`edsr_lib.hub.save_pretrained`,
   a ``README.md`` model card (training data, every command that started or resumed the
   run, steps, time, device, scores, comparison with VDSR and the paper), and
   ``training_log.jsonl``, the run's validation records, for the docs' training curve;
4. prints the ``PretrainedCfg(...)`` entry for the model file's ``default_cfgs`` and, with
   ``--write-cfg``, puts it there (replacing an entry of the same ``arch.tag``).

Metrics follow :class:`edsr_lib.PretrainedCfg`: ``{"Set5": {"x2": {"psnr", "ssim"}}}`` per
set, and the self-ensemble scores under the set name with a ``+`` (``"Set5+"``), the
paper's notation for them. Nothing is pushed to the Hub: ``hf_hub_id`` names the
repository the files are ready for.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The image sets live beside the repository (``EDSR_LIB_DATASETS`` points elsewhere).
DATASETS_DIR = Path(os.environ.get("EDSR_LIB_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))
DEFAULT_SETS = ("Set5", "Set14", "B100")
WEIGHT_FOLDERS = ("best_ema", "best", "final_ema", "final")
HUB_ORG = "edsr-lib"
LICENSE = "mit"
TRAINING_LOG_NAME = "training_log.jsonl"
#: Images left out at a scale are named up to this many, and counted beyond.
MAX_NAMED = 3

#: Published PSNR / SSIM on the benchmark protocol to compare against (SPEC and issue 4).
REFERENCES: dict[str, dict[str, dict[str, tuple[float, float | None]]]] = {
    "bicubic": {
        "Set5": {"x2": (33.66, 0.9299), "x3": (30.39, 0.8682), "x4": (28.42, 0.8104)},
        "Set14": {"x2": (30.24, 0.8688), "x4": (26.00, 0.7027)},
        "B100": {"x2": (29.56, 0.8431), "x4": (25.96, 0.6675)},
    },
    "VDSR (291 images)": {
        "Set5": {"x2": (37.53, 0.9587), "x3": (33.66, 0.9213), "x4": (31.35, 0.8838)},
        "Set14": {"x2": (33.03, 0.9124), "x3": (29.77, 0.8314), "x4": (28.01, 0.7674)},
        "B100": {"x2": (31.90, 0.8960), "x3": (28.82, 0.7976), "x4": (27.29, 0.7251)},
    },
}
VDSR = "VDSR (291 images)"

#: The paper's own numbers (DIV2K-trained), per model family: (column label, label in sentences, scores).
PAPER: dict[str, tuple[str, str, dict[str, dict[str, tuple[float, float | None]]]]] = {
    # issue 4: "The paper's own EDSR-baseline, trained on DIV2K, reaches about 37.99 dB at x2";
    # the paper publishes no other baseline number, so MDSR-baseline is held against it too
    "baseline": ("EDSR-baseline, paper (DIV2K)", "the paper's EDSR-baseline", {"Set5": {"x2": (37.99, None)}}),
    # SPEC, the paper's Table 4
    "edsr": (
        "EDSR, paper (DIV2K)",
        "the paper's EDSR",
        {
            "Set5": {"x2": (38.11, 0.9601), "x3": (34.65, 0.9282), "x4": (32.46, 0.8968)},
            "Set14": {"x2": (33.92, 0.9195), "x4": (28.80, 0.7876)},
            "B100": {"x2": (32.32, 0.9013), "x4": (27.71, 0.7420)},
        },
    ),
    "mdsr": (
        "MDSR, paper (DIV2K)",
        "the paper's MDSR",
        {
            "Set5": {"x2": (38.11, 0.9602), "x3": (34.66, 0.9280), "x4": (32.50, 0.8973)},
            "Set14": {"x2": (33.85, 0.9198), "x4": (28.72, 0.7857)},
            "B100": {"x2": (32.29, 0.9007), "x4": (27.72, 0.7418)},
        },
    ),
}


def paper_reference(variant: str) -> tuple[str, str, dict[str, dict[str, tuple[float, float | None]]]]:
    """The paper's numbers to hold ``variant`` against: (column label, sentence label, scores)."""
    if "baseline" in variant:
        return PAPER["baseline"]
    return PAPER["mdsr"] if variant.startswith("mdsr") else PAPER["edsr"]


# ------------------------------------------------------------------------------ the run
@dataclasses.dataclass
class Run:
    """What a training run folder says about itself.

    Attributes:
        path: The run folder.
        config: Its ``config.json`` (a ``TrainConfig``).
        records: Every record of ``log.jsonl``, in order.
    """

    path: Path
    config: dict[str, Any]
    records: list[dict[str, Any]]

    @property
    def starts(self) -> list[dict[str, Any]]:
        """The ``start`` records: the first run and every resume."""
        return [r for r in self.records if r.get("event") == "start"]

    @property
    def val_events(self) -> list[dict[str, Any]]:
        """One ``val`` record per step (a step validated twice, across a resume, keeps its last)."""
        by_step = {r["step"]: r for r in self.records if r.get("event") == "val"}
        return [by_step[s] for s in sorted(by_step)]

    @property
    def end(self) -> dict[str, Any] | None:
        """The last ``end`` record, if the run finished."""
        ends = [r for r in self.records if r.get("event") == "end"]
        return ends[-1] if ends else None

    def train_seconds(self, step: int) -> float | None:
        """Training time (optimiser steps only, as the trainer counts it) at ``step``."""
        times = [r["train_s"] for r in self.records if "train_s" in r and r.get("step", 0) <= step]
        return times[-1] if times else None


def read_run(path: str | Path) -> Run:
    """Read a run folder's ``config.json`` and ``log.jsonl``.

    Raises:
        FileNotFoundError: If the folder or either file is missing.
        ValueError: If the log has no ``start`` record.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"run folder {path} does not exist")
    files = {name: path / name for name in ("config.json", "log.jsonl")}
    for name, file in files.items():
        if not file.is_file():
            raise FileNotFoundError(f"{path} has no {name}; is it a folder written by `edsr-lib train`?")
    config = json.loads(files["config.json"].read_text())
    records = [json.loads(line) for line in files["log.jsonl"].read_text().splitlines() if line.strip()]
    run = Run(path, config, records)
    if not run.starts:
        raise ValueError(f"{files['log.jsonl']} has no 'start' record")
    return run


def pick_weights(run: Run, which: str) -> tuple[str, int]:
    """The weights folder to release and the step its weights are from.

    ``best``/``best_ema`` hold the weights of the best validation so far, ``final``/``final_ema``
    those of the last step; ``auto`` is the better of ``best_ema`` and ``best``.

    Raises:
        ValueError: If the log cannot tell the step, or ``auto`` has neither folder.
        FileNotFoundError: If the folder does not exist.
    """
    vals = run.val_events
    best = vals[-1].get("best", {}) if vals else {}
    if which == "auto":
        candidates = [(best[key], name) for name, key in (("best_ema", "ema"), ("best", "raw")) if key in best]
        candidates = [(psnr, name) for psnr, name in candidates if (run.path / name).is_dir()]
        if not candidates:
            raise ValueError(f"{run.path} has no best/ or best_ema/ weights with a logged validation score")
        which = max(candidates)[1]
    folder = run.path / which
    if not folder.is_dir():
        have = [name for name in WEIGHT_FOLDERS if (run.path / name).is_dir()]
        raise FileNotFoundError(f"{folder} does not exist; the run has: {', '.join(have) or 'no weights folders'}")
    if which.startswith("best"):
        step_key = "ema_step" if which == "best_ema" else "raw_step"
        if step_key not in best:
            raise ValueError(f"the log of {run.path} records no {step_key!r}: cannot tell which step {which}/ is from")
        return which, int(best[step_key])
    if run.end is None:
        raise ValueError(f"the log of {run.path} has no 'end' record: {which}/ is from an unfinished run")
    return which, int(run.end["step"])


def _set_name(folder: str) -> str:
    path = Path(folder)
    return path.parent.name if path.name.upper() == "HR" else path.name


def training_images(run: Run, scales: Sequence[int]) -> tuple[int, dict[int, list[str]]]:
    """How many training images the run had, and those left out at each scale.

    An image is left out at a scale when its LR is smaller than an LR patch (as the
    trainer's patch sampler decides); they are named only when that count agrees with the
    log's ``images`` record, and the folders are still there to look at.
    """
    from PIL import Image

    from edsr_lib.io import list_images

    dirs = [Path(d) for d in run.config.get("train_dirs", [])]
    if not all(d.is_dir() for d in dirs):
        return 0, {}
    paths = list_images(dirs)
    sizes = {}
    for p in paths:
        with Image.open(p) as image:  # reads the header only
            sizes[f"{_set_name(str(p.parent))}/{p.name}"] = image.size
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
    return " + ".join(_set_name(d) for d in run.config.get("train_dirs", [])) or "unknown data"


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


def training_command(run: Run) -> str:
    """The command that trained the weights; the distinct commands in order, joined by `` ; ``, if resumes differed."""
    commands = list(dict.fromkeys(s.get("command") or "(not recorded)" for s in run.starts))
    return " ; ".join(commands)


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
    from edsr_lib import evaluate

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
        if psnr is None:
            return "-"
        return f"{psnr:.2f}" + (f" / {ssim:.4f}" if ssim is not None else "")

    for name, per_scale in metrics.items():
        if name.endswith("+"):
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
    references = {VDSR: REFERENCES[VDSR], paper_name: paper}
    names = {VDSR: "VDSR ({:.2f} dB, same 291 images)", paper_name: paper_name + " (about {:.2f} dB, DIV2K)"}
    lines = []
    for name, per_scale in metrics.items():
        if name.endswith("+"):
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
    from edsr_lib.hub import sha256sum
    from edsr_lib.registry import get_pretrained_cfg, is_model

    path = Path(source).expanduser()
    if path.is_dir():
        path = path / "model.safetensors"
    if path.is_file():
        return sha256sum(path)
    if is_model(source):
        try:
            return get_pretrained_cfg(source).sha256
        except (KeyError, ValueError):
            return None
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
        named.append(f"`{item}`" + (f" (sha256 `{digest}`)" if digest else ""))
    return (
        f"- Initialisation: from {_and(named)} through `edsr_lib.train.load_init_weights` (what is copied "
        "and what starts fresh or as the identity is described there)."
    )


def precision_line(config: dict[str, Any], starts: list[dict[str, Any]]) -> str:
    """The card line on the arithmetic the run trained in (autocast, memory format)."""
    devices = {str(s.get("device", "cpu")).split(":")[0] for s in starts} or {"cpu"}
    amp = config.get("amp", "auto")
    if amp == "auto":
        amp = "bf16" if devices == {"cuda"} else "none"  # the trainer's choice; fp16 only on GPUs without bf16
    kinds = {"bf16": "bfloat16 autocast", "fp16": "float16 autocast with a gradient scaler", "none": "float32"}
    text = kinds.get(amp, str(amp))
    if amp != "none":
        text += "; weights, gradients and optimiser state in float32"
    if config.get("channels_last"):
        text += "; channels_last memory format"
    return f"- Precision: {text} (on {_and(sorted(devices))})."


def card_sections(
    run: Run,
    which: str,
    step: int,
    metrics: dict[str, dict[str, dict[str, float]]],
    sha256: str,
    variant: str,
    notes: Sequence[str] = (),
) -> str:
    """The sections this tool adds to :func:`edsr_lib.hub.model_card`'s card; ``notes`` become lines of its own."""
    c = run.config
    vals = run.val_events
    kind = "EMA" if which.endswith("ema") else "raw"
    val_set = _set_name(c["val_dir"]) if c.get("val_dir") else None
    if which.startswith("best"):
        chosen = (
            f"the {kind} weights (`{which}/`) of step {step:,}, the best of {len(vals)} validations on {val_set} "
            f"(mean PSNR over its scales), out of {c.get('steps', '?'):,} steps"
        )
    else:
        chosen = f"the {kind} weights (`{which}/`) of the last step, {step:,}"
    lines = ["## Training details", "", f"- Weights: {chosen}; `model.safetensors` has sha256 `{sha256}`."]
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
    lines += [line for line in (init_line(c), precision_line(c, run.starts)) if line]
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
        lines += [f"  - at step {s['step']:,}: `{s.get('command')}`" for s in run.starts]
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
    lines += [
        "",
        "## Comparison",
        "",
        'Benchmark protocol (Y channel, `scale` pixels ignored at each border). "+" is self-ensemble '
        "(the mean over the eight flips and rotations of the input). Reference numbers are the published "
        f"ones; VDSR was trained on the same 291 images, {paper_reference(variant)[1]} on DIV2K (800 2K images, "
        "not available here).",
        "",
        *score_table(metrics, variant),
        "",
        *comparison_lines(metrics, variant),
        "",
    ]
    return "\n".join(lines)


def full_card(model: Any, cfg: Any, sections: str) -> str:
    """:func:`edsr_lib.hub.model_card` with ``sections`` after its results (before the licence)."""
    from edsr_lib.hub import model_card

    card = model_card(model, cfg)
    for marker in ("## License\n", "## Citation\n"):
        at = card.find("\n" + marker)
        if at >= 0:
            return card[: at + 1] + sections + "\n" + card[at + 1 :]
    return card + "\n" + sections


# ------------------------------------------------------------------ the PretrainedCfg entry
def _str_literal(text: str, indent: str, prefix: int, width: int = 120) -> str:
    """A double-quoted string literal, split into implicit concatenation in parentheses if too long.

    The literal starts ``prefix`` characters after ``indent``; it is split when that line
    would be longer than ``width``.
    """
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
    inner = "".join(f"\n{indent}    {json.dumps(p, ensure_ascii=False)}" for p in pieces)
    return f"({inner}\n{indent})"


def _dict_rows(value: dict[str, Any], indent: str, width: int = 120) -> list[str]:
    """``"key": value,`` lines of a dict literal, nested dicts opened one level at a time until each line fits."""
    rows = []
    for k, v in value.items():
        one = f"{indent}{json.dumps(k)}: {json.dumps(v)},"
        if len(one) <= width or not isinstance(v, dict):
            rows.append(one)
        else:
            rows += [f"{indent}{json.dumps(k)}: {{", *_dict_rows(v, indent + "    ", width), f"{indent}}},"]
    return rows


def cfg_entry_source(key: str, cfg: Any, indent: str = "    ") -> str:
    """Python source of ``"key": PretrainedCfg(...)`` (no trailing comma) at ``indent``."""
    arg_indent = indent + "    "
    lines = [f"{indent}{json.dumps(key)}: PretrainedCfg("]
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.name in ("architecture", "tag") or value is None or value == {}:
            continue
        if f.name == "metrics":
            lines += [f"{arg_indent}metrics={{", *_dict_rows(value, arg_indent + "    "), f"{arg_indent}}},"]
        elif isinstance(value, str):
            lines.append(f"{arg_indent}{f.name}={_str_literal(value, arg_indent, len(f.name) + 1)},")
        else:
            lines.append(f"{arg_indent}{f.name}={value!r},")
    lines.append(f"{indent})")
    return "\n".join(lines)


def _char_offset(lines: list[str], lineno: int, col: int) -> int:
    """Offset in the text of ``ast``'s (1-based line, UTF-8 byte column) position."""
    return sum(len(line) for line in lines[: lineno - 1]) + len(lines[lineno - 1].encode()[:col].decode())


def patch_default_cfgs(source: str, key: str, cfg: Any) -> str:
    """``source`` with ``default_cfgs[key]`` set to ``cfg``: an entry of that key replaced in place, else appended.

    Raises:
        ValueError: If the module has no ``default_cfgs = {...}`` dict literal at top level.
    """
    tree = ast.parse(source)
    node = None
    for stmt in tree.body:
        targets = (
            stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
        )
        if any(isinstance(t, ast.Name) and t.id == "default_cfgs" for t in targets):
            node = stmt.value
    if not isinstance(node, ast.Dict):
        raise ValueError("the model file has no top-level `default_cfgs = {...}` dict literal to put the entry in")
    lines = source.splitlines(keepends=True)

    def pos(lineno: int, col: int) -> int:
        return _char_offset(lines, lineno, col)

    for k, v in zip(node.keys, node.values, strict=True):
        if isinstance(k, ast.Constant) and k.value == key:
            indent = " " * k.col_offset
            start, stop = pos(k.lineno, k.col_offset), pos(v.end_lineno, v.end_col_offset)
            return source[:start] + cfg_entry_source(key, cfg, indent).lstrip(" ") + source[stop:]
    dict_start = pos(node.lineno, node.col_offset)
    dict_stop = pos(node.end_lineno, node.end_col_offset)
    if not node.keys or node.end_lineno == node.lineno:
        # empty or one-line dict: rewrite it, one entry a line
        entries = [
            f"    {ast.get_source_segment(source, k) + ': ' if k is not None else '**'}"
            f"{ast.get_source_segment(source, v)},"
            for k, v in zip(node.keys, node.values, strict=True)
        ]
        body = "\n".join([*entries, cfg_entry_source(key, cfg) + ","])
        return source[:dict_start] + "{\n" + body + "\n}" + source[dict_stop:]
    last = pos(node.values[-1].end_lineno, node.values[-1].end_col_offset)
    comma = "" if source[last:dict_stop].lstrip().startswith(",") else ","
    closing_line = pos(node.end_lineno, 0)  # ruff keeps the brace of a multi-line dict on its own line
    indent = " " * (node.keys[-1].col_offset if node.keys[-1] is not None else 4)
    return (
        source[:last]
        + comma
        + source[last:closing_line]
        + cfg_entry_source(key, cfg, indent)
        + ",\n"
        + source[closing_line:]
    )


def write_cfg(model_file: Path, key: str, cfg: Any) -> None:
    """Patch ``model_file``'s ``default_cfgs`` in place (atomically), checking that the result compiles."""
    from edsr_lib.hub import atomic_write

    patched = patch_default_cfgs(model_file.read_text(encoding="utf-8"), key, cfg)
    compile(patched, str(model_file), "exec")
    atomic_write(model_file, patched.encode("utf-8"))


# ------------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="release_weights.py",
        description="Score a training run's weights, ship them in edsr_lib/weights/ with a model card, "
        "and print (or write) their PretrainedCfg entry.",
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
    parser.add_argument(
        "--model-file", type=Path, help="file whose default_cfgs --write-cfg patches (default: the variant's)"
    )
    parser.add_argument("--write-cfg", action="store_true", help="put the PretrainedCfg entry into the model file")
    parser.add_argument("--device", help="device to evaluate on (default: cpu)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument(
        "--dtype",
        choices=("float32", "float16"),
        default="float32",
        help="dtype of the shipped file (float16 halves it; the weights are rounded to it before scoring)",
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
    import torch

    import edsr_lib
    from edsr_lib.hub import atomic_write, save_pretrained, sha256sum
    from edsr_lib.registry import PretrainedCfg

    if args.threads:
        torch.set_num_threads(args.threads)
    run = read_run(args.run_dir)
    which, step = pick_weights(run, args.which)
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
    t0 = time.perf_counter()
    metrics, _ = score(model, args.sets, model.scales, ensemble_sets, device=args.device)
    print(f"scored in {time.perf_counter() - t0:.0f} s; self-ensemble on: {', '.join(ensemble_sets) or 'none'}")
    print("\n".join(score_table(metrics, args.variant)))
    print("\n".join(comparison_lines(metrics, args.variant)))
    _check_against_log(run, which, step, metrics)

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
    cfg = PretrainedCfg(
        hf_hub_id=f"{HUB_ORG}/{name}",
        filename="model.safetensors",
        sha256=sha256sum(out / "model.safetensors"),
        license=LICENSE,
        training_data=training_data,
        training_command=training_command(run),
        steps=step,
        metrics=metrics,
        package_file=f"{name}/model.safetensors",
        description=(
            f"{args.variant} trained by edsr-lib on {training_sets(run)}, {step:,} steps ({kind} weights)"
            + (f"; {next(iter(metrics))} {headline[0]}: {headline[1]['psnr']:.2f} dB" if headline else "")
        ),
        architecture=args.variant,
        tag=args.tag,
    )
    card = full_card(model, cfg, card_sections(run, which, step, metrics, cfg.sha256, args.variant, notes))
    atomic_write(out / "README.md", card.encode("utf-8"))
    curve = "".join(json.dumps(_curve_record(run, r)) + "\n" for r in run.val_events)
    atomic_write(out / TRAINING_LOG_NAME, curve.encode("utf-8"))
    print(f"\nwrote {out}/: {', '.join(sorted(p.name for p in out.iterdir() if not p.name.startswith('.')))}")
    print(f"sha256 {cfg.sha256}\n")
    print(cfg_entry_source(name, cfg) + ",")
    if args.write_cfg:
        model_file = args.model_file or Path(sys.modules[type(model).__module__].__file__)
        write_cfg(model_file, name, cfg)
        print(f"\nwrote the entry into {model_file} (default_cfgs[{name!r}])")
    return 0


def _curve_record(run: Run, record: dict[str, Any]) -> dict[str, Any]:
    """A validation record for the training curve: step, training seconds, scores."""
    return {"step": record["step"], "train_s": run.train_seconds(record["step"]), "val": record["val"]}


def _check_against_log(run: Run, which: str, step: int, metrics: dict[str, dict[str, dict[str, float]]]) -> None:
    """Warn when the score just measured on the validation set differs from the one the run logged."""
    if not run.config.get("val_dir"):
        return
    val_set = _set_name(run.config["val_dir"])
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
