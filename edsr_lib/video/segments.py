"""Resumable segments: the parts folder beside the destination, its fingerprint, and one segment's encode.

Each segment is an independent encode of whole frames into a NUT file in ``.<name>.parts/``,
committed atomically with a JSON record of its packets; a rerun with the same fingerprint
(input file, model weights, settings) reuses the complete segments.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._files import atomic_path, atomic_write, stale_temporary_files
from ..models import SRModel
from .encoding import Encoding
from .probe import RANGE_JPEG, Interpolation, Source, av

__all__: list[str] = []

#: The parts folder's format: a folder written by another version is started afresh.
_PARTS_VERSION = 1


def parts_dir(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.parts")


def run_fingerprint(model: SRModel, source: Source, encoding: Encoding, settings: dict[str, Any]) -> dict[str, Any]:
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


def segment_path(parts: Path, index: int, suffix: str) -> Path:
    return parts / f"segment_{index:06d}{suffix}"


def _done_segments(parts: Path) -> list[dict[str, Any]]:
    """The complete segments of an earlier run, in order: each has its ``.nut`` and its ``.json`` record."""
    done = []
    while (record := segment_path(parts, len(done), ".json")).is_file():
        if not segment_path(parts, len(done), ".nut").is_file():
            break
        done.append(_summary(json.loads(record.read_text())))
    return done


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    """A segment's record without its packet list (read again when the segments are joined: memory stays flat)."""
    return {k: v for k, v in record.items() if k != "packets"}


def prepare_parts(parts: Path, fingerprint: dict[str, Any]) -> list[dict[str, Any]]:
    """Reuse ``parts`` if an earlier run with the same fingerprint left it; otherwise start it afresh."""
    job = parts / "job.json"
    if parts.is_dir():
        try:
            same = json.loads(job.read_text()) == fingerprint
        except (OSError, ValueError):
            same = False
        if same:
            done = _done_segments(parts)
            unfinished = [segment_path(parts, len(done), suffix) for suffix in (".nut", ".json")]
            for stale in stale_temporary_files(unfinished):  # a killed run's unfinished segment
                stale.unlink(missing_ok=True)
            return done
        shutil.rmtree(parts)
    parts.mkdir(parents=True)
    atomic_write(job, json.dumps(fingerprint, indent=1).encode())
    return []


class SegmentWriter:
    """One segment: an independent encode (starting on a key frame) into a NUT file, committed atomically."""

    def __init__(self, parts: Path, index: int, source: Source, encoding: Encoding) -> None:
        self.parts, self.index, self.source, self.encoding = parts, index, source, encoding
        self.frames, self.first_pts, self.last_pts = 0, None, None
        # The segment file keeps the packets; their exact timestamps are kept here, because NUT
        # gives back no decode timestamp for the first packets of a stream with B-frames.
        self.packets: list[tuple[int, int, int]] = []
        self._durations: dict[int, int] = {}  # encoders drop the frame durations; each packet gets its frame's
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(segment_path(parts, index, ".nut")))
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
            src_color_range=RANGE_JPEG,
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
        atomic_write(segment_path(self.parts, self.index, ".json"), json.dumps(record).encode())
        return _summary(record)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)
