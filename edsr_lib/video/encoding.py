"""The output: the video suffixes and their containers, the encoder, pixel format, options and size."""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..models import SRModel
from .probe import Source, av

__all__ = ["VIDEO_SUFFIXES", "is_video"]

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


def is_video(path: str | os.PathLike[str]) -> bool:
    """True if ``path``'s suffix is one of :data:`VIDEO_SUFFIXES` (the file is not opened)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class Encoding:
    """How the video is encoded: the settings that decide the bits, so a resumed run must share them."""

    codec: str
    pix_fmt: str
    options: dict[str, str]
    width: int
    height: int
    rgb_format: str
    segment_frames: int
    lost: tuple[str, ...] = field(default=())


def pick_codec(source: Source, muxer: str, vcodec: str | None) -> str:
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


def pick_pix_fmt(source: Source, codec: str, pix_fmt: str | None) -> tuple[str, tuple[str, ...]]:
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


def codec_options(codec: str, crf: int | None, preset: str | None) -> dict[str, str]:
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


def output_size(source: Source, model: SRModel, scale: int | None, outscale: float | None) -> tuple[int, int]:
    if outscale is not None:
        return (math.ceil(outscale * source.width - 1e-6), math.ceil(outscale * source.height - 1e-6))
    factor = model.resolve_scale(scale)
    return (factor * source.width, factor * source.height)
