"""MkDocs hook: replace ``<!-- model-zoo -->`` in a page with the table of pretrained weights.

The table is generated at build time from the registry's pretrained configs
(:func:`edsr_lib.list_pretrained`), so it cannot drift from the code: one row per set of
weights and scale, with the parameter count, the training data, the benchmark scores
recorded in ``PretrainedCfg.metrics`` and the Hub id. ``tests/test_docs.py`` checks the
generated text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

import edsr_lib
from edsr_lib.metrics import format_score

MARKER = "<!-- model-zoo -->"
#: The benchmark sets shown, in this order; a missing score shows as a dash.
SETS = ("Set5", "Set14", "B100")
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
        "| Weights | Scale | Parameters | Training data | " + " | ".join(SETS) + " | Hub id |",
        "| --- | --- | ---: | --- | " + " | ".join("---" for _ in SETS) + " | --- |",
    ]
    for cfg in cfgs:
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            model = edsr_lib.create_model(cfg.architecture)
        for scale in model.scales:
            scores = [_score(cfg.metrics, set_name, f"x{scale}") for set_name in SETS]
            lines.append(
                f"| `{cfg.name}` | x{scale} | {model.num_parameters():,} | {cfg.training_data or '—'} | "
                + " | ".join(scores)
                + f" | {f'`{cfg.hf_hub_id}`' if cfg.hf_hub_id else '—'} |"
            )
    return "\n".join(lines)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Put the generated table where a page has the marker."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, zoo_markdown())
