"""The run: decoding, the model and encoding at the same time (two threads beside the model, bounded queues).

:func:`upscale_video` probes the input, picks the encoding, prepares the resumable segments,
runs the three stages and joins the segments with the copied streams.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import queue
import shutil
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .._files import missing_folders, remove_empty_folders, stale_temporary_files
from .._signals import sigterm_as_interrupt
from ..inference import Upscaler, as_upscaler
from ..models import SRModel
from ..options import UpscaleOptions
from .encoding import (
    VIDEO_SUFFIXES,
    Encoding,
    check_settings,
    codec_options,
    open_encoder,
    output_size,
    pick_codec,
    pick_pix_fmt,
)
from .probe import (
    RANGE_JPEG,
    Interpolation,
    Source,
    av,
    av_reason,
    chroma_subsampling,
    fail,
    probe_video,
    require_av,
)
from .segments import SegmentWriter, parts_dir, prepare_parts, run_fingerprint
from .streams import join_segments

__all__ = ["VideoResult", "upscale_video"]

#: Seconds of video per segment: the most work an interruption can cost.
_SEGMENT_SECONDS = 10.0
#: Decoded frames waiting for the model, and upscaled frames waiting for the encoder.
_QUEUE_FRAMES = 8
#: Errors of a full disk: the complete segments stay for a rerun once space is freed.
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class VideoResult:
    """What :func:`upscale_video` did.

    Attributes:
        path: The file written.
        frames: Frames in the output.
        resumed_frames: Frames taken from an earlier, interrupted run's segments.
        segments: Segments the video was encoded in.
        seconds: Wall time of this run.
        model_seconds: Time the model spent upscaling frames in this run.
        size: The output's width and height.
        codec: The video encoder.
        pix_fmt: The encoded pixel format.
        warnings: What was lost, if anything (bit depth, chroma, streams the container cannot hold).
    """

    path: Path
    frames: int
    resumed_frames: int
    segments: int
    seconds: float
    model_seconds: float
    size: tuple[int, int]
    codec: str
    pix_fmt: str
    warnings: tuple[str, ...] = ()

    @property
    def fps(self) -> float:
        """Frames upscaled per second of wall time in this run."""
        return (self.frames - self.resumed_frames) / self.seconds if self.seconds > 0 else 0.0

    @property
    def model_share(self) -> float:
        """Fraction of the wall time the model was busy (1.0: decoding and encoding never made it wait)."""
        return self.model_seconds / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line: frames, speed, the model's share of the time, the codec and where it went."""
        resumed = f", {self.resumed_frames} resumed" if self.resumed_frames else ""
        return (
            f"wrote {self.path} ({self.frames} frames{resumed}, {self.size[0]}x{self.size[1]} {self.codec} "
            f"{self.pix_fmt}) in {self.seconds:.1f} s: {self.fps:.2f} frames/s, model busy {self.model_share:.0%}"
        )


_END = object()


class _Stopped(Exception):
    """Another stage failed or the run was interrupted: this stage stops without a message of its own."""


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise _Stopped
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _get(q: queue.Queue, stop: threading.Event) -> Any:
    while True:
        if stop.is_set():
            raise _Stopped
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue


