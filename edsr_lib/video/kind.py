"""Videos as a kind of input of the folder engine (:mod:`edsr_lib.jobs`, which lists it among its built-in kinds)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .encoding import VIDEO_SUFFIXES, check_settings
from .pipeline import upscale_video

if TYPE_CHECKING:
    from ..inference import Upscaler

__all__ = ["VideoKind"]

#: Containers whose usual codecs exclude the default encoders: their videos are written as Matroska.
_REWRAPPED = {".ogv", ".wmv", ".avi", ".mpg", ".mpeg", ".flv"}


class VideoKind:
    """Videos as a kind of input of the folder engine (:mod:`edsr_lib.jobs`): one :func:`upscale_video` per file.

    One of the folder engine's built-in kinds (:data:`edsr_lib.jobs.BUILTIN_KINDS`, default
    settings), so :func:`edsr_lib.upscale_folder` and ``edsr-lib upscale`` take the files of
    :data:`VIDEO_SUFFIXES` beside images, whatever was imported before; pass
    ``kinds=[VideoKind(...)]`` for other encoder settings. A video is written with its own
    suffix (``clip.mp4`` -> ``clip_x2.mp4``), or
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
        self.vcodec, self.crf, self.preset, self.pix_fmt = vcodec, crf, preset, pix_fmt
        self.segment_seconds = segment_seconds
        self.log = log

    def output_suffix(self, source: Path) -> str:
        """``source``'s own suffix, or ``.mkv`` for containers that do not hold H.264 well."""
        suffix = source.suffix.lower()
        return ".mkv" if suffix in _REWRAPPED else suffix

    def process(self, upscaler: Upscaler, source: Path, target: Path) -> None:
        """Upscale the video ``source`` into ``target`` with the run's ``upscaler`` (see :func:`upscale_video`)."""
        result = upscale_video(
            upscaler,
            source,
            target,
            vcodec=self.vcodec,
            crf=self.crf,
            preset=self.preset,
            pix_fmt=self.pix_fmt,
            segment_seconds=self.segment_seconds,
        )
        if self.log is not None:
            self.log(f"{source}: {result.summary()}")
