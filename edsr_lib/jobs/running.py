"""Running folder jobs: reader and writer threads around the model, one failure per file, the summary.

:func:`run_jobs` takes the jobs that :mod:`~edsr_lib.jobs.planning` made and a loaded
model; :class:`Summary` says what happened to each.
"""

from __future__ import annotations

import errno
import itertools
import math
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tqdm.auto import tqdm

from .._files import stale_temporary_files
from ..inference import Upscaler
from ..io import (
    TIFF_ONLY_MODES,
    AnyImage,
    ImageReadError,
    check_writable,
    default_target,
    fit_format,
    load_image,
    upscaled_mode,
    write_image,
)
from ..memory import is_out_of_memory
from .planning import Job, PathLike

__all__ = ["Interrupted", "Log", "Result", "Summary", "describe", "run_jobs"]

#: Where a job's lines go (failures, warnings, progress), one complete line a call.
Log = Callable[[str], None]

#: Modes whose results no PNG holds: without an explicit format they are written as TIFF.
#: Errors of a full disk: the run stops at the first, since every later file would fail the same way.
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


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
        ran: What computed the network: the backend and precision the job's
            :class:`~edsr_lib.Upscaler` resolved (``"openvino bf16"``), or ``""`` before it was made.
    """

    output_dir: Path
    results: list[Result] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    left_out: list[Path] = field(default_factory=list)
    clashes: list[Path] = field(default_factory=list)
    shard: tuple[int, int] | None = None
    others: int = 0
    stopped: str = ""
    ran: str = ""

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
            line += f"; {len(self.left)} not started"
        return line


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM made into it) during :func:`run_jobs`; ``summary`` says what was written and what is left."""

    def __init__(self, summary: Summary) -> None:
        super().__init__(str(summary))
        self.summary = summary


# ---------------------------------------------------------------------------- running
def describe(exc: BaseException) -> str:
    """One line for a failure: the message, with the exception's type unless it speaks for itself."""
    if isinstance(exc, MemoryError) or is_out_of_memory(exc):
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"out of memory ({text})" if text else "out of memory"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, ValueError | OSError) else f"{type(exc).__name__}: {text}"


def _disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _DISK_FULL


class _DiskFull(Exception):
    pass


def write_stderr(line: str) -> None:
    """The default :data:`Log`: a line on standard error that does not break a progress bar."""
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
        due = self.done // self.every > before // self.every or now - self.last > 30
        if self.lines and due and self.done < self.total:  # the summary says the rest
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


