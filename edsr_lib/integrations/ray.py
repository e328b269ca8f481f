"""Upscale folders of images on a `Ray <https://www.ray.io>`_ cluster with Ray Data.

The recipe: a dataset of file paths and their outputs (``ray.data.from_items``),
``map_batches`` with :class:`BatchUpscaler`, a callable class, so that each actor loads the
model once and keeps it; one GPU per actor when the cluster has GPUs (never more actors
than GPUs), else a CPU worker each. Only paths travel through the object store: each actor
reads, upscales and writes its images with the engine of ``edsr-lib upscale``
(:func:`edsr_lib.jobs.run_jobs`), so the files are byte for byte the command line's
(names, 16-bit, gray, alpha, ICC profile, EXIF, DPI, the ``.tif`` of float images), the
next images are decoded and the last ones encoded while the model runs, writes are
atomic, and a file that fails (unreadable, out of memory on the GPU or the host) is
reported in its row and costs no other file. Existing outputs are skipped, so a job that
died halfway is restarted with the same call.

The inputs and the output folder must be on storage every node sees (NFS, a mounted
bucket); :func:`upscale_folder` is the whole recipe for the common case, and
:class:`BatchUpscaler` the piece to put in pipelines of your own.

Example:
    >>> import ray
    >>> from edsr_lib.integrations.ray import upscale_folder
    >>> ray.init()  # or ray.init("auto") on a cluster  # doctest: +SKIP
    >>> rows = upscale_folder("photos/", "photos_x2/", model="edsr_baseline_x2")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import ray

from ..inference import as_upscaler, load_model
from ..jobs import Job, expand_suffix, make_job, plan_jobs, run_jobs
from ..options import UpscaleOptions, precision_of

__all__ = ["BatchUpscaler", "actor_resources", "output_path", "upscale_folder"]

PathLike = str | os.PathLike[str]


def output_path(
    source: PathLike, output_dir: PathLike, scale: float, format: str | None = None, suffix: str = "_x{scale}"
) -> Path:
    """Where ``edsr-lib upscale`` writes the result of ``source``: ``OUT/<stem>_x<scale>.<format>``.

    Args:
        source: The input image file.
        output_dir: The output folder.
        scale: The scale (or output factor).
        format: ``"png"`` (the default), ``"jpg"``, ``"webp"`` or ``"tif"``.
        suffix: The suffix, as ``--suffix`` takes it.
    """
    return make_job(source, output_dir, suffix=expand_suffix(suffix, scale), format=format, kinds=()).target


class BatchUpscaler:
    """A ``map_batches`` callable class: one :class:`edsr_lib.Upscaler` per actor; each batch read, upscaled, written.

    Args:
        model: A registered name (with its pretrained weights) or a ``save_pretrained``
            folder, as for ``edsr-lib upscale --model``.
        output_dir: Folder of the results, for rows without an ``"output"`` column (named
            as :func:`output_path` names them).
        options: The :class:`~edsr_lib.options.UpscaleOptions` of the run; without a
            ``device``, the accelerator when the actor has one, else the CPU.
        format: ``"png"``, ``"jpg"``, ``"webp"`` or ``"tif"``; default PNG (TIFF for float
            images), as the command line.
        quality: JPEG and WebP quality, 1-100 (default 95).
        suffix: Added to each output's stem, as ``--suffix``.
        skip_existing: Leave outputs that exist (and are not empty) as they are.
        workers: Threads decoding, and threads encoding, beside the model in each actor.
        half: The older spelling of ``precision`` (``"fp16"``, ``"bf16"``).
        int8: The older spelling of ``precision="int8"``.
        **changes: Fields of :class:`~edsr_lib.options.UpscaleOptions` by name (``scale``,
            ``outscale``, ``tile``, ``backend``, ...), checked when the actor starts.

    Each batch is a dict with a ``"path"`` column and optionally an ``"output"`` column
    (the file to write, as :func:`upscale_folder` plans it); the result has ``"path"``,
    ``"output"`` (the file written) and ``"status"`` (``"written"``, ``"skipped"`` or
    ``"error: ..."``).
    """

    def __init__(
        self,
        model: str,
        output_dir: PathLike | None = None,
        *,
        options: UpscaleOptions | None = None,
        format: str | None = None,
        quality: int | None = None,
        suffix: str = "_x{scale}",
        skip_existing: bool = True,
        workers: int = 2,
        half: str | bool = False,
        int8: bool = False,
        **changes: Any,
    ) -> None:
        self.upscaler = as_upscaler(model, options, half=half, int8=int8, **changes)
        self.suffix = expand_suffix(suffix, self.upscaler.factor, self.upscaler.name)
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.format, self.quality, self.skip_existing, self.workers = format, quality, skip_existing, workers

    def _job(self, source: str, output: str | None) -> Job:
        if output:
            return Job(Path(source), Path(output))
        if self.output_dir is None:
            raise ValueError("give output_dir, or an 'output' column with the file to write")
        return make_job(source, self.output_dir, suffix=self.suffix, format=self.format, kinds=())

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Upscale the images of ``batch["path"]``; see the class for the columns."""
        paths = [str(p) for p in batch["path"]]
        outputs = [str(o) for o in batch["output"]] if "output" in batch else [""] * len(paths)
        jobs = [self._job(p, o) for p, o in zip(paths, outputs, strict=True)]
        rows: dict[int, tuple[str, str]] = {}
        todo = []
        for i, job in enumerate(jobs):
            if self.skip_existing and job.done(self.format):
                rows[i] = (str(job.existing(self.format)), "skipped")
            else:
                todo.append(i)
        summary = run_jobs(
            self.upscaler,
            [jobs[i] for i in todo],
            format=self.format,
            quality=self.quality,
            workers=self.workers,
            progress=False,  # failures are in the rows too; warnings and notes go to the worker's log
        )
        for i, result in zip(todo, summary.results, strict=True):
            written = result.status == "written"
            rows[i] = (str(result.output or result.job.target), "written" if written else f"error: {result.reason}")
        return {
            "path": np.asarray(paths),
            "output": np.asarray([rows[i][0] for i in range(len(jobs))]),
            "status": np.asarray([rows[i][1] for i in range(len(jobs))]),
        }


