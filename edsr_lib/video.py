"""Upscale video files: every frame through :func:`edsr_lib.upscale`, with the sound, timing, colours and metadata kept.

:func:`upscale_video` decodes a clip with PyAV (FFmpeg), converts each frame to RGB with the
clip's own matrix and range, upscales it with the same function images use (automatic tiling,
batching, bf16 where native) and encodes it again with the same matrix, range, primaries and
transfer, tagged. Every audio and subtitle stream (and Matroska attachments, such as subtitle
fonts) is copied packet for packet, every frame keeps its timestamp (a variable frame rate
stays variable), and the container's and streams' metadata, chapters and rotation are carried
over.

Decoding, the model and encoding run at the same time (two threads beside the model) with
bounded queues, so memory does not grow with the clip's length. The video is encoded in
segments of whole frames, each an independent file committed atomically in a folder beside
the destination (``.<name>.parts/``); when all are done they are joined, with the copied
streams, into the destination in one atomic step. A run that is interrupted (Ctrl-C,
SIGTERM, a killed process) resumes from its last complete segment when run again with the
same settings, and gives the same frames as a run that was never interrupted.

Bad input (not a video, a truncated file, no video stream, a codec the bundled FFmpeg cannot
decode, a size the output pixel format cannot hold) raises :class:`VideoError`, whose message
is one line naming the file and the reason. Needs the ``video`` extra (``pip install
edsr-lib[video]``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import queue
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from ._files import atomic_path, atomic_write, stale_temporary_files
from .inference import load_model, upscale
from .jobs import register_kind
from .models import SRModel

try:
    import av
    import av.error
    from av.video.reformatter import Interpolation
except ImportError:  # pragma: no cover - depends on the installed extras
    av = None

__all__ = ["VIDEO_SUFFIXES", "VideoError", "VideoKind", "VideoResult", "is_video", "upscale_video"]

VIDEO_SUFFIXES: dict[str, str] = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
    ".ts": "mpegts",
    ".m2ts": "mpegts",
    ".mts": "mpegts",
    ".mpg": "mpeg",
    ".mpeg": "mpeg",
    ".flv": "flv",
    ".wmv": "asf",
    ".3gp": "3gp",
    ".ogv": "ogg",
}
"""File suffixes read as videos (by :func:`is_video` and folder jobs), and the FFmpeg muxer that writes each."""

#: Encoder for each codec family the input may be in (the default keeps the family when the
#: bundled FFmpeg can encode it and the container can hold it); anything else gets H.264.
_FAMILY_ENCODERS = {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9", "av1": "libsvtav1"}
_DEFAULT_ENCODERS = ("libx264", "libvpx-vp9")
_DEFAULT_CRF = 18
_DEFAULT_PRESET = "medium"
#: Encoders whose speed/size trade-off is a named x264-style preset ("medium", "slow").
_NAMED_PRESETS = {"libx264", "libx265"}
#: Seconds of video per segment: the most work an interruption can cost.
_SEGMENT_SECONDS = 10.0
#: Decoded frames waiting for the model, and upscaled frames waiting for the encoder.
_QUEUE_FRAMES = 8
#: Container tags that describe the file that was read, not the one written.
_STALE_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", "duration", "vendor_id"}
#: The parts folder's format: a folder written by another version is started afresh.
_PARTS_VERSION = 1

# FFmpeg's AVColorSpace values -> the matrices swscale converts with (SWS_CS_*).
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
_RANGE_MPEG, _RANGE_JPEG = 1, 2
_UNSPECIFIED = 2  # AVCOL_PRI/TRC/SPC_UNSPECIFIED


class VideoError(ValueError):
    """A video that cannot be upscaled; the message is one line naming the file and the reason."""


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


def is_video(path: str | os.PathLike[str]) -> bool:
    """True if ``path``'s suffix is one of :data:`VIDEO_SUFFIXES` (the file is not opened)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _require_av() -> None:
    if av is None:
        raise ImportError("video needs PyAV: pip install 'edsr-lib[video]'")


