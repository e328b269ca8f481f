"""Folder jobs: many input files, one upscaled file each; the engine of ``edsr-lib upscale``.

The command line, :mod:`edsr_lib.integrations.ray` and Python callers run folders through
this module, so they read, name and write the same files:

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

import errno
import itertools
import math
import os
import string
import sys
import tempfile
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from PIL import Image
from tqdm.auto import tqdm

from ._device import resolve_device, resolve_half
from ._files import stale_temporary_files
from .inference import check_finite_weights, load_model, upscale
from .io import IMAGE_SUFFIXES, OUTPUT_FORMATS, check_writable, list_images, load_image, write_image
from .models import SRModel

__all__ = [
    "Interrupted",
    "Job",
    "JobKind",
    "Plan",
    "Result",
    "Summary",
    "check_output_dir",
    "expand_suffix",
    "launcher_shard",
    "make_job",
    "plan_jobs",
    "register_kind",
    "run_jobs",
    "upscale_folder",
]

PathLike = str | os.PathLike[str]
Log = Callable[[str], None]

#: Placeholders that ``suffix`` may hold: ``{scale}`` (the factor, ``2`` or ``1.5``) and
#: ``{model}`` (the model's name, or the name of its folder).
SUFFIX_FIELDS = ("scale", "model")
#: Modes whose results no PNG holds: without an explicit format they are written as TIFF.
_TIFF_ONLY_MODES = ("I", "F")
#: Errors of a full disk: the run stops at the first, since every later file would fail the same way.
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@runtime_checkable
class JobKind(Protocol):
    """A kind of input that is upscaled a whole file at a time (video is one); images are built in.

    Attributes:
        name: One word for messages (``"video"``).
        suffixes: The lower-case file suffixes it takes (``(".mp4", ".mkv")``); folders and
            globs pick these files up beside the images.
    """

    name: str
    suffixes: tuple[str, ...]

    def output_suffix(self, source: Path) -> str:
        """The suffix of the file written for ``source`` (``".mp4"``)."""
        ...

    def process(self, model: SRModel, source: Path, target: Path, options: Mapping[str, Any]) -> None:
        """Upscale ``source`` into ``target``, atomically, raising on failure.

        Args:
            model: The model, on its device.
            source: The input file.
            target: Where the result goes (its folder exists).
            options: Keyword arguments of :func:`edsr_lib.upscale` for this run (``scale`` or
                ``outscale``, ``tile``, ``batch_size``, ``device``, ``half``, ...).
        """
        ...


_KINDS: list[JobKind] = []


def register_kind(kind: JobKind) -> None:
    """Make folders, globs and :func:`upscale_folder` take the files of ``kind`` by default.

    A kind registered again under the same name replaces the earlier one.

    Raises:
        TypeError: If ``kind`` lacks the :class:`JobKind` interface.
        ValueError: If it claims an image suffix.
    """
    if not isinstance(kind, JobKind):
        raise TypeError(f"expected a JobKind (name, suffixes, output_suffix, process), got {type(kind).__name__}")
    taken = set(kind.suffixes) & set(IMAGE_SUFFIXES)
    if taken:
        raise ValueError(f"{kind.name} cannot take {', '.join(sorted(taken))}: image files are the engine's own")
    _KINDS[:] = [k for k in _KINDS if k.name != kind.name] + [kind]


@dataclass(frozen=True)
class Job:
    """One input file and where its result goes.

    Attributes:
        source: The input file.
        target: The output file (an image without an explicit format may go to
            ``target.with_suffix(".tif")`` instead, see :meth:`outputs`).
        kind: ``None`` for an image, else the :class:`JobKind` that processes it.
    """

    source: Path
    target: Path
    kind: JobKind | None = None

    def outputs(self, format: str | None = None) -> tuple[Path, ...]:
        """Every file this job may write: the target, and for images without ``format`` its ``.tif`` twin."""
        if self.kind is None and format is None:
            return (self.target, self.target.with_suffix(".tif"))
        return (self.target,)

    def done(self, format: str | None = None) -> bool:
        """True when one of :meth:`outputs` exists and is not empty (an empty file is a lost write)."""
        return any(_non_empty(path) for path in self.outputs(format))


def _non_empty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


# ---------------------------------------------------------------------------- planning
@dataclass
class Plan:
    """What :func:`plan_jobs` found.

    Attributes:
        jobs: The jobs, in input order.
        left_out: Inputs left out because they are outputs of this run.
        clashes: Inputs left out because their output would overwrite them.
        errors: One line for each input that named nothing (a missing file, a pattern
            matching nothing).
    """

    jobs: list[Job] = field(default_factory=list)
    left_out: list[Path] = field(default_factory=list)
    clashes: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def expand_suffix(suffix: str, factor: float, model_name: str = "") -> str:
    """``suffix`` with its placeholders filled: ``{scale}`` by ``factor``, ``{model}`` by ``model_name``.

    The factor is written in full (``2``, ``1.5``, ``1.0000001``): two factors never share a name.

    Raises:
        ValueError: For a suffix that is not a plain name: a path separator, ``..``, or a
            brace that is not one of :data:`SUFFIX_FIELDS`.
    """
    check_suffix(suffix)
    return suffix.format(scale=_factor_name(factor), model=model_name)


def check_suffix(suffix: str) -> None:
    """Refuse a suffix that would leave the output folder or hold an unknown placeholder.

    Raises:
        ValueError: With the reason, in one line.
    """
    if "/" in suffix or os.sep in suffix or (os.altsep and os.altsep in suffix) or ".." in suffix or "\0" in suffix:
        raise ValueError(f"the suffix {suffix!r} must be part of a file name (no '/', '\\\\' or '..')")
    try:
        fields = [name for _, name, spec, conv in string.Formatter().parse(suffix) if name is not None]
    except ValueError as exc:
        raise ValueError(f"the suffix {suffix!r} has an unmatched brace ({exc}); write {{{{ or }}}} for one") from None
    unknown = [name for name in fields if name not in SUFFIX_FIELDS]
    if unknown:
        known = ", ".join("{" + f + "}" for f in SUFFIX_FIELDS)
        raise ValueError(f"the suffix {suffix!r} holds {{{unknown[0]}}}; the placeholders are {known}")


def _factor_name(factor: float) -> str:
    if float(factor).is_integer():
        return str(int(factor))
    return repr(float(factor))  # the shortest text that reads back as this number: 1.0000001 stays itself


def _glob_root(pattern: str) -> Path | None:
    """The folder above a glob pattern's first wildcard (``photos/**/*.jpg`` -> ``photos``), so ``**`` mirrors."""
    parts = Path(pattern).parts
    plain = list(itertools.takewhile(lambda part: not any(c in part for c in "*?["), parts))
    if len(plain) == len(parts):
        return None  # not a pattern
    return Path(*plain) if plain else Path(".")


