"""``evaluate``: LR from files or made on the fly, protocols, gray images, self-ensemble, models, errors."""

from __future__ import annotations

import collections
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import edsr_lib
from edsr_lib import metrics
from edsr_lib.evaluation import evaluate, set_name
from edsr_lib.io import read_image, to_tensor, write_image
from edsr_lib.ops import imresize, modcrop


def _tiny(scale: int = 2) -> edsr_lib.SRModel:
    """A small random-init EDSR whose output is far from bicubic, so every difference shows."""
    return edsr_lib.EDSR(scale=scale, n_resblocks=1, n_feats=8).eval()


def _smooth_image(h: int, w: int, channels: int, seed: int) -> np.ndarray:
    """A uint8 image with some structure (random values, bicubic-enlarged), so scores are finite."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(h // 4 + 1, w // 4 + 1, channels), dtype=np.uint8)
    return np.ascontiguousarray(imresize(small, size=(h, w)))


def _make_set(root: Path, sizes: dict[str, tuple[int, int, int]]) -> Path:
    """A set folder ``root/HR/<name>.png`` with one image of ``(h, w, channels)`` per name."""
    for i, (name, (h, w, c)) in enumerate(sizes.items()):
        write_image(root / "HR" / f"{name}.png", _smooth_image(h, w, c, seed=i))
    return root


@pytest.fixture
def small_set(tmp_path: Path) -> Path:
    # odd sizes exercise the modcrop; "gray" is single-channel, like Set14's bridge
    return _make_set(tmp_path / "Small", {"a": (37, 30, 3), "gray": (32, 41, 1), "c": (40, 40, 3)})


def _score(sr: torch.Tensor, hr: torch.Tensor, crop: int, y: bool = True) -> tuple[float, float]:
    return (
        float(metrics.psnr(sr, hr, crop_border=crop, test_y_channel=y)[0]),
        float(metrics.ssim(sr, hr, crop_border=crop, test_y_channel=y)[0]),
    )


# ------------------------------------------------------------------ the pipeline
def test_bicubic_result_layout_and_scores(small_set: Path) -> None:
    result = evaluate("bicubic", small_set, 2)
    assert set(result) == {
        "set",
        "scale",
        "protocol",
        "model",
        "self_ensemble",
        "int8",
        "degrade",
        "psnr",
        "ssim",
        "images",
        "seconds",
    }
    assert (result["set"], result["scale"], result["protocol"], result["model"]) == ("Small", 2, "benchmark", "bicubic")
    assert result["self_ensemble"] is False and result["seconds"] >= 0 and result["degrade"] == "clean"
    rows = {row["name"]: row for row in result["images"]}
    assert list(rows) == ["a", "c", "gray"]
    assert (rows["a"]["height"], rows["a"]["width"]) == (36, 30)  # modcropped
    # every row, recomputed by hand: modcrop, MATLAB bicubic down and up in uint8, Y scores
    for name, row in rows.items():
        hr = modcrop(read_image(small_set / "HR" / f"{name}.png"), 2)
        sr = to_tensor(imresize(imresize(hr, 1 / 2), 2))
        assert (row["psnr"], row["ssim"]) == pytest.approx(_score(sr, to_tensor(hr), crop=2), abs=1e-9)
    assert result["psnr"] == pytest.approx(np.mean([r["psnr"] for r in rows.values()]))
    assert result["ssim"] == pytest.approx(np.mean([r["ssim"] for r in rows.values()]))


def test_gray_images_run_as_rgb_and_are_scored_on_their_gray_values(tmp_path: Path) -> None:
    gray = _smooth_image(30, 26, 1, seed=5)
    write_image(tmp_path / "G" / "HR" / "x.png", gray)
    write_image(tmp_path / "C" / "HR" / "x.png", np.repeat(gray, 3, axis=2))
    # Bicubic treats the channels alike; the Y of R = G = B = g is 16 + 219 g / 255, so the
    # RGB copy's differences shrink by 219/255 and its PSNR rises by 20 log10(255/219).
    as_gray, as_rgb = evaluate("bicubic", tmp_path / "G", 2), evaluate("bicubic", tmp_path / "C", 2)
    assert as_rgb["psnr"] - as_gray["psnr"] == pytest.approx(20 * np.log10(255 / 219), abs=1e-9)
    # A model sees the gray image as RGB; its output, averaged back to gray, is scored.
    model = _tiny()
    hr = to_tensor(gray)
    with torch.no_grad():
        sr = model(to_tensor(imresize(gray, 1 / 2)).expand(-1, 3, -1, -1)).mean(dim=1, keepdim=True)
    row = evaluate(model, tmp_path / "G", 2)["images"][0]
    assert (row["psnr"], row["ssim"]) == pytest.approx(_score(sr, hr, crop=2), rel=1e-4)


@pytest.mark.slow
def test_lr_made_on_the_fly_equals_the_official_files(datasets_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "Set5"
    shutil.copytree(datasets_dir / "Set5" / "HR", copy / "HR")
    for scale in (2, 3, 4):
        assert (datasets_dir / "Set5" / "LR_bicubic" / f"X{scale}").is_dir()
        with_files = evaluate("bicubic", datasets_dir / "Set5", scale)
        made = evaluate("bicubic", copy, scale)
        assert [(r["psnr"], r["ssim"]) for r in made["images"]] == [
            (r["psnr"], r["ssim"]) for r in with_files["images"]
        ]


def test_an_official_lr_file_is_used_when_present(small_set: Path) -> None:
    """A (deliberately wrong) LR file in LR_bicubic/X2 changes the score of that image only."""
    before = {r["name"]: r["psnr"] for r in evaluate("bicubic", small_set, 2)["images"]}
    write_image(small_set / "LR_bicubic" / "X2" / "cx2.png", np.zeros((20, 20, 3), dtype=np.uint8))
    after = {r["name"]: r["psnr"] for r in evaluate("bicubic", small_set, 2)["images"]}
    assert after["a"] == before["a"] and after["gray"] == before["gray"]
    assert after["c"] < before["c"] - 5


@pytest.mark.parametrize("scale", [2, 3])
def test_div2k_protocol_scores_rgb_with_a_wider_crop(small_set: Path, scale: int) -> None:
    model = _tiny(scale)
    result = evaluate(model, small_set, scale, protocol="div2k")
    assert result["protocol"] == "div2k"
    hr = modcrop(read_image(small_set / "HR" / "a.png"), scale)
    sr = edsr_lib.upscale(model, to_tensor(imresize(hr, 1 / scale)))
    row = result["images"][0]
    assert (row["psnr"], row["ssim"]) == pytest.approx(_score(sr, to_tensor(hr), crop=scale + 6, y=False), abs=1e-6)
    # and it is not the benchmark's Y/crop=scale score
    assert row["psnr"] != pytest.approx(_score(sr, to_tensor(hr), crop=scale)[0], abs=1e-3)


# ------------------------------------------------------------------ models
def test_self_ensemble_equals_the_mean_of_eight_explicit_runs(tmp_path: Path) -> None:
    data = _make_set(tmp_path / "One", {"x": (24, 32, 3)})  # not square: both transform groups
    model = _tiny()
    hr = read_image(data / "HR" / "x.png")
    lr = to_tensor(imresize(hr, 1 / 2))
    outputs = []
    with torch.no_grad():
        for flip in (False, True):
            for k in range(4):
                x = torch.rot90(lr.flip(-1) if flip else lr, k, dims=(-2, -1))
                y = torch.rot90(model(x), -k, dims=(-2, -1))
                outputs.append(y.flip(-1) if flip else y)
    expected = _score(torch.stack(outputs).mean(dim=0), to_tensor(hr), crop=2)
    plus = evaluate(model, data, 2, self_ensemble=True)
    plain = evaluate(model, data, 2)
    assert plus["self_ensemble"] is True
    # the library's fused fast path rounds differently from the plain forward, which may
    # move a pixel across a quantisation step
    assert (plus["psnr"], plus["ssim"]) == pytest.approx(expected, rel=1e-4)
    assert abs(plain["psnr"] - plus["psnr"]) > 1e-2


def test_tiling_does_not_change_the_scores(small_set: Path) -> None:
    model = _tiny()
    whole, tiled = evaluate(model, small_set, 2), evaluate(model, small_set, 2, tile=7)
    assert tiled["psnr"] == pytest.approx(whole["psnr"], abs=1e-3)
    assert tiled["ssim"] == pytest.approx(whole["ssim"], abs=1e-5)


def test_a_model_as_object_folder_or_name(small_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _tiny()
    model.variant = "tiny_x2"
    model.save_pretrained(tmp_path / "weights")
    by_object = evaluate(model, small_set, 2)
    by_folder = evaluate(tmp_path / "weights", small_set, 2)
    assert by_object["model"] == "tiny_x2"
    assert by_folder["model"] == str(tmp_path / "weights")
    assert by_folder["psnr"] == pytest.approx(by_object["psnr"], abs=1e-9)

    made = []

    def fake_create_model(name: str, pretrained: bool = False, **kwargs: object) -> edsr_lib.SRModel:
        made.append((name, pretrained))
        return model

    # a name becomes a model in edsr_lib.hub.resolve_weights(...).load_model(); an earlier test may
    # have left that model in the cache of models loaded by name, so this one starts with it empty
    monkeypatch.setattr(edsr_lib.inference, "_models", collections.OrderedDict())
    monkeypatch.setattr(edsr_lib._loading, "create_model", fake_create_model)
    by_name = evaluate("edsr_baseline_x2", small_set, 2)
    assert made == [("edsr_baseline_x2", True)]  # a name means its pretrained weights
    assert by_name["model"] == "edsr_baseline_x2"
    assert by_name["psnr"] == by_object["psnr"]
    # a random-init network is far worse than bicubic: the model really ran
    assert by_object["psnr"] < evaluate("bicubic", small_set, 2)["psnr"] - 3


# ------------------------------------------------------------------ errors
def test_a_scale_the_model_does_not_serve_fails_before_reading_images(tmp_path: Path) -> None:
    (tmp_path / "Empty" / "HR").mkdir(parents=True)  # would fail later, if images were read
    with pytest.raises(ValueError, match=r"scale 3 is not one of this model's scales \(2,\)"):
        evaluate(_tiny(2), tmp_path / "Empty", 3)


@pytest.mark.parametrize(
    ("layout", "error", "match"),
    [
        ("missing", FileNotFoundError, "no such set folder"),
        ("no_hr", FileNotFoundError, "has no HR/ folder"),
        ("empty_hr", ValueError, "no images in HR/"),
    ],
)
def test_bad_set_folders(tmp_path: Path, layout: str, error: type, match: str) -> None:
    data = tmp_path / "Set"
    if layout != "missing":
        data.mkdir()
    if layout == "empty_hr":
        (data / "HR").mkdir()
        (data / "HR" / "notes.txt").write_text("not an image")
    with pytest.raises(error, match=match):
        evaluate("bicubic", data, 2)


def test_an_image_smaller_than_the_scale(tmp_path: Path) -> None:
    data = _make_set(tmp_path / "S", {"ok": (20, 20, 3), "tiny": (3, 20, 3)})
    with pytest.raises(ValueError, match=r"tiny\.png: the image \(3x20\) is smaller than the scale 4"):
        evaluate("bicubic", data, 4)


def test_an_image_too_small_for_the_border_crop(tmp_path: Path) -> None:
    data = _make_set(tmp_path / "S", {"thin": (8, 40, 3)})
    with pytest.raises(ValueError, match=r"thin\.png: .*crop_border"):
        evaluate("bicubic", data, 4)


def test_an_lr_file_of_the_wrong_size(small_set: Path) -> None:
    write_image(small_set / "LR_bicubic" / "X2" / "ax2.png", np.zeros((18, 16, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"ax2\.png is 18x16, .* needs a 18x15 LR image"):
        evaluate("bicubic", small_set, 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": 0}, "scale must be a positive integer"),
        ({"scale": 2.5}, "scale must be a positive integer"),
        ({"protocol": "y"}, "unknown protocol 'y'; choose one of benchmark, div2k"),
        ({"self_ensemble": True}, "bicubic baseline takes none of them"),
        ({"tile": 16}, "bicubic baseline takes none of them"),
        ({"int8": True}, "bicubic baseline takes none of them"),
        ({"model": "no_such_model"}, "neither a registered model name"),
    ],
)
def test_bad_arguments(small_set: Path, kwargs: dict, match: str) -> None:
    args = {"model": "bicubic", "data": small_set, "scale": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        evaluate(**args)


def test_set_name_of_a_folder() -> None:
    assert [set_name(p) for p in ("data/T91/HR", "data/T91/hr", "data/Set5", Path("split/train/T91"))] == [
        "T91",
        "T91",
        "Set5",
        "T91",
    ]


def test_out_of_memory_is_one_line_naming_the_image(small_set: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(metrics, "ssim", exhausted)
    with pytest.raises(MemoryError, match=r"HR/\w+\.png: out of memory scoring a \d+x\d+ image") as caught:
        evaluate(_tiny(), small_set, 2)
    assert "\n" not in str(caught.value)


def test_by_default_big_images_run_in_tiles_as_upscale_does(small_set: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiles: list[object] = []
    real = edsr_lib.Upscaler.__call__
    monkeypatch.setattr(edsr_lib.Upscaler, "__call__", lambda self, x: tiles.append(self.options.tile) or real(self, x))
    evaluate(_tiny(), small_set, 2)
    assert tiles and set(tiles) == {"auto"}