# ---------------------------------------------------------------------------- the input
@dataclass(frozen=True)
class _Colour:
    """The input's colour description (FFmpeg enum values), as decoded and as the output is tagged."""

    matrix: int
    range: int
    primaries: int
    trc: int

    @property
    def sws_matrix(self) -> int:
        return _SWS_MATRIX[self.matrix]


@dataclass(frozen=True)
class _Source:
    """What the first decoded frame and the headers say about the input's video stream."""

    path: Path
    index: int
    codec: str
    width: int
    height: int
    pix_fmt: str
    depth: int
    chroma: tuple[int, int]
    colour: _Colour
    rotation: int
    time_base: Fraction
    rate: Fraction
    frames: int
    duration: float | None
    sample_aspect_ratio: Fraction | None

    @property
    def frame_seconds(self) -> float:
        return float(1 / self.rate)


def _fail(path: Path, reason: str) -> VideoError:
    return VideoError(f"{path}: {reason}")


def _av_reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.rstrip(".")


def _video_stream(container: Any, path: Path) -> Any:
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        raise _fail(path, "has no video stream")
    return streams[0]


def _depth(fmt: Any) -> int:
    return max(c.bits for c in fmt.components)


def _chroma(fmt: Any, width: int = 64, height: int = 64) -> tuple[int, int]:
    """Chroma subsampling as (horizontal, vertical) factors: (2, 2) is 4:2:0, (1, 1) is 4:4:4."""
    if fmt.is_rgb or len(fmt.components) < 3:
        return (1, 1)
    return (width // fmt.chroma_width(width), height // fmt.chroma_height(height))


def _stream_seconds(container: Any, stream: Any) -> float | None:
    """The video stream's own duration: from its header, Matroska's ``DURATION`` tag, or the file's if it is alone."""
    if stream.duration:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        with contextlib.suppress(ValueError):
            hours, minutes, seconds = tag.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    if len(container.streams) == 1 and container.duration:
        return container.duration / av.time_base
    return None


def _probe(path: Path) -> _Source:
    """Open ``path`` and decode its first frame: the stream's layout, colours and timing, or a :class:`VideoError`."""
    _require_av()
    if not path.is_file():
        raise _fail(path, "no such file")
    try:
        container = av.open(str(path), metadata_errors="replace")
    except av.error.FFmpegError as exc:
        raise _fail(path, f"not a video FFmpeg can read ({_av_reason(exc)})") from None
    with container:
        stream = _video_stream(container, path)
        ctx = stream.codec_context
        if ctx is None or not getattr(ctx, "name", None):
            raise _fail(path, "the bundled FFmpeg has no decoder for its video codec")
        first = None
        try:
            for frame in container.decode(stream):
                first = frame
                break
        except av.error.FFmpegError as exc:
            raise _fail(path, f"cannot decode the video ({ctx.name}: {_av_reason(exc)})") from None
        if first is None:
            raise _fail(path, f"no video frame could be decoded ({ctx.name}; truncated or empty?)")
        fmt = first.format
        matrix = first.colorspace if first.colorspace in _SWS_MATRIX else ctx.colorspace
        if matrix not in _SWS_MATRIX:
            if matrix not in (0, _UNSPECIFIED):
                warnings.warn(
                    f"{path}: colour matrix {matrix} is not one swscale converts; reading it as BT.709", stacklevel=3
                )
            # untagged: what players assume, by the picture's height
            matrix = 1 if first.height >= 720 else 6
        colour_range = first.color_range or ctx.color_range or (_RANGE_JPEG if fmt.name.startswith("yuvj") else 0)
        colour = _Colour(
            matrix=matrix,
            range=colour_range if colour_range in (_RANGE_MPEG, _RANGE_JPEG) else _RANGE_MPEG,
            primaries=first.color_primaries or ctx.color_primaries or _UNSPECIFIED,
            trc=first.color_trc or ctx.color_trc or _UNSPECIFIED,
        )
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
        duration = _stream_seconds(container, stream)
        sar = stream.sample_aspect_ratio
        return _Source(
            path=path,
            index=stream.index,
            codec=ctx.name,
            width=first.width,
            height=first.height,
            pix_fmt=fmt.name,
            depth=_depth(fmt),
            chroma=_chroma(fmt),
            colour=colour,
            rotation=round(first.rotation or 0),
            time_base=Fraction(stream.time_base),
            rate=Fraction(rate),
            frames=int(stream.frames or 0),
            duration=duration,
            sample_aspect_ratio=Fraction(sar) if sar else None,
        )


# ---------------------------------------------------------------------------- the output
@dataclass(frozen=True)
class _Encoding:
    """How the video is encoded: the settings that decide the bits, so a resumed run must share them."""

    codec: str
    pix_fmt: str
    options: dict[str, str]
    width: int
    height: int
    rgb_format: str
    segment_frames: int
    lost: tuple[str, ...] = field(default=())


def _pick_codec(source: _Source, muxer: str, vcodec: str | None) -> str:
    with av.open(io.BytesIO(), "w", format=muxer) as probe:  # asks FFmpeg what the container holds
        holds = probe.supported_codecs

    def muxable(encoder: str) -> bool:
        codec = av.Codec(encoder, "w")
        return codec.name in holds or codec.canonical_name in holds

    if vcodec is not None:
        if vcodec not in av.codecs_available or not av.Codec(vcodec, "w").is_encoder:
            raise ValueError(f"the bundled FFmpeg has no video encoder {vcodec!r}")
        if not muxable(vcodec):
            raise ValueError(f"a {muxer} file cannot hold {vcodec} video; choose another encoder or suffix")
        return vcodec
    family = _FAMILY_ENCODERS.get(source.codec)
    for name in (family, *_DEFAULT_ENCODERS):
        if name and name in av.codecs_available and muxable(name):
            return name
    raise ValueError(f"no default encoder for a {muxer} file; pass vcodec")


def _pick_pix_fmt(source: _Source, codec: str, pix_fmt: str | None) -> tuple[str, tuple[str, ...]]:
    """The encoded pixel format: ``pix_fmt``, or the input's chroma and depth where the encoder has them."""
    supported = [f.name for f in av.Codec(codec, "w").video_formats or ()]
    if pix_fmt is not None:
        if supported and pix_fmt not in supported:
            raise ValueError(f"{codec} does not encode {pix_fmt}; it encodes {', '.join(supported)}")
        return pix_fmt, ()
    layout = {(2, 2): "420", (2, 1): "422", (1, 1): "444"}.get(source.chroma, "420")
    lost: list[str] = []
    for chroma in dict.fromkeys((layout, "420")):
        for depth in sorted({source.depth, 10, 8}, reverse=True):
            if depth > source.depth or depth not in (8, 10, 12):
                continue
            name = f"yuv{chroma}p" + ("" if depth == 8 else f"{depth}le")
            if not supported or name in supported:
                if depth < source.depth:
                    lost.append(
                        f"{source.depth}-bit input encoded in {depth} bits ({codec} has no {source.depth}-bit "
                        f"4:{chroma[0]}:{chroma[1]}:{chroma[2]} format; try --vcodec libx265)"
                    )
                if chroma != layout:
                    lost.append(
                        f"4:{layout[0]}:{layout[1]}:{layout[2]} chroma encoded as 4:2:0 ({codec} has no yuv{layout}p)"
                    )
                return name, tuple(lost)
    raise ValueError(f"{codec} encodes none of the YUV formats this input needs; pass pix_fmt")


def _codec_options(codec: str, crf: int | None, preset: str | None) -> dict[str, str]:
    options = {"crf": str(_DEFAULT_CRF if crf is None else crf)}
    if codec in _NAMED_PRESETS:
        options["preset"] = preset or _DEFAULT_PRESET
    elif codec == "libvpx-vp9":
        options["b"] = "0"  # constant quality: crf alone
        if preset is not None:
            options["cpu-used"] = preset
    elif preset is not None:
        options["preset"] = preset
    if codec == "libx265":
        options["x265-params"] = "log-level=error"
    return options


def _output_size(source: _Source, model: SRModel, scale: int | None, outscale: float | None) -> tuple[int, int]:
    if outscale is not None:
        return (math.ceil(outscale * source.width - 1e-6), math.ceil(outscale * source.height - 1e-6))
    factor = model.resolve_scale(scale)
    return (factor * source.width, factor * source.height)


# ---------------------------------------------------------------------------- segments
def _parts_dir(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.parts")


def _fingerprint(model: SRModel, source: _Source, encoding: _Encoding, settings: dict[str, Any]) -> dict[str, Any]:
    """What must match for an earlier run's segments to be reused: the input file, the model, the settings."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    stat = source.path.stat()
    return {
        "version": _PARTS_VERSION,
        "source": {"path": str(source.path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns},
        "model": {"class": type(model).__name__, "weights_sha256": digest.hexdigest()},
        "encoding": {k: v for k, v in asdict(encoding).items() if k != "lost"},
        "settings": settings,
    }


def _segment_path(parts: Path, index: int, suffix: str) -> Path:
    return parts / f"segment_{index:06d}{suffix}"


def _done_segments(parts: Path) -> list[dict[str, Any]]:
    """The complete segments of an earlier run, in order: each has its ``.nut`` and its ``.json`` record."""
    done = []
    while (record := _segment_path(parts, len(done), ".json")).is_file():
        if not _segment_path(parts, len(done), ".nut").is_file():
            break
        done.append(_summary(json.loads(record.read_text())))
    return done


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    """A segment's record without its packet list (read again when the segments are joined: memory stays flat)."""
    return {k: v for k, v in record.items() if k != "packets"}


def _prepare_parts(parts: Path, fingerprint: dict[str, Any]) -> list[dict[str, Any]]:
    """Reuse ``parts`` if an earlier run with the same fingerprint left it; otherwise start it afresh."""
    job = parts / "job.json"
    if parts.is_dir():
        try:
            same = json.loads(job.read_text()) == fingerprint
        except (OSError, ValueError):
            same = False
        if same:
            done = _done_segments(parts)
            unfinished = [_segment_path(parts, len(done), suffix) for suffix in (".nut", ".json")]
            for stale in stale_temporary_files(unfinished):  # a killed run's unfinished segment
                stale.unlink(missing_ok=True)
            return done
        shutil.rmtree(parts)
    parts.mkdir(parents=True)
    atomic_write(job, json.dumps(fingerprint, indent=1).encode())
    return []


class _SegmentWriter:
    """One segment: an independent encode (starting on a key frame) into a NUT file, committed atomically."""

    def __init__(self, parts: Path, index: int, source: _Source, encoding: _Encoding) -> None:
        self.parts, self.index, self.source, self.encoding = parts, index, source, encoding
        self.frames, self.first_pts, self.last_pts = 0, None, None
        # The segment file keeps the packets; their exact timestamps are kept here, because NUT
        # gives back no decode timestamp for the first packets of a stream with B-frames.
        self.packets: list[tuple[int, int, int]] = []
        self._durations: dict[int, int] = {}  # encoders drop the frame durations; each packet gets its frame's
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(_segment_path(parts, index, ".nut")))
        # NUT keeps any codec and the input's exact time base (Matroska would round to milliseconds).
        self.container = av.open(str(tmp), "w", format="nut")
        self._stack.callback(self.container.close)
        stream = self.container.add_stream(encoding.codec, options=dict(encoding.options))
        ctx = stream.codec_context
        ctx.width, ctx.height, ctx.pix_fmt = encoding.width, encoding.height, encoding.pix_fmt
        ctx.time_base = source.time_base
        ctx.framerate = source.rate
        stream.time_base = source.time_base
        colour = source.colour
        ctx.colorspace, ctx.color_range = colour.matrix, colour.range
        ctx.color_primaries, ctx.color_trc = colour.primaries, colour.trc
        if source.sample_aspect_ratio:
            ctx.sample_aspect_ratio = source.sample_aspect_ratio
        ctx.thread_count = 0
        self.stream = stream

    def write(self, pts: int, duration: int, rgb: np.ndarray) -> None:
        colour = self.source.colour
        frame = av.VideoFrame.from_ndarray(rgb, format=self.encoding.rgb_format)
        frame = frame.reformat(
            format=self.encoding.pix_fmt,
            dst_colorspace=colour.sws_matrix,
            src_color_range=_RANGE_JPEG,
            dst_color_range=colour.range,
            interpolation=Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INP,
        )
        frame.colorspace, frame.color_range = colour.matrix, colour.range
        frame.color_primaries, frame.color_trc = colour.primaries, colour.trc
        frame.pts, frame.time_base, frame.duration = pts, self.source.time_base, duration
        self._durations[pts] = duration
        self._mux(self.stream.encode(frame))
        if self.first_pts is None:
            self.first_pts = pts
        self.last_pts = pts if self.last_pts is None else max(self.last_pts, pts)
        self.frames += 1

    def _mux(self, packets: list[Any]) -> None:
        for packet in packets:
            if Fraction(packet.time_base) != self.source.time_base:
                raise RuntimeError(
                    f"{self.encoding.codec} returned packets in {packet.time_base}, not {self.source.time_base}"
                )
            self.packets.append((packet.pts, packet.dts, self._durations.pop(packet.pts, packet.duration)))
        self.container.mux(packets)

    def commit(self) -> dict[str, Any]:
        self._mux(self.stream.encode(None))
        self._stack.close()  # closes the file, then puts it in place
        record = {
            "frames": self.frames,
            "first_pts": self.first_pts,
            "last_pts": self.last_pts,
            "packets": self.packets,
        }
        atomic_write(_segment_path(self.parts, self.index, ".json"), json.dumps(record).encode())
        return _summary(record)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)


