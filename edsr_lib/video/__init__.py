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

The package, one module per job: :mod:`~edsr_lib.video.probe` reads the input (stream,
colours, timing), :mod:`~edsr_lib.video.encoding` picks the output (container, encoder,
pixel format), :mod:`~edsr_lib.video.segments` keeps the resumable segments,
:mod:`~edsr_lib.video.streams` joins them with the copied streams and metadata,
:mod:`~edsr_lib.video.pipeline` runs decoding, the model and encoding (:func:`upscale_video`),
and :mod:`~edsr_lib.video.kind` plugs videos into the folder engine (:class:`VideoKind`).
"""

from __future__ import annotations

from .encoding import VIDEO_SUFFIXES, is_video
from .kind import VideoKind
from .pipeline import VideoResult, upscale_video
from .probe import VideoError

__all__ = ["VIDEO_SUFFIXES", "VideoError", "VideoKind", "VideoResult", "is_video", "upscale_video"]
