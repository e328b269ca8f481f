"""edsr_lib.video: clips made here with PyAV, upscaled x2; timing, sound, colours, metadata, resuming, bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

import edsr_lib

av = pytest.importorskip("av", reason="the video tests need PyAV (pip install 'edsr-lib[video]')")

from av.video.reformatter import Interpolation  # noqa: E402

from edsr_lib.video import VideoError, upscale_video  # noqa: E402

#: swscale's exact conversion; its default fast path is off by a few levels on small pictures.
ACCURATE = Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
REPO_ROOT = Path(__file__).resolve().parents[1]
#: Two flat patches: the left one changes with the frame index, so frame order shows in the pixels.
RIGHT = (20, 120, 240)


def _left(index: int) -> tuple[int, int, int]:
    return (200, 30 + 10 * index, 60)


def identity_x2() -> edsr_lib.SRModel:
    """A tiny EDSR whose weights make it a nearest-neighbour x2: flat colours must come out as they went in."""
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for c in range(3):
            model.head.weight[c, c, 1, 1] = 1
            model.upsampler[0].weight[4 * c : 4 * c + 4, c, 1, 1] = 1
            model.tail.weight[c, c, 1, 1] = 1
    return model


@pytest.fixture(scope="module")
def model() -> edsr_lib.SRModel:
    return identity_x2()


def make_clip(
    path: Path,
    frames: int = 12,
    size: tuple[int, int] = (32, 24),
    *,
    pix_fmt: str = "yuv420p",
    full_range: bool = False,
    vfr: bool = False,
    audio: bool = True,
    rotation: int = 0,
    chapters: bool = False,
    options: dict[str, str] | None = None,
) -> Path:
    """A lossless H.264 clip (BT.709, 24 fps or variable), optionally with AAC audio, tags and chapters."""
    width, height = size
    deep = "10" in pix_fmt
    peak = 65535 if deep else 255
    with av.open(str(path), "w", options=options or {}) as out:
        video = out.add_stream("libx264", rate=24, options={"qp": "0", "preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        ctx = video.codec_context
        ctx.time_base = Fraction(1, 1000) if vfr else Fraction(1, 240)
        ctx.colorspace, ctx.color_primaries, ctx.color_trc = 1, 1, 1
        ctx.color_range = 2 if full_range else 1
        video.metadata["language"] = "deu"
        if rotation:
            video.set_display_rotation(rotation)
        if audio:
            sound = out.add_stream("aac", rate=48000)
            sound.layout = "stereo"
            sound.metadata["language"] = "fra"
        out.metadata["title"] = "a test clip"
        if chapters:
            out.set_chapters(
                [
                    {"id": 1, "start": 0, "end": 250, "time_base": Fraction(1, 1000), "metadata": {"title": "One"}},
                    {"id": 2, "start": 250, "end": 500, "time_base": Fraction(1, 1000), "metadata": {"title": "Two"}},
                ]
            )
        pts = 0
        for i in range(frames):
            rgb = np.empty((height, width, 3), np.uint16 if deep else np.uint8)
            rgb[:, : width // 2] = np.array(_left(i)) * peak // 255
            rgb[:, width // 2 :] = np.array(RIGHT) * peak // 255
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le" if deep else "rgb24").reformat(
                format=pix_fmt, dst_colorspace=1, dst_color_range=ctx.color_range
            )
            frame.pts, frame.time_base = pts, ctx.time_base
            pts += (30, 50, 41)[i % 3] if vfr else 10
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio:
            for k in range(frames * 2000 // 1024 + 1):
                samples = (0.3 * np.sin(np.arange(1024) / 10 + k)).astype(np.float32)
                chunk = av.AudioFrame.from_ndarray(np.stack([samples, samples]), format="fltp", layout="stereo")
                chunk.sample_rate, chunk.pts = 48000, k * 1024
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


def frames_of(path: Path) -> list[tuple[float, np.ndarray]]:
    """Every frame's time in seconds and its pixels as full-range RGB in 8-bit levels (floats)."""
    result = []
    with av.open(str(path)) as clip:
        for frame in clip.decode(video=0):
            deep = "10" in frame.format.name
            rgb = frame.to_ndarray(
                format="rgb48le" if deep else "rgb24",
                src_colorspace=1,
                dst_colorspace=1,
                src_color_range=frame.color_range,
                dst_color_range=2,
                interpolation=ACCURATE,
            ).astype(np.float64)
            result.append((float(frame.pts * frame.time_base), rgb / 257 if deep else rgb))
    return result


