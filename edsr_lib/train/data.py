"""Training data: HR images and their MATLAB-bicubic LR, held as uint8, cropped into patches as tensors.

LR images are made once per image and scale (``imresize(modcrop(hr, s), 1/s)`` with
MATLAB's uint8 semantics, exactly as the benchmark LR files are made), optionally cached
on disk, never per patch. All images of a scale are packed into one flat uint8 buffer,
so that a whole batch of random crops, flips and transpositions is one gather with an
index tensor: no Python loop per patch, and it runs on whatever device holds the buffer.

Under DDP each process can hold only its shard of the images (:func:`shard_indices`):
shards of near-equal pixel count, so that ranks drawing the same number of patches each
keep the whole set's area-proportional sampling, and no machine needs memory for all of it.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .._cache import part_dir
from .._files import atomic_write
from ..io import list_images, read_image
from ..ops.imresize import bicubic_lr

__all__ = ["PatchDraw", "PatchSampler", "default_cache_dir", "make_lr_images", "read_folder", "shard_indices"]

#: Bump when the way LR images are made changes, so that old caches are not reused.
_LR_CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """The cache folder for LR images: ``lr`` in the library's cache (:func:`edsr_lib._cache.cache_root`)."""
    return part_dir("lr")


def _as_colour(img: np.ndarray, n_colors: int, path: Path) -> np.ndarray:
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 1 and n_colors != 1:
        img = np.repeat(img, n_colors, axis=2)
    if img.shape[2] == 4 and n_colors == 3:
        img = img[:, :, :3]  # alpha plays no part in super-resolution training
    if img.shape[2] != n_colors:
        raise ValueError(f"{path} has {img.shape[2]} channels; the model takes {n_colors}")
    return np.ascontiguousarray(img)


def read_folder(folder: str | Path, n_colors: int = 3) -> tuple[list[Path], list[np.ndarray]]:
    """Read every image of a folder as uint8 HWC arrays (grayscale repeated to ``n_colors`` channels, alpha dropped).

    Returns:
        The image paths (sorted) and the images.

    Raises:
        FileNotFoundError: If the folder does not exist or holds no images.
    """
    paths = [Path(p) for p in list_images(folder)]
    return paths, _read_images(paths, n_colors)


def _read_images(paths: Sequence[Path], n_colors: int) -> list[np.ndarray]:
    return [_as_colour(read_image(p), n_colors, p) for p in paths]


def shard_indices(sizes: Sequence[int], rank: int, world_size: int) -> list[int]:
    """The items of shard ``rank`` of ``world_size``, in order, the shards' total sizes as equal as can be.

    Largest first, each item goes to the shard with the least total so far (the lowest
    rank on a tie), so every rank computes the same split from the same list. With all
    sizes equal it deals the items out in turn.

    Args:
        sizes: Size of each item (pixels per image, or 1 each to balance counts).
        rank: This shard, ``0 <= rank < world_size``.
        world_size: Number of shards.

    Raises:
        ValueError: If there are fewer items than shards, or ``rank`` is out of range.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
    if len(sizes) < world_size:
        raise ValueError(
            f"{len(sizes)} training images cannot be shared among {world_size} processes: each needs at least one"
        )
    totals = [0] * world_size
    mine = []
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        shard = min(range(world_size), key=lambda r: (totals[r], r))
        totals[shard] += sizes[i]
        if shard == rank:
            mine.append(i)
    return sorted(mine)


def _pixel_count(path: Path) -> int:
    """Width x height from the file's header, without decoding it (0 if unreadable: reading it will say why)."""
    try:
        with Image.open(path) as img:
            return img.width * img.height
    except (OSError, UnidentifiedImageError):
        return 0


