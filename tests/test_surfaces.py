"""Every surface upscales through one Upscaler: the same options give the same pixels as ``Upscaler(...)(image)``.

Each surface (the command line, the folder engine, video, Ray, ``evaluate``, the demo's
function) is run with one set of options, every call of :meth:`edsr_lib.Upscaler.__call__`
it makes is recorded, and each recorded output is compared with a direct
``Upscaler(model, options)(image)`` on the same input: the same options reach the
Upscaler, and nothing is done around it that changes the pixels.
"""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

import edsr_lib
from edsr_lib import UpscaleOptions, Upscaler
from edsr_lib.cli import main
from edsr_lib.io import image_to_array, load_image, write_image

#: The run's options: not the defaults, so that an option dropped on the way shows.
OPTIONS = UpscaleOptions(tile=6, tile_overlap=3, batch_size=2, wrap=True, channels_last=False, device="cpu")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model") / "tiny_x2"
    edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).save_pretrained(folder)
    return folder


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "in" / "photo.png"
    write_image(path, rng.integers(0, 256, (17, 15, 3), dtype=np.uint8))
    return path


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[UpscaleOptions, object, object]]:
    """Every call of an Upscaler: its options, its input and its output."""
    recorded: list[tuple[UpscaleOptions, object, object]] = []
    real = Upscaler.__call__

    def spy(self: Upscaler, image: object) -> object:
        out = real(self, image)
        recorded.append((self.options, image, out))
        return out

    monkeypatch.setattr(Upscaler, "__call__", spy)
    return recorded


def _pixels(image: object) -> np.ndarray | torch.Tensor:
    if isinstance(image, list):
        return np.stack([image_to_array(i) for i in image])
    return image if isinstance(image, np.ndarray | torch.Tensor) else image_to_array(image)


def _same_as_direct(model: object, calls: list, options: UpscaleOptions = OPTIONS) -> None:
    """Each call had ``options`` (but for ``progress``) and gave what a direct Upscaler gives."""
    assert calls, "the surface never called an Upscaler"
    direct = Upscaler(model, options)
    for used, image, out in calls:
        assert _comparable(used) == _comparable(options)
        expected = _direct(direct, image)
        got, want = _pixels(out), _pixels(expected)
        if isinstance(got, torch.Tensor):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
        else:
            np.testing.assert_array_equal(got, want)


def _comparable(options: UpscaleOptions) -> UpscaleOptions:
    """The options but for the tile progress bar (a terminal's), with the device by name."""
    return options.replace(progress=False, device=None if options.device is None else str(options.device))


def _direct(upscaler: Upscaler, image: object) -> object:
    # what __call__ runs, without the spy (which would record this call too)
    return upscaler._adapt(image)


def test_the_command_line(model_dir: Path, photo: Path, tmp_path: Path, calls: list) -> None:
    out = tmp_path / "cli"
    argv = ["upscale", str(photo), "-o", str(out), "--model", str(model_dir), "--device", "cpu"]
    assert main([*argv, "--tile", "6", "--batch-size", "2", "--seamless"]) == 0
    # the command line has no flag for tile_overlap and channels_last: compare with its own options
    options = OPTIONS.replace(tile_overlap=None, channels_last=True)
    _same_as_direct(model_dir, calls, options)
    written = image_to_array(load_image(out / "photo_x2.png"))
    np.testing.assert_array_equal(written, _direct(Upscaler(model_dir, options), image_to_array(load_image(photo))))


def test_the_folder_engine_with_an_upscaler_or_options(model_dir: Path, photo: Path, tmp_path: Path, calls) -> None:
    up = Upscaler(model_dir, OPTIONS)
    summary = edsr_lib.upscale_folder(photo.parent, tmp_path / "a", model=up, progress=False)
    assert summary.ok and [c[0] for c in calls] == [up.options]
    summary = edsr_lib.upscale_folder(photo.parent, tmp_path / "b", model=model_dir, options=OPTIONS, progress=False)
    assert summary.ok
    _same_as_direct(model_dir, calls)
    for folder in ("a", "b"):
        written = image_to_array(load_image(tmp_path / folder / "photo_x2.png"))
        np.testing.assert_array_equal(written, _direct(up, image_to_array(load_image(photo))))
    with pytest.raises(ValueError, match="an Upscaler carries its own options; tile cannot be given with it"):
        edsr_lib.upscale_folder(photo.parent, tmp_path / "c", model=up, tile=4)


