"""Joining: the segments' video muxed with the input's copied streams, metadata and chapters, atomically."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._files import atomic_path
from .probe import Source, av
from .segments import segment_path

__all__: list[str] = []

#: Container tags that describe the file that was read, not the one written.
_STALE_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", "duration", "vendor_id"}


def join_segments(source: Source, dst: Path, muxer: str, parts: Path, count: int) -> list[str]:
    """Mux the segments' video with the input's other streams, metadata and chapters into ``dst`` (atomically)."""
    lost: list[str] = []
    with (
        av.open(str(source.path), metadata_errors="replace") as src,
        atomic_path(dst) as tmp,
        av.open(str(tmp), "w", format=muxer) as out,
        av.open(str(segment_path(parts, 0, ".nut"))) as first,
    ):
        out.metadata.update({k: v for k, v in src.metadata.items() if k.lower() not in _STALE_TAGS})
        vin = src.streams[source.index]
        template = first.streams.video[0]
        decoder = template.codec_context.codec.name
        # PyAV makes the stream with an encoder of the decoder's name; where there is none (AV1 is
        # decoded by libdav1d) the decoder's own codec serves: the packets are copied, not encoded
        video = out.add_stream_from_template(template, opaque=not _is_encoder(decoder))
        video.time_base = source.time_base
        # the colour tags go in the container too: VP9's bitstream holds the matrix and range only,
        # so its primaries and transfer would be lost (H.264 and HEVC carry all four themselves)
        colour = source.colour
        ctx = video.codec_context
        ctx.colorspace, ctx.color_range = colour.matrix, colour.range
        ctx.color_primaries, ctx.color_trc = colour.primaries, colour.trc
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
                record = json.loads(segment_path(parts, index, ".json").read_text())
                with av.open(str(segment_path(parts, index, ".nut"))) as container:
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


def _is_encoder(name: str) -> bool:
    try:
        return av.Codec(name, "w").is_encoder
    except av.codec.codec.UnknownCodecError:  # a decoder's name only (libdav1d)
        return False
