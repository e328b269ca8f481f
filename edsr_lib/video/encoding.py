"""The output: the video suffixes and their containers, the encoder, pixel format, options and size."""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..models import SRModel
from .probe import Source, av, av_reason

__all__ = ["VIDEO_SUFFIXES", "check_settings", "is_video"]

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
#: The constant rate factors each encoder really takes. FFmpeg's own bounds are looser (x264 takes any
#: number up to 3.4e38 and clamps it to 51; SVT-AV1 reads 0 as "not set"), so they are spelled here.
_CRF_RANGES = {
    "libx264": (0, 51),
    "libx265": (0, 51),
    "libvpx-vp9": (0, 63),
    "libvpx": (4, 63),
    "libsvtav1": (1, 63),
    "libaom-av1": (0, 63),
}


def is_video(path: str | os.PathLike[str]) -> bool:
    """True if ``path``'s suffix is one of :data:`VIDEO_SUFFIXES` (the file is not opened)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def check_settings(vcodec: str | None = None, crf: int | None = None, preset: str | None = None) -> None:
    """Refuse encoder settings that cannot work, before any file is read: the checks that need no input.

    ``vcodec`` must be a video encoder of the bundled FFmpeg, and ``crf`` within its range
    (without ``vcodec``, within the range of one of the default encoders). What depends on
    the input (the encoder chosen for its codec family, the pixel format, a preset's name)
    is checked by :func:`upscale_video` before its first frame.

    Raises:
        ValueError: In one line naming the setting and what it may be.
    """
    if vcodec is not None:
        _check_encoder_name(vcodec)
    if crf is None:
        return
    if vcodec is not None:
        _check_crf(vcodec, crf)
        return
    lows, highs = zip(*(_CRF_RANGES[name] for name in {*_FAMILY_ENCODERS.values(), *_DEFAULT_ENCODERS}), strict=True)
    if not min(lows) <= crf <= max(highs):
        ranges = ", ".join(f"{name} {lo}-{hi}" for name, (lo, hi) in _CRF_RANGES.items())
        raise ValueError(f"crf {crf} is outside every encoder's range ({ranges})")


def _check_encoder_name(vcodec: str) -> None:
    if (
        vcodec not in av.codecs_available
        or not av.Codec(vcodec, "w").is_encoder
        or av.Codec(vcodec, "w").type != "video"
    ):
        raise ValueError(f"the bundled FFmpeg has no video encoder {vcodec!r}")


def _check_crf(codec: str, crf: int) -> None:
    if codec in _CRF_RANGES:
        low, high = _CRF_RANGES[codec]
        if not low <= crf <= high:
            raise ValueError(f"crf {crf} is outside {codec}'s range, {low} to {high} (lower is better)")


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
        _check_encoder_name(vcodec)
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
    if crf is not None:
        _check_crf(codec, crf)
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


def open_encoder(encoding: Encoding, source: Source, crf: int | None, preset: str | None) -> dict[str, str]:
    """Open the encoder once with ``encoding``'s settings, before any frame: the options it takes, or one line.

    An encoder without a constant rate factor (``mpeg4``, ``ffv1``) gets none by default and
    refuses one given; one without presets refuses a preset; settings the encoder rejects
    (a preset it does not know, a pixel format it cannot take, hardware that is absent) are
    named with FFmpeg's reason.
    """
    options = dict(encoding.options)
    for _ in range(2):
        ctx = av.CodecContext.create(encoding.codec, "w")
        ctx.width, ctx.height, ctx.pix_fmt = encoding.width, encoding.height, encoding.pix_fmt
        ctx.time_base, ctx.framerate = source.time_base, source.rate
        ctx.options = dict(options)
        try:
            ctx.open()
        except (av.error.FFmpegError, OverflowError, ValueError) as exc:
            given = {"crf": crf, "preset": preset}
            settings = "".join(f", {k} {v}" for k, v in given.items() if v is not None)
            raise ValueError(
                f"the bundled FFmpeg cannot open {encoding.codec} for {encoding.width}x{encoding.height} "
                f"{encoding.pix_fmt}{settings} ({av_reason(exc)}); try another encoder, pixel format or setting"
            ) from None
        unused = set(ctx.options)
        if not unused:
            return options
        if "crf" in unused and crf is not None:
            raise ValueError(f"{encoding.codec} has no constant rate factor (crf); leave it out")
        if preset is not None and unused & {"preset", "cpu-used"}:
            raise ValueError(f"{encoding.codec} has no speed preset; leave it out")
        options = {k: v for k, v in options.items() if k not in unused}  # defaults it does not take
    return options