def test_the_folder_engine_never_moves_the_callers_model(photo: Path, tmp_path: Path) -> None:
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8)
    to = torch.nn.Module.to
    moved: list[object] = []

    def spy(self, *args, **kwargs):
        if self is model:
            moved.append(args)
        return to(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.nn.Module, "to", spy)
        assert edsr_lib.upscale_folder(photo.parent, tmp_path / "out", model=model, device="cpu", progress=False).ok
    assert moved == [] and model.training


def test_video(model_dir: Path, tmp_path: Path, calls: list) -> None:
    av = pytest.importorskip("av", reason="needs PyAV (pip install 'edsr-lib[video]')")
    src = _clip(av, tmp_path / "clip.mp4")
    result = edsr_lib.upscale_video(Upscaler(model_dir, OPTIONS), src, tmp_path / "out.mp4")
    assert result.frames == 4
    _same_as_direct(model_dir, calls)
    calls.clear()
    edsr_lib.upscale_video(model_dir, src, tmp_path / "again.mp4", options=OPTIONS)
    _same_as_direct(model_dir, calls)


def test_ray_actor(model_dir: Path, photo: Path, tmp_path: Path, calls: list) -> None:
    pytest.importorskip("ray", reason="the ray extra is not installed")
    from edsr_lib.integrations.ray import BatchUpscaler

    actor = BatchUpscaler(str(model_dir), tmp_path / "ray", options=OPTIONS, skip_existing=False)
    rows = actor({"path": np.asarray([str(photo)])})
    assert list(rows["status"]) == ["written"]
    _same_as_direct(model_dir, calls)
    written = image_to_array(load_image(tmp_path / "ray" / "photo_x2.png"))
    np.testing.assert_array_equal(written, _direct(Upscaler(model_dir, OPTIONS), image_to_array(load_image(photo))))


def test_evaluate_scores_in_fp32_through_one_upscaler(model_dir: Path, photo: Path, tmp_path: Path, calls) -> None:
    write_image(tmp_path / "set" / "HR" / "a.png", np.tile(image_to_array(load_image(photo)), (2, 2, 1))[:32, :28])
    edsr_lib.evaluate(str(model_dir), tmp_path / "set", 2, tile=6, device="cpu")
    options = UpscaleOptions(scale=2, tile=6, device="cpu", precision="fp32")
    _same_as_direct(model_dir, calls, options)


def test_the_demos_function(photo: Path, tmp_path: Path, calls: list) -> None:
    pytest.importorskip("gradio", reason="the demo extra is not installed")
    from edsr_lib.demo import run_upscale

    _, _, target = run_upscale(photo, "edsr_baseline_x2", "t528", None, output_format="PNG", out_dir=tmp_path)
    assert target.is_file()
    (used, _, _), model = calls[0], edsr_lib.inference.load_model("edsr_baseline_x2.t528", cache=True)
    _same_as_direct(model, calls, used)
    assert used.device is not None and used.precision is None and not used.self_ensemble


def test_a_fresh_process_finds_the_videos_of_a_folder(model_dir: Path, photo: Path, tmp_path: Path) -> None:
    """Nothing but ``import edsr_lib`` before: the folder's video is upscaled (video is a built-in kind)."""
    av = pytest.importorskip("av", reason="needs PyAV (pip install 'edsr-lib[video]')")
    _clip(av, photo.parent / "clip.mp4")
    code = (
        "import sys, edsr_lib\n"
        "s = edsr_lib.upscale_folder(sys.argv[1], sys.argv[2], model=sys.argv[3], device='cpu', progress=False)\n"
        "print(sorted(p.name for p in s.written))\n"
    )
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-c", code, str(photo.parent), str(out), str(model_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[-2] == "['clip_x2.mp4', 'photo_x2.png']"


def _clip(av: object, path: Path) -> Path:
    """A four-frame lossless H.264 clip of noise."""
    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24, options={"qp": "0", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 16, 12, "yuv444p"
        stream.codec_context.time_base = Fraction(1, 24)
        for i in range(4):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path
