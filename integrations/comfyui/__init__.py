"""edsr-lib for ComfyUI: EDSR and MDSR in *Load Upscale Model*, and an upscaler with exact tiles.

Importing this package (ComfyUI imports every folder in ``custom_nodes/``) adds EDSR and
MDSR to spandrel's registry (:func:`edsr_lib.integrations.spandrel.install`), so that
ComfyUI's own *Load Upscale Model* loads every EDSR/MDSR file that the spandrel integration
loads: the official EDSR-PyTorch files, torchSR's, BasicSR's and edsr-lib's
``model.safetensors``.

It also adds one node on ComfyUI's V3 node interface (``comfy_api.latest``),
*Upscale Image (EDSR/MDSR, exact tiles)*: it runs an EDSR/MDSR upscale model through
:class:`edsr_lib.Upscaler`, whose tiles overlap by the model's receptive radius and are
cropped, not blended, so the result equals one pass over the whole image (ComfyUI's
*Upscale Image (using Model)* blends 512-pixel tiles over 32 pixels, which leaves faint
seams). It also runs MDSR at any of its scales. Its bar in ComfyUI's UI follows the tiles,
and the cancel button stops it between two batches of tiles.

Needs ``edsr-lib[spandrel]`` in ComfyUI's Python (``requirements.txt``).
"""

from __future__ import annotations

from typing import Any

import comfy.utils
from comfy import model_management
from comfy_api.latest import ComfyExtension, io

import edsr_lib
from edsr_lib.integrations import spandrel as edsr_spandrel
from edsr_lib.models import SRModel

edsr_spandrel.install()  # ComfyUI's "Load Upscale Model" now reads EDSR and MDSR files

#: Tile sizes the node offers, in input pixels; 0 sizes them from the free memory.
TILE_MAX = 4096
#: The precisions the node offers: "auto" is edsr-lib's default for the device, the others are asked for by name.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class EDSRUpscaleExact(io.ComfyNode):
    """Upscale images with an EDSR or MDSR model from *Load Upscale Model*, in tiles that give the one-pass result."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        """The node's inputs: the model, the images, the tile size and (for MDSR) the scale."""
        return io.Schema(
            node_id="EDSRLibUpscaleExact",
            display_name="Upscale Image (EDSR/MDSR, exact tiles)",
            category="image/upscaling",
            description=(
                "Upscale with an EDSR or MDSR model through edsr-lib: tiles overlap by the model's receptive "
                "radius and are cropped, so the result equals one pass over the whole image."
            ),
            inputs=[
                io.UpscaleModel.Input("upscale_model", tooltip="an EDSR or MDSR model from Load Upscale Model"),
                io.Image.Input("image"),
                io.Int.Input(
                    "tile",
                    default=0,
                    min=0,
                    max=TILE_MAX,
                    step=16,
                    tooltip="tile size in input pixels; 0 sizes the tiles from the free memory",
                ),
                io.Int.Input(
                    "scale",
                    default=0,
                    min=0,
                    max=8,
                    tooltip="for MDSR, one of the model's scales (2, 3, 4); 0 keeps the loaded model's scale",
                ),
                io.Combo.Input(
                    "precision",
                    options=list(PRECISIONS),
                    default="auto",
                    optional=True,  # workflows saved before this input still run
                    tooltip=(
                        "auto: edsr-lib's default for the device (the fastest that keeps quality); fp32: exact "
                        "float32; bf16 and fp16 where the device runs them"
                    ),
                ),
            ],
            outputs=[io.Image.Output()],
        )

    @classmethod
    def execute(
        cls, upscale_model: Any, image: Any, tile: int = 0, scale: int = 0, precision: str = "auto"
    ) -> io.NodeOutput:
        """Upscale ``image`` (ComfyUI's float NHWC batch in [0, 1]); the result is the same kind of batch.

        Runs on ComfyUI's device (``comfy.model_management.get_torch_device``), reports each
        batch of tiles to the node's progress bar (``comfy.utils.ProgressBar``) and checks for
        a cancel between batches.

        Raises:
            ValueError: If the model is not an EDSR or MDSR, ``scale`` is not one of its scales, or
                ``precision`` cannot run on the device.
            comfy.model_management.InterruptProcessingException: When the user cancels.
        """
        model = upscale_model.model
        if not isinstance(model, SRModel):
            raise ValueError(
                f"this node runs EDSR and MDSR models; {upscale_model.architecture.name} runs in "
                "Upscale Image (using Model)"
            )
        factor = model.resolve_scale(scale or upscale_model.scale)
        bar = comfy.utils.ProgressBar(1)

        def progress(done: int, total: int) -> None:
            # between batches of tiles: stop if the user cancelled, else move the node's bar in the UI
            model_management.throw_exception_if_processing_interrupted()
            bar.update_absolute(done, total)

        upscaler = edsr_lib.Upscaler(
            model,
            scale=factor,
            tile=tile or "auto",
            precision=None if precision == "auto" else precision,
            device=model_management.get_torch_device(),
            progress=progress,
        )
        sr = upscaler(image.movedim(-1, 1))  # NHWC -> NCHW; the result comes back where the image is
        return io.NodeOutput(sr.clamp_(0.0, 1.0).movedim(1, -1))


class EDSRLibExtension(ComfyExtension):
    """The nodes of this package, for ComfyUI's loader."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        """The node classes."""
        return [EDSRUpscaleExact]


async def comfy_entrypoint() -> EDSRLibExtension:
    """What ComfyUI calls to find this package's nodes."""
    return EDSRLibExtension()