def packets_of(path: Path, kind: str) -> list[bytes]:
    with av.open(str(path)) as clip:
        return [bytes(p) for p in clip.demux(getattr(clip.streams, kind)[0]) if p.size]


def video_end(path: Path) -> float:
    """When the last frame ends: its timestamp plus its duration."""
    with av.open(str(path)) as clip:
        last = max((p for p in clip.demux(video=0) if p.size), key=lambda p: p.pts)
        return float((last.pts + last.duration) * last.time_base)


def check_same_timing_and_colours(src: Path, dst: Path, tolerance: float = 2.0, every_pixel: bool = False) -> None:
    """Same frame count, timestamps and end; each flat patch the input's colour (its median, or every pixel)."""
    before, after = frames_of(src), frames_of(dst)
    assert len(after) == len(before)
    with av.open(str(dst)) as clip:  # each timestamp as the input's, to the container's resolution (Matroska: 1 ms)
        tick = float(clip.streams.video[0].time_base)
    assert [t for t, _ in after] == pytest.approx([t for t, _ in before], abs=tick / 2 + 1e-9)
    frame_seconds = min(np.diff([t for t, _ in before]))
    assert abs(video_end(dst) - video_end(src)) < frame_seconds
    for (_, lr), (_, sr) in zip(before, after, strict=True):
        height, width = sr.shape[:2]
        assert (height, width) == (2 * lr.shape[0], 2 * lr.shape[1])
        # each flat patch has the input's colour, away from the edge where 4:2:0 chroma mixes the two
        for patch_in, patch_out in (
            (lr[1:-1, 1 : width // 4 - 6], sr[2:-2, 2 : width // 2 - 12]),
            (lr[1:-1, width // 4 + 6 : -1], sr[2:-2, width // 2 + 12 : -2]),
        ):
            if every_pixel:  # the test model is a nearest-neighbour x2: each input pixel becomes a 2x2 block
                np.testing.assert_allclose(patch_out, patch_in.repeat(2, axis=0).repeat(2, axis=1), atol=tolerance)
            else:
                colours = [np.median(patch.reshape(-1, 3), axis=0) for patch in (patch_in, patch_out)]
                np.testing.assert_allclose(colours[1], colours[0], atol=tolerance)


def colour_tags(path: Path) -> tuple[int, int, int, int, str]:
    with av.open(str(path)) as clip:
        ctx = clip.streams.video[0].codec_context
        return ctx.colorspace, ctx.color_range, ctx.color_primaries, ctx.color_trc, ctx.format.name


# ---------------------------------------------------------------------------- timing, sound, colours
def test_constant_rate_mp4_with_aac(model: edsr_lib.SRModel, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4")
    dst = tmp_path / "out" / "clip_x2.mp4"
    result = upscale_video(model, src, dst, segment_seconds=0.2)
    assert result.frames == 12 and result.segments == 3 and result.resumed_frames == 0
    check_same_timing_and_colours(src, dst)
    assert packets_of(dst, "audio") == packets_of(src, "audio")
    assert colour_tags(dst) == (1, 1, 1, 1, "yuv420p")
    with av.open(str(dst)) as clip:
        assert clip.streams.video[0].codec_context.name == "h264"
        assert clip.streams.audio[0].language == "fra" and clip.streams.video[0].language == "deu"
        assert clip.metadata["title"] == "a test clip"
    assert sorted(p.name for p in dst.parent.iterdir()) == ["clip_x2.mp4"]  # the segments are gone
    # the colour conversions themselves lose nothing: losslessly encoded, every pixel is within a level
    upscale_video(model, src, tmp_path / "lossless.mp4", crf=0)
    check_same_timing_and_colours(src, tmp_path / "lossless.mp4", tolerance=1.0, every_pixel=True)


def test_variable_frame_rate_stays_variable(model: edsr_lib.SRModel, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "vfr.mkv", vfr=True)
    for dst in (tmp_path / "vfr_x2.mkv", tmp_path / "vfr_x2.mp4"):
        upscale_video(model, src, dst, segment_seconds=0.2)
        check_same_timing_and_colours(src, dst)
        assert packets_of(dst, "audio") == packets_of(src, "audio")
    assert len({round(b - a, 3) for a, b in zip(*[[t for t, _ in frames_of(src)]] * 2, strict=False)}) >= 1
    gaps = np.diff([t for t, _ in frames_of(tmp_path / "vfr_x2.mp4")])
    assert gaps.max() - gaps.min() > 0.015  # 30, 50 and 41 ms apart, as made


@pytest.mark.parametrize("full_range", [False, True], ids=["limited", "full"])
def test_ten_bits_stay_ten_bits(model: edsr_lib.SRModel, tmp_path: Path, full_range: bool) -> None:
    src = make_clip(tmp_path / "deep.mkv", pix_fmt="yuv420p10le", full_range=full_range)
    dst = tmp_path / "deep_x2.mkv"
    result = upscale_video(model, src, dst)
    assert result.pix_fmt == "yuv420p10le" and not result.warnings
    assert colour_tags(dst) == (1, 2 if full_range else 1, 1, 1, "yuv420p10le")
    check_same_timing_and_colours(src, dst)


def test_full_range_8_bit(model: edsr_lib.SRModel, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "full.mp4", full_range=True, audio=False)
    dst = tmp_path / "full_x2.mp4"
    upscale_video(model, src, dst)
    assert colour_tags(dst) == (1, 2, 1, 1, "yuvj420p")  # FFmpeg's H.264 decoder names full-range 4:2:0 so
    check_same_timing_and_colours(src, dst)


def test_an_encoder_without_ten_bits_warns_of_the_loss(model: edsr_lib.SRModel, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "deep.mkv", frames=3, pix_fmt="yuv420p10le", audio=False)
    with pytest.warns(UserWarning, match="10-bit input encoded in 8 bits"):
        result = upscale_video(model, src, tmp_path / "deep.webm", vcodec="libvpx-vp9", preset="8")
    assert result.pix_fmt == "yuv420p" and colour_tags(tmp_path / "deep.webm")[-1] == "yuv420p"


def test_codec_crf_preset_and_pixel_format(model: edsr_lib.SRModel, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4", frames=4, audio=False)
    low = upscale_video(model, src, tmp_path / "low.mkv", crf=40, preset="ultrafast", pix_fmt="yuv444p")
    upscale_video(model, src, tmp_path / "hevc.mkv", vcodec="libx265", crf=10)
    assert (low.codec, low.pix_fmt) == ("libx264", "yuv444p")
    assert colour_tags(tmp_path / "low.mkv")[-1] == "yuv444p"
    with av.open(str(tmp_path / "hevc.mkv")) as clip:
        assert clip.streams.video[0].codec_context.name == "hevc"
    check_same_timing_and_colours(src, tmp_path / "hevc.mkv")
    with pytest.raises(ValueError, match="no video encoder 'nope'"):
        upscale_video(model, src, tmp_path / "x.mkv", vcodec="nope")
    # by default the input's codec family, where the container holds it; else H.264, else VP9
    assert upscale_video(model, tmp_path / "hevc.mkv", tmp_path / "again.mkv", preset="ultrafast").codec == "libx265"
    assert upscale_video(model, tmp_path / "hevc.mkv", tmp_path / "again.avi").codec == "libx264"
    assert upscale_video(model, src, tmp_path / "clip.webm", preset="8").codec == "libvpx-vp9"
    with pytest.raises(ValueError, match="a webm file cannot hold libx264 video"):
        upscale_video(model, src, tmp_path / "x.webm", vcodec="libx264")


def test_frames_go_through_upscale_in_batches_within_a_segment(
    model: edsr_lib.SRModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[tuple[int, ...]] = []
    real = edsr_lib.Upscaler.__call__

    def spy(self, frames):
        batches.append(frames.shape)
        return real(self, frames)

    monkeypatch.setattr(edsr_lib.Upscaler, "__call__", spy)
    src = make_clip(tmp_path / "clip.mp4", frames=12, audio=False)
    upscale_video(model, src, tmp_path / "out.mp4", batch_size=4, segment_seconds=0.25)  # 6 frames a segment
    assert [b[0] for b in batches] == [4, 2, 4, 2]
    assert batches[0][1:] == (24, 32, 3)


# ---------------------------------------------------------------------------- metadata
_SUBTITLE_TAGS = ("-metadata:s:s:0", "language=eng", "-metadata:s:s:0", "title=English")


def test_subtitles_chapters_and_tags_are_kept(model: edsr_lib.SRModel, tmp_path: Path) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("needs Debian's ffmpeg binary to mux a subtitle stream (.ci/run installs it)")
    clip = make_clip(tmp_path / "clip.mkv", chapters=True)
    srt = tmp_path / "words.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,300\nHello\n\n2\n00:00:00,300 --> 00:00:00,500\nWorld\n")
    src = tmp_path / "subtitled.mkv"
    subprocess.run(
        [ffmpeg, "-v", "error", "-i", clip, "-i", srt, "-map", "0", "-map", "1", "-c", "copy", *_SUBTITLE_TAGS, src],
        check=True,
    )
    dst = tmp_path / "subtitled_x2.mkv"
    upscale_video(model, src, dst)
    assert packets_of(dst, "subtitles") == packets_of(src, "subtitles")
    assert packets_of(dst, "audio") == packets_of(src, "audio")
    with av.open(str(dst)) as out:
        subtitle = out.streams.subtitles[0]
        assert (subtitle.language, subtitle.metadata.get("title")) == ("eng", "English")
        assert [c["metadata"]["title"] for c in out.chapters()] == ["One", "Two"]
        assert out.metadata["title"] == "a test clip"
    check_same_timing_and_colours(src, dst)
    with pytest.warns(UserWarning, match=r"subtitle stream 2 \(srt\) cannot go in a mp4 file; not copied"):
        result = upscale_video(model, src, tmp_path / "subtitled_x2.mp4")
    assert packets_of(tmp_path / "subtitled_x2.mp4", "audio") == packets_of(src, "audio")
    assert len(result.warnings) == 1


def test_a_rotated_phone_clip_keeps_its_rotation(model: edsr_lib.SRModel, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "phone.mp4", frames=4, rotation=90)
    dst = tmp_path / "phone_x2.mp4"
    upscale_video(model, src, dst)
    with av.open(str(dst)) as clip:
        frame = next(clip.decode(video=0))
        assert frame.rotation == 90 and (frame.width, frame.height) == (64, 48)


# ---------------------------------------------------------------------------- interrupted runs
# The video pipeline of a child process, its Upscaler 0.15 s slower a batch, so that a signal lands mid-run; after
# 12 batches it waits for the signal, so that the run cannot end before it on a loaded machine.
_SLOW_PIPELINE = textwrap.dedent(
    """
    import signal, sys, time
    # Ctrl-C as in a terminal: a shell starts background jobs with SIGINT ignored, and Python keeps that
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import edsr_lib.video.pipeline as video
    real = video.as_upscaler
    class Slow:
        calls = 0
        def __init__(self, up):
            self.up = up
        def __getattr__(self, name):
            return getattr(self.up, name)
        def __call__(self, batch):
            Slow.calls += 1
            time.sleep(0.15 if Slow.calls <= 12 else 120)
            return self.up(batch)
    video.as_upscaler = lambda *args, **kwargs: Slow(real(*args, **kwargs))
    """
)
_SLOW_RUN = _SLOW_PIPELINE + textwrap.dedent(
    """
    sys.path.insert(0, {tests!r})
    from test_video import identity_x2
    video.upscale_video(identity_x2(), sys.argv[1], sys.argv[2], batch_size=1, segment_seconds=0.125)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])  # SIGTERM: the command's test
def test_a_killed_run_resumes_with_the_same_frames(
    model: edsr_lib.SRModel, tmp_path: Path, how: signal.Signals
) -> None:
    src = make_clip(tmp_path / "clip.mp4", frames=36)
    whole = tmp_path / "whole.mp4"
    upscale_video(model, src, whole, batch_size=1, segment_seconds=0.125)  # 3 frames a segment
    dst = tmp_path / "out" / "resumed.mp4"
    parts = dst.with_name(".resumed.mp4.parts")
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    run = subprocess.Popen(
        [sys.executable, "-c", _SLOW_RUN.format(tests=str(Path(__file__).parent)), src, dst],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while len(list(parts.glob("segment_*.json"))) < 3:
        assert run.poll() is None, run.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    run.send_signal(how)
    _, err = run.communicate(timeout=60)
    assert run.returncode != 0
    if how != signal.SIGKILL:  # cleaned up: no half-written segment
        assert "KeyboardInterrupt" in err
        assert not list(parts.glob(".*.tmp"))
    assert not dst.exists()
    done = len(list(parts.glob("segment_*.json")))
    result = upscale_video(model, src, dst, batch_size=1, segment_seconds=0.125)
    assert result.resumed_frames == 3 * done and 0 < result.resumed_frames < 36
    assert not parts.exists()
    before, after = frames_of(whole), frames_of(dst)
    assert [t for t, _ in after] == [t for t, _ in before]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(after, before, strict=True))
    assert packets_of(dst, "video") == packets_of(whole, "video")
    assert packets_of(dst, "audio") == packets_of(src, "audio")


def test_other_settings_start_afresh(model: edsr_lib.SRModel, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4", frames=6, audio=False)
    dst = tmp_path / "clip_x2.mp4"
    parts = tmp_path / ".clip_x2.mp4.parts"
    upscale_video(model, src, dst, segment_seconds=0.125)
    parts.mkdir()  # an earlier run's segments, made with another crf
    (parts / "job.json").write_text(json.dumps({"version": 1, "settings": "other"}))
    (parts / "segment_000000.json").write_text("{}")
    (parts / "segment_000000.nut").write_bytes(b"")
    result = upscale_video(model, src, dst, segment_seconds=0.125, crf=30)
    assert result.resumed_frames == 0 and result.frames == 6 and not parts.exists()


# ---------------------------------------------------------------------------- bad input
def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    streamable = make_clip(tmp_path / "whole.mp4", frames=24, options={"movflags": "faststart"})
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(streamable.read_bytes()[: streamable.stat().st_size * 2 // 3])
    whole_mkv = make_clip(tmp_path / "whole.mkv", frames=24, audio=False)
    truncated_mkv = tmp_path / "truncated.mkv"
    truncated_mkv.write_bytes(whole_mkv.read_bytes()[: whole_mkv.stat().st_size * 2 // 3])
    sound = tmp_path / "sound.mkv"
    with av.open(str(sound), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        samples.sample_rate, samples.pts = 8000, 0
        out.mux(stream.encode(samples))
    return {
        "text": (text, "not a video FFmpeg can read"),
        "truncated": (truncated, "truncated"),
        "truncated_mkv": (truncated_mkv, "truncated"),
        "audio_only": (sound, "has no video stream"),
        "missing": (tmp_path / "gone.mp4", "no such file"),
    }


def test_bad_inputs_are_one_line_naming_the_file(model: edsr_lib.SRModel, tmp_path: Path) -> None:
    for name, (path, reason) in _bad_inputs(tmp_path).items():
        dst = tmp_path / "out" / f"{name}.mp4"
        with pytest.raises(VideoError) as caught:
            upscale_video(model, path, dst)
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and reason in message and "\n" not in message, (name, message)
        assert not dst.parent.exists() or not list(dst.parent.iterdir()), name  # nothing half-written


def test_an_unknown_codec_is_one_line(model: edsr_lib.SRModel, tmp_path: Path) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("needs Debian's ffmpeg binary to write a stream of an unknown codec (.ci/run installs it)")
    src = make_clip(tmp_path / "clip.mp4", frames=3, audio=False)
    unknown = tmp_path / "unknown.nut"
    tag = ("-tag:v", "ABCD", "-strict", "-2")  # a four-character code no decoder claims
    subprocess.run([ffmpeg, "-v", "error", "-i", src, "-c", "copy", *tag, unknown], check=True)
    with pytest.raises(VideoError, match=r"unknown.nut: the bundled FFmpeg has no decoder for its video codec$"):
        upscale_video(model, unknown, tmp_path / "out.mkv")


def test_odd_sizes_for_4_2_0_are_refused_before_any_work(model: edsr_lib.SRModel, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4", frames=2, size=(32, 22), audio=False)
    with pytest.raises(VideoError, match=r"clip.mp4: the output would be 48x33, and yuv420p needs .* height by 2"):
        upscale_video(model, src, tmp_path / "out.mp4", outscale=1.5)
    assert not list(tmp_path.glob(".out.mp4*")) and not (tmp_path / "out.mp4").exists()
    upscale_video(model, src, tmp_path / "out.mkv", outscale=1.5, pix_fmt="yuv444p")  # 4:4:4 holds odd sizes
    assert frames_of(tmp_path / "out.mkv")[0][1].shape == (33, 48, 3)


# ---------------------------------------------------------------------------- the command line
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return identity_x2().save_pretrained(tmp_path_factory.mktemp("model") / "identity_x2")


def _cli(model_dir: Path, *args: str | Path) -> int:
    from edsr_lib.cli import main

    return main(["upscale", *map(str, args), "--model", str(model_dir)])


def test_the_command_upscales_a_clip(model_dir: Path, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4")
    assert _cli(model_dir, src, "-o", tmp_path / "out") == 0
    dst = tmp_path / "out" / "clip_x2.mp4"
    check_same_timing_and_colours(src, dst)
    assert packets_of(dst, "audio") == packets_of(src, "audio")
    assert colour_tags(dst) == (1, 1, 1, 1, "yuv420p")
    args = ("--vcodec", "libx265", "--crf", "30", "--preset", "ultrafast", "--pix-fmt", "yuv444p", "--suffix", "_hevc")
    assert _cli(model_dir, src, "-o", tmp_path / "out", *args) == 0
    with av.open(str(tmp_path / "out" / "clip_hevc.mp4")) as clip:
        ctx = clip.streams.video[0].codec_context
        assert (ctx.name, ctx.format.name) == ("hevc", "yuv444p")


def test_a_folder_of_images_and_videos_with_bad_ones(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    folder = tmp_path / "in"
    (folder / "deeper").mkdir(parents=True)
    good = [make_clip(folder / "a.mp4", frames=4, audio=False), make_clip(folder / "deeper" / "b.mkv", frames=4)]
    Image.fromarray(np.full((12, 16, 3), 90, np.uint8)).save(folder / "photo.png")
    (folder / "broken.mp4").write_text("not a video\n")
    (folder / "deeper" / "old.avi").write_bytes(good[0].read_bytes()[:2000])
    out = tmp_path / "out"
    assert _cli(model_dir, folder, "-o", out, "--recursive") == 1
    err = capsys.readouterr().err
    for bad in ("broken.mp4", "old.avi"):
        lines = [line for line in err.splitlines() if "error:" in line and bad in line]
        assert len(lines) == 1, err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["a_x2.mp4", "deeper/b_x2.mkv", "photo_x2.png"]
    assert not [p for p in out.rglob(".*")]  # no parts folder, no temporary file
    check_same_timing_and_colours(good[1], out / "deeper" / "b_x2.mkv")

    stamp = (out / "a_x2.mp4").stat().st_mtime_ns
    assert _cli(model_dir, folder, "-o", out, "--recursive", "--skip-existing") == 1  # the bad ones fail again
    assert (out / "a_x2.mp4").stat().st_mtime_ns == stamp


def test_shards_split_the_videos(model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    for name in "abcd":
        make_clip(tmp_path / "in" / f"{name}.mkv", frames=2, audio=False)
    for i in range(2):
        assert _cli(model_dir, tmp_path / "in", "-o", tmp_path / f"out{i}", "--shard", f"{i}/2") == 0
    shares = [sorted(p.name for p in (tmp_path / f"out{i}").iterdir()) for i in range(2)]
    assert sorted(shares[0] + shares[1]) == [f"{n}_x2.mkv" for n in "abcd"] and all(len(s) == 2 for s in shares)


_SLOW_CLI = _SLOW_PIPELINE + textwrap.dedent(
    """
    from edsr_lib.cli import main
    video._SEGMENT_SECONDS = 0.125  # 3 frames a segment
    sys.exit(main(["upscale", *sys.argv[1:]]))
    """
)


@pytest.mark.slow
def test_the_command_interrupted_by_sigterm_resumes(model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    src = make_clip(tmp_path / "in" / "clip.mkv", frames=24)
    out = tmp_path / "out"
    args = [str(tmp_path / "in"), "-o", str(out), "--model", str(model_dir), "--batch-size", "1"]
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    parts = out / ".clip_x2.mkv.parts"
    run = subprocess.Popen([sys.executable, "-c", _SLOW_CLI, *args], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list(parts.glob("segment_*.json"))) < 1:
        assert run.poll() is None, run.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 143 and "SIGTERM: 1 file left" in err, err
    assert not (out / "clip_x2.mkv").exists()
    logged: list[str] = []
    from edsr_lib.jobs import upscale_folder
    from edsr_lib.video import VideoKind

    kind = VideoKind(log=logged.append, segment_seconds=0.125)
    summary = upscale_folder(
        tmp_path / "in",
        out,
        model=model_dir,
        skip_existing=True,
        log=logged.append,
        kinds=[kind],
    )
    assert summary.ok and [p.name for p in summary.written] == ["clip_x2.mkv"]
    assert any("resumed" in line for line in logged), logged
    check_same_timing_and_colours(src, out / "clip_x2.mkv")


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_frames_run_on_another_backend(model: edsr_lib.SRModel, tmp_path: Path, backend: str) -> None:
    pytest.importorskip(backend, reason=f"needs {backend} (the dev extra installs it)")
    src = make_clip(tmp_path / "clip.mkv", frames=4)
    dst = tmp_path / "clip_x2.mkv"
    upscale_video(model, src, dst, backend=backend)
    check_same_timing_and_colours(src, dst)
    assert packets_of(dst, "audio") == packets_of(src, "audio")


# ---------------------------------------------------------------------------- edge cases (#30 item 5)
@pytest.mark.parametrize(("fmt", "kind", "suffix"), [("PNG", "PNG", ".png"), ("JPEG", "JPEG", ".jpg")])
def test_an_image_with_a_video_suffix_is_refused(
    model: edsr_lib.SRModel, tmp_path: Path, fmt: str, kind: str, suffix: str
) -> None:
    from PIL import Image

    fake = tmp_path / "clip.mp4"
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(fake, format=fmt)
    dst = tmp_path / "out" / "clip_x2.mp4"
    with pytest.raises(VideoError, match=rf"clip.mp4: is a {kind} image, not a video; name it clip\{suffix} to"):
        upscale_video(model, fake, dst)
    assert not (tmp_path / "out").exists()  # no one-frame video, no parts, no folder


@pytest.mark.parametrize("crf", [-5, 999])
def test_a_crf_out_of_range_is_refused_before_any_work(
    model: edsr_lib.SRModel, model_dir: Path, tmp_path: Path, crf: int, capsys: pytest.CaptureFixture[str]
) -> None:
    from edsr_lib.video import VideoKind

    src = make_clip(tmp_path / "clip.mp4", frames=2, audio=False)
    with pytest.raises(ValueError, match=rf"^crf {crf} is outside every encoder's range"):
        upscale_video(model, src, tmp_path / "out" / "clip_x2.mp4", crf=crf)
    with pytest.raises(ValueError, match=rf"^crf {crf} is outside libvpx-vp9's range, 0 to 63"):
        VideoKind(vcodec="libvpx-vp9", crf=crf)
    assert _cli(model_dir, src, "-o", tmp_path / "out", "--crf", str(crf)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"edsr-lib upscale: error: crf {crf} is outside") and "\n" not in err, err
    assert not (tmp_path / "out").exists()  # nothing made, not even a hidden parts folder


def test_the_crf_range_is_the_chosen_encoders(
    model: edsr_lib.SRModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_clip(tmp_path / "clip.mp4", frames=2, audio=False)
    calls: list[int] = []
    real = edsr_lib.Upscaler.__call__

    def spy(self, frames):
        calls.append(1)
        return real(self, frames)

    monkeypatch.setattr(edsr_lib.Upscaler, "__call__", spy)
    with pytest.raises(ValueError, match=r"crf 60 is outside libx264's range, 0 to 51"):
        upscale_video(model, src, tmp_path / "out" / "x264.mp4", crf=60)  # H.264 in, H.264 out
    assert calls == [] and not (tmp_path / "out").exists()  # refused before the first frame
    upscale_video(model, src, tmp_path / "out" / "vp9.mkv", vcodec="libvpx-vp9", crf=60)
    assert calls and colour_tags(tmp_path / "out" / "vp9.mkv")[4] == "yuv420p"


def test_an_encoder_without_crf_or_preset_says_so(model: edsr_lib.SRModel, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4", frames=2, audio=False)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"^mpeg4 has no constant rate factor \(crf\); leave it out$"):
        upscale_video(model, src, out / "a.mp4", vcodec="mpeg4", crf=20)
    with pytest.raises(ValueError, match=r"^mpeg4 has no speed preset; leave it out$"):
        upscale_video(model, src, out / "a.mp4", vcodec="mpeg4", preset="slow")
    with pytest.raises(ValueError, match=r"^the bundled FFmpeg cannot open libx264 for 64x48 yuv420p, preset bogus"):
        upscale_video(model, src, out / "a.mp4", preset="bogus")
    assert not out.exists()
    upscale_video(model, src, out / "a.mp4", vcodec="mpeg4")  # without a crf of its own: the encoder's default
    assert colour_tags(out / "a.mp4")[4] == "yuv420p"


@pytest.mark.parametrize(
    ("vcodec", "suffix"),
    [("libvpx-vp9", ".mp4"), ("libvpx-vp9", ".mkv"), ("libvpx-vp9", ".webm"), ("libsvtav1", ".mkv")],
)
def test_every_encoder_keeps_the_four_colour_tags(
    model: edsr_lib.SRModel, tmp_path: Path, vcodec: str, suffix: str
) -> None:
    """VP9 carries only the matrix and range in its bitstream: primaries and transfer must go in the container."""
    if vcodec not in av.codecs_available:
        pytest.skip(f"this PyAV's FFmpeg has no {vcodec}")
    src = make_clip(tmp_path / "clip.mp4", frames=3, audio=False)
    dst = tmp_path / f"out{suffix}"
    upscale_video(model, src, dst, vcodec=vcodec)
    assert colour_tags(dst) == colour_tags(src) == (1, 1, 1, 1, "yuv420p")
    before, after = frames_of(src), frames_of(dst)
    assert len(after) == len(before) and after[0][1].shape == (48, 64, 3)
    right = np.median(after[-1][1][4:-4, 40:-4].reshape(-1, 3), axis=0)  # the right patch, read back as BT.709
    np.testing.assert_allclose(right, RIGHT, atol=6)


def test_a_format_for_images_is_not_ignored_silently_on_a_video(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_clip(tmp_path / "clip.mp4", frames=2, audio=False)
    assert _cli(model_dir, src, "-o", tmp_path / "out", "--format", "jpg") == 0
    err = capsys.readouterr().err
    assert "note: the output format jpg is for images; 1 video file(s) keep their own (.mp4)" in err, err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["clip_x2.mp4"]


def test_sound_files_are_reported_as_sound(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sound = tmp_path / "sound.m4a"
    with av.open(str(sound), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=48000)
        stream.layout = "stereo"
        for k in range(4):
            chunk = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
            chunk.sample_rate, chunk.pts = 48000, k * 1024
            out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))
    named_as_video = tmp_path / "sound.mp4"
    shutil.copy(sound, named_as_video)
    assert _cli(model_dir, sound, named_as_video, "-o", tmp_path / "out") == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert f"edsr-lib upscale: error: {sound} is sound (MP4 audio), not an image or a video" in lines[0], lines
    assert lines[1].endswith(f"{named_as_video}: has no video stream, only audio (aac)"), lines
    assert not (tmp_path / "out").exists()


def test_a_failure_midway_leaves_no_parts_and_no_folder(
    model: edsr_lib.SRModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edsr_lib.video import pipeline

    src = make_clip(tmp_path / "clip.mp4", frames=12, audio=False)
    real = pipeline.SegmentWriter.write

    def fail_in_the_second_segment(self, *args):
        if self.index == 1:
            raise RuntimeError("the encoder gave up")
        return real(self, *args)

    monkeypatch.setattr(pipeline.SegmentWriter, "write", fail_in_the_second_segment)
    dst = tmp_path / "new" / "folder" / "clip_x2.mp4"
    with pytest.raises(RuntimeError, match="the encoder gave up"):
        upscale_video(model, src, dst, segment_seconds=0.2)
    assert not (tmp_path / "new").exists()  # neither the parts folder nor the folders made for it
