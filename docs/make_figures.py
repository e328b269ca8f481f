"""Draw the documentation's figures from the shipped models and a real training log.

    python docs/make_figures.py                      # writes docs/assets/*.png
    python docs/make_figures.py --out-dir /tmp/figs  # somewhere else
    python docs/make_figures.py --datasets DIR       # image sets elsewhere (default ../shared/datasets)

``comparison_x2.png``: small crops of Set5 and Set14 images, side by side: the LR input
(enlarged pixel by pixel), MATLAB bicubic, each model of :data:`MODELS` that has
pretrained weights, and the HR original, with the PSNR of each crop under it (Y channel,
as the benchmark scores whole images). A model without weights gets no panel; the
footer names it. The crops are computed exactly: each method runs on an LR window that
holds the crop plus the model's receptive radius, which gives the same pixels as a run
on the whole image.

``training_curve.png``: Set5 x2 PSNR against the training step, for the raw and the EMA
weights of our EDSR-baseline x2 run, with the bicubic and VDSR scores as lines. It reads
the ``training_log.jsonl`` shipped beside the weights, or the run's own ``log.jsonl``.

``real_jpeg_x4.png``: the project's own sample image (``examples/data/sample.png``) saved as a
quality-:data:`JPEG_QUALITY` JPEG, as photos are shared, and upscaled x4 by the default
weights (for clean input) and by the weights for photos (``for_input="real"``), side by
side with the JPEG enlarged pixel by pixel and MATLAB bicubic. A real JPEG has no original
to score against, so the panels carry no PSNR (docs/models.md has the scores).

Drawn with Pillow and its built-in font only, so that the figures look the same anywhere.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import edsr_lib
from edsr_lib.io import read_image, to_tensor
from edsr_lib.metrics import psnr
from edsr_lib.published import BICUBIC, VDSR
from edsr_lib.registry import split_model_name_tag

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSETS = REPO_ROOT / "docs" / "assets"
DATASETS = Path(os.environ.get("EDSR_LIB_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))

SCALE = 2
#: (set, image, top, left) of each crop, in HR pixels; crops are CROP x CROP.
CROPS: tuple[tuple[str, str, int, int], ...] = (
    ("Set5", "butterfly", 150, 120),
    ("Set14", "barbara", 400, 400),
    ("Set14", "zebra", 60, 190),
    ("Set14", "ppt3", 240, 30),
)
CROP = 64
#: Panel label -> registered models, best first; the first with pretrained weights is shown.
MODELS: dict[str, tuple[str, ...]] = {
    "EDSR-baseline": (f"edsr_baseline_x{SCALE}",),
    "MDSR": ("mdsr", "mdsr_baseline"),
}
#: How a panel names the model it shows, when that is not the panel's label.
DISPLAY_NAMES = {"mdsr_baseline": "MDSR-baseline"}
#: Training logs for the curve, preferred first (paths relative to the repository).
CURVE_LOGS = (
    Path("edsr_lib/weights/edsr_baseline_x2.t291/training_log.jsonl"),
    Path("runs/edsr_baseline_x2/log.jsonl"),
)
#: Published Set5 x2 PSNR: bicubic, and VDSR trained on the same 291 images.
REFERENCE_LINES = {"bicubic": BICUBIC["Set5"]["x2"][0], "VDSR (291 images)": VDSR["Set5"]["x2"][0]}

#: The JPEG photo of the real-input figure: the project's own image, at this quality and scale.
SAMPLE = REPO_ROOT / "examples" / "data" / "sample.png"
JPEG_QUALITY = 40
REAL_SCALE = 4

ZOOM = 3  # display pixels per HR pixel
GAP = 8
TEXT = (40, 40, 40)
FOOTER_TEXT = (90, 90, 90)
CURVE_COLOURS = {"raw": (90, 140, 200), "ema": (220, 110, 30)}
LINE_COLOURS = {"bicubic": (130, 130, 130), "VDSR (291 images)": (40, 150, 70)}


def font(size: int) -> ImageFont.ImageFont:
    """Pillow's built-in font (the same on every machine)."""
    return ImageFont.load_default(size=size)


def wrap(text: str, text_font: ImageFont.ImageFont, width: int) -> list[str]:
    """``text`` broken into lines no wider than ``width`` pixels."""
    lines: list[str] = []
    for word in text.split():
        if lines and ImageDraw.Draw(Image.new("L", (1, 1))).textlength(f"{lines[-1]} {word}", text_font) <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


# ------------------------------------------------------------------------ comparison
def pretrained_model(candidates: Sequence[str]) -> str | None:
    """``arch.tag`` of the default weights of the first candidate that has pretrained weights."""
    with_weights = {split_model_name_tag(name)[0] for name in edsr_lib.list_models(pretrained=True)}
    for arch in candidates:
        if arch in with_weights:
            return edsr_lib.get_pretrained_cfg(arch).name
    return None