def _kind_of(path: Path, kinds: Sequence[JobKind]) -> JobKind | None:
    suffix = path.suffix.lower()
    return next((k for k in kinds if suffix in k.suffixes), None)


def plan_jobs(
    inputs: PathLike | Iterable[PathLike],
    output_dir: PathLike,
    *,
    suffix: str,
    format: str | None = None,
    recursive: bool = False,
    kinds: Sequence[JobKind] | None = None,
) -> Plan:
    """Name the output of every input file.

    Each input (a file, a folder, a glob pattern) is expanded on its own, so one that names
    nothing costs no other. An image's result is ``<stem><suffix>.<format>`` (``png`` when
    ``format`` is ``None``), another kind's ``<stem><suffix><its suffix>``, in
    ``output_dir``, or with ``recursive`` (or a ``**`` glob) in the subfolder of
    ``output_dir`` that mirrors the input's. Hidden files and folders are passed over by
    folder walks and globs alike; name them to take them.

    An input is left out when it is the output of another input of this run (with ``-o``
    equal to the input folder, a rerun would otherwise upscale ``a_x2.png`` again), and
    refused as a clash when its output would overwrite it (``--suffix ''`` in place).

    Args:
        inputs: Files, folders and glob patterns.
        output_dir: The output folder.
        suffix: Added to each stem, placeholders already filled (:func:`expand_suffix`).
        format: The images' output format, one of :data:`~edsr_lib.io.OUTPUT_FORMATS`; ``None``
            for PNG (TIFF for images PNG cannot hold, decided when writing).
        recursive: Walk folders into their subfolders.
        kinds: The other kinds of input to take (default those of :func:`register_kind`).

    Returns:
        The :class:`Plan`.

    Raises:
        ValueError: If two inputs would be written to the same file, or for an unknown format.
    """
    check_suffix(suffix)
    found, errors = _find(inputs, recursive, list(_KINDS if kinds is None else kinds))
    plan = _name(found, output_dir, suffix, format, list(_KINDS if kinds is None else kinds))
    plan.errors = errors
    return plan


