"""``edsr-lib upscale INPUT... -o OUT``: upscale image files with a model.

A thin shell over :func:`edsr_lib.upscale` on PIL images: each file is decoded by
:func:`edsr_lib.io.load_image` (EXIF orientation applied, mode and metadata kept),
upscaled (gray stays gray, alpha is resized with MATLAB bicubic, 16-bit stays 16-bit,
memory bounded by automatic tiling) and written to ``<stem><suffix>.<format>`` in the
output folder, atomically. Decoding and encoding run in worker threads beside the
model, and images of one size and mode are batched. Any failure on one file is one line
naming the file and the reason; the run goes on, ends with a summary and exits 1 if
anything failed.

This module imports nothing heavy at import time, so ``--help`` does not load torch.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import CLIError

if TYPE_CHECKING:
    from concurrent.futures import Executor, Future

FORMATS = ("png", "jpg", "webp", "tif")


def _tile(value: str) -> int | str | None:
    if value in ("auto", "none"):
        return None if value == "none" else value
    try:
        tile = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels, 'auto' or 'none', got {value!r}") from None
    if tile < 1:
        raise argparse.ArgumentTypeError(f"the tile size must be positive, got {tile}")
    return tile


def _outscale(value: str) -> float:
    try:
        factor = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number above 1, got {value!r}") from None
    if not factor > 1 or factor == float("inf"):
        raise argparse.ArgumentTypeError(f"the output scale must be a finite number above 1, got {value}")
    return factor


def _shard(value: str) -> tuple[int, int]:
    index, _, count = value.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N (e.g. 0/4), got {value!r}") from None
    if n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {value!r}")
    return i, n


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``upscale`` subcommand."""
    parser = subparsers.add_parser(
        "upscale",
        help="upscale image files",
        description=(
            "Upscale images with an EDSR/MDSR model. INPUT may be files, folders or glob patterns. Each result "
            "is written to OUT/<stem><suffix>.<format>. Gray stays gray, alpha is resized with MATLAB bicubic, "
            "16-bit stays 16-bit; the ICC profile, EXIF and DPI are carried over. Big images are tiled "
            "automatically (exact: the same result as one pass). A file that fails is reported in one line and "
            "the others go on; the exit status is 1 if any failed. Under torchrun, each process takes its "
            "share of the files (RANK/WORLD_SIZE) and its own device (LOCAL_RANK)."
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (created if needed)")
    parser.add_argument(
        "--model",
        default="edsr_baseline_x2",
        metavar="NAME|DIR",
        help="registered model (with its pretrained weights) or a folder from save_pretrained "
        "(default: edsr_baseline_x2)",
    )
    factor = parser.add_mutually_exclusive_group()
    factor.add_argument("--scale", type=int, help="the scale (needed for multi-scale models such as MDSR)")
    factor.add_argument(
        "--outscale",
        type=_outscale,
        metavar="F",
        help="any output factor above 1 (1.5, 8): the model scales that reach it, then MATLAB bicubic",
    )
    parser.add_argument(
        "--tile",
        type=_tile,
        default="auto",
        metavar="N|auto|none",
        help="tiles of N LR pixels (exact: same result as one pass); 'auto' (default) tiles when one pass "
        "would exceed the memory budget; 'none' forces one pass",
    )
    parser.add_argument("--self-ensemble", action="store_true", help="average over 8 flips/rotations (8x slower)")
    parser.add_argument(
        "--device", metavar="DEVICE", help="any torch device: cpu, cuda, cuda:1, mps, xpu (default: the accelerator)"
    )
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--half", action="store_const", const="fp16", help="float16 autocast (accelerators)")
    precision.add_argument(
        "--bf16",
        dest="half",
        action="store_const",
        const="bf16",
        help="bfloat16 autocast (accelerators, and CPUs with native bf16)",
    )
    parser.add_argument(
        "--format", choices=FORMATS, help="output format (default png; tif for float and 32-bit images)"
    )
    parser.add_argument("--quality", type=int, metavar="Q", help="JPEG/WebP quality, 1-100 (default 95)")
    parser.add_argument(
        "--suffix",
        default="_x{scale}",
        help="added to each output's stem; {scale} is the factor (default _x{scale})",
    )
    parser.add_argument("--batch-size", type=int, default=4, help="tiles, or same-size images, per pass (default 4)")
    parser.add_argument("--skip-existing", action="store_true", help="leave outputs that already exist alone")
    parser.add_argument(
        "--recursive", action="store_true", help="walk folders into subfolders; OUT mirrors the input tree"
    )
    parser.add_argument(
        "--shard", type=_shard, metavar="I/N", help="process only the I-th of N shares of the files (from 0)"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="threads decoding and encoding beside the model (default 2)"
    )
    parser.set_defaults(func=run)
    return parser


@dataclass(frozen=True)
class Job:
    """One input file and where its result goes."""

    source: Path
    target: Path


def _collect(sources: list[str], recursive: bool) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Expand each source on its own (one bad source does not stop the others): (file, folder it mirrors from)."""
    from ..io import list_images

    files: dict[Path, Path] = {}
    bad: list[str] = []
    for source in sources:
        try:
            found = list_images(source, recursive=recursive)
        except (FileNotFoundError, ValueError) as exc:
            print(f"edsr-lib upscale: error: {exc}", file=sys.stderr)
            bad.append(source)
            continue
        root = Path(source) if Path(source).is_dir() else _glob_root(source)
        for path in found:
            files.setdefault(path, root or path.parent)
    return list(files.items()), bad


def _glob_root(pattern: str) -> Path | None:
    """The folder above a glob pattern's first wildcard (``photos/**/*.jpg`` -> ``photos``), so ``**`` mirrors."""
    parts = Path(pattern).parts
    plain = list(itertools.takewhile(lambda part: not any(c in part for c in "*?["), parts))
    if len(plain) == len(parts):
        return None  # not a pattern
    return Path(*plain) if plain else Path(".")


def _distributed_shard() -> tuple[int, int] | None:
    """The shard that torchrun (or any launcher setting RANK and WORLD_SIZE) gives this process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else None


def plan_jobs(
    sources: list[tuple[Path, Path]], out_dir: Path, suffix: str, fmt: str | None
) -> tuple[list[Job], list[Path]]:
    """Targets for every source, and the sources left out because they are this command's outputs.

    A source is left out when it is one of the run's targets, or lies in the output tree
    and its stem ends with the suffix (an earlier run's result, e.g. with ``-o`` equal to
    the input folder): outputs are never read back as inputs.

    Raises:
        CLIError: If two sources would be written to the same target.
    """
    out_root = out_dir.resolve()
    jobs: list[Job] = []
    seen: dict[Path, Path] = {}
    for path, root in sources:
        rel = path.parent.resolve().relative_to(root.resolve()) if path.parent.resolve() != root.resolve() else Path()
        ext = fmt or "png"
        target = out_dir / rel / f"{path.stem}{suffix}.{ext}"
        if target.resolve() in seen:
            raise CLIError(
                f"{seen[target.resolve()]} and {path} would both be written to {target}; upscale them separately"
            )
        seen[target.resolve()] = path
        jobs.append(Job(path, target))
    own = {j.target.resolve() for j in jobs}
    outputs = [
        j.source
        for j in jobs
        if j.source.resolve() in own or (j.source.resolve().is_relative_to(out_root) and j.source.stem.endswith(suffix))
    ]
    excluded = set(outputs)
    return [j for j in jobs if j.source not in excluded], outputs


def _written(job: Job, fmt: str | None) -> bool:
    """True if ``job``'s output exists (without ``--format``, float and 32-bit images go to ``.tif``)."""
    return job.target.exists() or (fmt is None and job.target.with_suffix(".tif").exists())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return f"out of memory ({exc})" if str(exc) else "out of memory"
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, ValueError | OSError) else f"{type(exc).__name__}: {text}"


def _batches(loaded: Iterator[tuple[Job, Any]], batch_size: int) -> Iterator[list[tuple[Job, Any]]]:
    """Group consecutive decoded images of one size and mode (failures pass alone)."""
    group: list[tuple[Job, Any]] = []
    for item in loaded:
        image = item[1]
        if isinstance(image, BaseException):
            if group:
                yield group
                group = []
            yield [item]
            continue
        if group and ((image.size, image.mode) != (group[0][1].size, group[0][1].mode) or len(group) == batch_size):
            yield group
            group = []
        group.append(item)
    if group:
        yield group


def run(args: argparse.Namespace) -> int:
    """Upscale every input image; returns 0, or 1 if some could not be processed."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    from ..inference import check_finite_weights, load_model, resolve_device, resolve_half, upscale
    from ..io import load_image, write_image

    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be positive, got {args.batch_size}")
    if args.workers < 1:
        raise CLIError(f"--workers must be positive, got {args.workers}")
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise CLIError(f"--quality must be in 1..100, got {args.quality}")
    sources, failed = _collect(args.inputs, args.recursive)
    if not sources:
        raise CLIError("no images to upscale")

    device = resolve_device(args.device)
    local_rank = os.environ.get("LOCAL_RANK")
    if local_rank is not None and device.type != "cpu" and (args.device is None or ":" not in args.device):
        device = resolve_device(f"{device.type}:{local_rank}")
    resolve_half(args.half or False, device)
    model = load_model(args.model).to(device)
    check_finite_weights(model)  # once, before any file: every output would be garbage
    factor = args.outscale if args.outscale is not None else model.resolve_scale(args.scale)
    suffix = args.suffix.replace("{scale}", f"{factor:g}")
    out_dir = Path(args.output)
    jobs, outputs = plan_jobs(sources, out_dir, suffix, args.format)
    skipped = len(outputs)
    if outputs:
        print(f"edsr-lib upscale: left out {skipped} file(s) that are outputs of this command", file=sys.stderr)
    shard = args.shard or _distributed_shard()
    if shard is not None:
        jobs = jobs[shard[0] :: shard[1]]
    if args.skip_existing:
        todo = [j for j in jobs if not _written(j, args.format)]
        skipped += len(jobs) - len(todo)
        jobs = todo

    options = {
        "scale": None if args.outscale is not None else args.scale,
        "outscale": args.outscale,
        "tile": args.tile,
        "self_ensemble": args.self_ensemble,
        "batch_size": args.batch_size,
        "device": device,
        "half": args.half or False,
    }
    bar = tqdm(total=len(jobs), unit="image", desc="upscale", disable=None)
    options["progress"] = not bar.disable
    written = 0

    def fail(job: Job, exc: BaseException) -> None:
        failed.append(str(job.source))
        reason = _describe(exc)
        where = "" if str(job.source) in reason else f"{job.source}: "
        bar.write(f"edsr-lib upscale: error: {where}{reason}", file=sys.stderr)

    def read(job: Job) -> Any:
        try:
            return load_image(job.source)
        except Exception as exc:  # reported per file; the run goes on
            return exc

    def write(job: Job, image: Any) -> None:
        target = job.target
        if args.format is None and image.mode in ("I", "F"):
            target = target.with_suffix(".tif")  # PNG holds neither 32-bit integers nor floats
        write_image(target, image, quality=args.quality)

    def upscale_group(group: list[tuple[Job, Any]]) -> list[tuple[Job, Any]]:
        try:
            if len(group) == 1:
                return [(group[0][0], upscale(model, group[0][1], **options))]
            return list(zip([j for j, _ in group], upscale(model, [i for _, i in group], **options), strict=True))
        except Exception as exc:  # reported per file; the run goes on
            if len(group) == 1:
                fail(group[0][0], exc)
                return []
            return [r for item in group for r in upscale_group([item])]  # find which image failed

    def finish(done: list[tuple[Job, Future[None]]]) -> int:
        ok = 0
        for job, future in done:
            try:
                future.result()
                ok += 1
            except Exception as exc:  # reported per file; the run goes on
                fail(job, exc)
        return ok

    with ThreadPoolExecutor(args.workers) as readers, ThreadPoolExecutor(args.workers) as writers:
        pending: deque[tuple[Job, Future[None]]] = deque()
        loaded = zip(jobs, _prefetch(readers, read, jobs, ahead=args.workers + args.batch_size), strict=True)
        for group in _batches(loaded, args.batch_size):
            if isinstance(group[0][1], BaseException):
                fail(*group[0])
            else:
                pending.extend((job, writers.submit(write, job, image)) for job, image in upscale_group(group))
            bar.update(len(group))
            while len(pending) > args.workers:  # bound the (possibly huge) results waiting to be encoded
                written += finish([pending.popleft()])
        written += finish(list(pending))
    bar.close()

    print(f"wrote {written} image{'s' * (written != 1)} to {out_dir} ({len(failed)} failed, {skipped} skipped)")
    if failed:
        print(f"edsr-lib upscale: {len(failed)} input(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _prefetch(pool: Executor, fn: Callable[[Job], Any], jobs: list[Job], ahead: int) -> Iterator[Any]:
    """``map(fn, jobs)`` on ``pool``, in order, with at most ``ahead`` results computed in advance."""
    queue: deque[Future[Any]] = deque()
    remaining = iter(jobs)
    for job in itertools.islice(remaining, ahead):
        queue.append(pool.submit(fn, job))
    while queue:
        result = queue.popleft().result()
        for job in itertools.islice(remaining, 1):
            queue.append(pool.submit(fn, job))
        yield result