# ---------------------------------------------------------------------------- the pipeline
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


def _decode(source: _Source, skip: int, rgb_format: str, out: queue.Queue, stop: threading.Event) -> None:
    """Decode frames ``skip`` onwards to RGB arrays; put ``(index, pts, duration, array)``, then ``_END``."""
    colour = source.colour
    default_duration = max(1, round(1 / (source.rate * source.time_base)))
    index, last_pts, end = 0, None, 0.0
    with av.open(str(source.path), metadata_errors="replace") as container:
        stream = container.streams[source.index]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                if stop.is_set():
                    raise _Stopped
                pts = (
                    frame.pts if frame.pts is not None else (last_pts + default_duration if last_pts is not None else 0)
                )
                if last_pts is not None and pts <= last_pts:
                    raise _fail(
                        source.path, f"frame {index} has timestamp {pts}, not after the one before ({last_pts})"
                    )
                duration = frame.duration or default_duration
                last_pts, end = pts, float((pts + duration) * source.time_base)
                if index >= skip:
                    if (frame.width, frame.height) != (source.width, source.height):
                        raise _fail(
                            source.path,
                            f"the picture size changes at frame {index} ({source.width}x{source.height} -> "
                            f"{frame.width}x{frame.height}); split the clip there",
                        )
                    rgb = frame.to_ndarray(
                        format=rgb_format,
                        src_colorspace=colour.sws_matrix,
                        dst_colorspace=colour.sws_matrix,
                        src_color_range=colour.range,
                        dst_color_range=_RANGE_JPEG,
                        interpolation=Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT,
                    )
                    _put(out, (index, pts, duration, rgb), stop)
                index += 1
        except av.error.FFmpegError as exc:
            raise _fail(
                source.path, f"cannot decode frame {index} ({_av_reason(exc)}; truncated or damaged?)"
            ) from None
    if source.frames and index < source.frames:
        raise _fail(source.path, f"only {index} of its {source.frames} frames could be decoded (truncated?)")
    start = float(stream.start_time * source.time_base) if stream.start_time is not None else 0.0
    if not source.frames and source.duration and end - start < source.duration - 2 * source.frame_seconds:
        raise _fail(source.path, f"the video stops at {end:.2f} s of its {source.duration:.2f} s (truncated?)")
    _put(out, _END, stop)