def _find(
    inputs: PathLike | Iterable[PathLike], recursive: bool, kinds: Sequence[JobKind]
) -> tuple[dict[Path, Path], list[str]]:
    """Each input file, with the folder its output path mirrors from; one line per input that named nothing."""
    suffixes = tuple(IMAGE_SUFFIXES) + tuple(s for k in kinds for s in k.suffixes)
    sources = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    found: dict[Path, Path] = {}
    errors: list[str] = []
    for source in map(os.fspath, sources):
        try:
            files = list_images(source, recursive=recursive, suffixes=suffixes)
        except (FileNotFoundError, ValueError) as exc:
            errors.append(str(exc))
            continue
        root = Path(source) if Path(source).is_dir() else _glob_root(source)
        for path in files:
            found.setdefault(path, root if root is not None else path.parent)
    return found, errors


def _name(
    found: Mapping[Path, Path], output_dir: PathLike, suffix: str, format: str | None, kinds: Sequence[JobKind]
) -> Plan:
    if format is not None and format not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {format!r}; expected one of {', '.join(OUTPUT_FORMATS)}")
    plan = Plan()
    out_dir = Path(output_dir)
    seen: dict[Path, Path] = {}
    jobs: list[Job] = []
    for path, root in found.items():
        job = make_job(path, out_dir, suffix=suffix, format=format, root=root, kinds=kinds)
        key = job.target.resolve()
        if key in seen:
            raise ValueError(f"{seen[key]} and {path} would both be written to {job.target}; upscale them separately")
        seen[key] = path
        jobs.append(job)

    own = {p.resolve() for j in jobs for p in j.outputs(format)}
    for job in jobs:
        source = job.source.resolve()
        if source == job.target.resolve():
            plan.clashes.append(job.source)
        elif source in own:
            plan.left_out.append(job.source)
        else:
            plan.jobs.append(job)
    return plan


def make_job(
    source: PathLike,
    output_dir: PathLike,
    *,
    suffix: str,
    format: str | None = None,
    root: PathLike | None = None,
    kinds: Sequence[JobKind] | None = None,
) -> Job:
    """The job of one input file: the one rule that names outputs, for :func:`plan_jobs` and Ray alike.

    Args:
        source: The input file.
        output_dir: The output folder.
        suffix: Added to the stem, placeholders filled (:func:`expand_suffix`).
        format: The images' output format (default PNG).
        root: The input folder whose tree is mirrored under ``output_dir`` (default: none,
            the output goes straight into ``output_dir``).
        kinds: The other kinds of input (default those of :func:`register_kind`).
    """
    path = Path(source)
    rel = Path()
    if root is not None:
        parent, top = path.parent.resolve(), Path(root).resolve()
        rel = parent.relative_to(top) if parent != top and parent.is_relative_to(top) else Path()
    kind = _kind_of(path, _KINDS if kinds is None else kinds)
    ext = kind.output_suffix(path) if kind is not None else f".{format or 'png'}"
    return Job(path, Path(output_dir) / rel / f"{path.stem}{suffix}{ext}", kind)