def _decode(source: Source, skip: int, rgb_format: str, out: queue.Queue, stop: threading.Event) -> None:
    """Decode frames ``skip`` onwards to RGB arrays; put ``(index, pts, duration, array)``, then ``_END``."""
    colour = source.colour
    default_duration = max(1, round(1 / (source.rate * source.time_base)))
    index, last_pts, end = 0, None, 0.0
    with av.open(str(source.path), metadata_errors="replace") as container:
        stream = container.streams[source.index]
        stream.thread_type = "AUTO"
        start_pts = stream.start_time  # read while open: PyAV 18.1 refuses a closed container's streams
        try:
            for frame in container.decode(stream):
                if stop.is_set():
                    raise _Stopped
                pts = (
                    frame.pts if frame.pts is not None else (last_pts + default_duration if last_pts is not None else 0)
                )
                if last_pts is not None and pts <= last_pts:
                    raise fail(source.path, f"frame {index} has timestamp {pts}, not after the one before ({last_pts})")
                duration = frame.duration or default_duration
                last_pts, end = pts, float((pts + duration) * source.time_base)
                if index >= skip:
                    if (frame.width, frame.height) != (source.width, source.height):
                        raise fail(
                            source.path,
                            f"the picture size changes at frame {index} ({source.width}x{source.height} -> "
                            f"{frame.width}x{frame.height}); split the clip there",
                        )
                    rgb = frame.to_ndarray(
                        format=rgb_format,
                        src_colorspace=colour.sws_matrix,
                        dst_colorspace=colour.sws_matrix,
                        src_color_range=colour.range,
                        dst_color_range=RANGE_JPEG,
                        interpolation=Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT,
                    )
                    _put(out, (index, pts, duration, rgb), stop)
                index += 1
        except av.error.FFmpegError as exc:
            raise fail(source.path, f"cannot decode frame {index} ({av_reason(exc)}; truncated or damaged?)") from None
    if source.frames and index < source.frames:
        raise fail(source.path, f"only {index} of its {source.frames} frames could be decoded (truncated?)")
    start = float(start_pts * source.time_base) if start_pts is not None else 0.0
    if not source.frames and source.duration and end - start < source.duration - 2 * source.frame_seconds:
        raise fail(source.path, f"the video stops at {end:.2f} s of its {source.duration:.2f} s (truncated?)")
    _put(out, _END, stop)


def _encode(
    source: Source, encoding: Encoding, parts: Path, records: list[dict], frames: queue.Queue, stop: threading.Event
) -> None:
    """Encode the upscaled frames into segments (one per ``segment_frames`` frames); append each one's record."""
    writer: SegmentWriter | None = None
    try:
        while (item := _get(frames, stop)) is not _END:
            index, pts, duration, rgb = item
            segment = index // encoding.segment_frames
            if writer is not None and writer.index != segment:
                records.append(writer.commit())
                writer = None
            if writer is None:
                writer = SegmentWriter(parts, segment, source, encoding)
            writer.write(pts, duration, rgb)
        if writer is not None:
            records.append(writer.commit())
            writer = None
    finally:
        if writer is not None:
            writer.abort()


class _Stage(threading.Thread):
    """A pipeline thread that keeps its exception for the main thread and stops the others when it fails."""

    def __init__(self, name: str, target: Callable[..., None], stop: threading.Event, *args: Any) -> None:
        super().__init__(name=name, daemon=True)
        self._fn, self._args, self._halt = target, args, stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._fn(*self._args, self._halt)
        except _Stopped:
            pass
        except BaseException as exc:  # handed to the main thread
            self.error = exc
            self._halt.set()


