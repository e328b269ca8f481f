"""The trainer: recipe defaults, patch data, MDSR branch updates, exact resume, exports, CLI, torchrun."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import edsr_lib
from edsr_lib._device import resolve_amp
from edsr_lib.cli import main
from edsr_lib.io import write_image
from edsr_lib.ops.imresize import imresize, modcrop
from edsr_lib.train import (
    CHECKPOINT_NAME,
    PatchSampler,
    Run,
    TrainConfig,
    Trainer,
    branch_parameters,
    load_init_weights,
    make_lr_images,
    read_run,
)
from edsr_lib.train.trainer import _seed_for, tuned_convolutions

TINY = {"n_resblocks": 1, "n_feats": 8}


def _images(n: int, seed: int = 0, sizes: tuple[tuple[int, int], ...] = ((40, 36), (30, 44), (52, 38))) -> list:
    """Smooth random uint8 RGB images (a bilinear upsampling of noise, so that they look like images)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        coarse = torch.rand(1, 3, h // 4 + 1, w // 4 + 1, generator=gen)
        img = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
        out.append((img[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy())
    return out


@pytest.fixture
def data_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """A folder of 4 training images and a validation set folder (``HR/``) of 2 images."""
    train, val = tmp_path / "train", tmp_path / "val" / "HR"
    for i, img in enumerate(_images(4)):
        write_image(train / f"{i}.png", img)
    for i, img in enumerate(_images(2, seed=1, sizes=((32, 28),))):
        write_image(val / f"v{i}.png", img)
    return train, val.parent


@pytest.fixture(autouse=True)
def _restore_threads():
    """The tests train on one thread (tiny convolutions only lose from more); put the setting back after."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _config(tmp_path: Path, **overrides) -> TrainConfig:
    settings = {
        "model": "edsr_baseline_x2",
        "model_kwargs": dict(TINY),
        "lr_patch_size": 8,
        "batch_size": 4,
        "steps": 6,
        "lr": 1e-3,
        "save_every": 2,
        "log_every": 2,
        "progress": False,
        "cache_dir": "",
        "num_threads": 1,
        "output_dir": str(tmp_path / "run"),
        **overrides,
    }
    return TrainConfig(**settings)


def _sampler(scales=(2,), patch: int = 8) -> PatchSampler:
    hr = _images(4, sizes=((40, 36), (36, 44)))
    return PatchSampler(hr, {s: make_lr_images(hr, s) for s in scales}, patch)


# ----------------------------------------------------------------- config
def test_defaults_are_the_papers_recipe() -> None:
    c = TrainConfig()
    assert (c.lr_patch_size, c.augment, c.loss, c.opt, c.batch_size) == (48, True, "l1", "adam", 16)
    assert (c.lr, c.betas, c.eps, c.weight_decay) == (1e-4, (0.9, 0.999), 1e-8, 0.0)
    assert (c.sched, c.decay_steps, c.decay_rate, c.warmup_steps) == ("step", 200_000, 0.5, 0)


def test_config_round_trips_and_rejects_bad_settings(tmp_path: Path) -> None:
    c = _config(tmp_path, scales=[2], sched="cosine")
    c.save(tmp_path / "c.json")
    assert TrainConfig.load(tmp_path / "c.json") == c
    with pytest.raises(ValueError, match="sched='linear' is not one of"):
        _config(tmp_path, sched="linear")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        _config(tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="unknown training settings \\['learning_rate'\\]"):
        TrainConfig.from_dict({"learning_rate": 1.0})


# ------------------------------------------------------------------- data
def test_lr_images_are_the_matlab_bicubic_of_the_modcropped_hr_and_are_cached(tmp_path: Path, monkeypatch) -> None:
    hr = _images(3)
    paths = []
    for i, img in enumerate(hr):
        write_image(tmp_path / "hr" / f"{i}.png", img)
        paths.append(tmp_path / "hr" / f"{i}.png")
    lr = make_lr_images(hr, 3, paths=paths, cache_dir=tmp_path / "cache")
    for h, low in zip(hr, lr, strict=True):
        assert low.dtype == np.uint8
        np.testing.assert_array_equal(low, imresize(modcrop(h, 3), 1 / 3))
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(sys.modules["edsr_lib.train.data"], "bicubic_lr", fail)
    cached = make_lr_images(hr, 3, paths=paths, cache_dir=tmp_path / "cache")
    for a, b in zip(lr, cached, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("scale", [2, 3])
def test_patches_are_transformed_crops_of_the_lr_and_hr_images(scale: int) -> None:
    hr = _images(4)
    lr = make_lr_images(hr, scale)
    sampler = PatchSampler(hr, {scale: lr}, 8)
    gen = torch.Generator().manual_seed(0)
    draw = sampler.draw(32, scale, gen)
    lr_patch, hr_patch = sampler.crop(draw)
    assert lr_patch.shape == (32, 3, 8, 8) and hr_patch.shape == (32, 3, 8 * scale, 8 * scale)
    assert lr_patch.dtype == torch.uint8 and lr_patch.is_contiguous(memory_format=torch.channels_last)
    assert draw.flips is not None and 0 < draw.flips.float().mean() < 1

    def expected(img: np.ndarray, y: int, x: int, size: int, flips: torch.Tensor) -> torch.Tensor:
        patch = torch.from_numpy(img[y : y + size, x : x + size]).permute(2, 0, 1)
        vflip, hflip, transpose = flips.tolist()
        patch = patch.flip([d for d, f in ((1, vflip), (2, hflip)) if f])
        return patch.transpose(1, 2) if transpose else patch

    for k in range(32):
        i, y, x = int(draw.image[k]), int(draw.y[k]), int(draw.x[k])
        assert 0 <= y <= lr[i].shape[0] - 8 and 0 <= x <= lr[i].shape[1] - 8
        assert torch.equal(lr_patch[k], expected(lr[i], y, x, 8, draw.flips[k]))
        assert torch.equal(hr_patch[k], expected(hr[i], y * scale, x * scale, 8 * scale, draw.flips[k]))


def test_sample_gives_float_batches_in_unit_range_and_is_reproducible() -> None:
    sampler = _sampler()
    a = sampler.sample(4, 2, torch.Generator().manual_seed(3))
    b = sampler.sample(4, 2, torch.Generator().manual_seed(3))
    assert a[0].dtype == torch.float32 and a[0].min() >= 0 and a[0].max() <= 1
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_images_too_small_for_a_patch_are_left_out() -> None:
    hr = _images(2, sizes=((40, 40), (12, 40)))
    with pytest.warns(UserWarning, match="1 of 2 images are smaller than a 16x16 HR patch"):
        sampler = PatchSampler(hr, {2: make_lr_images(hr, 2)}, 8)
    assert sampler.num_images(2) == 1
    assert set(sampler.draw(64, 2, torch.Generator().manual_seed(0)).image.tolist()) == {0}
    with pytest.raises(ValueError, match="no training image is large enough for a 30x30 LR patch at x2"):
        PatchSampler(hr, {2: make_lr_images(hr, 2)}, 30)
    with pytest.raises(ValueError, match="scale 3 is not one of this sampler's scales"):
        sampler.draw(1, 3, torch.Generator())


def test_area_sampling_draws_images_in_proportion_to_their_pixels() -> None:
    hr = _images(2, sizes=((32, 32), (32, 96)))
    lr = {2: make_lr_images(hr, 2)}
    by_area = PatchSampler(hr, lr, 8, sample_by="area").draw(4000, 2, torch.Generator().manual_seed(0))
    by_image = PatchSampler(hr, lr, 8, sample_by="image").draw(4000, 2, torch.Generator().manual_seed(0))
    assert by_area.image.float().mean() == pytest.approx(0.75, abs=0.03)
    assert by_image.image.float().mean() == pytest.approx(0.5, abs=0.03)


# ------------------------------------------------------------------- MDSR
def test_branch_parameters_are_the_other_scales_branches() -> None:
    model = edsr_lib.create_model("mdsr_baseline", **TINY)
    others = {id(p) for p in branch_parameters(model, 2)}
    expected = {
        id(p) for key in ("x3", "x4") for part in (model.pre_process, model.upsample) for p in part[key].parameters()
    }
    assert others == expected
    assert branch_parameters(edsr_lib.create_model("edsr_baseline_x2", **TINY), 2) == []


def test_an_mdsr_step_updates_only_its_scales_branches(tmp_path: Path) -> None:
    cfg = _config(tmp_path, model="mdsr_baseline", scales=[2, 3], ema=False)
    trainer = Trainer(cfg, sampler=_sampler(scales=(2, 3)))
    drawn: list[int] = []
    draw_scale = trainer._draw_scale
    trainer._draw_scale = lambda: drawn.append(draw_scale()) or drawn[-1]
    x4_at_start = {k: v.clone() for k, v in trainer.model.state_dict().items() if ".x4." in k}
    checked = False
    for _ in range(30):
        before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        trainer.train_step()
        after = trainer.model.state_dict()
        for key in before:
            branch = next((s for s in ("x2", "x3", "x4") if f".{s}." in key), None)
            if branch is not None and branch != f"x{drawn[-1]}":
                assert torch.equal(before[key], after[key]), f"{key} moved in an x{drawn[-1]} step"
        # the x3 branches have Adam state by now: a zero gradient would still have moved them
        checked |= drawn[-1] == 2 and 3 in drawn[:-1]
        if checked:
            break
    assert checked
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in x4_at_start.items())
    assert not torch.equal(before["body.0.body.0.weight"], after["body.0.body.0.weight"])  # shared parts do train


# ----------------------------------------------------------------- resume
def _state(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
    out |= {f"ema.{k}": v for k, v in trainer.ema.module.state_dict().items()}
    for i, s in trainer.optimizer.state_dict()["state"].items():
        out |= {f"opt.{i}.{k}": v for k, v in s.items()}
    return out


def test_a_killed_run_resumes_exactly(tmp_path: Path) -> None:
    """8 steps in one go == 5 steps, a crash (losing step 5), resume from the step-4 checkpoint, to 8."""
    settings = {"model": "mdsr_baseline", "steps": 8, "sched": "cosine", "warmup_steps": 3}
    whole = Trainer(_config(tmp_path / "a", **settings), sampler=_sampler((2, 3, 4)))
    whole.train()

    crashed = Trainer(_config(tmp_path / "b", **settings), sampler=_sampler((2, 3, 4)))
    sample = crashed.sampler.sample

    def sample_then_die(*args):
        if crashed.step == 5:
            raise KeyboardInterrupt("killed")
        return sample(*args)

    crashed.sampler.sample = sample_then_die
    with pytest.raises(KeyboardInterrupt):
        crashed.train()
    ckpt = tmp_path / "b" / "run" / CHECKPOINT_NAME
    assert torch.load(ckpt, weights_only=True)["step"] == 4
    assert [p.name for p in ckpt.parent.iterdir() if p.name.endswith(".tmp")] == []

    resumed = Trainer(_config(tmp_path / "b", **settings), sampler=_sampler((2, 3, 4)), resume=True)
    assert resumed.step == 4
    resumed.train()
    a, b = _state(whole), _state(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7, msg=key)
    assert resumed.optimizer.param_groups[0]["lr"] == whole.optimizer.param_groups[0]["lr"]


def test_resume_refuses_a_missing_checkpoint_or_another_model(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        Trainer(_config(tmp_path), sampler=_sampler(), resume=tmp_path / "nope.pt")
    Trainer(_config(tmp_path, steps=1), sampler=_sampler()).train()
    with pytest.raises(ValueError, match=r"the checkpoint trains edsr_baseline_x2 .* resume with the same model"):
        Trainer(_config(tmp_path, model_kwargs={"n_resblocks": 2, "n_feats": 8}), sampler=_sampler(), resume=True)


@pytest.mark.parametrize("damage", ["cut_short", "empty", "garbage"])
def test_a_damaged_checkpoint_is_named_with_the_ways_on(tmp_path: Path, damage: str) -> None:
    Trainer(_config(tmp_path, steps=4, save_every=2), sampler=_sampler()).train()
    run = tmp_path / "run"
    ckpt, previous = run / CHECKPOINT_NAME, run / "checkpoint_previous.pt"
    assert torch.load(ckpt, weights_only=True)["step"] == 4
    assert torch.load(previous, weights_only=True)["step"] == 2  # the one it replaced, kept
    whole = ckpt.read_bytes()
    ckpt.write_bytes({"cut_short": whole[: len(whole) // 2], "empty": b"", "garbage": b"\x00junk" * 64}[damage])
    with pytest.raises(ValueError) as caught:
        Trainer(_config(tmp_path, steps=6, save_every=2), sampler=_sampler(), resume=True)
    message = str(caught.value)
    assert message.startswith(f"{ckpt} is damaged and cannot be read") and "\n" not in message, message
    assert f"move {previous} to {ckpt}" in message and f"--init-from {run / 'final_ema'}" in message, message
    previous.replace(ckpt)  # the way back it names works
    resumed = Trainer(_config(tmp_path, steps=6, save_every=2), sampler=_sampler(), resume=True)
    assert resumed.step == 2


def test_the_command_reports_a_damaged_checkpoint_config_or_log_in_one_line(
    tmp_path: Path, data_dirs, capsys: pytest.CaptureFixture[str]
) -> None:
    train_dir, _ = data_dirs
    out = tmp_path / "cli"
    args = ["train", "--train-dir", str(train_dir), "--output-dir", str(out), "--model-arg", "n_resblocks=1",
            "--model-arg", "n_feats=8", "--patch-size", "8", "--batch-size", "2", "--save-every", "2",
            "--cache-dir", "", "--threads", "1", "--no-progress", "--steps", "2"]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    resume = ["train", "--output-dir", str(out), "--resume", "--steps", "4", "--no-progress"]
    checkpoint = (out / CHECKPOINT_NAME).read_bytes()
    (out / CHECKPOINT_NAME).write_bytes(checkpoint[:1000])  # a crash while it was written
    assert main(resume) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"edsr-lib train: error: {out / CHECKPOINT_NAME} is damaged") and "\n" not in err, err
    assert "Errno" not in err and f"--init-from {out / 'final_ema'}" in err, err
    (out / CHECKPOINT_NAME).write_bytes(checkpoint)

    config = (out / "config.json").read_text()
    (out / "config.json").write_text(config[: len(config) // 2])
    assert main(resume) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"edsr-lib train: error: {out / 'config.json'} is damaged: not a JSON config"), err
    (out / "config.json").write_text(config)

    with open(out / "log.jsonl", "a") as log:  # a record cut short by a crash
        log.write('{"time": 1, "ev')
    assert main(resume) == 0
    run = read_run(out)  # the half record is passed over, the next ones are whole
    assert run.records[-1]["event"] == "end" and run.records[-1]["step"] == 4


# -------------------------------------------------------------- init_from
def test_x4_starts_from_a_trained_x2_except_the_upsampler(tmp_path: Path) -> None:
    x2 = edsr_lib.create_model("edsr_baseline_x2", **TINY)
    x2.save_pretrained(tmp_path / "x2")
    x4 = edsr_lib.create_model("edsr_baseline_x4", **TINY)
    loaded = load_init_weights(x4, tmp_path / "x2")
    assert loaded and not any(k.startswith("upsampler.") for k in loaded)
    for key, value in x4.state_dict().items():
        if not key.startswith("upsampler."):
            assert torch.equal(value, x2.state_dict()[key]), key
    # same shape in both, yet left alone: x4's upsampler has two stages, x2's one
    assert not torch.equal(x4.state_dict()["upsampler.0.weight"], x2.state_dict()["upsampler.0.weight"])
    with pytest.raises(ValueError, match="cannot initialise this model"):
        load_init_weights(edsr_lib.create_model("edsr_baseline_x4", n_resblocks=1, n_feats=16), tmp_path / "x2")
    with pytest.raises(FileNotFoundError, match="no weights to initialise from"):
        load_init_weights(x4, tmp_path / "missing")


def test_x2_continues_from_x2_with_its_upsampler(tmp_path: Path) -> None:
    source = edsr_lib.create_model("edsr_baseline_x2", **TINY)
    source.save_pretrained(tmp_path / "x2")
    model = edsr_lib.create_model("edsr_baseline_x2", **TINY)
    loaded = load_init_weights(model, tmp_path / "x2")
    assert any(k.startswith("upsampler.") for k in loaded)
    for key, value in model.state_dict().items():
        assert torch.equal(value, source.state_dict()[key]), key
    x3 = edsr_lib.create_model("edsr_baseline_x3", **TINY)
    assert not any(k.startswith("upsampler.") for k in load_init_weights(x3, tmp_path / "x2"))


def test_x4_starts_from_the_shipped_x2_by_name() -> None:
    x4 = edsr_lib.create_model("edsr_baseline_x4")
    loaded = load_init_weights(x4, "edsr_baseline_x2")
    shipped = edsr_lib.create_model("edsr_baseline_x2", pretrained=True).state_dict()
    assert "head.weight" in loaded and not any(k.startswith("upsampler.") for k in loaded)
    assert torch.equal(x4.state_dict()["head.weight"], shipped["head.weight"])


# -------------------------------------------------- validation and exports
def test_training_validates_keeps_the_best_and_exports_raw_and_ema(tmp_path: Path, data_dirs) -> None:
    train_dir, val_dir = data_dirs
    cfg = _config(tmp_path, train_dirs=[str(train_dir)], val_dir=str(val_dir), steps=4)
    trainer = Trainer(cfg)
    summary = trainer.train()
    run = Path(cfg.output_dir)
    assert set(summary["val"]) == {"raw", "ema"} and 5 < summary["val"]["raw"]["x2"]["psnr"] < 60
    for name in ("best", "best_ema", "final", "final_ema"):
        assert (run / name / "model.safetensors").is_file() and (run / name / "config.json").is_file()
    x = torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        torch.testing.assert_close(edsr_lib.from_pretrained(run / "final_ema")(x), trainer.ema.module(x))
        torch.testing.assert_close(edsr_lib.from_pretrained(run / "final")(x), trainer.model(x))
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    vals = [r for r in records if r.get("event") == "val"]
    assert [r["step"] for r in vals] == [2, 4]
    assert {"loss", "psnr", "lr", "steps_per_s"} <= next(r for r in records if "loss" in r).keys()
    assert TrainConfig.load(run / "config.json") == cfg
    # and runlog, the format's one owner, reads the folder back
    logged = read_run(run)
    assert logged.amp == "none" and logged.starts[0]["amp"] == "none" and logged.devices == ["cpu"]
    assert [r["step"] for r in logged.val_events] == [2, 4] and logged.end["step"] == 4
    best_step = logged.val_events[-1]["best"]["ema_step"]
    assert logged.pick_weights("best_ema") == ("best_ema", best_step)
    assert logged.pick_weights("final") == ("final", 4)


def test_runlog_precision_of_logs_without_it() -> None:
    run = Run(Path("r"), {"amp": "auto"}, [{"event": "start", "step": 0, "device": "cuda:0"}])
    assert run.amp == "bf16"  # the trainer's choice on a GPU with bfloat16
    assert Run(Path("r"), {"amp": "fp16"}, [{"event": "start", "device": "cuda"}]).amp == "fp16"
    assert Run(Path("r"), {"amp": "auto"}, [{"event": "start", "device": "cpu"}]).amp == "none"
    assert resolve_amp("auto", "cuda", bf16_supported=False) == "fp16"
    with pytest.raises(ValueError, match="fp16' needs CUDA"):
        resolve_amp("fp16", "cpu")


# -------------------------------------------------------------------- CLI
def test_cli_trains_and_resumes(tmp_path: Path, data_dirs) -> None:
    train_dir, _ = data_dirs
    out = tmp_path / "cli"
    args = ["train", "--train-dir", str(train_dir), "--output-dir", str(out), "--model-arg", "n_resblocks=1",
            "--model-arg", "n_feats=8", "--patch-size", "8", "--batch-size", "2", "--save-every", "2",
            "--cache-dir", "", "--threads", "1", "--no-progress", "--steps", "2"]  # fmt: skip
    assert main(args) == 0
    assert torch.load(out / CHECKPOINT_NAME, weights_only=True)["step"] == 2
    assert main(["train", "--output-dir", str(out), "--resume", "--steps", "3", "--no-progress"]) == 0
    assert torch.load(out / CHECKPOINT_NAME, weights_only=True)["step"] == 3
    saved = TrainConfig.load(out / "config.json")
    assert saved.steps == 3 and saved.model_kwargs == TINY and saved.train_dirs == [str(train_dir)]


def test_cli_reports_user_errors_in_one_line(tmp_path: Path, capsys) -> None:
    assert main(["train", "--output-dir", str(tmp_path)]) == 2
    assert "no training images: pass --train-dir" in capsys.readouterr().err
    assert main(["train", "--train-dir", str(tmp_path), "--model-arg", "oops"]) == 2
    assert "--model-arg expects KEY=VALUE" in capsys.readouterr().err
    assert main(["train", "--train-dir", str(tmp_path / "none"), "--cache-dir", "", "--model-arg", "n_feats=8"]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_tensorboard_is_optional(tmp_path: Path) -> None:
    cfg = _config(tmp_path, tensorboard=True, steps=2)
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="tensorboard=True needs the tensorboard package"):
            Trainer(cfg, sampler=_sampler())
    else:
        Trainer(cfg, sampler=_sampler()).train()
        assert list((Path(cfg.output_dir) / "tensorboard").glob("events.out.tfevents.*"))


# ---------------------------------------------------------------- torchrun
@pytest.mark.slow
def test_torchrun_with_two_cpu_processes(tmp_path: Path, data_dirs) -> None:
    train_dir, _ = data_dirs
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "edsr_lib",
           "train", "--model", "mdsr_baseline", "--scales", "2", "3", "--train-dir", str(train_dir),
           "--output-dir", str(out), "--model-arg", "n_resblocks=1", "--model-arg", "n_feats=8", "--patch-size",
           "8", "--batch-size", "4", "--steps", "3", "--save-every", "3", "--cache-dir", str(tmp_path / "cache"),
           "--threads", "1", "--no-progress"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    ckpt = torch.load(out / CHECKPOINT_NAME, weights_only=True)
    assert ckpt["step"] == 3
    data_states = ckpt["rng"]["data"]
    assert len(data_states) == 2 and not torch.equal(data_states[0], data_states[1])
    start = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert start["world_size"] == 2
    # the x4 branches were never trained: they must still hold their initial values
    torch.manual_seed(0)
    init = edsr_lib.create_model("mdsr_baseline", **TINY).state_dict()
    for key, value in ckpt["model"].items():
        if ".x4." in key:
            assert torch.equal(value, init[key]), key
    assert dataclasses.asdict(TrainConfig.load(out / "config.json"))["scales"] == [2, 3]


def test_mdsr_baseline_starts_from_three_edsr_baselines(tmp_path: Path) -> None:
    sources = {}
    for s in (2, 3, 4):
        sources[s] = edsr_lib.create_model(f"edsr_baseline_x{s}", **TINY)
        sources[s].save_pretrained(tmp_path / f"x{s}")
    mdsr = edsr_lib.create_model("mdsr_baseline", **TINY)
    loaded = load_init_weights(mdsr, [tmp_path / f"x{s}" for s in (2, 3, 4)])
    own = mdsr.state_dict()
    assert "head.weight" in loaded and not any(k.startswith("pre_process.") for k in loaded)
    for s, model in sources.items():
        for key, value in model.state_dict().items():
            if key.startswith("upsampler."):
                assert torch.equal(own[f"upsample.x{s}." + key[len("upsampler.") :]], value), (s, key)
            elif s == 2:  # the first source gives the shared head, body and tail
                assert torch.equal(own[key], value), key
    # the pre-processing blocks start as identities: MDSR computes exactly what x2 does
    lr = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        torch.testing.assert_close(mdsr(lr, scale=2), sources[2](lr), rtol=0, atol=1e-6)
        assert not torch.allclose(mdsr(lr, scale=3), sources[3](lr))  # x3's body was another model's
    with pytest.raises(ValueError, match="one source"):
        load_init_weights(edsr_lib.create_model("edsr_baseline_x2", **TINY), [tmp_path / "x2", tmp_path / "x3"])


def test_mdsr_continues_from_mdsr_with_every_branch(tmp_path: Path) -> None:
    source = edsr_lib.create_model("mdsr_baseline", **TINY)
    source.save_pretrained(tmp_path / "m")
    model = edsr_lib.create_model("mdsr_baseline", **TINY)
    assert set(load_init_weights(model, tmp_path / "m")) == set(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(value, source.state_dict()[key]), key


def test_cli_takes_one_or_several_init_sources(tmp_path: Path) -> None:
    from edsr_lib.cli import build_parser
    from edsr_lib.cli.train import build_config

    common = ["train", "--train-dir", str(tmp_path), "--output-dir", str(tmp_path / "run")]
    one = build_config(build_parser().parse_args([*common, "--init-from", "edsr_baseline_x2"]))
    assert one.init_from == "edsr_baseline_x2"
    names = ["edsr_baseline_x2", "edsr_baseline_x3", "edsr_baseline_x4"]
    several = build_config(build_parser().parse_args([*common, "--model", "mdsr_baseline", "--init-from", *names]))
    assert several.init_from == names


class _Payload:
    """A pickle that would create a folder when unpickled without ``weights_only``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def test_cli_init_from_a_pickle_of_objects_is_one_line_and_never_unpickled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "payload-ran"
    torch.save({"model": _Payload(marker)}, tmp_path / "evil.pt")
    (tmp_path / "data").mkdir()
    for i in range(2):
        write_image(tmp_path / "data" / f"{i}.png", np.random.default_rng(i).integers(0, 256, (32, 32, 3), np.uint8))
    argv = ["train", "--train-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "run")]
    assert main([*argv, "--init-from", str(tmp_path / "evil.pt"), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "evil.pt" in err and "weights_only=True" in err and "\n" not in err, err
    assert "weights_only=False" not in err  # never the advice to unpickle anyway
    assert not marker.exists()


def test_deeper_model_starts_from_a_shallower_one(tmp_path: Path) -> None:
    # MDSR (80 blocks) from MDSR-baseline (16), in small: 3 blocks from 1
    source = edsr_lib.create_model("mdsr_baseline", **TINY)
    with torch.no_grad():  # non-trivial pre-processing, so that its copy is checked too
        for p in source.pre_process.parameters():
            p.add_(0.05 * torch.randn_like(p))
    source.save_pretrained(tmp_path / "shallow")
    deep = edsr_lib.create_model("mdsr_baseline", n_resblocks=3, n_feats=8)
    loaded = load_init_weights(deep, tmp_path / "shallow")
    own, theirs = deep.state_dict(), source.state_dict()
    assert torch.equal(own["body.0.body.0.weight"], theirs["body.0.body.0.weight"])
    assert torch.equal(own["body.3.weight"], theirs["body.1.weight"])  # the body's last conv closes the body
    assert not any(k.startswith(("body.1.", "body.2.")) for k in loaded)
    assert not own["body.2.body.2.weight"].any() and own["body.2.body.0.weight"].any()
    lr = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        for s in (2, 3, 4):
            torch.testing.assert_close(deep(lr, scale=s), source(lr, scale=s), rtol=0, atol=1e-6)
    # single-scale models deepen the same way; a deeper source is refused
    x2 = edsr_lib.create_model("edsr_baseline_x2", **TINY)
    x2.save_pretrained(tmp_path / "x2")
    x2_deep = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=2, n_feats=8)
    load_init_weights(x2_deep, tmp_path / "x2")
    with torch.no_grad():
        torch.testing.assert_close(x2_deep(lr), x2(lr), rtol=0, atol=1e-6)
    deep.save_pretrained(tmp_path / "deep")
    with pytest.raises(ValueError, match="cannot start from a deeper one"):
        load_init_weights(edsr_lib.create_model("mdsr_baseline", **TINY), tmp_path / "deep")


# ------------------------------------------------------- devices and stops
def test_a_run_resumes_on_another_device_with_a_fresh_patch_stream(tmp_path: Path, capsys) -> None:
    """A CPU checkpoint says where its sampler drew; one from another device (faked: CUDA's 16-byte state) reseeds."""
    first = Trainer(_config(tmp_path, steps=2), sampler=_sampler())
    first.train()
    ckpt = Path(first.output_dir) / CHECKPOINT_NAME
    state = torch.load(ckpt, weights_only=True)
    assert state["rng"]["data_device"] == "cpu"

    state["rng"]["data_device"] = "cuda"
    state["rng"]["data"] = [torch.zeros(16, dtype=torch.uint8)]  # a CUDA generator's state: seed and offset
    torch.save(state, ckpt)
    resumed = Trainer(_config(tmp_path, steps=4), sampler=_sampler(), resume=True)
    assert "a run whose data sampler drew on cuda: the patch stream starts afresh" in capsys.readouterr().err
    fresh = torch.Generator().manual_seed(_seed_for(0, 1, 0, 2))
    assert torch.equal(resumed.data_generator.get_state(), fresh.get_state())
    assert resumed.step == 2
    resumed.train()

    # a checkpoint older than "data_device" is told by the size of its state
    del state["rng"]["data_device"]
    torch.save(state, ckpt)
    older = Trainer(_config(tmp_path, steps=4), sampler=_sampler(), resume=True)
    assert torch.equal(older.data_generator.get_state(), fresh.get_state())


def test_a_time_limited_run_leaves_its_best_and_final_weights(tmp_path: Path, data_dirs, monkeypatch) -> None:
    train_dir, val_dir = data_dirs
    cfg = _config(tmp_path, train_dirs=[str(train_dir)], val_dir=str(val_dir), steps=1000, save_every=500)
    trainer = Trainer(cfg)
    clock = iter(range(10**6))
    monkeypatch.setattr(sys.modules["edsr_lib.train.trainer"].time, "monotonic", lambda: float(next(clock)))
    summary = trainer.train(time_limit=3)  # the clock ticks once a step here
    run = Path(cfg.output_dir)
    assert summary["step"] == trainer.step < 1000
    for name in ("best", "best_ema", "final", "final_ema"):
        assert (run / name / "model.safetensors").is_file(), name
    logged = read_run(run)
    assert logged.end is None and logged.last_stop["reason"] == "time_limit"
    assert logged.pick_weights("final") == ("final", trainer.step)
    assert torch.load(run / CHECKPOINT_NAME, weights_only=True)["step"] == trainer.step
    x = torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        torch.testing.assert_close(edsr_lib.from_pretrained(run / "final")(x), trainer.model(x))


def test_the_time_limit_costs_no_device_sync_per_step(tmp_path: Path, monkeypatch) -> None:
    reads = []
    item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda t: reads.append(1) or item(t))
    counts = []
    for limit in (None, 1e6):
        reads.clear()
        cfg = _config(tmp_path / str(limit), steps=8, log_every=8, save_every=8, ema=False)
        Trainer(cfg, sampler=_sampler()).train(time_limit=limit)
        counts.append(len(reads))
    assert counts[0] == counts[1]  # .item() waits for the device: the clock adds none


def test_cudnn_benchmark_is_on_while_training_on_cuda_only() -> None:
    before = torch.backends.cudnn.benchmark
    with tuned_convolutions(torch.device("cuda")):
        assert torch.backends.cudnn.benchmark
    assert torch.backends.cudnn.benchmark == before
    with tuned_convolutions(torch.device("cpu")):
        assert torch.backends.cudnn.benchmark == before


def test_the_checkpoint_is_saved_before_a_failing_validation_and_the_best_survives(tmp_path: Path, data_dirs) -> None:
    train_dir, val_dir = data_dirs
    cfg = _config(tmp_path, train_dirs=[str(train_dir)], val_dir=str(val_dir), steps=4)
    trainer = Trainer(cfg)
    trainer.validate = lambda: (_ for _ in ()).throw(RuntimeError("validation failed"))
    with pytest.raises(RuntimeError, match="validation failed"):
        trainer.train()
    assert torch.load(Path(cfg.output_dir) / CHECKPOINT_NAME, weights_only=True)["step"] == 2

    # validation comes after its step's checkpoint: on resume the log tells the best the checkpoint missed
    Trainer(cfg, resume=True).train()
    logged_best = read_run(Path(cfg.output_dir)).val_events[-1]["best"]
    assert logged_best and torch.load(Path(cfg.output_dir) / CHECKPOINT_NAME, weights_only=True)["best"] == {}
    again = Trainer(dataclasses.replace(cfg, steps=6), resume=True)
    assert again.step == 4 and again.best == logged_best


def test_the_checkpoint_is_streamed_to_its_file(tmp_path: Path) -> None:
    import tracemalloc

    trainer = Trainer(_config(tmp_path, model_kwargs={"n_resblocks": 2, "n_feats": 64}), sampler=_sampler())
    trainer.train_step()
    tracemalloc.start()
    try:
        path = trainer.save_checkpoint()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert path.stat().st_size > 4e6 and peak < path.stat().st_size / 4, (peak, path.stat().st_size)


def test_the_sampler_puts_no_float64_on_its_device() -> None:
    from torch.overrides import TorchFunctionMode

    class Float64Watch(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[str] = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor) and out.dtype == torch.float64:
                self.seen.append(getattr(func, "__name__", str(func)))
            return out

    hr = _images(4, sizes=((40, 36), (36, 44)))
    lr = {s: make_lr_images(hr, s) for s in (2, 3)}  # made once on the host (MATLAB's bicubic is float64)
    with Float64Watch() as watch:
        sampler = PatchSampler(hr, lr, 8)
        for scale in (2, 3):
            sampler.sample(8, scale, torch.Generator().manual_seed(0))
    assert watch.seen == []


def test_under_torchrun_the_cli_binds_the_local_gpu_first(tmp_path: Path, monkeypatch, fake_cuda) -> None:
    events: list[object] = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: events.append(("set_device", index)))

    class Recorder:
        def __init__(self, config, **kwargs):
            events.append("trainer")

        def train(self, **kwargs):
            return {}

    monkeypatch.setattr(edsr_lib.train, "Trainer", Recorder)
    assert main(["train", "--train-dir", str(tmp_path), "--output-dir", str(tmp_path / "run")]) == 0
    assert events == [("set_device", 1), "trainer"]
    events.clear()
    assert main(["train", "--train-dir", str(tmp_path), "--device", "cpu"]) == 0
    assert events == ["trainer"]
