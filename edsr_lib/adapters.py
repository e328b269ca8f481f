"""How each kind of image meets a model that takes float RGB tensors, and comes back as it went in.

:func:`edsr_lib.upscale` takes float tensors, uint8 and uint16 NumPy arrays and PIL
images, with 1 to 4 channels; the model takes float ``(N, C, H, W)`` tensors with its own
channel count. :func:`adapt` bridges the two for one call: it gives the model's input
(gray replicated to RGB, alpha left out) and a :class:`Adapted` that receives the
model's output window by window (gray averaged back, 8 or 16-bit levels rounded by
:func:`~edsr_lib.ops.to_levels`) and :meth:`~Adapted.finish` es the result (the alpha
channel resized with MATLAB bicubic, the input's shape). :func:`from_pil` and
:func:`to_pil` do the same for PIL images, with :mod:`edsr_lib.io`'s pixel rules and
metadata; :func:`resize_array` resizes an 8 or 16-bit array.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .io import AnyImage, Image16, array_to_image, carry_metadata, image_to_array, to_tensor, upright
from .ops.color import to_levels
from .ops.imresize import imresize

__all__ = ["Adapted", "adapt", "as_tensor", "from_pil", "is_pil", "resize_array", "to_pil"]

_PEAKS = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}


def as_tensor(image: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The input as float ``(N, C, H, W)``: tensors as given (3-D gets a batch dimension), integer arrays scaled.

    Raises:
        TypeError: For another type, an integer tensor or a float array.
        ValueError: For another shape, or a tensor with values far outside [0, 1] or not finite.
    """
    if isinstance(image, torch.Tensor):
        if not image.is_floating_point():
            raise TypeError(f"expected a float tensor with values in [0, 1], got dtype {image.dtype}")
        if image.dim() not in (3, 4):
            raise ValueError(f"expected a CHW or NCHW tensor, got shape {tuple(image.shape)}")
        if image.numel():
            low, high = torch.aminmax(image.detach())
            if not (bool(torch.isfinite(low)) and bool(torch.isfinite(high))):
                raise ValueError("the image tensor holds NaN or infinite values")
            # Model outputs are not clamped and may overshoot [0, 1] a little; 0..255 data does not.
            if high > 2 or low < -1:
                raise ValueError(
                    f"the image tensor has values in [{low.item():g}, {high.item():g}]; expected [0, 1] "
                    "(divide 0..255 data by 255)"
                )
        return image if image.dim() == 4 else image.unsqueeze(0)
    if isinstance(image, np.ndarray):
        if image.dtype not in _PEAKS:
            raise TypeError(
                f"expected a uint8 or uint16 NumPy image (H, W, C); got dtype {image.dtype} (use a float tensor)"
            )
        if image.ndim not in (2, 3, 4):
            raise ValueError(f"expected a NumPy image (H, W), (H, W, C) or a batch (N, H, W, C), got {image.shape}")
        if image.ndim == 4:
            return torch.cat([to_tensor(i) for i in image])
        return to_tensor(image if image.ndim == 3 else image[:, :, None])
    raise TypeError(f"expected a float torch.Tensor, a uint8 numpy.ndarray or a PIL image, got {type(image).__name__}")


@dataclass
class Adapted:
    """One image (or batch) made ready for a model, and the output it will be returned as.

    Attributes:
        image: What the caller passed (a tensor or an array).
        x: ``image`` as float ``(N, C, H, W)``.
        colour: The model's input: ``x`` without alpha, gray replicated to RGB.
        out: Where the model's output goes, ``(N, C', scale * H, scale * W)`` with ``C'``
            the output colour channels (a view of the returned array for NumPy input).
        scale: The upscaling factor.
        gray: The image is gray and runs as RGB (the output is the mean of the three).
        has_alpha: The last channel is alpha, resized apart from the model.
    """

    image: torch.Tensor | np.ndarray
    x: torch.Tensor
    colour: torch.Tensor
    out: torch.Tensor
    scale: int
    gray: bool
    has_alpha: bool
    _array: np.ndarray | None
    _all: torch.Tensor

    @property
    def peak(self) -> int | None:
        """The top integer level of the output (255 or 65535), or ``None`` for a float output."""
        return None if self._array is None else _PEAKS[self._array.dtype]

    def convert(self, core: torch.Tensor) -> torch.Tensor:
        """One window's model output ``(C, h, w)`` as it is stored: gray averaged back, integer levels rounded."""
        if self.gray:
            core = core.mean(dim=0, keepdim=True)
        if self._array is None:
            return core
        levels = to_levels(core, self.peak)
        return levels.to(torch.uint8) if self.peak == 255 else levels.to(torch.int32)

    def finish(self) -> torch.Tensor | np.ndarray:
        """The result, once :attr:`out` is filled: the alpha channel added, in the shape and type of the input."""
        if self.has_alpha:
            self._resize_alpha()
        if self._array is not None:
            return self._array if self.image.ndim >= 3 else self._array[:, :, 0]
        return self._all if self.image.dim() == 4 else self._all[0]

    def _resize_alpha(self) -> None:
        """Write the MATLAB-bicubic resized alpha channel of the input into the last output channel."""
        image, array = self.image, self._array
        if array is not None and array.dtype == np.uint8:
            # uint8 in, uint8 out: MATLAB's uint8 semantics (rounded and clamped after each pass).
            for n, single in enumerate(image if image.ndim == 4 else image[None]):
                target = array[n] if image.ndim == 4 else array
                target[:, :, -1] = imresize(np.ascontiguousarray(single[:, :, -1]), self.scale)
            return
        alpha = imresize(self.x[:, -1:], self.scale).clamp_(0.0, 1.0)
        if array is not None:
            alpha = to_levels(alpha, 65535).to(torch.int32)
        self._all[:, -1:] = alpha


