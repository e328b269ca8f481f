"""``upscale_folder``: a folder job, planned (:mod:`~edsr_lib.jobs.planning`), run (:mod:`~edsr_lib.jobs.running`)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from .._device import bind_local_gpu, resolve_device
from .._files import missing_folders, remove_empty_folders
from ..inference import Upscaler, as_upscaler
from ..io import OUTPUT_FORMATS, pixel_limit
from ..models import SRModel
from ..options import UpscaleOptions, precision_of
from .planning import (
    Job,
    JobKind,
    PathLike,
    Plan,
    check_output_dir,
    check_suffix,
    default_kinds,
    expand_suffix,
    find_inputs,
    launcher_shard,
    name_jobs,
)
from .running import Interrupted, Log, Result, Summary, WarningsAsLines, run_jobs, write_stderr

__all__ = ["job_device", "upscale_folder"]


# ---------------------------------------------------------------------------- the whole job
def upscale_folder(
    inputs: PathLike | Iterable[PathLike],
    output_dir: PathLike,
    *,
    model: SRModel | PathLike | Upscaler = "edsr_baseline_x2",
    options: UpscaleOptions | None = None,
    format: str | None = None,
    quality: int | None = None,
    suffix: str = "_x{scale}",
    recursive: bool = False,
    skip_existing: bool = False,
    shard: tuple[int, int] | None = None,
    workers: int = 2,
    max_pixels: int | None = None,
    progress: bool = True,
    log: Log | None = None,
    kinds: Sequence[JobKind] | None = None,
    half: bool | str = False,
    int8: bool = False,
    **changes: Any,
) -> Summary:
    """Upscale files, folders and glob patterns into ``output_dir``, as ``edsr-lib upscale`` does.

    The order of the work: the options and the inputs are checked, ``output_dir`` is
    created and checked to be writable, and only then the :class:`~edsr_lib.Upscaler` is
    made (the model loaded, its weights checked finite, the backend resolved), so a mistake
    costs no computing. Then the outputs are named (:func:`plan_jobs`), this process's
    share is taken, existing outputs are skipped if asked, and :func:`run_jobs` runs the
    rest. The caller's model is never moved or modified.

    Args:
        inputs: Files, folders and glob patterns.
        output_dir: The output folder (created if needed).
        model: An :class:`~edsr_lib.Upscaler` (its options are the run's), or a model, a
            registered name (with its pretrained weights) or a ``save_pretrained`` folder to
            build one from ``options`` and the option fields given by name.
        options: The :class:`~edsr_lib.options.UpscaleOptions` of the run (with a model).
            Without a ``device``, the accelerator (under ``torchrun``, the one of
            ``LOCAL_RANK``, :func:`job_device`). ``batch_size`` is also the number of
            same-size images per forward pass.
        format: ``"png"``, ``"jpg"``, ``"webp"`` or ``"tif"`` (:data:`~edsr_lib.io.OUTPUT_FORMATS`);
            default PNG, or TIFF for float and 32-bit images.
        quality: JPEG and WebP quality, 1-100 (default 95).
        suffix: Added to each output's stem; ``{scale}`` and ``{model}`` are filled in.
        recursive: Walk folders into subfolders; the output mirrors the input tree.
        skip_existing: Leave outputs that exist (and are not empty) alone: reruns resume.
        shard: ``(i, n)``: take only the ``i``-th of ``n`` shares of the files; default the
            share a launcher gives this process (:func:`launcher_shard`), else all.
        workers: Threads decoding, and threads encoding, beside the model.
        max_pixels: The most pixels an image may have before it is refused as a possible
            decompression bomb (``PIL.Image.MAX_IMAGE_PIXELS`` for this run); ``0`` for no
            limit; default Pillow's (about 89 million).
        progress: A progress bar on a terminal (and one over tiles), a line every few files elsewhere.
        log: Where the lines for failures, warnings and progress go (Python warnings
            during the run too, one line each); default standard error.
        kinds: The kinds of input besides images (default :func:`default_kinds`: video, and
            those of :func:`register_kind`).
        half: The older spelling of ``precision`` (``"fp16"``, ``"bf16"``).
        int8: The older spelling of ``precision="int8"``.
        **changes: Fields of :class:`~edsr_lib.options.UpscaleOptions` by name (``scale``,
            ``outscale``, ``tile``, ``self_ensemble``, ``backend="openvino"``, ...), with a
            model; checked at once.

    Returns:
        The :class:`Summary`; ``summary.ok`` is False if anything failed.

    Raises:
        ValueError: For bad options, or when the inputs hold nothing to upscale.
        OSError: If ``output_dir`` cannot be written.
        Interrupted: On Ctrl-C, once the writes in flight are done.
    """
    if isinstance(model, Upscaler):
        as_upscaler(model, options, half=half, int8=int8, **changes)  # refuses options beside it
    else:
        precision = precision_of(half, int8)
        changes |= {"precision": precision} if precision is not None else {}
        options = UpscaleOptions(**changes) if options is None else options.replace(**changes)
    log = log or write_stderr
    with pixel_limit(max_pixels), WarningsAsLines(log), contextlib.ExitStack() as tidy:
        check_suffix(suffix)
        if quality is not None and not 1 <= quality <= 100:
            raise ValueError(f"quality must be in 1..100, got {quality}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if shard is not None and not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
            raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard}")
        if format is not None and format not in OUTPUT_FORMATS:
            raise ValueError(f"unknown output format {format!r}; expected one of {', '.join(OUTPUT_FORMATS)}")
        kinds = default_kinds() if kinds is None else list(kinds)
        found, errors = find_inputs(inputs, recursive, kinds)  # bad inputs and an empty job cost no model loading
        for line in errors:
            log(f"error: {line}")
        if not found:
            raise ValueError("nothing to upscale")
        # a run that writes nothing (every input refused, a bad model) leaves no empty folder behind
        tidy.callback(remove_empty_folders, missing_folders(output_dir))
        check_output_dir(output_dir)

        if not isinstance(model, Upscaler):
            tiles = options.progress or (progress and sys.stderr.isatty())  # a tile bar where the file bar shows
            model = Upscaler(model, options.replace(device=job_device(options.device), progress=tiles))
        upscaler = model
        plan = name_jobs(found, output_dir, expand_suffix(suffix, upscaler.factor, upscaler.name), format, kinds)
        plan.errors = errors
        if plan.left_out:
            log(f"left out {len(plan.left_out)} file(s) that are outputs of this command")
        for path in plan.clashes:
            log(f"error: {path}: its output would overwrite an input (give another suffix, format or output folder)")

        jobs = plan.jobs
        tidy.callback(_subfolder_tidier(output_dir, jobs))
        other_kinds = [j for j in jobs if j.kind is not None]
        if format is not None and other_kinds:
            names = ", ".join(sorted({j.target.suffix for j in other_kinds}))
            log(
                f"note: the output format {format} is for images; {len(other_kinds)} "
                f"{'/'.join(sorted({j.kind.name for j in other_kinds}))} file(s) keep their own ({names})"
            )
        shard = shard if shard is not None else launcher_shard()
        others = 0
        if shard is not None:
            mine = jobs[shard[0] :: shard[1]]
            others = len(jobs) - len(mine)
            log(f"shard {shard[0]} of {shard[1]}: {len(mine)} of {len(jobs)} files here, {others} left to the others")
            jobs = mine
        skipped = [j for j in jobs if skip_existing and j.done(format)]
        todo = [j for j in jobs if j not in skipped]
        try:
            summary = run_jobs(
                upscaler,
                todo,
                format=format,
                quality=quality,
                workers=workers,
                progress=progress,
                log=log,
                output_dir=output_dir,
            )
        except Interrupted as exc:
            _complete(exc.summary, plan, skipped, format, shard, others, upscaler)
            raise
        return _complete(summary, plan, skipped, format, shard, others, upscaler)


def _subfolder_tidier(output_dir: PathLike, jobs: Sequence[Job]) -> Callable[[], None]:
    """A callback removing the folders under ``output_dir`` that the run made (mirroring the inputs) and left empty."""
    top = Path(output_dir)
    folders = {parent for job in jobs for parent in job.target.parents if parent != top and parent.is_relative_to(top)}
    new = sorted((f for f in folders if not f.exists()), key=lambda f: len(f.parts), reverse=True)  # deepest first

    def tidy() -> None:
        for folder in new:
            with contextlib.suppress(OSError):  # not empty: its files were written
                folder.rmdir()

    return tidy


def _complete(
    summary: Summary,
    plan: Plan,
    skipped: list[Job],
    format: str | None,
    shard: tuple[int, int] | None,
    others: int,
    upscaler: Upscaler,
) -> Summary:
    summary.results = [Result(j, "skipped", j.existing(format)) for j in skipped] + summary.results
    summary.errors, summary.left_out, summary.clashes = plan.errors, plan.left_out, plan.clashes
    summary.shard, summary.others = shard, others
    summary.ran = f"{upscaler.backend} {upscaler.precision}"
    return summary


def job_device(device: torch.device | str | None = None) -> torch.device:
    """The device a folder job runs on: ``device``, or the accelerator; under a launcher, the one of ``LOCAL_RANK``.

    On CUDA under ``torchrun`` this process's GPU is made current first, before anything
    opens a CUDA context (which would land on GPU 0 for every process).

    Raises:
        ValueError: For a device that is not a torch device or does not exist.
    """
    local_rank = os.environ.get("LOCAL_RANK")
    under_launcher = local_rank is not None and launcher_shard() is not None
    if under_launcher and (index := bind_local_gpu(device)) is not None:
        return torch.device("cuda", index)
    resolved = resolve_device(device)
    if under_launcher and resolved.type not in ("cpu", "cuda") and resolved.index is None:
        resolved = resolve_device(f"{resolved.type}:{local_rank}")
    return resolved
