"""The page to try the models in a browser (``edsr-lib demo``; Gradio, the ``demo`` extra).

Everything is in :mod:`~edsr_lib.demo.app`: the page, its limits and the function it runs.
"""

from __future__ import annotations

from .app import FORMATS, SAMPLE_IMAGE, Limits, build_demo, launch, model_choices, run_upscale

__all__ = ["FORMATS", "SAMPLE_IMAGE", "Limits", "build_demo", "launch", "model_choices", "run_upscale"]