def _encode(
    source: _Source, encoding: _Encoding, parts: Path, records: list[dict], frames: queue.Queue, stop: threading.Event
) -> None:
    """Encode the upscaled frames into segments (one per ``segment_frames`` frames); append each one's record."""
    writer: _SegmentWriter | None = None
    try:
        while (item := _get(frames, stop)) is not _END:
            index, pts, duration, rgb = item
            segment = index // encoding.segment_frames
            if writer is not None and writer.index != segment:
                records.append(writer.commit())
                writer = None
            if writer is None:
                writer = _SegmentWriter(parts, segment, source, encoding)
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


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt (as Ctrl-C does), so a terminated run cleans up and can resume.

    Only where SIGTERM still has its default action (it ends the process at once): a caller
    that handles it already (``edsr-lib upscale`` does) keeps its handler.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------------------- joining
def _join(source: _Source, dst: Path, muxer: str, parts: Path, count: int) -> list[str]:
    """Mux the segments' video with the input's other streams, metadata and chapters into ``dst`` (atomically)."""
    lost: list[str] = []
    with (
        av.open(str(source.path), metadata_errors="replace") as src,
        atomic_path(dst) as tmp,
        av.open(str(tmp), "w", format=muxer) as out,
        av.open(str(_segment_path(parts, 0, ".nut"))) as first,
    ):
        out.metadata.update({k: v for k, v in src.metadata.items() if k.lower() not in _STALE_TAGS})
        vin = src.streams[source.index]
        video = out.add_stream_from_template(first.streams.video[0])
        video.time_base = source.time_base
        video.metadata.update({k: v for k, v in vin.metadata.items() if k.lower() not in _STALE_TAGS})
        video.disposition = vin.disposition
        if source.rotation:
            video.set_display_rotation(source.rotation)
        copied: dict[int, Any] = {}
        for stream in src.streams:
            if stream.index == source.index:
                continue
            codec = stream.codec_context.name if stream.codec_context is not None else None
            if stream.type == "attachment" and muxer == "matroska":  # fonts for the subtitles
                out.add_stream_from_template(stream)
                continue
            if stream.type not in ("audio", "subtitle"):
                lost.append(f"{stream.type} stream {stream.index} ({codec or 'no codec'}) is not copied")
                continue
            if codec not in out.supported_codecs:
                lost.append(f"{stream.type} stream {stream.index} ({codec}) cannot go in a {muxer} file; not copied")
                continue
            copy = out.add_stream_from_template(stream)
            copy.metadata.update({k: v for k, v in stream.metadata.items() if k.lower() not in _STALE_TAGS})
            copy.disposition = stream.disposition
            copied[stream.index] = copy
        with contextlib.suppress(AttributeError, av.error.FFmpegError):
            chapters = src.chapters()
            if chapters:
                out.set_chapters(chapters)

        def video_packets() -> Iterator[Any]:
            last_dts = None
            for index in range(count):  # one segment open at a time, whatever the clip's length
                record = json.loads(_segment_path(parts, index, ".json").read_text())
                with av.open(str(_segment_path(parts, index, ".nut"))) as container:
                    packets = (p for p in container.demux(container.streams.video[0]) if p.size)
                    for packet, (pts, dts, duration) in zip(packets, record["packets"], strict=True):
                        packet.time_base, packet.pts, packet.dts, packet.duration = source.time_base, pts, dts, duration
                        # Each segment is its own encode: its first decode timestamps may reach back
                        # before the previous segment's last; nudge them forward (never past pts).
                        if last_dts is not None and dts <= last_dts:
                            packet.dts = min(last_dts + 1, pts)
                        last_dts = packet.dts
                        packet.stream = video
                        yield packet

        def other_packets() -> Iterator[Any]:
            if not copied:
                return
            for packet in src.demux([src.streams[i] for i in copied]):
                if packet.size == 0 and packet.dts is None:
                    continue
                packet.stream = copied[packet.stream_index]
                yield packet

        def when(packet: Any) -> float:
            ts = packet.dts if packet.dts is not None else packet.pts
            return float(ts * packet.time_base) if ts is not None else -math.inf

        # merge the two time-ordered streams of packets, so that memory stays bounded
        videos, others = video_packets(), other_packets()
        v, o = next(videos, None), next(others, None)
        while v is not None or o is not None:
            if o is None or (v is not None and when(v) <= when(o)):
                out.mux(v)
                v = next(videos, None)
            else:
                out.mux(o)
                o = next(others, None)
    return lost


