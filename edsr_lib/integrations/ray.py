"""Upscale folders of images on a `Ray <https://www.ray.io>`_ cluster with Ray Data.

The recipe: a dataset of file paths (``ray.data.from_items``), ``map_batches`` with
:class:`Upscaler`, a callable class, so that each actor loads the model once and keeps
it; one GPU per actor when the cluster has GPUs, else a CPU worker each. Every actor
reads, upscales and writes its images itself (only paths travel through the object
store) with the functions ``edsr-lib upscale`` uses, so the files are the same as the
command line's: :func:`edsr_lib.io.read_image` (EXIF orientation applied; grayscale and
alpha kept), :func:`edsr_lib.upscale`, and :func:`edsr_lib.io.write_image`, which writes
atomically (a crashed or pre-empted worker never leaves a partial file). Existing outputs
are skipped, so a job that died halfway is restarted with the same call. A file that
cannot be read is reported in its row and costs no other file.

The inputs and the output folder must be on storage every node sees (NFS, a mounted
bucket); :func:`upscale_folder` is the whole recipe for the common case, and
:class:`Upscaler` the piece to put in pipelines of your own.

Example:
    >>> import ray
    >>> from edsr_lib.integrations.ray import upscale_folder
    >>> ray.init()  # or ray.init("auto") on a cluster  # doctest: +SKIP
    >>> rows = upscale_folder("photos/", "photos_x2/", model="edsr_baseline_x2")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import ray

from ..inference import load_model, resolve_device, upscale
from ..io import ImageReadError, list_images, read_image, write_image

__all__ = ["Upscaler", "output_path", "upscale_folder"]

PathLike = str | os.PathLike[str]


def output_path(source: PathLike, output_dir: PathLike, scale: int, format: str = "png") -> Path:
    """Where ``edsr-lib upscale`` writes the result of ``source``: ``OUT/<stem>_x<scale>.<format>``.

    Args:
        source: The input image file.
        output_dir: The output folder.
        scale: The scale.
        format: ``"png"``, ``"jpg"`` or ``"webp"``.
    """
    return Path(output_dir) / f"{Path(source).stem}_x{scale}.{format}"


class Upscaler:
    """A ``map_batches`` callable class: one model per actor, each batch of paths read, upscaled and written.

    Args:
        model: A registered name (with its pretrained weights) or a ``save_pretrained``
            folder, as for ``edsr-lib upscale --model``.
        output_dir: Folder of the results (created if needed).
        scale: The scale (needed for multi-scale models).
        tile: Tile size in LR pixels, ``"auto"`` (from free memory) or ``None`` (one pass, the
            command line's default), as for :func:`edsr_lib.upscale`.
        format: ``"png"``, ``"jpg"`` or ``"webp"``.
        device: Any torch device (``"cuda"``, ``"cpu"``, ...); default the accelerator when the
            actor has one, else the CPU.
        half: ``"fp16"`` or ``"bf16"`` autocast (CUDA only), or ``False``.
        skip_existing: Leave outputs that exist as they are.

    Each batch is a dict with a ``"path"`` column; the result has ``"path"``,
    ``"output"`` and ``"status"`` (``"written"``, ``"skipped"`` or ``"error: ..."``).
    """

    def __init__(
        self,
        model: str,
        output_dir: PathLike,
        *,
        scale: int | None = None,
        tile: int | Literal["auto"] | None = None,
        format: str = "png",
        device: str | None = None,
        half: str | bool = False,
        skip_existing: bool = True,
    ) -> None:
        self.device = resolve_device(device)
        self.model = load_model(model).to(self.device)
        self.scale = self.model.resolve_scale(scale)
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.tile, self.format, self.half, self.skip_existing = tile, format, half, skip_existing

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Upscale the images of ``batch["path"]``; see the class for the columns."""
        outputs, statuses = [], []
        for source in batch["path"]:
            target = output_path(str(source), self.output_dir, self.scale, self.format)
            outputs.append(str(target))
            if self.skip_existing and target.exists():
                statuses.append("skipped")
                continue
            try:
                image = read_image(str(source))
                result = upscale(self.model, image, self.scale, tile=self.tile, device=self.device, half=self.half)
                write_image(target, result)
                statuses.append("written")
            except (ImageReadError, ValueError, OSError) as exc:
                statuses.append(f"error: {exc}")
        return {"path": np.asarray(batch["path"]), "output": np.asarray(outputs), "status": np.asarray(statuses)}


def upscale_folder(
    inputs: PathLike | Iterable[PathLike],
    output_dir: PathLike,
    *,
    model: str = "edsr_baseline_x2",
    scale: int | None = None,
    workers: int | None = None,
    tile: int | Literal["auto"] | None = None,
    format: str = "png",
    half: str | bool = False,
    skip_existing: bool = True,
    batch_size: int = 4,
) -> list[dict[str, Any]]:
    """Upscale every image of ``inputs`` into ``output_dir`` on the Ray cluster this process is connected to.

    Outputs that exist are skipped here already (and again by the workers, for jobs that
    overlap). With GPUs in the cluster each actor takes one, otherwise one CPU; the model
    is loaded once per actor.

    Args:
        inputs: Image files, folders (their images, not recursive) or glob patterns, as
            for ``edsr-lib upscale``.
        output_dir: Folder of the results, ``<stem>_x<scale>.<format>`` as the command line
            names them; it must be visible to every node.
        model: A registered name or a ``save_pretrained`` folder.
        scale: The scale (needed for multi-scale models).
        workers: Number of actors; default one per GPU, or one per CPU when there are none.
        tile: Tile size in LR pixels, ``"auto"`` (for large photos) or ``None`` (one pass, as
            ``edsr-lib upscale`` by default).
        format: ``"png"``, ``"jpg"`` or ``"webp"``.
        half: ``"fp16"`` or ``"bf16"`` autocast on GPUs, or ``False``.
        skip_existing: Leave outputs that exist as they are.
        batch_size: Images per ``map_batches`` call.

    Returns:
        One row per input image: ``path``, ``output`` and ``status`` (``"written"``,
        ``"skipped"`` or ``"error: ..."``), in input order.

    Raises:
        FileNotFoundError: If ``inputs`` hold no images.
    """
    if not ray.is_initialized():
        ray.init()
    files = [str(p) for p in list_images(inputs)]
    scale = load_model(model).resolve_scale(scale) if scale is None else scale
    rows: dict[str, dict[str, Any]] = {}
    todo = []
    for path in files:
        target = output_path(path, output_dir, scale, format)
        if skip_existing and target.exists():
            rows[path] = {"path": path, "output": str(target), "status": "skipped"}
        else:
            todo.append({"path": path})
    if todo:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        workers = workers or gpus or max(1, int(ray.cluster_resources().get("CPU", 1)))
        resources = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        dataset = ray.data.from_items(todo).map_batches(
            Upscaler,
            fn_constructor_args=(model, output_dir),
            fn_constructor_kwargs={
                "scale": scale,
                "tile": tile,
                "format": format,
                "device": "cuda" if gpus else "cpu",
                "half": half,
                "skip_existing": skip_existing,
            },
            batch_size=batch_size,
            concurrency=min(workers, len(todo)),
            **resources,
        )
        for row in dataset.take_all():
            rows[str(row["path"])] = {k: str(row[k]) for k in ("path", "output", "status")}
    return [rows[path] for path in files]