class WarningsAsLines:
    """While a run lasts, Python warnings from its threads become one line each, naming the file.

    A context manager; :meth:`about` names the file the current thread works on.
    """

    def __init__(self, log: Log) -> None:
        self.log, self.current = log, threading.local()
        self.original = warnings.showwarning

    def __enter__(self) -> WarningsAsLines:
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
    upscaler: Upscaler,
    jobs: Sequence[Job],
    *,
    format: str | None = None,
    quality: int | None = None,
    workers: int = 2,
    progress: bool = True,
    log: Log | None = None,
    output_dir: PathLike | None = None,
) -> Summary:
    """Upscale every job with ``upscaler``; one failure costs one file.

    Images are decoded by ``workers`` reader threads ahead of the model, consecutive
    images of one size and mode go through the model together (up to the upscaler's
    ``batch_size``), and
    ``workers`` writer threads encode the results while the model runs on. A batch that
    raises is split in halves until the failing image is found. A job of another kind runs
    its :meth:`JobKind.process` in turn. Stale temporary files of the targets (left by a
    killed run) are removed first.

    Args:
        upscaler: The :class:`~edsr_lib.Upscaler` of the run (model, device, backend, options).
        jobs: From :func:`plan_jobs`.
        format: The images' output format, as given to :func:`plan_jobs`.
        quality: JPEG and WebP quality, 1-100 (default 95).
        workers: Reader threads, and writer threads (at least 1).
        progress: Show a progress bar on a terminal, and a line every few files elsewhere.
        log: Where the lines for failures, warnings and progress go; default standard error.
        output_dir: The folder named in the summary (default the first target's).

    Returns:
        The :class:`Summary`; failures are in it, not raised.

    Raises:
        Interrupted: On Ctrl-C, once the writes in flight are done; it carries the summary.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    batch_size = upscaler.options.batch_size
    log = log or write_stderr
    where = Path(output_dir) if output_dir is not None else (jobs[0].target.parent if jobs else Path("."))
    summary = Summary(where)
    for stale in stale_temporary_files(path for job in jobs for path in job.outputs(format)):
        stale.unlink(missing_ok=True)  # a killed run's; this run owns these targets
    results: dict[int, Result] = {}
    bar = _Progress(len(jobs), progress, log)
    warns = WarningsAsLines(log)

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
        except ImageReadError as exc:
            return exc
        except Exception as exc:  # reported per file; the run goes on
            return exc
        finally:
            warns.about(None)

    notes: set[str] = set()
    notes_lock = threading.Lock()

    def write(index: int, image: AnyImage, source: AnyImage | None) -> Path:
        job = jobs[index]
        target = job.target
        if format is None:
            target = default_target(target, image.mode)
        warns.about(job.source)
        try:
            if format is not None:  # asked for: convert to what it holds, and say so once
                image, note = fit_format(image, target, source)
                with notes_lock:
                    if note and note not in notes:
                        notes.add(note)
                        log(f"note: {note}")
            write_image(target, image, quality=quality)
        finally:
            warns.about(None)
        return target

    def run_group(group: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
        warns.about(jobs[group[0][0]].source if len(group) == 1 else None)
        try:
            if len(group) == 1:
                return [(group[0][0], upscaler(group[0][1]))]
            outs = upscaler([image for _, image in group])
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
                    _process(upscaler, jobs[first], warns, results, fail, first)
                else:
                    sources = {i: image for i, image in group if image.mode in TIFF_ONLY_MODES}  # their value range
                    pending.extend((i, writers.submit(write, i, out, sources.get(i))) for i, out in run_group(group))
                bar.update(len(group))
                while pending and (len(pending) > workers or pending[0][1].done()):
                    settle(*pending[0])  # bound the (possibly huge) results waiting to be encoded
                    pending.popleft()  # only once settled: an interruption in between leaves it to the end
            while pending:
                settle(*pending[0])
                pending.popleft()
        except _DiskFull as exc:
            summary.stopped = f"the disk is full ({exc})"
        except KeyboardInterrupt:
            summary.stopped = "interrupted"
        finally:
            if summary.stopped:
                readers.shutdown(wait=True, cancel_futures=True)
                for index, future in pending:  # writes in flight finish: no temporary file stays behind
                    if index not in results and not future.cancel():
                        _finish_despite_interrupts(future)
                        try:
                            results[index] = Result(jobs[index], "written", future.result())
                        except Exception as exc:  # reported per file
                            fail(index, exc)
            bar.close()
    summary.results = [results.get(i, Result(job, "left")) for i, job in enumerate(jobs)]
    if summary.stopped == "interrupted":
        raise Interrupted(summary)
    return summary


def _finish_despite_interrupts(future: Future[Any]) -> None:
    """Wait for ``future`` even through another Ctrl-C: a write in flight is short, and cut it would leave a part."""
    while True:
        try:
            wait([future])
            return
        except KeyboardInterrupt:
            continue


def _process(
    upscaler: Upscaler,
    job: Job,
    warns: WarningsAsLines,
    results: dict[int, Result],
    fail: Callable[[int, BaseException], None],
    index: int,
) -> None:
    assert job.kind is not None
    warns.about(job.source)
    try:
        job.target.parent.mkdir(parents=True, exist_ok=True)
        job.kind.process(upscaler, job.source, job.target)
        results[index] = Result(job, "written", job.target)
    except Exception as exc:  # reported per file; the run goes on
        fail(index, exc)
        if _disk_full(exc):
            raise _DiskFull(describe(exc)) from exc
    finally:
        warns.about(None)


def _check_writable_mode(image: AnyImage, job: Job, format: str | None) -> None:
    """Refuse, before computing, an image whose result the output format cannot hold."""
    if format is None and image.mode in TIFF_ONLY_MODES:
        return
    check_writable(job.target, upscaled_mode(image))


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