# ---------------------------------------------------------------------------- public
def upscale_video(
    model: SRModel | str | os.PathLike[str],
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    scale: int | None = None,
    *,
    outscale: float | None = None,
    vcodec: str | None = None,
    crf: int | None = None,
    preset: str | None = None,
    pix_fmt: str | None = None,
    tile: int | Literal["auto"] | None = "auto",
    batch_size: int = 4,
    self_ensemble: bool = False,
    device: torch.device | str | None = None,
    half: bool | str | torch.dtype = False,
    backend: str = "torch",
    segment_seconds: float | None = None,
    progress: bool = False,
) -> VideoResult:
    """Upscale a video file: every frame with :func:`edsr_lib.upscale`, the sound, timing and colours kept.

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

    Args:
        model: An :class:`~edsr_lib.SRModel`, a registered name or a saved folder (see
            :func:`edsr_lib.inference.load_model`).
        src: The input video.
        dst: The output file; its suffix picks the container (one of :data:`VIDEO_SUFFIXES`).
        scale: The model scale; may be omitted for a single-scale model.
        outscale: Instead of ``scale``: any output factor above 1 (see :func:`edsr_lib.upscale`).
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
        tile: Tile size in LR pixels, ``"auto"`` or ``None``, as for :func:`edsr_lib.upscale`.
        batch_size: Frames (or tiles) per forward pass.
        self_ensemble: Average over the eight flips and rotations (eight times the work).
        device: Where the model runs (default: the device of its weights).
        half: ``"bf16"`` or ``"fp16"`` as for :func:`edsr_lib.upscale`.
        backend: The runtime the model runs in (``"torch"``, ``"openvino"``, ``"onnxruntime"``,
            ``"auto"``), as for :func:`edsr_lib.upscale`.
        segment_seconds: Seconds of video per segment, the most work an interruption can
            lose (default 10).
        progress: Show a progress bar (frames, frames per second, time left).

    Returns:
        A :class:`VideoResult`; its :meth:`~VideoResult.summary` is one line for a log.

    Raises:
        VideoError: For an input that cannot be upscaled (not a video, truncated, no video
            stream, a codec the bundled FFmpeg cannot decode, a picture size the pixel format
            cannot hold); the message is one line naming the file and the reason. Nothing
            is written to ``dst``.
        ValueError: For settings that cannot work (an unknown encoder or pixel format, a
            scale the model does not serve, an unknown container suffix).
        KeyboardInterrupt: On Ctrl-C or SIGTERM; the complete segments are kept for a rerun.
    """
    _require_av()
    started = time.perf_counter()
    src, dst = Path(src), Path(dst)
    muxer = VIDEO_SUFFIXES.get(dst.suffix.lower())
    if muxer is None:
        raise ValueError(f"{dst}: unknown video suffix; use one of {', '.join(VIDEO_SUFFIXES)}")
    if outscale is not None and scale is not None:
        raise ValueError(f"give scale or outscale, not both (scale={scale}, outscale={outscale})")
    segment_seconds = _SEGMENT_SECONDS if segment_seconds is None else segment_seconds
    if not segment_seconds > 0:
        raise ValueError(f"segment_seconds must be positive, got {segment_seconds}")
    model = load_model(model)
    source = _probe(src)
    width, height = _output_size(source, model, scale, outscale)
    codec = _pick_codec(source, muxer, vcodec)
    chosen_fmt, lost = _pick_pix_fmt(source, codec, pix_fmt)
    sub_w, sub_h = _chroma(av.VideoFormat(chosen_fmt))
    if width % sub_w or height % sub_h:
        raise _fail(
            src,
            f"the output would be {width}x{height}, and {chosen_fmt} needs a width divisible by {sub_w} and a "
            f"height by {sub_h}; pass a pixel format without chroma subsampling (yuv444p) or a scale that fits",
        )
    encoding = _Encoding(
        codec=codec,
        pix_fmt=chosen_fmt,
        options=_codec_options(codec, crf, preset),
        width=width,
        height=height,
        rgb_format="rgb24" if source.depth <= 8 else "rgb48le",
        segment_frames=max(1, round(segment_seconds * float(source.rate))),
        lost=lost,
    )
    for message in lost:
        warnings.warn(f"{src}: {message}", stacklevel=2)
    settings = {
        "scale": scale,
        "outscale": outscale,
        "self_ensemble": self_ensemble,
        "half": str(half),
        "backend": backend,
    }
    parts = _parts_dir(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_temporary_files([dst]):  # a run killed while it joined the segments
        stale.unlink(missing_ok=True)
    records = _prepare_parts(parts, _fingerprint(model, source, encoding, settings))
    resumed = sum(r["frames"] for r in records)
    options = {
        "tile": tile,
        "batch_size": batch_size,
        "self_ensemble": self_ensemble,
        "device": device,
        "half": half,
        "backend": backend,
    }
    if outscale is not None:
        options["outscale"] = outscale
    else:
        options["scale"] = scale
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
        with _sigterm_interrupts():
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
                        result = upscale(model, np.stack([p[3] for p in pending]), **options)
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
            lost = (*lost, *_join(source, dst, muxer, parts, len(records)))
    except VideoError:
        shutil.rmtree(parts, ignore_errors=True)  # bad input: nothing half-written stays behind
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


# ---------------------------------------------------------------------------- folder jobs
#: Containers whose usual codecs exclude the default encoders: their videos are written as Matroska.
_REWRAPPED = {".ogv", ".wmv", ".avi", ".mpg", ".mpeg", ".flv"}


class VideoKind:
    """Videos as a kind of input of the folder engine (:mod:`edsr_lib.jobs`): one :func:`upscale_video` per file.

    Registered with :func:`edsr_lib.jobs.register_kind` (default settings) when this module is
    imported, so :func:`edsr_lib.upscale_folder` and ``edsr-lib upscale`` take the files of
    :data:`VIDEO_SUFFIXES` beside images; pass ``kinds=[VideoKind(...)]`` for other encoder
    settings. A video is written with its own suffix (``clip.mp4`` -> ``clip_x2.mp4``), or
    as ``.mkv`` where its container does not hold the default encoders (``.avi``, ``.wmv``...).

    Args:
        vcodec: Video encoder, as :func:`upscale_video` takes it.
        crf: Constant rate factor.
        preset: Encoder speed preset.
        pix_fmt: Encoded pixel format.
        segment_seconds: Seconds of video per resumable segment (default 10).
        log: Called with each video's one-line summary (default: no summary).
    """

    name = "video"
    suffixes = tuple(VIDEO_SUFFIXES)

    def __init__(
        self,
        vcodec: str | None = None,
        crf: int | None = None,
        preset: str | None = None,
        pix_fmt: str | None = None,
        segment_seconds: float | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = {
            "vcodec": vcodec,
            "crf": crf,
            "preset": preset,
            "pix_fmt": pix_fmt,
            "segment_seconds": segment_seconds,
        }
        self.settings = {k: v for k, v in self.settings.items() if v is not None}
        self.log = log

    def output_suffix(self, source: Path) -> str:
        """``source``'s own suffix, or ``.mkv`` for containers that do not hold H.264 well."""
        suffix = source.suffix.lower()
        return ".mkv" if suffix in _REWRAPPED else suffix

    def process(self, model: SRModel, source: Path, target: Path, options: dict[str, Any]) -> None:
        """Upscale the video ``source`` into ``target`` (see :func:`upscale_video`); raises on failure."""
        known = ("scale", "outscale", "tile", "batch_size", "self_ensemble", "device", "half", "backend", "progress")
        kwargs = {k: v for k, v in options.items() if k in known and v is not None}
        result = upscale_video(model, source, target, **kwargs, **self.settings)
        if self.log is not None:
            self.log(f"{source}: {result.summary()}")


register_kind(VideoKind())