def launcher_shard() -> tuple[int, int] | None:
    """The share of the files that a job launcher (``torchrun``) gives this process, or ``None``.

    ``RANK`` and ``WORLD_SIZE`` count only with the variables every launcher sets beside
    them (``LOCAL_RANK`` and ``MASTER_ADDR``), so a stray ``RANK=1 WORLD_SIZE=2`` in a shell
    does not drop half the files.
    """
    env = os.environ
    if not all(env.get(name) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")):
        return None
    try:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
    except ValueError:
        return None
    return (rank, world) if world > 1 and 0 <= rank < world else None


def check_output_dir(output_dir: PathLike) -> Path:
    """Create ``output_dir`` if needed and check that a file can be written there, before any work.

    Raises:
        OSError: In one line naming the folder and the reason (read-only, not a folder, ...).
    """
    path = Path(output_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):  # gone when closed, even if this process is killed
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OSError(exc.errno, f"cannot write to the output folder {path}: {reason}") from None
    return path


# ---------------------------------------------------------------------------- results
Status = Literal["written", "failed", "skipped", "left"]


@dataclass(frozen=True)
class Result:
    """What happened to one job.

    Attributes:
        job: The job.
        status: ``"written"``, ``"failed"``, ``"skipped"`` (its output existed) or ``"left"``
            (not started: the run was interrupted or stopped).
        output: The file written (for an image, the target or its ``.tif`` twin).
        reason: Why it failed, in one line.
    """

    job: Job
    status: Status
    output: Path | None = None
    reason: str = ""


@dataclass
class Summary:
    """The outcome of a folder job; ``str(summary)`` is the line ``edsr-lib upscale`` ends with.

    Attributes:
        output_dir: The output folder.
        results: One :class:`Result` per job of this process, in order.
        errors: One line per input that named nothing (also counted as failed).
        left_out: Inputs left out as outputs of this run.
        clashes: Inputs refused because their output would overwrite them.
        shard: ``(i, n)`` when this process took the ``i``-th of ``n`` shares, with
            ``others`` the number of files left to the other shares.
        others: Files of the plan left to other shares.
        stopped: Why the run stopped before the end (a full disk, an interruption), or ``""``.
    """

    output_dir: Path
    results: list[Result] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    left_out: list[Path] = field(default_factory=list)
    clashes: list[Path] = field(default_factory=list)
    shard: tuple[int, int] | None = None
    others: int = 0
    stopped: str = ""

    def _with(self, status: Status) -> list[Result]:
        return [r for r in self.results if r.status == status]

    @property
    def written(self) -> list[Path]:
        """The files written."""
        return [r.output for r in self._with("written") if r.output is not None]

    @property
    def failed(self) -> list[Result]:
        """The jobs that failed, with their reasons."""
        return self._with("failed")

    @property
    def skipped(self) -> list[Result]:
        """The jobs whose output existed (``skip_existing``)."""
        return self._with("skipped")

    @property
    def left(self) -> list[Result]:
        """The jobs not started because the run stopped."""
        return self._with("left")

    @property
    def ok(self) -> bool:
        """True when every input was processed or skipped: nothing failed, clashed or was left."""
        return not (self.failed or self.errors or self.clashes or self.left or self.stopped)

    def __str__(self) -> str:
        n = len(self.written)
        noun = "image" if all(r.job.kind is None for r in self.results) else "file"
        failed = len(self.failed) + len(self.errors) + len(self.clashes)
        skipped = len(self.skipped) + len(self.left_out)
        line = f"wrote {n} {noun}{'s' * (n != 1)} to {self.output_dir} ({failed} failed, {skipped} skipped)"
        if self.left:
            line += f"; {len(self.left)} left to do (rerun with skip_existing to finish)"
        return line


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM made into it) during :func:`run_jobs`; ``summary`` says what was written and what is left."""

    def __init__(self, summary: Summary) -> None:
        super().__init__(str(summary))
        self.summary = summary


# ---------------------------------------------------------------------------- running
def describe(exc: BaseException) -> str:
    """One line for a failure: the message, with the exception's type unless it speaks for itself."""
    if isinstance(exc, MemoryError) or _is_out_of_memory(exc):
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"out of memory ({text})" if text else "out of memory"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, ValueError | OSError) else f"{type(exc).__name__}: {text}"


def _is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc))


def _disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _DISK_FULL


class _DiskFull(Exception):
    pass


def _stderr(line: str) -> None:
    tqdm.write(line, file=sys.stderr)


