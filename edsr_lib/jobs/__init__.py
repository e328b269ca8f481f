"""Folder jobs: many input files, one upscaled file each; the engine of ``edsr-lib upscale``.

The command line, :mod:`edsr_lib.integrations.ray` and Python callers run folders through
this package, so they read, name and write the same files (:mod:`~edsr_lib.jobs.planning`
plans, :mod:`~edsr_lib.jobs.running` runs, this module does both):

* :func:`plan_jobs` names the output of every input: ``<output_dir>/<stem><suffix>.<ext>``;
  with ``recursive`` (or a ``**`` glob) the input tree is mirrored under ``output_dir``.
  Inputs that are this run's own outputs are left out (a rerun never upscales its results
  again), and an input whose output would overwrite it is refused.
* :func:`run_jobs` runs jobs with one model. Reader threads decode the next images while
  the model works, images of one size and mode are batched, writer threads encode the
  results; a batch that fails is split until the failing image is found, so one bad file
  costs only itself. Every failure is one line naming the file. The run stops at the first
  full disk (files already written are kept), and after Ctrl-C or SIGTERM it lets the
  writes in flight finish, so no half-written or temporary file stays behind.
* :func:`upscale_folder` is both, with ``skip_existing``, shards (``shard=(i, n)``, or the
  process's share under ``torchrun``) and a :class:`Summary`.

Still images are built in. Another kind of input plugs in by file type: an object with
the :class:`JobKind` interface (the suffixes it takes, the suffix of its output, and a
``process`` that upscales one whole file) passed in ``kinds=`` or registered once with
:func:`register_kind`. Its files are planned, named, sharded, skipped and reported like
images; only the upscaling of one file is its own.

Example:
    >>> from edsr_lib.jobs import upscale_folder
    >>> summary = upscale_folder("photos/", "photos_x2/", model="edsr_baseline_x2")  # doctest: +SKIP
    >>> print(summary)  # doctest: +SKIP
    wrote 12 images to photos_x2 (0 failed, 0 skipped)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from .._device import bind_local_gpu, resolve_device, resolve_half
from .._files import missing_folders, remove_empty_folders
from ..backends import choose, int8_model
from ..inference import check_finite_weights, load_model, plan_passes
from ..io import OUTPUT_FORMATS, pixel_limit
from ..models import SRModel
from . import planning
from .planning import (
    SUFFIX_FIELDS,
    Job,
    JobKind,
    PathLike,
    Plan,
    check_output_dir,
    check_suffix,
    expand_suffix,
    launcher_shard,
    make_job,
    plan_jobs,
    register_kind,
)
from .running import Interrupted, Log, Result, Summary, _stderr, _WarningsAsLines, describe, run_jobs

__all__ = [
    "SUFFIX_FIELDS",
    "Interrupted",
    "Job",
    "JobKind",
    "Log",
    "Plan",
    "Result",
    "Summary",
    "check_output_dir",
    "check_suffix",
    "describe",
    "expand_suffix",
    "job_device",
    "launcher_shard",
    "make_job",
    "plan_jobs",
    "register_kind",
    "run_jobs",
    "upscale_folder",
]


# ---------------------------------------------------------------------------- the whole job
def upscale_folder(
    inputs: PathLike | Iterable[PathLike],
    output_dir: PathLike,
    *,
    model: SRModel | PathLike = "edsr_baseline_x2",
    scale: int | None = None,
    outscale: float | None = None,
    format: str | None = None,
    quality: int | None = None,
    suffix: str = "_x{scale}",
    recursive: bool = False,
    skip_existing: bool = False,
    shard: tuple[int, int] | None = None,
    workers: int = 2,
    batch_size: int = 4,
    device: torch.device | str | None = None,
    half: bool | str = False,
    max_pixels: int | None = None,
    progress: bool = True,
    log: Log | None = None,
    kinds: Sequence[JobKind] | None = None,
    **options: Any,
) -> Summary:
    """Upscale files, folders and glob patterns into ``output_dir``, as ``edsr-lib upscale`` does.

    The order of the work: the options and the inputs are checked, ``output_dir`` is
    created and checked to be writable, and only then the model is loaded (and its
    weights checked finite), so a mistake costs no computing. Then the outputs are named
    (:func:`plan_jobs`), this process's share is taken, existing outputs are skipped if
    asked, and :func:`run_jobs` runs the rest.

    Args:
        inputs: Files, folders and glob patterns.
        output_dir: The output folder (created if needed).
        model: A model, a registered name (with its pretrained weights) or a
            ``save_pretrained`` folder.
        scale: The scale (needed for multi-scale models).
        outscale: Instead of ``scale``, any output factor above 1.
        format: ``"png"``, ``"jpg"``, ``"webp"`` or ``"tif"`` (:data:`~edsr_lib.io.OUTPUT_FORMATS`);
            default PNG, or TIFF for float and 32-bit images.
        quality: JPEG and WebP quality, 1-100 (default 95).
        suffix: Added to each output's stem; ``{scale}`` and ``{model}`` are filled in.
        recursive: Walk folders into subfolders; the output mirrors the input tree.
        skip_existing: Leave outputs that exist (and are not empty) alone: reruns resume.
        shard: ``(i, n)``: take only the ``i``-th of ``n`` shares of the files; default the
            share a launcher gives this process (:func:`launcher_shard`), else all.
        workers: Threads decoding, and threads encoding, beside the model.
        batch_size: Images (or tiles) per forward pass.
        device: Any torch device; default the accelerator (under ``torchrun``, the one of
            ``LOCAL_RANK``).
        half: ``"fp16"`` or ``"bf16"`` autocast, or ``False``.
        max_pixels: The most pixels an image may have before it is refused as a possible
            decompression bomb (``PIL.Image.MAX_IMAGE_PIXELS`` for this run); ``0`` for no
            limit; default Pillow's (about 89 million).
        progress: A progress bar on a terminal, a line every few files elsewhere.
        log: Where the lines for failures, warnings and progress go (Python warnings
            during the run too, one line each); default standard error.
        kinds: Other kinds of input to take (default those of :func:`register_kind`).
        **options: More keyword arguments of :func:`edsr_lib.upscale` (``tile``,
            ``self_ensemble``, ``backend="openvino"``, ...).

    Returns:
        The :class:`Summary`; ``summary.ok`` is False if anything failed.

    Raises:
        ValueError: For bad options, or when the inputs hold nothing to upscale.
        OSError: If ``output_dir`` cannot be written.
        Interrupted: On Ctrl-C, once the writes in flight are done.
    """
    log = log or _stderr
    with pixel_limit(max_pixels), _WarningsAsLines(log), contextlib.ExitStack() as tidy:
        check_suffix(suffix)
        if scale is not None and outscale is not None:
            raise ValueError(f"give scale or outscale, not both (scale={scale}, outscale={outscale})")
        if quality is not None and not 1 <= quality <= 100:
            raise ValueError(f"quality must be in 1..100, got {quality}")
        if workers < 1 or batch_size < 1:
            raise ValueError(f"workers and batch_size must be at least 1, got {workers} and {batch_size}")
        if shard is not None and not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
            raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard}")
        if format is not None and format not in OUTPUT_FORMATS:
            raise ValueError(f"unknown output format {format!r}; expected one of {', '.join(OUTPUT_FORMATS)}")
        kinds = list(planning._KINDS if kinds is None else kinds)
        found, errors = planning._find(inputs, recursive, kinds)  # bad inputs and an empty job cost no model loading
        for line in errors:
            log(f"error: {line}")
        if not found:
            raise ValueError("nothing to upscale")
        # a run that writes nothing (every input refused, a bad model) leaves no empty folder behind
        tidy.callback(remove_empty_folders, missing_folders(output_dir))
        check_output_dir(output_dir)

        device = job_device(device)
        half_dtype = resolve_half(half, device)
        # a runtime that cannot run here fails the job once, not each file
        int8 = bool(options.get("int8", False))
        choose(options.get("backend"), half=half_dtype, int8=int8, device=device)
        net = load_model(model).to(device)
        check_finite_weights(net)  # once, before any file: every output would be garbage
        factor = outscale if outscale is not None else net.resolve_scale(scale)
        if int8:  # weights without an int8 model fail the job once too
            for s in plan_passes(net.scales, outscale) if outscale is not None else (factor,):
                int8_model(net, s)
        name = Path(model).name if isinstance(model, str | os.PathLike) else getattr(net, "variant", "") or "model"
        plan = planning._name(found, output_dir, expand_suffix(suffix, factor, name), format, kinds)
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

        upscale_options = {"scale": None if outscale is not None else scale, "outscale": outscale, **options}
        try:
            summary = run_jobs(
                net,
                todo,
                format=format,
                quality=quality,
                workers=workers,
                batch_size=batch_size,
                progress=progress,
                log=log,
                output_dir=output_dir,
                device=device,
                half=half,
                **upscale_options,
            )
        except Interrupted as exc:
            _complete(exc.summary, plan, skipped, format, shard, others)
            raise
        return _complete(summary, plan, skipped, format, shard, others)


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
    summary: Summary, plan: Plan, skipped: list[Job], format: str | None, shard: tuple[int, int] | None, others: int
) -> Summary:
    summary.results = [Result(j, "skipped", j.existing(format)) for j in skipped] + summary.results
    summary.errors, summary.left_out, summary.clashes = plan.errors, plan.left_out, plan.clashes
    summary.shard, summary.others = shard, others
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
