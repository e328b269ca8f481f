"""Videos as a kind of input of the folder engine (:mod:`edsr_lib.jobs`), registered when imported."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..jobs import register_kind
from ..models import SRModel
from .encoding import VIDEO_SUFFIXES, check_settings
from .pipeline import upscale_video

__all__ = ["VideoKind"]

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

    Raises:
        ValueError: For an encoder the bundled FFmpeg lacks, or a ``crf`` out of range
            (:func:`~edsr_lib.video.encoding.check_settings`).
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
        check_settings(vcodec, crf, preset)  # before any file: a folder job fails once, not per video
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
        known = (
            "scale",
            "outscale",
            "tile",
            "batch_size",
            "self_ensemble",
            "device",
            "half",
            "backend",
            "int8",
            "progress",
        )
        kwargs = {k: v for k, v in options.items() if k in known and v is not None}
        result = upscale_video(model, source, target, **kwargs, **self.settings)
        if self.log is not None:
            self.log(f"{source}: {result.summary()}")


register_kind(VideoKind())
