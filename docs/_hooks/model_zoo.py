"""MkDocs hook: replace ``<!-- model-zoo -->`` in a page with the table of pretrained weights.

``<!-- which-input -->`` becomes the table of the weights for photos (``for_input="real"``)
against the default weights of the same variant, on clean and degraded input (the metrics
keys ``"Set5_jpeg50"`` and the like), from the same registry.

The table is generated at build time from the registry's pretrained configs
(:func:`edsr_lib.list_pretrained`), so it cannot drift from the code: one row per set of
weights and scale, with the parameter count, where the weights live (inside the package,
or a Hub repository at a pinned commit) and the file's size, the licence, the training
data, the benchmark scores recorded in ``PretrainedCfg.metrics`` and whose scores they are
(edsr-lib's own, or the publisher's, explained under the table). ``tests/test_docs.py``
checks the generated text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

import edsr_lib
from edsr_lib.metrics import format_score
from edsr_lib.ops.degrade import split_metric_key
from edsr_lib.weights import shipped_size

MARKER = "<!-- model-zoo -->"
INPUT_MARKER = "<!-- which-input -->"
#: The benchmark sets shown, in this order; a missing score shows as a dash.
SETS = ("Set5", "Set14", "B100", "Urban100")
NO_WEIGHTS = (
    "No pretrained weights are registered yet: `create_model(name, pretrained=True)` raises a "
    "`ValueError` that says so."
)


def _score(metrics: dict[str, Any], set_name: str, scale: str) -> str:
    """``PSNR / SSIM`` of one set and scale, with the self-ensemble (``"Set5+"``) scores after a break."""
    cells = []
    for key, prefix in ((set_name, ""), (f"{set_name}+", "+ ")):
        scores = metrics.get(key, {}).get(scale)
        if scores and "psnr" in scores:
            cells.append(prefix + format_score(scores["psnr"], scores.get("ssim")))
    return "<br>".join(cells) or "—"


def where(cfg: Any) -> tuple[str, str]:
    """Where ``cfg``'s weights live, and the size of the file: the package's copy, or the Hub's at its commit."""
    if cfg.package_file:
        size = shipped_size(cfg.package_file)
        return "package", f"{size / 1e6:.1f} MB" if size else "—"
    if not cfg.hf_hub_id:
        return "—", "—"
    pin = f" @ `{cfg.revision[:7]}`" if cfg.revision else ""
    return f"Hub `{cfg.hf_hub_id}`{pin}", f"{cfg.download_size / 1e6:.1f} MB" if cfg.download_size else "—"


def whose(cfg: Any) -> str:
    """Whose scores: ``edsr-lib`` (measured with ``edsr-lib evaluate``) or the publisher's (footnoted)."""
    return "publisher¹" if cfg.metrics_source else "edsr-lib" if cfg.metrics else "—"


def zoo_markdown(cfgs: Iterable[Any] | None = None) -> str:
    """The model-zoo table for ``cfgs`` (default: every registered config that has weights).

    Args:
        cfgs: :class:`edsr_lib.PretrainedCfg` objects with ``architecture`` and ``tag`` set.
    """
    if cfgs is None:
        cfgs = edsr_lib.list_pretrained()
    cfgs = [cfg for cfg in cfgs if cfg.has_weights]
    if not cfgs:
        return NO_WEIGHTS
    lines = [
        "| Weights | Scale | Parameters | Where | Size | Licence | Training data | "
        + " | ".join(SETS)
        + " | Scores by |",
        "| --- | --- | ---: | --- | ---: | --- | --- | " + " | ".join("---" for _ in SETS) + " | --- |",
    ]
    for cfg in cfgs:
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            model = edsr_lib.create_model(cfg.architecture)
        place, size = where(cfg)
        for scale in model.scales:
            scores = [_score(cfg.metrics, set_name, f"x{scale}") for set_name in SETS]
            lines.append(
                f"| `{cfg.name}` | x{scale} | {model.num_parameters():,} | {place} | {size} | "
                f"{cfg.license or '—'} | {cfg.training_data or '—'} | " + " | ".join(scores) + f" | {whose(cfg)} |"
            )
    sources = list(dict.fromkeys(cfg.metrics_source for cfg in cfgs if cfg.metrics_source))
    if sources:
        lines += ["", *(f"¹ {source[0].upper()}{source[1:]}." for source in sources)]
    return "\n".join(lines)


def input_markdown(cfgs: Iterable[Any] | None = None) -> str:
    """The table of each tag for photos against its variant's default tag, on every input both were scored on.

    Args:
        cfgs: :class:`edsr_lib.PretrainedCfg` objects (default: every registered config).
    """
    cfgs = list(edsr_lib.list_pretrained() if cfgs is None else cfgs)
    real = [cfg for cfg in cfgs if cfg.for_input != "clean" and cfg.has_weights]
    if not real:
        return "No weights for photos are registered yet."
    lines = [
        "| Variant | Set | Input | Default tag | Tag for photos | Difference |",
        "| --- | --- | --- | --- | --- | ---: |",
    ]
    for cfg in real:
        default = edsr_lib.get_pretrained_cfg(cfg.architecture)
        for key, per_scale in cfg.metrics.items():
            set_name, degraded = split_metric_key(key)
            if set_name.endswith("+"):
                continue
            for scale, ours in per_scale.items():
                theirs = default.metrics.get(key, {}).get(scale)
                if not theirs:
                    continue
                lines.append(
                    f"| `{cfg.architecture}` ({scale}) | {set_name} | {degraded.describe() if degraded else 'clean'} | "
                    f"`{default.tag}` {format_score(theirs['psnr'], theirs['ssim'])} | "
                    f"`{cfg.tag}` {format_score(ours['psnr'], ours['ssim'])} | "
                    f"{ours['psnr'] - theirs['psnr']:+.2f} dB |"
                )
    return "\n".join(lines)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Put the generated tables where a page has their markers."""
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, zoo_markdown())
    if INPUT_MARKER in markdown:
        markdown = markdown.replace(INPUT_MARKER, input_markdown())
    return markdown
