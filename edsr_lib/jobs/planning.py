"""Planning folder jobs: which files, and where each result goes.

The one rule that names outputs (:func:`make_job`, :func:`plan_jobs`), the kinds of input
besides still images (:class:`JobKind`, :func:`register_kind`), the share of a launcher
(:func:`launcher_shard`) and the writable check (:func:`check_output_dir`). Nothing here
loads a model.
"""

from __future__ import annotations

import errno
import itertools
import os
import string
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..io import IMAGE_SUFFIXES, OUTPUT_FORMATS, TIFF_ONLY_MODES, default_target, list_images
from ..video.kind import VideoKind

if TYPE_CHECKING:
    from ..inference import Upscaler

__all__ = [
    "BUILTIN_KINDS",
    "SUFFIX_FIELDS",
    "Job",
    "JobKind",
    "Plan",
    "check_output_dir",
    "check_suffix",
    "default_kinds",
    "expand_suffix",
    "find_inputs",
    "launcher_shard",
    "make_job",
    "name_jobs",
    "plan_jobs",
    "register_kind",
]

PathLike = str | os.PathLike[str]

#: Placeholders that ``suffix`` may hold: ``{scale}`` (the factor, ``2`` or ``1.5``) and
#: ``{model}`` (the model's name, or the name of its folder).
SUFFIX_FIELDS = ("scale", "model")


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

    def process(self, upscaler: Upscaler, source: Path, target: Path) -> None:
        """Upscale ``source`` into ``target``, atomically, raising on failure.

        Args:
            upscaler: The run's :class:`~edsr_lib.Upscaler` (model, device, backend and every
                option of this run, resolved once).
            source: The input file.
            target: Where the result goes (its folder exists).
        """
        ...


#: The kinds the engine takes besides images, built in: listed here, not registered by importing their module,
#: so that a folder's videos are found whatever was imported before.
BUILTIN_KINDS: tuple[JobKind, ...] = (VideoKind(),)
#: The kinds added with :func:`register_kind`.
registered: list[JobKind] = []


def default_kinds() -> list[JobKind]:
    """The kinds a run takes by default: :data:`BUILTIN_KINDS`, then those of :func:`register_kind` (which replace a
    built-in kind of the same name)."""
    names = {k.name for k in registered}
    return [k for k in BUILTIN_KINDS if k.name not in names] + registered


def register_kind(kind: JobKind) -> None:
    """Make folders, globs and :func:`upscale_folder` take the files of ``kind`` by default, beside the built-in kinds.

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
    registered[:] = [k for k in registered if k.name != kind.name] + [kind]


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
        """Every file this job may write: the target, and for images without ``format`` its ``.tif`` twin
        (:func:`edsr_lib.io.default_target`)."""
        if self.kind is None and format is None:
            return (self.target, default_target(self.target, TIFF_ONLY_MODES[0]))
        return (self.target,)

    def existing(self, format: str | None = None) -> Path | None:
        """The first of :meth:`outputs` that exists and is not empty (an empty file is a lost write), or ``None``."""
        return next((path for path in self.outputs(format) if _non_empty(path)), None)

    def done(self, format: str | None = None) -> bool:
        """True when the job's result exists (:meth:`existing`): ``skip_existing`` leaves it alone."""
        return self.existing(format) is not None


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
        clashes: Inputs refused because their output would overwrite an input: themselves
            (``suffix=""`` in place), or another input that would be its own output.
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
        kinds: The other kinds of input to take (default :func:`default_kinds`: video, and those of
            :func:`register_kind`).

    Returns:
        The :class:`Plan`.

    Raises:
        ValueError: If two inputs would be written to the same file, or for an unknown format.
    """
    check_suffix(suffix)
    kinds = default_kinds() if kinds is None else list(kinds)
    found, errors = find_inputs(inputs, recursive, kinds)
    plan = name_jobs(found, output_dir, suffix, format, kinds)
    plan.errors = errors
    return plan


def find_inputs(
    inputs: PathLike | Iterable[PathLike], recursive: bool, kinds: Sequence[JobKind]
) -> tuple[dict[Path, Path], list[str]]:
    """Each input file, with the folder its output path mirrors from; one line per input that named nothing.

    Nothing is loaded: a job whose inputs name nothing costs no model.
    """
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


def name_jobs(
    found: Mapping[Path, Path], output_dir: PathLike, suffix: str, format: str | None, kinds: Sequence[JobKind]
) -> Plan:
    """The :class:`Plan` of the files :func:`find_inputs` found: each one's :class:`Job`, clashes, outputs left out."""
    if format is not None and format not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {format!r}; expected one of {', '.join(OUTPUT_FORMATS)}")
    plan = Plan()
    out_dir = Path(output_dir)
    seen: dict[Path, Path] = {}
    jobs: list[Job] = []
    for path, root in found.items():
        jobs.append(make_job(path, out_dir, suffix=suffix, format=format, root=root, kinds=kinds))

    own = {p.resolve() for j in jobs for p in j.outputs(format)}
    # an input that would be its own output is the user's (``--suffix ''`` in place): neither it nor
    # another input may be written over it
    kept = {j.source.resolve() for j in jobs if any(j.source.resolve() == p.resolve() for p in j.outputs(format))}
    for job in jobs:
        source = job.source.resolve()
        if source in kept or any(p.resolve() in kept for p in job.outputs(format)):
            plan.clashes.append(job.source)
            continue
        key = job.target.resolve()
        if key in seen:
            raise ValueError(f"{seen[key]} and {job.source} would both be written to {job.target}; upscale them apart")
        seen[key] = job.source
        if source in own:
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
    kind = _kind_of(path, default_kinds() if kinds is None else kinds)
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
    if path.exists() and not path.is_dir():
        raise OSError(errno.ENOTDIR, f"cannot write to the output folder {path}: it is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):  # gone when closed, even if this process is killed
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OSError(exc.errno, f"cannot write to the output folder {path}: {reason}") from None
    return path
