"""Published scores to hold models against: bicubic, VDSR, and the paper's own EDSR and MDSR.

PSNR (dB) and SSIM on the benchmark protocol (Y channel, ``scale`` pixels ignored at each
border, LR made by MATLAB-style bicubic downsampling), as the paper's Table 4 and VDSR's
paper print them, in the layout of :attr:`edsr_lib.PretrainedCfg.metrics` with a
``(psnr, ssim)`` pair per scale; ``ssim`` is ``None`` where none is published. This module
is their one owner: model cards, docs figures and tests read them from here.
"""

from __future__ import annotations

__all__ = ["BICUBIC", "PAPER_EDSR", "PAPER_EDSR_BASELINE", "PAPER_MDSR", "VDSR", "Scores"]

#: ``{set: {"x<scale>": (psnr, ssim)}}``.
Scores = dict[str, dict[str, tuple[float, float | None]]]

#: Bicubic upsampling (the paper's Table 4).
BICUBIC: Scores = {
    "Set5": {"x2": (33.66, 0.9299), "x3": (30.39, 0.8682), "x4": (28.42, 0.8104)},
    "Set14": {"x2": (30.24, 0.8688), "x4": (26.00, 0.7027)},
    "B100": {"x2": (29.56, 0.8431), "x4": (25.96, 0.6675)},
}

#: VDSR (Kim et al., 2016), trained on the same 291 images (T91 + BSD200) as this library's weights.
VDSR: Scores = {
    "Set5": {"x2": (37.53, 0.9587), "x3": (33.66, 0.9213), "x4": (31.35, 0.8838)},
    "Set14": {"x2": (33.03, 0.9124), "x3": (29.77, 0.8314), "x4": (28.01, 0.7674)},
    "B100": {"x2": (31.90, 0.8960), "x3": (28.82, 0.7976), "x4": (27.29, 0.7251)},
}

#: The paper's EDSR-baseline, trained on DIV2K: it publishes only Set5 x2, about 37.99 dB.
PAPER_EDSR_BASELINE: Scores = {"Set5": {"x2": (37.99, None)}}

#: The paper's EDSR (Table 4), trained on DIV2K.
PAPER_EDSR: Scores = {
    "Set5": {"x2": (38.11, 0.9601), "x3": (34.65, 0.9282), "x4": (32.46, 0.8968)},
    "Set14": {"x2": (33.92, 0.9195), "x4": (28.80, 0.7876)},
    "B100": {"x2": (32.32, 0.9013), "x4": (27.71, 0.7420)},
}

#: The paper's MDSR (Table 4), trained on DIV2K.
PAPER_MDSR: Scores = {
    "Set5": {"x2": (38.11, 0.9602), "x3": (34.66, 0.9280), "x4": (32.50, 0.8973)},
    "Set14": {"x2": (33.85, 0.9198), "x4": (28.72, 0.7857)},
    "B100": {"x2": (32.29, 0.9007), "x4": (27.72, 0.7418)},
}