def _cache_file(cache_dir: Path, paths: Sequence[Path], scale: int) -> Path:
    key = hashlib.sha256()
    key.update(json.dumps({"version": _LR_CACHE_VERSION, "scale": scale}).encode())
    for p in paths:
        st = p.stat()
        key.update(f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    folder = paths[0].parent if paths else Path("empty")
    stem = f"{folder.parent.name}-{folder.name}" if folder.name.upper() == "HR" else folder.name
    return cache_dir / f"{stem}-x{scale}-{key.hexdigest()[:16]}.npz"


def make_lr_images(
    hr_images: Sequence[np.ndarray],
    scale: int,
    *,
    paths: Sequence[Path] | None = None,
    cache_dir: str | Path | None = None,
) -> list[np.ndarray]:
    """The LR image of each HR image: MATLAB ``imresize(modcrop(hr, scale), 1/scale)`` on uint8.

    Args:
        hr_images: uint8 HWC images.
        scale: The downscaling factor.
        paths: The files the images came from; with ``cache_dir``, they key the cache
            (by path, size and modification time).
        cache_dir: Folder of ``.npz`` caches; ``None`` computes without caching.

    Returns:
        The uint8 HWC LR images, in order.
    """
    cache = _cache_file(Path(cache_dir), paths, scale) if cache_dir is not None and paths is not None else None
    if cache is not None and cache.is_file():
        with np.load(cache) as data:
            if len(data.files) == len(hr_images):
                return [data[f"lr{i}"] for i in range(len(hr_images))]
    lr = [bicubic_lr(hr, scale) for hr in hr_images]
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, **{f"lr{i}": img for i, img in enumerate(lr)})
        atomic_write(cache, buffer.getvalue())
    return lr


@dataclass
class PatchDraw:
    """The random choices behind one batch of patches (all tensors of length ``batch``).

    Attributes:
        scale: The scale of the batch.
        image: Index of each patch's image (into the sampler's images).
        y: Top row of each LR patch.
        x: Left column of each LR patch.
        flips: ``(batch, 3)`` booleans: vertical flip, horizontal flip, transpose (applied
            in that order; together the 8 dihedral transforms), or ``None`` for no augmentation.
    """

    scale: int
    image: torch.Tensor
    y: torch.Tensor
    x: torch.Tensor
    flips: torch.Tensor | None


class _FlatImages:
    """Images of different sizes packed into one ``(pixels, channels)`` uint8 buffer."""

    def __init__(self, images: Sequence[np.ndarray], device: torch.device) -> None:
        heights = [img.shape[0] for img in images]
        widths = [img.shape[1] for img in images]
        sizes = torch.tensor([h * w for h, w in zip(heights, widths, strict=True)])
        self.offset = (torch.cumsum(sizes, 0) - sizes).to(device)
        self.height = torch.tensor(heights, device=device)
        self.width = torch.tensor(widths, device=device)
        channels = images[0].shape[2]
        self.pixels = torch.cat([torch.from_numpy(img).reshape(-1, channels) for img in images]).to(device)

    def gather(self, draw: PatchDraw, size: int, zoom: int) -> torch.Tensor:
        """Patches of ``size`` pixels at ``zoom`` times the draw's LR positions, as uint8 NCHW (channels-last)."""
        batch = draw.image.numel()
        r = torch.arange(size, device=self.pixels.device)
        rows = r.view(1, size, 1).expand(batch, size, size)
        cols = r.view(1, 1, size).expand(batch, size, size)
        if draw.flips is not None:
            vflip, hflip, transpose = (f.view(batch, 1, 1) for f in draw.flips.unbind(1))
            # out[i, j] = patch[a, b]: transposing swaps (i, j); each flip mirrors its axis
            rows, cols = torch.where(transpose, cols, rows), torch.where(transpose, rows, cols)
            rows = torch.where(vflip, size - 1 - rows, rows)
            cols = torch.where(hflip, size - 1 - cols, cols)
        width = self.width[draw.image].view(batch, 1, 1)
        start = self.offset[draw.image].view(batch, 1, 1) + (draw.y * zoom).view(batch, 1, 1) * width
        index = start + rows * width + (draw.x * zoom).view(batch, 1, 1) + cols
        return self.pixels[index].permute(0, 3, 1, 2)