def actor_resources(workers: int | None, cluster: Mapping[str, float]) -> tuple[int, dict[str, float]]:
    """How many actors to start, and what each asks for, on a cluster with ``cluster`` resources.

    With GPUs, one GPU per actor and never more actors than GPUs (an actor waiting for a
    GPU that does not exist would stall the job); without, one CPU per actor, one per CPU
    by default.

    Args:
        workers: The actors asked for; default one per GPU, or one per CPU.
        cluster: ``ray.cluster_resources()``.

    Returns:
        ``(concurrency, resources)`` for ``map_batches``.
    """
    gpus = int(cluster.get("GPU", 0))
    if gpus:
        if workers is not None and workers > gpus:
            warnings.warn(f"{workers} workers asked for, but the cluster has {gpus} GPU(s): using {gpus}", stacklevel=2)
        return min(workers or gpus, gpus), {"num_gpus": 1}
    return max(1, workers or int(cluster.get("CPU", 1))), {"num_cpus": 1}


def upscale_folder(
    inputs: PathLike | Iterable[PathLike],
    output_dir: PathLike,
    *,
    model: str = "edsr_baseline_x2",
    options: UpscaleOptions | None = None,
    workers: int | None = None,
    format: str | None = None,
    quality: int | None = None,
    suffix: str = "_x{scale}",
    recursive: bool = False,
    skip_existing: bool = True,
    batch_size: int = 8,
    half: str | bool = False,
    int8: bool = False,
    **changes: Any,
) -> list[dict[str, Any]]:
    """Upscale every image of ``inputs`` into ``output_dir`` on the Ray cluster this process is connected to.

    The files are planned as ``edsr-lib upscale`` plans them (:func:`edsr_lib.jobs.plan_jobs`:
    the same names, the same mirrored tree with ``recursive``, this run's outputs never read
    back); outputs that exist are skipped here already. With GPUs in the cluster each actor
    takes one (at most one actor per GPU), otherwise one CPU; the model is loaded once per
    actor.

    Args:
        inputs: Image files, folders or glob patterns, as for ``edsr-lib upscale``.
        output_dir: Folder of the results; it must be visible to every node.
        model: A registered name or a ``save_pretrained`` folder.
        options: The :class:`~edsr_lib.options.UpscaleOptions` of every actor's
            :class:`edsr_lib.Upscaler` (checked here, before any actor starts); without a
            ``device``, each actor's GPU, or the CPU.
        workers: Number of actors; default one per GPU, or one per CPU when there are none.
        format: ``"png"``, ``"jpg"``, ``"webp"`` or ``"tif"``; default as the command line.
        quality: JPEG and WebP quality, 1-100 (default 95).
        suffix: Added to each output's stem, as ``--suffix``.
        recursive: Walk folders into subfolders; the output mirrors the input tree.
        skip_existing: Leave outputs that exist as they are.
        batch_size: Images per ``map_batches`` call (decoding and encoding overlap the model
            within a batch).
        half: The older spelling of ``precision`` (``"fp16"``, ``"bf16"``).
        int8: The older spelling of ``precision="int8"``.
        **changes: Fields of :class:`~edsr_lib.options.UpscaleOptions` by name (``scale``,
            ``outscale``, ``tile``, ``backend="openvino"`` or ``precision="int8"`` on CPU
            workers, ...).

    Returns:
        One row per input file: ``path``, ``output`` and ``status`` (``"written"``,
        ``"skipped"`` or ``"error: ..."``), in input order.

    Raises:
        ValueError: If ``inputs`` hold no images.
    """
    precision = precision_of(half, int8)
    changes |= {"precision": precision} if precision is not None else {}
    options = UpscaleOptions(**changes) if options is None else options.replace(**changes)
    if not ray.is_initialized():
        ray.init()
    factor = options.outscale or load_model(model, cache=True).resolve_scale(options.scale)
    plan = plan_jobs(
        inputs,
        output_dir,
        suffix=expand_suffix(suffix, factor, Path(model).name),
        format=format,
        recursive=recursive,
        kinds=(),
    )
    if not plan.jobs and not plan.clashes:
        raise ValueError("no images to upscale" + (f": {'; '.join(plan.errors)}" if plan.errors else ""))
    rows: dict[str, dict[str, Any]] = {}
    for path in plan.clashes:
        rows[str(path)] = {"path": str(path), "output": str(path), "status": "error: its output would overwrite it"}
    todo = []
    for job in plan.jobs:
        if skip_existing and job.done(format):
            rows[str(job.source)] = {"path": str(job.source), "output": str(job.existing(format)), "status": "skipped"}
        else:
            todo.append({"path": str(job.source), "output": str(job.target)})
    if todo:
        concurrency, resources = actor_resources(workers, ray.cluster_resources())
        dataset = ray.data.from_items(todo).map_batches(
            BatchUpscaler,
            fn_constructor_args=(model, output_dir),
            fn_constructor_kwargs={
                "options": options.replace(device=options.device or ("cuda" if "num_gpus" in resources else "cpu")),
                "format": format,
                "quality": quality,
                "suffix": suffix,
                "skip_existing": skip_existing,
            },
            batch_size=batch_size,
            concurrency=min(concurrency, len(todo)),
            **resources,
        )
        for row in dataset.take_all():
            rows[str(row["path"])] = {k: str(row[k]) for k in ("path", "output", "status")}
    order = [str(j.source) for j in plan.jobs] + [str(p) for p in plan.clashes]
    return [rows[path] for path in order]