class _Progress:
    """A bar on a terminal; without one (batch jobs, CI logs) a line every few files."""

    def __init__(self, total: int, enabled: bool, log: Log) -> None:
        self.bar = tqdm(total=total, unit="file", desc="upscale", disable=None if enabled else True)
        self.lines = enabled and self.bar.disable and total > 1
        self.total, self.done, self.log = total, 0, log
        self.every = max(5, math.ceil(total / 20))  # and at least every 30 s
        self.start = self.last = time.monotonic()

    @property
    def tiles(self) -> bool:
        return not self.bar.disable

    def update(self, n: int) -> None:
        self.bar.update(n)
        before, self.done = self.done, self.done + n
        now = time.monotonic()
        if self.lines and (
            self.done // self.every > before // self.every or now - self.last > 60 or self.done == self.total
        ):
            self.last = now
            rate = (now - self.start) / self.done if self.done else 0.0
            left = rate * (self.total - self.done)
            self.log(
                f"progress: {self.done}/{self.total} files ({100 * self.done // self.total}%), "
                f"{rate:.1f} s/file, about {_duration(left)} left"
            )

    def close(self) -> None:
        self.bar.close()


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class _WarningsAsLines:
    """While a run lasts, Python warnings from its threads become one line each, naming the file."""

    def __init__(self, log: Log) -> None:
        self.log, self.current = log, threading.local()
        self.original = warnings.showwarning

    def __enter__(self) -> _WarningsAsLines:
        warnings.showwarning = self.show
        return self

    def __exit__(self, *exc: object) -> None:
        warnings.showwarning = self.original

    def show(self, message: Warning | str, category: type[Warning], filename: str, lineno: int, *args: Any) -> None:
        source = getattr(self.current, "source", None)
        text = " ".join(str(message).split())
        where = f"{source}: " if source is not None and str(source) not in text else ""
        self.log(f"warning: {where}{text}")

    def about(self, source: Path | None) -> None:
        self.current.source = source


