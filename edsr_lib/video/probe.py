"""The input: what a video file holds (its stream, layout, colour tags and timing), read with PyAV.

:func:`probe_video` opens a clip and decodes its first frame; a file that cannot be upscaled
raises :class:`VideoError`, one line naming the file and the reason. This module also owns
the optional PyAV import (the ``video`` extra) that the other video modules use.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

try:
    import av
    import av.error
    from av.video.reformatter import Interpolation
except ImportError:  # pragma: no cover - depends on the installed extras
    av = None
    Interpolation = None

__all__ = ["VideoError"]

# FFmpeg's AVColorSpace values -> the matrices swscale converts with (SWS_CS_*).
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
_RANGE_MPEG, RANGE_JPEG = 1, 2
_UNSPECIFIED = 2  # AVCOL_PRI/TRC/SPC_UNSPECIFIED


class VideoError(ValueError):
    """A video that cannot be upscaled; the message is one line naming the file and the reason."""


def require_av() -> None:
    if av is None:
        raise ImportError("video needs PyAV: pip install 'edsr-lib[video]'")


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
class Source:
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


def fail(path: Path, reason: str) -> VideoError:
    return VideoError(f"{path}: {reason}")


def av_reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.rstrip(".")


#: FFmpeg's demuxers of still images besides the ``*_pipe`` ones, and the usual suffix of each image codec.
_IMAGE_DEMUXERS = {"image2", "gif", "apng"}
_IMAGE_SUFFIXES = {"mjpeg": ".jpg", "tiff": ".tif", "jpegls": ".jpg", "jpeg2000": ".jp2"}


def _refuse_images(container: Any, path: Path) -> None:
    """An image with a video's suffix (a PNG named ``clip.mp4``) is refused, not made a one-frame video."""
    name = container.format.name
    if not (name.endswith("_pipe") or name in _IMAGE_DEMUXERS):
        return
    streams = container.streams.video
    codec = streams[0].codec_context.name if streams and streams[0].codec_context is not None else name
    codec = codec.removesuffix("_pipe")
    kind = "JPEG" if codec == "mjpeg" else codec.upper()
    suffix = _IMAGE_SUFFIXES.get(codec, f".{codec}")
    raise fail(path, f"is a {kind} image, not a video; name it {path.stem}{suffix} to upscale it as an image")


def _video_stream(container: Any, path: Path) -> Any:
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        held = [
            f"{s.type} ({s.codec_context.name if s.codec_context is not None else 'unknown codec'})"
            for s in container.streams
            if s.type != "video"
        ]
        what = ", ".join(held) if held else "no stream at all"
        raise fail(path, f"has no video stream, only {what}" if held else f"has no video stream ({what})")
    return streams[0]


def _depth(fmt: Any) -> int:
    return max(c.bits for c in fmt.components)


def chroma_subsampling(fmt: Any, width: int = 64, height: int = 64) -> tuple[int, int]:
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


def probe_video(path: Path) -> Source:
    """Open ``path`` and decode its first frame: the stream's layout, colours and timing, or a :class:`VideoError`."""
    require_av()
    if not path.is_file():
        raise fail(path, "no such file")
    try:
        container = av.open(str(path), metadata_errors="replace")
    except av.error.FFmpegError as exc:
        raise fail(path, f"not a video FFmpeg can read ({av_reason(exc)})") from None
    with container:
        _refuse_images(container, path)
        stream = _video_stream(container, path)
        ctx = stream.codec_context
        if ctx is None or not getattr(ctx, "name", None):
            raise fail(path, "the bundled FFmpeg has no decoder for its video codec")
        first = None
        try:
            for frame in container.decode(stream):
                first = frame
                break
        except av.error.FFmpegError as exc:
            raise fail(path, f"cannot decode the video ({ctx.name}: {av_reason(exc)})") from None
        if first is None:
            raise fail(path, f"no video frame could be decoded ({ctx.name}; truncated or empty?)")
        fmt = first.format
        matrix = first.colorspace if first.colorspace in _SWS_MATRIX else ctx.colorspace
        if matrix not in _SWS_MATRIX:
            if matrix not in (0, _UNSPECIFIED):
                warnings.warn(
                    f"{path}: colour matrix {matrix} is not one swscale converts; reading it as BT.709", stacklevel=3
                )
            # untagged: what players assume, by the picture's height
            matrix = 1 if first.height >= 720 else 6
        colour_range = first.color_range or ctx.color_range or (RANGE_JPEG if fmt.name.startswith("yuvj") else 0)
        colour = _Colour(
            matrix=matrix,
            range=colour_range if colour_range in (_RANGE_MPEG, RANGE_JPEG) else _RANGE_MPEG,
            primaries=first.color_primaries or ctx.color_primaries or _UNSPECIFIED,
            trc=first.color_trc or ctx.color_trc or _UNSPECIFIED,
        )
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
        duration = _stream_seconds(container, stream)
        sar = stream.sample_aspect_ratio
        return Source(
            path=path,
            index=stream.index,
            codec=ctx.name,
            width=first.width,
            height=first.height,
            pix_fmt=fmt.name,
            depth=_depth(fmt),
            chroma=chroma_subsampling(fmt),
            colour=colour,
            rotation=round(first.rotation or 0),
            time_base=Fraction(stream.time_base),
            rate=Fraction(rate),
            frames=int(stream.frames or 0),
            duration=duration,
            sample_aspect_ratio=Fraction(sar) if sar else None,
        )
