"""Degradations: the evaluation protocol (noise then JPEG, seeded per image), the training chain, its resume."""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import edsr_lib
from edsr_lib.cli import main
from edsr_lib.io import read_image, write_image
from edsr_lib.ops.degrade import LRDegradation, add_gaussian_noise, jpeg_roundtrip
from edsr_lib.ops.imresize import imresize, modcrop
from edsr_lib.train import CHECKPOINT_NAME, TrainConfig, Trainer
from edsr_lib.train.data import PatchSampler
from edsr_lib.train.degrade import DegradeChain


def _smooth(h: int, w: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    """A smooth random uint8 image (bicubic upsampling of noise), so that JPEG and blur act as on photos."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(h // 6 + 2, w // 6 + 2, channels), dtype=np.uint8)
    return imresize(small, size=(h, w))


# ------------------------------------------------------------ evaluation protocol
def test_jpeg_roundtrip_is_pillows_codec() -> None:
    img = _smooth(24, 20)
    buffer = io.BytesIO()
    Image.fromarray(img).save(buffer, format="JPEG", quality=40)
    expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    np.testing.assert_array_equal(jpeg_roundtrip(img, 40), expected)
    assert not np.array_equal(jpeg_roundtrip(img, 40), img)
    gray = _smooth(16, 16, channels=1)
    assert jpeg_roundtrip(gray, 50).shape == (16, 16, 1)
    with pytest.raises(ValueError, match="quality"):
        jpeg_roundtrip(img, 0)
    with pytest.raises(ValueError, match="uint8"):
        jpeg_roundtrip(img.astype(np.float32), 50)


def test_lr_degradation_is_noise_then_jpeg_seeded_by_the_stem_as_documented() -> None:
    lr = _smooth(20, 18)
    deg = LRDegradation(noise=7.5, jpeg=60, seed=3)
    rng = np.random.default_rng([3, zlib.crc32(b"baby")])
    noisy = np.clip(np.rint(lr.astype(np.float64) + 7.5 * rng.standard_normal(lr.shape)), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(deg.apply(lr, "baby"), jpeg_roundtrip(noisy, 60))
    np.testing.assert_array_equal(deg.apply(lr, "baby"), deg.apply(lr, "baby"))
    assert not np.array_equal(deg.apply(lr, "baby"), deg.apply(lr, "bird"))
    assert not np.array_equal(deg.apply(lr, "baby"), LRDegradation(noise=7.5, jpeg=60, seed=4).apply(lr, "baby"))
    np.testing.assert_array_equal(LRDegradation().apply(lr, "x"), lr)
    assert (LRDegradation().describe(), deg.describe()) == ("clean", "noise 7.5 + jpeg 60")
    assert not LRDegradation().active and deg.active
    for bad in ({"noise": -1}, {"jpeg": 96}, {"jpeg": 0}, {"noise": float("nan")}):
        (key, value), *_ = bad.items()
        with pytest.raises(ValueError, match=rf"^{key} must be .*, got {value}$"):  # the refusal, not any ValueError
            LRDegradation(**bad)


def test_gaussian_noise_has_its_standard_deviation() -> None:
    flat = np.full((200, 200, 3), 128, np.uint8)
    noisy = add_gaussian_noise(flat, 10.0, np.random.default_rng(0)).astype(np.float64)
    assert noisy.std() == pytest.approx(10.0, rel=0.03)
    assert abs(noisy.mean() - 128) < 0.2


def test_make_lr_and_evaluate_degrade_the_bicubic_lr(tmp_path: Path, capsys) -> None:
    hr_dir = tmp_path / "S" / "HR"
    for i in range(2):
        write_image(hr_dir / f"im{i}.png", _smooth(40, 36, seed=i))
    argv = ["make-lr", str(hr_dir), str(tmp_path / "lr"), "--scale", "2", "--noise", "5", "--jpeg", "50", "--seed", "1"]
    assert main(argv) == 0
    assert "noise 5 + jpeg 50" in capsys.readouterr().out
    deg = LRDegradation(noise=5, jpeg=50, seed=1)
    for i in range(2):
        hr = read_image(hr_dir / f"im{i}.png")
        expected = deg.apply(imresize(modcrop(hr, 2), 1 / 2), f"im{i}")
        np.testing.assert_array_equal(read_image(tmp_path / "lr" / f"im{i}x2.png"), expected)

    # evaluate applies the same degradation: bicubic of the written LR files scores as evaluate's own
    clean = edsr_lib.evaluate("bicubic", tmp_path / "S", 2)
    degraded = edsr_lib.evaluate("bicubic", tmp_path / "S", 2, degrade=deg)
    assert degraded["degrade"] == "noise 5 + jpeg 50" and clean["degrade"] == "clean"
    assert degraded["psnr"] < clean["psnr"] - 0.5
    (tmp_path / "S" / "LR_bicubic").mkdir()
    (tmp_path / "lr").rename(tmp_path / "S" / "LR_bicubic" / "X2")
    assert edsr_lib.evaluate("bicubic", tmp_path / "S", 2)["psnr"] == pytest.approx(degraded["psnr"], abs=1e-9)

    out = tmp_path / "r.json"
    argv = ["evaluate", "--model", "bicubic", "--data", str(tmp_path / "S"), "--scale", "2", "--json", str(out)]
    (tmp_path / "S" / "LR_bicubic" / "X2").rename(tmp_path / "official")  # back to the clean LR made on the fly
    assert main([*argv, "--jpeg", "50", "--noise", "5", "--seed", "1"]) == 0
    assert "LR noise 5 + jpeg 50" in capsys.readouterr().out
    assert json.loads(out.read_text())["psnr"] == pytest.approx(degraded["psnr"], abs=1e-9)


@pytest.mark.parametrize("argv", [["--jpeg", "0"], ["--jpeg", "100"], ["--noise", "-2"]])
def test_bad_degradations_are_one_line(tmp_path: Path, capsys, argv: list[str]) -> None:
    write_image(tmp_path / "hr" / "a.png", _smooth(8, 8))
    assert main(["make-lr", str(tmp_path / "hr"), str(tmp_path / "lr"), "--scale", "2", *argv]) != 0
    err = capsys.readouterr().err.strip()
    assert "--noise/--jpeg" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "lr").exists()


# ------------------------------------------------------------------ training chain
def _batch(n: int = 6, scale: int = 2, side: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.stack(
        [torch.from_numpy(_smooth(side * scale, side * scale, seed + i)).permute(2, 0, 1) for i in range(n)]
    )


@pytest.mark.parametrize("scale", [2, 4])
def test_the_chain_is_a_function_of_seed_step_rank_and_sample(scale: int) -> None:
    chain = DegradeChain()
    hr = _batch(scale=scale)
    lr = chain.degrade_batch(hr, scale, seed=0, step=7)
    assert lr.shape == (6, 3, 16, 16) and lr.dtype == torch.uint8
    assert torch.equal(lr, chain.degrade_batch(hr, scale, seed=0, step=7))
    # sample i depends on its own crop and index only, not on the rest of the batch
    assert torch.equal(chain.degrade_batch(hr[2:4], scale, seed=0, step=7, first=2), lr[2:4])
    for other in ({"seed": 1, "step": 7}, {"seed": 0, "step": 8}, {"seed": 0, "step": 7, "rank": 1}):
        assert not torch.equal(chain.degrade_batch(hr, scale, **other), lr)


def test_a_clean_sample_is_the_matlab_bicubic_of_its_crop() -> None:
    hr = _batch()
    lr = DegradeChain(clean_prob=1.0).degrade_batch(hr, 2, seed=0, step=0)
    for i in range(len(hr)):
        assert torch.equal(lr[i], imresize(hr[i].contiguous(), 1 / 2))


def test_jpeg_is_the_last_stage_through_pillow() -> None:
    """The same draws without JPEG, then Pillow's JPEG, give the chain's output with JPEG."""
    hr = _batch()
    settings = {"clean_prob": 0.0, "blur_prob": 1.0, "noise_prob": 1.0, "jpeg_quality": (40, 40)}
    with_jpeg = DegradeChain(**settings, jpeg_prob=1.0).degrade_batch(hr, 2, seed=5, step=1)
    before = DegradeChain(**settings, jpeg_prob=0.0).degrade_batch(hr, 2, seed=5, step=1)
    for i in range(len(hr)):
        expected = jpeg_roundtrip(before[i].permute(1, 2, 0).numpy(), 40)
        np.testing.assert_array_equal(with_jpeg[i].permute(1, 2, 0).numpy(), expected)
    bicubic = torch.stack([imresize(h.contiguous(), 1 / 2) for h in hr])
    assert not torch.equal(before, bicubic)  # blur and noise did act


@pytest.mark.parametrize("method", ["bicubic", "bilinear", "area"])
def test_each_stage_alone_degrades_as_expected(method: str) -> None:
    hr = _batch(n=4)
    off = {"clean_prob": 0.0, "blur_prob": 0.0, "noise_prob": 0.0, "jpeg_prob": 0.0, "resize": {method: 1.0}}
    plain = DegradeChain(**off).degrade_batch(hr, 2, seed=0, step=0).float()
    reference = torch.stack([imresize(h.contiguous(), 1 / 2) for h in hr]).float()
    # every method is a downscale of the same crop, close to MATLAB bicubic; bicubic is MATLAB's in float
    # (rounded once, at the end, where MATLAB's uint8 path rounds after each pass: a level or two apart)
    if method == "bicubic":
        assert (plain - reference).abs().max() <= 2 and (plain - reference).abs().mean() < 0.2
    else:
        assert 0 < (plain - reference).abs().mean() < 8
    blurred = DegradeChain(**{**off, "blur_prob": 1.0}).degrade_batch(hr, 2, seed=0, step=0).float()
    assert blurred.diff(dim=-1).abs().mean() < plain.diff(dim=-1).abs().mean()  # blur smooths
    noisy = DegradeChain(**{**off, "noise_prob": 1.0, "gaussian_sigma": (10, 10), "poisson_prob": 0.0})
    noise = noisy.degrade_batch(hr, 2, seed=0, step=0).float() - plain
    assert 7 < noise.std() < 11


def test_the_chain_refuses_bad_settings_and_round_trips() -> None:
    chain = DegradeChain(jpeg_quality=(50, 60))
    assert DegradeChain.from_dict(json.loads(json.dumps(chain.to_dict()))) == chain
    bad = [
        {"jpeg_prob": 1.5},
        {"jpeg_quality": (60, 50)},
        {"jpeg_quality": (30, 99)},
        {"resize": {"lanczos": 1.0}},
        {"resize": {"bicubic": 0.0}},
        {"gaussian_sigma": 3},
        {"colour": 1},
    ]
    for settings in bad:
        key = next(iter(settings))
        with pytest.raises(ValueError, match=key if key != "colour" else "unknown degradation settings"):
            DegradeChain.from_dict(settings)


# ----------------------------------------------------------------------- trainer
def _config(tmp_path: Path, **overrides) -> TrainConfig:
    settings = {
        "model": "edsr_baseline_x2",
        "model_kwargs": {"n_resblocks": 1, "n_feats": 8},
        "lr_patch_size": 8,
        "batch_size": 4,
        "steps": 6,
        "lr": 1e-3,
        "save_every": 2,
        "log_every": 2,
        "progress": False,
        "cache_dir": "",
        "num_threads": 1,
        "degrade": {},
        "output_dir": str(tmp_path / "run"),
        **overrides,
    }
    return TrainConfig(**settings)


def _hr_sampler() -> PatchSampler:
    hr = [_smooth(40, 36, 0), _smooth(36, 44, 1)]
    return PatchSampler(hr, {2: None}, 8)


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_a_resumed_run_makes_the_same_lr_as_an_uninterrupted_one(tmp_path: Path) -> None:
    """6 steps in one go == 3 steps, a crash, resume from the step-2 checkpoint: the same LR patches and weights."""
    seen: dict[str, dict[int, torch.Tensor]] = {"whole": {}, "resumed": {}}

    def recording(trainer: Trainer, name: str) -> Trainer:
        batch = trainer.batch

        def record(scale: int):
            if name == "crash" and trainer.step == 3:
                raise KeyboardInterrupt("killed")
            lr, hr = batch(scale)
            seen.setdefault(name, {})[trainer.step] = lr.clone()
            return lr, hr

        trainer.batch = record
        return trainer

    recording(Trainer(_config(tmp_path / "a"), sampler=_hr_sampler()), "whole").train()
    with pytest.raises(KeyboardInterrupt):
        recording(Trainer(_config(tmp_path / "b"), sampler=_hr_sampler()), "crash").train()
    assert torch.load(tmp_path / "b" / "run" / CHECKPOINT_NAME, weights_only=True)["step"] == 2
    resumed = recording(Trainer(_config(tmp_path / "b"), sampler=_hr_sampler(), resume=True), "resumed")
    assert resumed.step == 2
    resumed.train()
    assert sorted(seen["resumed"]) == [2, 3, 4, 5]
    for step, lr in seen["resumed"].items():
        assert torch.equal(lr, seen["whole"][step]), step
    assert not torch.equal(seen["whole"][2], seen["whole"][3])


def test_a_degrading_run_makes_no_lr_images_and_records_its_chain(tmp_path: Path, monkeypatch) -> None:
    train = tmp_path / "train"
    for i in range(2):
        write_image(train / f"{i}.png", _smooth(40, 36, i))
    # a textured image, which a JPEG at quality 50 changes visibly (a smooth one it barely touches)
    write_image(tmp_path / "val" / "HR" / "v.png", np.random.default_rng(9).integers(0, 256, (24, 24, 3), np.uint8))

    def no_lr(*args, **kwargs):
        raise AssertionError("no LR image may be made for a degradation-trained run")

    monkeypatch.setattr("edsr_lib.train.data.make_lr_images", no_lr)
    config = _config(
        tmp_path,
        train_dirs=[str(train)],
        cache_dir=str(tmp_path / "cache"),
        degrade={"jpeg_quality": [40, 60]},
        val_dir=str(tmp_path / "val"),
        val_degrade={"jpeg": 50},
        steps=2,
    )
    summary = Trainer(config).train()
    assert not (tmp_path / "cache").exists()
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["degrade"] == {**DegradeChain().to_dict(), "jpeg_quality": [40, 60]}  # spelled out in full
    assert 0 <= summary["data_share"] < 1
    # validation scored degraded input: what evaluate gives the final weights on that input, not on the clean one
    logged = summary["val"]["raw"]["x2"]["psnr"]
    net = edsr_lib.from_pretrained(tmp_path / "run" / "final")
    assert edsr_lib.evaluate(net, tmp_path / "val", 2, degrade=LRDegradation(jpeg=50))["psnr"] == pytest.approx(
        logged, abs=1e-3
    )
    assert abs(edsr_lib.evaluate(net, tmp_path / "val", 2)["psnr"] - logged) > 1e-2


def test_cli_takes_degrade_settings_and_rejects_bad_ones(tmp_path: Path, capsys) -> None:
    from edsr_lib.cli import build_parser
    from edsr_lib.cli.train import build_config

    argv = ["train", "--train-dir", "x", "--degrade", "jpeg_prob=0.9", "jpeg_quality=[20,90]"]
    config = build_config(build_parser(argv).parse_args([*argv, "--val-degrade", "jpeg=50", "noise=5"]))
    assert config.degrade_chain() == DegradeChain(jpeg_prob=0.9, jpeg_quality=(20, 90))
    assert config.val_degradation() == LRDegradation(noise=5, jpeg=50)
    assert build_config(build_parser(argv).parse_args(["train", "--train-dir", "x", "--degrade"])).degrade_chain() == (
        DegradeChain()
    )
    assert main(["train", "--train-dir", "x", "--degrade", "jpeg_prob=2"]) != 0
    err = capsys.readouterr().err.strip()
    assert "jpeg_prob" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "degrade", [LRDegradation(jpeg=50), LRDegradation(noise=15), LRDegradation(noise=2.5, jpeg=30)], ids=str
)
def test_metric_keys_name_the_degradation_and_read_back(degrade: LRDegradation) -> None:
    from edsr_lib.ops.degrade import split_metric_key

    for set_name in ("Set5", "DIV2K_train_partial"):
        assert split_metric_key(f"{set_name}_{degrade.key}") == (set_name, degrade)
        assert split_metric_key(set_name) == (set_name, None)
    assert split_metric_key("Set5+") == ("Set5+", None)
    assert LRDegradation().key == "clean"