class _LRShapes:
    """The sizes of LR images that are not made (each patch's LR comes from its HR crop instead)."""

    def __init__(self, hr_images: Sequence[np.ndarray], scale: int, device: torch.device) -> None:
        self.height = torch.tensor([img.shape[0] // scale for img in hr_images], device=device)
        self.width = torch.tensor([img.shape[1] // scale for img in hr_images], device=device)


class PatchSampler:
    """Random LR/HR patch pairs from in-memory uint8 images, made on the buffers' device.

    Args:
        hr_images: uint8 HWC HR images.
        lr_images: For each scale, the LR image of every HR image (``make_lr_images``), or
            ``None`` for HR-only sampling: patches are then placed as on the LR of
            ``modcrop(hr, scale)`` and only their HR crops exist (:meth:`crop_hr`), for LR
            made per patch (:mod:`edsr_lib.train.degrade`).
        lr_patch_size: Side of the LR patches.
        augment: Random flips and transposition (the 8 dihedral transforms).
        sample_by: ``"area"`` (images drawn in proportion to their LR area) or ``"image"``
            (uniformly).
        device: Where the images are kept and the patches cropped.

    Images smaller than a patch at some scale are left out of that scale, with a warning.

    Raises:
        ValueError: If a scale has no image large enough for a patch.
    """

    def __init__(
        self,
        hr_images: Sequence[np.ndarray],
        lr_images: dict[int, Sequence[np.ndarray] | None],
        lr_patch_size: int = 48,
        *,
        augment: bool = True,
        sample_by: str = "area",
        device: str | torch.device = "cpu",
    ) -> None:
        if sample_by not in ("area", "image"):
            raise ValueError(f"sample_by must be 'area' or 'image', got {sample_by!r}")
        self.device = torch.device(device)
        self.lr_patch_size = int(lr_patch_size)
        self.augment = augment
        self.sample_by = sample_by
        self.scales = tuple(sorted(lr_images))
        #: The files the images were read from, in order (set by :meth:`from_folders`).
        self.sources: tuple[Path, ...] = ()
        self._hr = _FlatImages(hr_images, self.device)
        self._lr: dict[int, _FlatImages | _LRShapes] = {}
        self._images: dict[int, torch.Tensor] = {}
        self._weights: dict[int, torch.Tensor] = {}
        p = self.lr_patch_size
        for scale, lrs in lr_images.items():
            if lrs is not None and len(lrs) != len(hr_images):
                raise ValueError(f"x{scale}: {len(lrs)} LR images for {len(hr_images)} HR images")
            shapes = (
                [img.shape[:2] for img in lrs]
                if lrs is not None
                else [(h // scale, w // scale) for h, w, _ in (img.shape for img in hr_images)]
            )
            keep = [i for i, hw in enumerate(shapes) if min(hw) >= p]
            if not keep:
                raise ValueError(
                    f"no training image is large enough for a {p}x{p} LR patch at x{scale} "
                    f"(HR at least {p * scale}x{p * scale}); use a smaller lr_patch_size"
                )
            if len(keep) < len(shapes):
                warnings.warn(
                    f"x{scale}: {len(shapes) - len(keep)} of {len(shapes)} images are smaller than a "
                    f"{p * scale}x{p * scale} HR patch and are left out",
                    stacklevel=2,
                )
            self._images[scale] = torch.tensor(keep, device=self.device)
            self._lr[scale] = (
                _FlatImages(lrs, self.device) if lrs is not None else _LRShapes(hr_images, scale, self.device)
            )
            area = self._lr[scale].height * self._lr[scale].width
            weights = area[self._images[scale]] if sample_by == "area" else torch.ones(len(keep), device=self.device)
            # float32 (no float64 on the device: MPS has none); exact for any image under 16 Mpixel of LR
            self._weights[scale] = weights.float()

    def num_images(self, scale: int) -> int:
        """How many images serve patches at ``scale``."""
        return self._images[self._check_scale(scale)].numel()

    def _check_scale(self, scale: int) -> int:
        if scale not in self._lr:
            raise ValueError(f"scale {scale!r} is not one of this sampler's scales {self.scales}")
        return scale

    def draw(self, batch_size: int, scale: int, generator: torch.Generator) -> PatchDraw:
        """Draw images, positions and transforms for a batch; ``generator`` must live on :attr:`device`."""
        scale = self._check_scale(scale)
        lr = self._lr[scale]
        pick = torch.multinomial(self._weights[scale], batch_size, replacement=True, generator=generator)
        image = self._images[scale][pick]
        p = self.lr_patch_size
        # uniform integers below each image's own bound, in integers only (a 62-bit draw's modulo bias is nil)
        y = self._below(lr.height[image] - p + 1, generator)
        x = self._below(lr.width[image] - p + 1, generator)
        flips = None
        if self.augment:
            flips = torch.randint(0, 2, (batch_size, 3), generator=generator, device=self.device).bool()
        return PatchDraw(scale=scale, image=image, y=y, x=x, flips=flips)

    def _below(self, bound: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        draws = torch.randint(0, 2**62, bound.shape, generator=generator, device=self.device)
        return draws % bound

    @property
    def has_lr(self) -> bool:
        """Whether LR images were made (``False`` for an HR-only sampler)."""
        return all(isinstance(lr, _FlatImages) for lr in self._lr.values())

    def crop_hr(self, draw: PatchDraw) -> torch.Tensor:
        """The HR patches of a draw as uint8 NCHW tensors (channels-last memory)."""
        return self._hr.gather(draw, self.lr_patch_size * draw.scale, draw.scale)

    def crop(self, draw: PatchDraw) -> tuple[torch.Tensor, torch.Tensor]:
        """The LR and HR patches of a draw as uint8 NCHW tensors (channels-last memory).

        Raises:
            ValueError: For an HR-only sampler (built without LR images).
        """
        lr_images = self._lr[draw.scale]
        if not isinstance(lr_images, _FlatImages):
            raise ValueError("this sampler holds no LR images (built HR-only): crop the HR with crop_hr")
        return lr_images.gather(draw, self.lr_patch_size, 1), self.crop_hr(draw)

    def sample(self, batch_size: int, scale: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of LR and HR patches as float NCHW tensors in [0, 1] (channels-last memory)."""
        lr, hr = self.crop(self.draw(batch_size, scale, generator))
        return lr.float().div_(255), hr.float().div_(255)

    @classmethod
    def from_folders(
        cls,
        folders: Sequence[str | Path],
        scales: Sequence[int],
        lr_patch_size: int = 48,
        *,
        n_colors: int = 3,
        cache_dir: str | Path | None = None,
        augment: bool = True,
        sample_by: str = "area",
        device: str | torch.device = "cpu",
        shard: tuple[int, int] | None = None,
        make_lr: bool = True,
    ) -> PatchSampler:
        """Read the HR images of ``folders``, make (or load cached) LR for each scale, and build a sampler.

        Args:
            folders: Folders of HR images.
            scales: The scales to make LR for.
            lr_patch_size: Side of the LR patches.
            n_colors: Channels the model takes (grayscale images are repeated).
            cache_dir: Folder of LR caches (one ``.npz`` per folder and scale); ``None``
                for none.
            augment: Random flips and transposition.
            sample_by: ``"area"`` or ``"image"``.
            device: Where images are kept and patches cropped.
            shard: ``(rank, world_size)`` to read only this process's share of the images
                (:func:`shard_indices` over all folders; balanced by pixel count, or by
                count with ``sample_by="image"``); ``None`` reads them all. The LR caches
                are then per shard.
            make_lr: Make (or load) the MATLAB-bicubic LR images; ``False`` builds an
                HR-only sampler (no LR made, no cache read or written), for LR made per
                patch.
        """
        if not folders:
            raise ValueError("no training folder given: pass one or more folders of HR images")
        listed = [[Path(p) for p in list_images(folder)] for folder in folders]
        if shard is not None:
            every = [p for paths in listed for p in paths]
            sizes = [_pixel_count(p) if sample_by == "area" else 1 for p in every]
            keep = {every[i] for i in shard_indices(sizes, *shard)}
            listed = [[p for p in paths if p in keep] for paths in listed]
        hr: list[np.ndarray] = []
        lr: dict[int, list[np.ndarray]] = {int(s): [] for s in scales} if make_lr else {}
        sources: list[Path] = []
        for paths in listed:
            if not paths:
                continue
            # one LR cache per folder and scale, so that adding a folder does not invalidate the others
            images = _read_images(paths, n_colors)
            hr += images
            sources += paths
            for s in lr:
                lr[s] += make_lr_images(images, s, paths=paths, cache_dir=cache_dir)
        lr_or_none = lr if make_lr else dict.fromkeys((int(s) for s in scales), None)
        sampler = cls(hr, lr_or_none, lr_patch_size, augment=augment, sample_by=sample_by, device=device)
        sampler.sources = tuple(sources)
        return sampler
