"""Bridges to the tools where users already are; each module needs its own optional extra.

- :mod:`edsr_lib.integrations.spandrel`: EDSR and MDSR for spandrel's ``ModelLoader``
  (ComfyUI, chaiNNer, ...): ``pip install "edsr-lib[spandrel]"``.
- :mod:`edsr_lib.integrations.ray`: upscale folders on a Ray cluster with Ray Data:
  ``pip install "edsr-lib[ray]"``.

Nothing here is imported by ``import edsr_lib``.
"""