def upscale_video(
    model: SRModel | str | os.PathLike[str] | Upscaler,
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    scale: int | None = None,
    *,
    options: UpscaleOptions | None = None,
    vcodec: str | None = None,
    crf: int | None = None,
    preset: str | None = None,
    pix_fmt: str | None = None,
    segment_seconds: float | None = None,
    progress: bool = False,
    half: bool | str | torch.dtype = False,
    int8: bool = False,
    **changes: Any,
) -> VideoResult:
    """Upscale a video file: every frame with an :class:`~edsr_lib.Upscaler`, the sound, timing and colours kept.

    The frames are decoded to RGB with the input's colour matrix and range (8-bit RGB, or
    16-bit for inputs of more than 8 bits), upscaled in batches of ``batch_size`` frames
    with automatic tiling, and encoded with the input's matrix, range, primaries and
    transfer, tagged in the output. Each frame keeps its timestamp; audio and subtitle
    streams are copied packet for packet; container and stream metadata, chapters and
    the rotation are carried over.

    The work is written in segments to ``.<dst name>.parts/`` beside ``dst``; ``dst``
    appears, atomically, only when the whole clip is done, and the parts folder is then
    removed. After an interruption (Ctrl-C, SIGTERM, a killed process) the same call
    resumes from the last complete segment; the result has the same frames as an
    uninterrupted run. A call with other settings, another model or a changed input
    starts afresh.

    Every option of the :class:`~edsr_lib.Upscaler` applies to every frame (tiles and their
    overlap, self-ensemble, ``wrap``, device, backend, precision, ``channels_last``,
    ``compile``), resolved once for the whole clip.

    Args:
        model: An :class:`~edsr_lib.Upscaler` (its options are the run's), or an
            :class:`~edsr_lib.SRModel`, a registered name or a saved folder (see
            :func:`edsr_lib.inference.load_model`) to build one from ``options`` and the
            option fields given by name.
        src: The input video.
        dst: The output file; its suffix picks the container (one of :data:`VIDEO_SUFFIXES`).
        scale: The model scale; may be omitted for a single-scale model.
        options: The :class:`~edsr_lib.options.UpscaleOptions` of the run (not with an ``Upscaler``).
        vcodec: FFmpeg video encoder (``"libx264"``, ``"libx265"``, ``"libvpx-vp9"``,
            ``"libsvtav1"``...). Default: the input's own codec family where the bundled
            FFmpeg can encode it (H.264, HEVC, VP9, AV1) and ``dst``'s container holds it,
            otherwise H.264.
        crf: Constant rate factor, the encoder's quality setting (lower is better; default 18).
        preset: Encoder speed preset (default ``"medium"`` for x264 and x265; for VP9 the
            ``cpu-used`` level, for SVT-AV1 its preset number).
        pix_fmt: Encoded pixel format (``"yuv420p"``, ``"yuv444p10le"``...). Default: the
            input's chroma layout and bit depth where the encoder has them (10-bit stays
            10-bit); where it has not, the nearest one, with a warning naming what is lost.
        segment_seconds: Seconds of video per segment, the most work an interruption can
            lose (default 10).
        progress: Show a progress bar (frames, frames per second, time left).
        half: The older spelling of ``precision`` (``"bf16"``, ``"fp16"``), as for :func:`edsr_lib.upscale`.
        int8: The older spelling of ``precision="int8"``.
        **changes: Fields of :class:`~edsr_lib.options.UpscaleOptions` by name (``outscale``,
            ``tile``, ``tile_overlap``, ``batch_size`` (frames per forward pass),
            ``self_ensemble``, ``wrap``, ``device``, ``backend``, ``precision``,
            ``channels_last``, ``compile``), checked when the call starts.

    Returns:
        A :class:`VideoResult`; its :meth:`~VideoResult.summary` is one line for a log.

    Raises:
        VideoError: For an input that cannot be upscaled (not a video, truncated, no video
            stream, a codec the bundled FFmpeg cannot decode, a picture size the pixel format
            cannot hold); the message is one line naming the file and the reason. Nothing
            is written to ``dst``.
        ValueError: For settings that cannot work (an unknown encoder or pixel format, a
            ``crf`` outside the encoder's range, a preset it does not know, a scale the model
            does not serve, an unknown container suffix), before any frame is upscaled.
        KeyboardInterrupt: On Ctrl-C or SIGTERM; the complete segments are kept for a rerun
            (after a full disk too). After any other failure nothing stays behind: no parts
            folder, and no output folder that this call made.
    """
    require_av()
    started = time.perf_counter()
    src, dst = Path(src), Path(dst)
    muxer = VIDEO_SUFFIXES.get(dst.suffix.lower())
    if muxer is None:
        raise ValueError(f"{dst}: unknown video suffix; use one of {', '.join(VIDEO_SUFFIXES)}")
    segment_seconds = _SEGMENT_SECONDS if segment_seconds is None else segment_seconds
    if not segment_seconds > 0:
        raise ValueError(f"segment_seconds must be positive, got {segment_seconds}")
    check_settings(vcodec, crf, preset)
    upscaler = as_upscaler(model, options, scale=scale, half=half, int8=int8, **changes)
    model, scale, outscale = upscaler.model, upscaler.scale, upscaler.options.outscale
    batch_size = upscaler.options.batch_size
    source = probe_video(src)
    width, height = output_size(source, model, scale, outscale)
    codec = pick_codec(source, muxer, vcodec)
    chosen_fmt, lost = pick_pix_fmt(source, codec, pix_fmt)
    sub_w, sub_h = chroma_subsampling(av.VideoFormat(chosen_fmt))
    if width % sub_w or height % sub_h:
        raise fail(
            src,
            f"the output would be {width}x{height}, and {chosen_fmt} needs a width divisible by {sub_w} and a "
            f"height by {sub_h}; pass a pixel format without chroma subsampling (yuv444p) or a scale that fits",
        )
    encoding = Encoding(
        codec=codec,
        pix_fmt=chosen_fmt,
        options=codec_options(codec, crf, preset),
        width=width,
        height=height,
        rgb_format="rgb24" if source.depth <= 8 else "rgb48le",
        segment_frames=max(1, round(segment_seconds * float(source.rate))),
        lost=lost,
    )
    encoding = dataclasses.replace(encoding, options=open_encoder(encoding, source, crf, preset))
    for message in lost:
        warnings.warn(f"{src}: {message}", stacklevel=2)
    # what decides the frames (not how fast they come): a rerun with other values starts afresh
    settings = {
        "scale": scale,
        "outscale": outscale,
        "self_ensemble": upscaler.options.self_ensemble,
        "wrap": upscaler.options.wrap,
        "tile_overlap": upscaler.options.tile_overlap,
        "precision": upscaler.precision,
        "backend": upscaler.backend,
    }
    parts = parts_dir(dst)
    made = missing_folders(dst.parent)
    dst.parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_temporary_files([dst]):  # a run killed while it joined the segments
        stale.unlink(missing_ok=True)
    try:
        records = prepare_parts(parts, run_fingerprint(model, source, encoding, settings))
    except BaseException:
        remove_empty_folders(made)
        raise
    resumed = sum(r["frames"] for r in records)
    model_seconds = 0.0
    total = source.frames or (round(source.duration * float(source.rate)) if source.duration else None)

    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(_QUEUE_FRAMES)
    upscaled: queue.Queue = queue.Queue(_QUEUE_FRAMES)
    stages = [
        _Stage("edsr-video-decode", _decode, stop, source, resumed, encoding.rgb_format, decoded),
        _Stage("edsr-video-encode", _encode, stop, source, encoding, parts, records, upscaled),
    ]
    bar = tqdm(total=total, initial=resumed, unit="frame", desc=src.name, disable=not progress or None)
    try:
        with sigterm_as_interrupt(keep_existing=True):
            for stage in stages:
                stage.start()
            try:
                pending: list[tuple[int, int, int, np.ndarray]] = []
                item = None
                while item is not _END:
                    item = _get(decoded, stop)
                    # a batch never crosses a segment boundary: a resumed run batches the frames alike
                    if pending and (
                        item is _END
                        or len(pending) == batch_size
                        or item[0] // encoding.segment_frames != pending[0][0] // encoding.segment_frames
                    ):
                        tick = time.perf_counter()
                        result = upscaler(np.stack([p[3] for p in pending]))
                        model_seconds += time.perf_counter() - tick
                        for (index, pts, duration, _), frame in zip(pending, result, strict=True):
                            _put(upscaled, (index, pts, duration, frame), stop)
                        bar.update(len(pending))
                        pending = []
                    if item is not _END:
                        pending.append(item)
                _put(upscaled, _END, stop)
                stages[1].join()
            except _Stopped:
                pass
            except BaseException:
                stop.set()
                raise
            finally:
                for stage in stages:
                    stage.join()
            for stage in stages:
                if stage.error is not None:
                    raise stage.error
            lost = (*lost, *join_segments(source, dst, muxer, parts, len(records)))
    except BaseException as exc:
        # the complete segments are kept only for a rerun that can use them: after an interruption or
        # a full disk; after bad input or a failure, nothing half-written stays behind
        resumable = isinstance(exc, KeyboardInterrupt) or (isinstance(exc, OSError) and exc.errno in _DISK_FULL)
        if not (resumable and records):
            shutil.rmtree(parts, ignore_errors=True)
            remove_empty_folders(made)
        raise
    finally:
        bar.close()
    for message in lost[len(encoding.lost) :]:
        warnings.warn(f"{src}: {message}", stacklevel=2)
    shutil.rmtree(parts, ignore_errors=True)
    return VideoResult(
        path=dst,
        frames=sum(r["frames"] for r in records),
        resumed_frames=resumed,
        segments=len(records),
        seconds=time.perf_counter() - started,
        model_seconds=model_seconds,
        size=(width, height),
        codec=codec,
        pix_fmt=chosen_fmt,
        warnings=tuple(lost),
    )