def adapt(image: torch.Tensor | np.ndarray, n_colors: int, scale: int) -> Adapted:
    """Make ``image`` ready for a model of ``n_colors`` channels at ``scale``, with its output allocated.

    An image with the model's channel count runs as it is. For an RGB model, a gray image
    (1 channel) is replicated to RGB and its output averaged back to gray; a last alpha
    channel (2 or 4 channels) is resized by :meth:`Adapted.finish` apart from the model.
    The output is allocated outside inference mode (callers get an ordinary tensor): for
    an array, an array of its dtype; for a tensor, a tensor of its dtype and device.

    Args:
        image: A float tensor ``(C, H, W)`` or ``(N, C, H, W)``, or a uint8 or uint16 array
            ``(H, W)``, ``(H, W, C)`` or ``(N, H, W, C)``.
        n_colors: The model's channels.
        scale: The upscaling factor (already checked).

    Raises:
        TypeError: For an unsupported type (see :func:`as_tensor`).
        ValueError: For an unsupported channel count or an empty image.
    """
    x = as_tensor(image)
    n_in = x.shape[1]
    if n_in == n_colors:
        gray, has_alpha = False, False
    elif n_colors == 3 and n_in in (1, 2, 4):
        gray, has_alpha = n_in < 3, n_in % 2 == 0
    else:
        raise ValueError(
            f"the image has {n_in} channels; this model takes {n_colors} "
            + ("(or 1 gray, 2 gray+alpha, 4 with alpha)" if n_colors == 3 else "")
        )
    height, width = x.shape[-2:]
    if height == 0 or width == 0:
        raise ValueError(f"the image is empty: shape {tuple(x.shape)}")
    colour = x[:, :1].expand(-1, 3, -1, -1) if gray else x[:, : n_in - has_alpha]
    array: np.ndarray | None = None
    if isinstance(image, np.ndarray):
        batch_dims = (x.shape[0],) if image.ndim == 4 else ()
        array = np.empty((*batch_dims, scale * height, scale * width, n_in), dtype=image.dtype)
        view = torch.from_numpy(array)
        whole = view.permute(0, 3, 1, 2) if batch_dims else view.permute(2, 0, 1).unsqueeze(0)
    else:
        whole = torch.empty((x.shape[0], n_in, scale * height, scale * width), dtype=x.dtype, device=x.device)
    n_out = 1 if gray else colour.shape[1]
    return Adapted(image, x, colour, whole[:, :n_out], scale, gray, has_alpha, array, whole)


def resize_array(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """MATLAB bicubic resize of a uint8 or uint16 ``H x W x C`` array to ``size``, in its own dtype.

    uint8 keeps MATLAB's uint8 semantics (rounded after each pass, as
    :func:`~edsr_lib.ops.imresize` does); uint16 is resized in float and rounded to 16-bit
    levels by :func:`~edsr_lib.ops.to_levels`.
    """
    if array.dtype == np.uint16:
        resized = imresize(array.astype(np.float64) / 65535.0, size=size)
        return to_levels(torch.from_numpy(resized), 65535).numpy().astype(np.uint16)
    return imresize(array, size=size)


# ---------------------------------------------------------------------------- PIL
def is_pil(image: object) -> bool:
    """Whether ``image`` is an image of :mod:`edsr_lib.io` (a PIL image or an :class:`~edsr_lib.io.Image16`), or a
    non-empty list or tuple of them."""
    if isinstance(image, Image.Image | Image16):
        return True
    return isinstance(image, list | tuple) and bool(image) and all(isinstance(i, Image.Image | Image16) for i in image)


def from_pil(images: AnyImage | Sequence[AnyImage]) -> tuple[list[AnyImage], np.ndarray | torch.Tensor]:
    """The upright images of a PIL (or :class:`~edsr_lib.io.Image16`) input and their pixels as one batch.

    Each image is turned upright by its EXIF orientation (:func:`edsr_lib.io.upright`, as
    :func:`edsr_lib.io.load_image` does for files); its pixels follow
    :func:`edsr_lib.io.image_to_array`: an ``(N, H, W, C)`` uint8 or uint16 array, or for
    float images an ``(N, C, H, W)`` float tensor; :func:`edsr_lib.upscale` takes them.

    Raises:
        ValueError: If the images of a list differ in size or mode.
    """
    batch = [upright(img) for img in ([images] if isinstance(images, Image.Image | Image16) else images)]
    if len({(img.size, img.mode) for img in batch}) > 1:
        raise ValueError("a list of images to upscale together must share one size and mode")
    pixels = np.stack([image_to_array(img) for img in batch])
    if pixels.dtype == np.float32:  # float images go through the tensor path, and are clamped at the end
        return batch, torch.from_numpy(pixels).permute(0, 3, 1, 2)
    return batch, pixels


def to_pil(sources: list[AnyImage], result: np.ndarray | torch.Tensor, factor: float) -> list[AnyImage]:
    """The upscaled batch as images, each of its source's mode and kind with its metadata carried over.

    Args:
        sources: The upright images that were upscaled (from :func:`from_pil`).
        result: The batch as :func:`edsr_lib.upscale` returned it for :func:`from_pil`'s pixels.
        factor: The upscaling factor (the DPI grows by it).
    """
    if isinstance(result, torch.Tensor):
        result = result.clamp_(0.0, 1.0).permute(0, 2, 3, 1).numpy()
    return [carry_metadata(img, array_to_image(r, like=img), factor) for img, r in zip(sources, result, strict=True)]