def run_jobs(
    model: SRModel,
    jobs: Sequence[Job],
    *,
    format: str | None = None,
    quality: int | None = None,
    workers: int = 2,
    batch_size: int = 4,
    progress: bool = True,
    log: Log | None = None,
    output_dir: PathLike | None = None,
    **options: Any,
) -> Summary:
    """Upscale every job with ``model``; one failure costs one file.

    Images are decoded by ``workers`` reader threads ahead of the model, consecutive
    images of one size and mode go through the model together (up to ``batch_size``), and
    ``workers`` writer threads encode the results while the model runs on. A batch that
    raises is split in halves until the failing image is found. A job of another kind runs
    its :meth:`JobKind.process` in turn. Stale temporary files of the targets (left by a
    killed run) are removed first.

    Args:
        model: The model, on the device it runs on.
        jobs: From :func:`plan_jobs`.
        format: The images' output format, as given to :func:`plan_jobs`.
        quality: JPEG and WebP quality, 1-100 (default 95).
        workers: Reader threads, and writer threads (at least 1).
        batch_size: Images (or tiles) per forward pass.
        progress: Show a progress bar on a terminal, and a line every few files elsewhere.
        log: Where the lines for failures, warnings and progress go; default standard error.
        output_dir: The folder named in the summary (default the first target's).
        **options: Keyword arguments of :func:`edsr_lib.upscale`: ``scale`` or ``outscale``,
            ``tile``, ``self_ensemble``, ``device``, ``half``, ...

    Returns:
        The :class:`Summary`; failures are in it, not raised.

    Raises:
        Interrupted: On Ctrl-C, once the writes in flight are done; it carries the summary.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    log = log or _stderr
    where = Path(output_dir) if output_dir is not None else (jobs[0].target.parent if jobs else Path("."))
    summary = Summary(where)
    for stale in stale_temporary_files(path for job in jobs for path in job.outputs(format)):
        stale.unlink(missing_ok=True)  # a killed run's; this run owns these targets
    results: dict[int, Result] = {}
    bar = _Progress(len(jobs), progress, log)
    options = {"batch_size": batch_size, **options, "progress": bar.tiles}
    warns = _WarningsAsLines(log)

    def fail(index: int, exc: BaseException) -> None:
        job = jobs[index]
        reason = describe(exc)
        results[index] = Result(job, "failed", reason=reason)
        log(f"error: {'' if str(job.source) in reason else f'{job.source}: '}{reason}")

    def read(index: int) -> Any:
        job = jobs[index]
        if job.kind is not None:
            return None
        warns.about(job.source)
        try:
            image = load_image(job.source)
            _check_writable_mode(image, job, format)
            return image
        except Exception as exc:  # reported per file; the run goes on
            return exc
        finally:
            warns.about(None)

    def write(index: int, image: Image.Image) -> Path:
        job = jobs[index]
        target = job.target
        if format is None and image.mode in _TIFF_ONLY_MODES:
            target = target.with_suffix(".tif")  # PNG holds neither 32-bit integers nor floats
        warns.about(job.source)
        try:
            write_image(target, image, quality=quality)
        finally:
            warns.about(None)
        return target

    def run_group(group: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
        warns.about(jobs[group[0][0]].source if len(group) == 1 else None)
        try:
            if len(group) == 1:
                return [(group[0][0], upscale(model, group[0][1], **options))]
            outs = upscale(model, [image for _, image in group], **options)
            return list(zip([i for i, _ in group], outs, strict=True))
        except Exception as exc:  # reported per file; the run goes on
            if len(group) == 1:
                fail(group[0][0], exc)
                return []
            middle = len(group) // 2  # find which image failed, halving
            return run_group(group[:middle]) + run_group(group[middle:])
        finally:
            warns.about(None)

    def settle(index: int, future: Future[Path]) -> None:
        try:
            results[index] = Result(jobs[index], "written", future.result())
        except Exception as exc:  # reported per file; the run goes on
            fail(index, exc)
            if _disk_full(exc):
                raise _DiskFull(describe(exc)) from exc

    pending: deque[tuple[int, Future[Path]]] = deque()
    with warns, ThreadPoolExecutor(workers) as readers, ThreadPoolExecutor(workers) as writers:
        try:
            loaded = zip(range(len(jobs)), _prefetch(readers, read, len(jobs), ahead=workers + batch_size), strict=True)
            for group in _batches(loaded, batch_size, jobs):
                first, payload = group[0]
                if isinstance(payload, BaseException):
                    fail(first, payload)
                elif jobs[first].kind is not None:
                    _process(model, jobs[first], options, warns, results, fail, first)
                else:
                    pending.extend((i, writers.submit(write, i, image)) for i, image in run_group(group))
                bar.update(len(group))
                while pending and (len(pending) > workers or pending[0][1].done()):
                    settle(*pending.popleft())  # bound the (possibly huge) results waiting to be encoded
            while pending:
                settle(*pending.popleft())
        except _DiskFull as exc:
            summary.stopped = f"the disk is full ({exc})"
        except KeyboardInterrupt:
            summary.stopped = "interrupted"
        finally:
            if summary.stopped:
                readers.shutdown(wait=True, cancel_futures=True)
                for index, future in pending:  # writes in flight finish: no temporary file stays behind
                    if not future.cancel():
                        try:
                            results[index] = Result(jobs[index], "written", future.result())
                        except Exception as exc:  # reported per file
                            fail(index, exc)
            bar.close()
    summary.results = [results.get(i, Result(job, "left")) for i, job in enumerate(jobs)]
    if summary.stopped == "interrupted":
        raise Interrupted(summary)
    return summary


def _process(
    model: SRModel,
    job: Job,
    options: Mapping[str, Any],
    warns: _WarningsAsLines,
    results: dict[int, Result],
    fail: Callable[[int, BaseException], None],
    index: int,
) -> None:
    assert job.kind is not None
    warns.about(job.source)
    try:
        job.target.parent.mkdir(parents=True, exist_ok=True)
        job.kind.process(model, job.source, job.target, options)
        results[index] = Result(job, "written", job.target)
    except Exception as exc:  # reported per file; the run goes on
        fail(index, exc)
        if _disk_full(exc):
            raise _DiskFull(describe(exc)) from exc
    finally:
        warns.about(None)


def _check_writable_mode(image: Image.Image, job: Job, format: str | None) -> None:
    """Refuse, before computing, an image whose result the output format cannot hold."""
    if format is None and image.mode in _TIFF_ONLY_MODES:
        return
    check_writable(job.target, image.mode)


def _batches(
    loaded: Iterator[tuple[int, Any]], batch_size: int, jobs: Sequence[Job]
) -> Iterator[list[tuple[int, Any]]]:
    """Group consecutive decoded images of one size and mode; failures and other kinds pass alone."""
    group: list[tuple[int, Any]] = []
    for item in loaded:
        index, image = item
        alone = isinstance(image, BaseException) or jobs[index].kind is not None
        if group and (
            alone or (image.size, image.mode) != (group[0][1].size, group[0][1].mode) or len(group) == batch_size
        ):
            yield group
            group = []
        if alone:
            yield [item]
        else:
            group.append(item)
    if group:
        yield group


def _prefetch(pool: ThreadPoolExecutor, fn: Callable[[int], Any], count: int, ahead: int) -> Iterator[Any]:
    """``map(fn, range(count))`` on ``pool``, in order, with at most ``ahead`` results computed in advance."""
    queue: deque[Future[Any]] = deque()
    remaining = iter(range(count))
    for index in itertools.islice(remaining, ahead):
        queue.append(pool.submit(fn, index))
    while queue:
        result = queue.popleft().result()
        for index in itertools.islice(remaining, 1):
            queue.append(pool.submit(fn, index))
        yield result


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
        progress: A progress bar on a terminal, a line every few files elsewhere.
        log: Where the lines for failures, warnings and progress go; default standard error.
        kinds: Other kinds of input to take (default those of :func:`register_kind`).
        **options: More keyword arguments of :func:`edsr_lib.upscale` (``tile``,
            ``self_ensemble``, ...).

    Returns:
        The :class:`Summary`; ``summary.ok`` is False if anything failed.

    Raises:
        ValueError: For bad options, or when the inputs hold nothing to upscale.
        OSError: If ``output_dir`` cannot be written.
        Interrupted: On Ctrl-C, once the writes in flight are done.
    """
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
    kinds = list(_KINDS if kinds is None else kinds)
    log = log or _stderr
    found, errors = _find(inputs, recursive, kinds)  # bad inputs and an empty job cost no model loading
    for line in errors:
        log(f"error: {line}")
    if not found:
        raise ValueError("nothing to upscale")
    check_output_dir(output_dir)

    device = _job_device(device)
    resolve_half(half, device)
    net = load_model(model).to(device)
    check_finite_weights(net)  # once, before any file: every output would be garbage
    factor = outscale if outscale is not None else net.resolve_scale(scale)
    name = Path(os.fspath(model)).name if isinstance(model, str | os.PathLike) else type(net).__name__.lower()
    plan = _name(found, output_dir, expand_suffix(suffix, factor, name), format, kinds)
    plan.errors = errors
    if plan.left_out:
        log(f"left out {len(plan.left_out)} file(s) that are outputs of this command")
    for path in plan.clashes:
        log(f"error: {path}: its output would overwrite it (give another suffix, format or output folder)")

    jobs = plan.jobs
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
        _complete(exc.summary, plan, skipped, shard, others)
        raise
    return _complete(summary, plan, skipped, shard, others)


def _complete(summary: Summary, plan: Plan, skipped: list[Job], shard: tuple[int, int] | None, others: int) -> Summary:
    summary.results = [
        Result(j, "skipped", next((p for p in j.outputs() if _non_empty(p)), j.target)) for j in skipped
    ] + summary.results
    summary.errors, summary.left_out, summary.clashes = plan.errors, plan.left_out, plan.clashes
    summary.shard, summary.others = shard, others
    return summary


def _job_device(device: torch.device | str | None) -> torch.device:
    """``device``, or the accelerator; under a launcher, the accelerator of this process's ``LOCAL_RANK``."""
    local_rank = os.environ.get("LOCAL_RANK")
    under_launcher = local_rank is not None and launcher_shard() is not None
    if under_launcher and str(device or "cuda") == "cuda" and torch.cuda.is_available():
        torch.cuda.set_device(int(local_rank))  # first: asking CUDA anything else opens a context on GPU 0
        return torch.device("cuda", int(local_rank))
    resolved = resolve_device(device)
    if under_launcher and resolved.type not in ("cpu", "cuda") and resolved.index is None:
        resolved = resolve_device(f"{resolved.type}:{local_rank}")
    return resolved