def crop_outputs(
    hr: np.ndarray, top: int, left: int, models: dict[str, edsr_lib.SRModel]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The LR crop and each method's output crop (uint8 HWC), computed on a window around the crop."""
    from edsr_lib.ops import imresize, modcrop

    hr = modcrop(hr, SCALE)
    lr = imresize(hr, 1 / SCALE)  # the official LR files, byte for byte
    y0, x0, n = top // SCALE, left // SCALE, CROP // SCALE
    # bicubic needs 2 pixels of context; a model its receptive radius
    margin = max([4, *(m.receptive_radius(SCALE) for m in models.values())])
    wy0, wx0 = max(0, y0 - margin), max(0, x0 - margin)
    wy1, wx1 = min(lr.shape[0], y0 + n + margin), min(lr.shape[1], x0 + n + margin)
    window = np.ascontiguousarray(lr[wy0:wy1, wx0:wx1])
    outputs = {"bicubic": imresize(window, SCALE)}  # MATLAB uint8 semantics, as edsr_lib.evaluate
    for label, model in models.items():
        outputs[label] = edsr_lib.upscale(model, window, SCALE)
    oy, ox = SCALE * (y0 - wy0), SCALE * (x0 - wx0)
    crops = {label: out[oy : oy + CROP, ox : ox + CROP] for label, out in outputs.items()}
    return lr[y0 : y0 + n, x0 : x0 + n], crops


def crop_psnr(sr: np.ndarray, hr: np.ndarray) -> float:
    """PSNR of a crop on the Y channel (no border ignored: the crop lies inside the image)."""
    return float(psnr(to_tensor(sr), to_tensor(hr), crop_border=0)[0])


def comparison_figure(datasets: Path) -> tuple[Image.Image, list[str]]:
    """The comparison figure and the labels of the models left out for lack of weights."""
    names = {label: pretrained_model(candidates) for label, candidates in MODELS.items()}
    models = {label: edsr_lib.create_model(name, pretrained=True) for label, name in names.items() if name}
    missing = [label for label, name in names.items() if not name]
    panel = CROP * ZOOM
    label_font, score_font, footer_font = font(15), font(15), font(14)
    caption_h = 44
    columns = ["LR", "bicubic", *models, "HR"]
    width = len(columns) * panel + (len(columns) + 1) * GAP
    row_h = panel + caption_h
    footer = wrap(
        f"x{SCALE}. PSNR of each {CROP}x{CROP} crop on the Y channel (BT.601); LR made with MATLAB's bicubic "
        "imresize. Models without pretrained weights, not shown: " + (", ".join(missing) or "none") + ".",
        footer_font,
        width - 2 * GAP,
    )
    footer_h = 20 * len(footer) + GAP
    height = GAP + len(CROPS) * (row_h + GAP) + footer_h
    figure = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(figure)

    for row, (set_name, image_name, top, left) in enumerate(CROPS):
        hr_path = datasets / set_name / "HR" / f"{image_name}.png"
        hr = read_image(hr_path)
        if hr.shape[2] != 3:
            raise ValueError(f"{hr_path}: the comparison needs RGB images")
        lr_crop, outputs = crop_outputs(hr, top, left, models)
        hr_crop = hr[top : top + CROP, left : left + CROP]
        panels = {"LR": lr_crop, **outputs, "HR": hr_crop}
        y = GAP + row * (row_h + GAP)
        for col, label in enumerate(columns):
            x = GAP + col * (panel + GAP)
            figure.paste(Image.fromarray(panels[label]).resize((panel, panel), Image.NEAREST), (x, y))
            if label == "LR":
                lines = (f"{set_name} {image_name}", f"LR input ({CROP // SCALE}x{CROP // SCALE})")
            elif label == "HR":
                lines = ("HR original", f"{CROP}x{CROP} crop")
            else:
                arch, tag = split_model_name_tag(names[label]) if label != "bicubic" else ("", "")
                title = "bicubic" if label == "bicubic" else f"{DISPLAY_NAMES.get(arch, label)} ({tag})"
                lines = (title, f"{crop_psnr(panels[label], hr_crop):.2f} dB")
            draw.text((x + 2, y + panel + 4), lines[0], fill=TEXT, font=label_font)
            draw.text((x + 2, y + panel + 23), lines[1], fill=TEXT, font=score_font)

    for i, line in enumerate(footer):
        draw.text((GAP, height - footer_h + 20 * i), line, fill=FOOTER_TEXT, font=footer_font)
    return figure, missing


# ---------------------------------------------------------------------- real input
def real_jpeg_figure(arch: str = f"edsr_baseline_x{REAL_SCALE}") -> tuple[Image.Image, list[str]] | None:
    """The JPEG sample upscaled by the default tag and the tag for photos; ``None`` without a tag for photos.

    Returns:
        The figure and the ``arch.tag`` names of the two models.
    """
    from edsr_lib.ops import imresize
    from edsr_lib.ops.degrade import jpeg_roundtrip

    real = next((c for c in edsr_lib.list_pretrained(arch) if c.for_input == "real" and c.has_weights), None)
    if real is None:
        return None
    default = edsr_lib.get_pretrained_cfg(arch)
    photo = jpeg_roundtrip(read_image(SAMPLE)[:, :, :3], JPEG_QUALITY)
    panels = {
        f"JPEG input (quality {JPEG_QUALITY})": photo,
        "bicubic": imresize(photo, REAL_SCALE),
        f"{default.name} (for clean input)": edsr_lib.upscale(default.name, photo, REAL_SCALE),
        f"{real.name} (for photos)": edsr_lib.upscale(real.name, photo, REAL_SCALE),
    }
    side = photo.shape[0] * REAL_SCALE
    label_font, footer_font = font(15), font(14)
    width = len(panels) * side + (len(panels) + 1) * GAP
    footer = wrap(
        f"x{REAL_SCALE}. examples/data/sample.png ({photo.shape[1]}x{photo.shape[0]}, the project's own image) saved "
        f"as a quality-{JPEG_QUALITY} JPEG with Pillow, then upscaled; the input is enlarged pixel by pixel. "
        "Drawn by docs/make_figures.py.",
        footer_font,
        width - 2 * GAP,
    )
    height = GAP + side + 28 + GAP + 20 * len(footer)
    figure = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(figure)
    for col, (label, image) in enumerate(panels.items()):
        x = GAP + col * (side + GAP)
        figure.paste(Image.fromarray(image).resize((side, side), Image.NEAREST), (x, GAP))
        draw.text((x + 2, GAP + side + 5), label, fill=TEXT, font=label_font)
    for i, line in enumerate(footer):
        draw.text((GAP, GAP + side + 28 + GAP + 20 * i), line, fill=FOOTER_TEXT, font=footer_font)
    return figure, [default.name, real.name]


# ---------------------------------------------------------------------- training curve
def read_curve(path: Path) -> dict[str, list[tuple[int, float]]]:
    """``{"raw": [(step, psnr), ...], "ema": [...]}`` at x2 from the validation records of a log."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        for kind, per_scale in (record.get("val") or {}).items():
            scores = per_scale.get(f"x{SCALE}") if isinstance(per_scale, dict) else None
            if scores and "psnr" in scores:
                curves.setdefault(kind, []).append((int(record["step"]), float(scores["psnr"])))
    return {kind: sorted(dict(points).items()) for kind, points in curves.items()}


def _nice_step(span: float, target: int) -> float:
    """A 1, 2 or 5 times a power of ten that cuts ``span`` into about ``target`` intervals."""
    raw = span / target
    power = 10 ** math.floor(math.log10(raw))
    return next(f * power for f in (1, 2, 5, 10) if f * power >= raw)


def _dashed(draw: ImageDraw.ImageDraw, y: float, x0: float, x1: float, colour: tuple, width: int, dash: int) -> None:
    x = x0
    while x < x1:
        draw.line([(x, y), (min(x + dash, x1), y)], fill=colour, width=width)
        x += 2 * dash


def curve_figure(curves: dict[str, list[tuple[int, float]]], source: str) -> Image.Image:
    """Set5 PSNR against step, drawn at twice the size and reduced, for smooth lines."""
    s = 2  # supersampling
    width, height = 760, 440
    left, right, top, bottom = 70, 20, 60, 62
    img = Image.new("RGB", (width * s, height * s), "white")
    draw = ImageDraw.Draw(img)
    points = [p for kind in curves.values() for p in kind]
    max_step = max(step for step, _ in points)
    values = [v for _, v in points] + list(REFERENCE_LINES.values())
    y_lo, y_hi = math.floor(min(values) - 0.3), math.ceil(max(values) + 0.3)

    def px(step: float, value: float) -> tuple[float, float]:
        x = left + (width - left - right) * step / max_step
        y = top + (height - top - bottom) * (y_hi - value) / (y_hi - y_lo)
        return x * s, y * s

    small, normal = font(13 * s), font(15 * s)
    x_tick = _nice_step(max_step, 8)
    for i in range(int(max_step // x_tick) + 1):
        x, _ = px(i * x_tick, y_lo)
        draw.line([(x, top * s), (x, (height - bottom) * s)], fill=(235, 235, 235), width=s)
        draw.text((x, (height - bottom + 8) * s), f"{i * x_tick:,.0f}", fill=TEXT, font=small, anchor="ma")
    for value in range(y_lo, y_hi + 1):
        _, y = px(0, value)
        draw.line([(left * s, y), ((width - right) * s, y)], fill=(235, 235, 235), width=s)
        draw.text(((left - 8) * s, y), f"{value}", fill=TEXT, font=small, anchor="rm")
    draw.rectangle([left * s, top * s, (width - right) * s, (height - bottom) * s], outline=TEXT, width=s)
    for name, value in REFERENCE_LINES.items():
        _, y = px(0, value)
        _dashed(draw, y, left * s, (width - right) * s, LINE_COLOURS[name], 2 * s, 8 * s)
        label = f"{name}: {value:.2f} dB"  # at the left, before the first validation, clear of the curves
        draw.text(((left + 8) * s, y - 4 * s), label, fill=LINE_COLOURS[name], font=small, anchor="ls")
    for kind in ("raw", "ema"):
        if kind in curves:
            xy = [px(step, value) for step, value in curves[kind]]
            draw.line(xy, fill=CURVE_COLOURS[kind], width=(2 if kind == "raw" else 3) * s, joint="curve")
            for x, y in xy:
                r = 2.5 * s
                draw.ellipse([x - r, y - r, x + r, y + r], fill=CURVE_COLOURS[kind])
    # legend, bottom right
    lx, ly = (width - right - 190) * s, (height - bottom - 58) * s
    for i, (kind, label) in enumerate((("raw", "raw weights"), ("ema", "EMA weights"))):
        y = ly + 22 * i * s
        draw.line([(lx, y), (lx + 28 * s, y)], fill=CURVE_COLOURS[kind], width=3 * s)
        draw.text((lx + 36 * s, y), label, fill=TEXT, font=normal, anchor="lm")
    draw.text(
        (left * s, 10 * s),
        f"EDSR-baseline x{SCALE} on T91 + BSD200: Set5 PSNR (Y) during training",
        fill=TEXT,
        font=normal,
    )
    draw.text((left * s, 32 * s), source, fill=FOOTER_TEXT, font=small)
    draw.text((width * s / 2, (height - 22) * s), "training step", fill=TEXT, font=normal, anchor="ma")
    draw.text(((left - 8) * s, (top - 6) * s), "dB", fill=TEXT, font=small, anchor="rs")
    return img.resize((width, height), Image.LANCZOS)


def find_log(repo_root: Path = REPO_ROOT) -> Path | None:
    """The first of :data:`CURVE_LOGS` that exists."""
    return next((repo_root / p for p in CURVE_LOGS if (repo_root / p).is_file()), None)


# ---------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    """Draw the figures; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=ASSETS, help="where to write the PNG files")
    parser.add_argument("--datasets", type=Path, default=DATASETS, help="folder holding Set5/ and Set14/")
    parser.add_argument("--only", choices=("real_jpeg",), help="draw only this figure (real_jpeg needs no image sets)")
    args = parser.parse_args(argv)
    if args.only == "real_jpeg":
        args.out_dir.mkdir(parents=True, exist_ok=True)
        return _draw_real_jpeg(args.out_dir)
    if not (args.datasets / "Set5" / "HR").is_dir():
        parser.error(f"no image sets at {args.datasets} (pass --datasets or set EDSR_LIB_DATASETS)")
    args.out_dir.mkdir(parents=True, exist_ok=True)

    figure, missing = comparison_figure(args.datasets)
    path = args.out_dir / f"comparison_x{SCALE}.png"
    figure.save(path, optimize=True)
    print(f"wrote {path} ({figure.width}x{figure.height}); no weights for: {', '.join(missing) or 'none'}")

    _draw_real_jpeg(args.out_dir)
    log = find_log()
    if log is None:
        print("no training log found (looked for " + ", ".join(map(str, CURVE_LOGS)) + "): no training curve")
        return 0
    curves = read_curve(log)
    if not curves:
        print(f"{log} holds no x{SCALE} validation records: no training curve")
        return 0
    path = args.out_dir / "training_curve.png"
    curve_figure(curves, f"from {log.relative_to(REPO_ROOT)}").save(path, optimize=True)
    print(f"wrote {path} from {log.relative_to(REPO_ROOT)}")
    return 0


def _draw_real_jpeg(out_dir: Path) -> int:
    drawn = real_jpeg_figure()
    if drawn is None:
        print(f"no weights for photos (for_input='real') of edsr_baseline_x{REAL_SCALE}: no real_jpeg figure")
        return 0
    figure, names = drawn
    path = out_dir / f"real_jpeg_x{REAL_SCALE}.png"
    figure.save(path, optimize=True)
    print(f"wrote {path} ({figure.width}x{figure.height}): {' and '.join(names)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
