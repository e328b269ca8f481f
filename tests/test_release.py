"""tools/release_weights.py: a fake run is scored, shipped with its provenance (pretrained.json) and a card."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import edsr_lib
from edsr_lib import _hub, hub
from edsr_lib.registry import PretrainedCfg
from edsr_lib.weights import PROVENANCE_FIELDS, shipped

REPO_ROOT = Path(__file__).resolve().parents[1]
VARIANT = "edsr_baseline_x2"
#: A tag no release uses: the tool names the folder and the registry entry after it, whatever it is.
TAG = "tfake"
NAME = f"{VARIANT}.{TAG}"


#: the tool runs in this process with --threads 1, which sets torch's threads
pytestmark = pytest.mark.usefixtures("restore_threads")


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("release_weights", REPO_ROOT / "tools" / "release_weights.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name while the classes are made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]  # not a module every later test could import by that name
    return module


def _png(path: Path, width: int, height: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _record(**fields: Any) -> str:
    return json.dumps(fields) + "\n"


@pytest.fixture
def fake_run(tmp_path: Path) -> dict[str, Any]:
    """A finished two-start run of an untrained EDSR-baseline x2, with a 2-image training set and a 2-image test set."""
    _png(tmp_path / "T91" / "HR" / "big.png", 100, 98, 0)
    _png(tmp_path / "T91" / "HR" / "small.png", 60, 60, 1)  # LR 30x30 < 48: left out at x2
    for i in range(2):
        _png(tmp_path / "TinySet" / "HR" / f"img{i}.png", 24, 20, 10 + i)
    run = tmp_path / "run"
    ema, raw = edsr_lib.create_model(VARIANT), edsr_lib.create_model(VARIANT)
    hub.save_pretrained(ema, run / "best_ema")
    hub.save_pretrained(raw, run / "best")
    config = {
        "model": VARIANT,
        "train_dirs": [str(tmp_path / "T91" / "HR")],
        "lr_patch_size": 48,
        "augment": True,
        "batch_size": 16,
        "steps": 40,
        "loss": "l1",
        "opt": "adam",
        "lr": 1e-4,
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "sched": "step",
        "min_lr": 0.0,
        "warmup_steps": 0,
        "ema": True,
        "ema_decay": 0.999,
        "seed": 0,
        "val_dir": str(tmp_path / "TinySet"),
    }
    (run / "config.json").write_text(json.dumps(config))
    first = "edsr-lib train --model edsr_baseline_x2 --steps 40"
    resumed = first + " --resume"
    val = {"raw": {"x2": {"psnr": 20.0, "ssim": 0.5}}, "ema": {"x2": {"psnr": 21.0, "ssim": 0.6}}}
    best = {"raw": 20.0, "raw_step": 20, "ema": 21.0, "ema_step": 40}
    start = {"event": "start", "device": "cpu", "threads": 1, "world_size": 1, "images": {"x2": 1}}
    (run / "log.jsonl").write_text(
        _record(time=1000.0, step=0, command=first, **start)
        + _record(time=1010.0, step=20, loss=0.1, train_s=10.0)
        + _record(time=1011.0, event="val", step=20, val=val, best={**best, "ema_step": 20})
        + _record(time=2000.0, step=20, command=resumed, **start)
        + _record(time=2010.0, step=40, loss=0.1, train_s=20.0)
        + _record(time=2011.0, event="val", step=40, val=val, best=best)
        + _record(time=2012.0, event="end", step=40)
    )
    return {"run": run, "ema": ema, "raw": raw, "set": tmp_path / "TinySet", "out": tmp_path / "weights"}


def _args(fake: dict[str, Any], *extra: str) -> list[str]:
    return [
        str(fake["run"]),
        "--variant",
        VARIANT,
        "--tag",
        TAG,
        "--sets",
        str(fake["set"]),
        "--out-dir",
        str(fake["out"]),
        "--threads",
        "1",
        *extra,
    ]


def _printed_cfg(text: str) -> dict[str, Any]:
    """The keyword arguments of the ``PretrainedCfg(...)`` entry the tool printed."""
    start = text.index(f'"{NAME}": PretrainedCfg(')
    entry = text[start : text.index("\n    ),", start) + len("\n    )")]
    call = ast.parse("{" + entry + "}", mode="eval").body.values[0]
    return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}


def _released(text: str, out: Path) -> dict[str, Any]:
    """The printed ``default_cfgs`` entry with the provenance written beside the weights, as cfg fields."""
    data = json.loads((out / NAME / "pretrained.json").read_text())
    assert sorted(data) == sorted(PROVENANCE_FIELDS)
    return {**_printed_cfg(text), **data}


def test_release_writes_a_loadable_folder_card_and_cfg(
    tool: ModuleType, fake_run: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tool.main(_args(fake_run)) == 0
    printed = capsys.readouterr().out
    folder = fake_run["out"] / NAME
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "pretrained.json",
        "training_log.jsonl",
    ]
    entry = _printed_cfg(printed)
    assert sorted(entry) == ["description", "hf_hub_id", "license", "sha256"]  # the model file holds no more
    assert all(len(line) <= 120 for line in printed.splitlines() if line.startswith("    "))  # pastes as it is
    cfg = _released(printed, fake_run["out"])
    digest = hub.sha256sum(folder / "model.safetensors")
    assert cfg["sha256"] == digest
    assert f"sha256 {digest}" in printed
    found = shipped(NAME, root=fake_run["out"])
    assert found["package_file"] == f"{NAME}/model.safetensors"
    assert cfg["hf_hub_id"] == "edsr-lib/"  # the registry appends arch.tag: edsr-lib/<variant>.<tag>
    assert cfg["license"] == "mit"
    assert cfg["steps"] == 40  # auto: best_ema (21 dB logged) beats best (20 dB), from step 40
    assert cfg["training_command"] == (
        "edsr-lib train --model edsr_baseline_x2 --steps 40 ; "
        "edsr-lib train --model edsr_baseline_x2 --steps 40 --resume"
    )
    assert cfg["training_data"].startswith("T91 (2 images); at x2, T91/small.png (60x60) is smaller than a 96x96")

    # the metrics are the evaluator's, with and without self-ensemble, under "TinySet" and "TinySet+"
    ema = fake_run["ema"].eval()
    plain = edsr_lib.evaluate(ema, fake_run["set"], 2)
    plus = edsr_lib.evaluate(ema, fake_run["set"], 2, self_ensemble=True)
    assert cfg["metrics"] == {
        "TinySet": {"x2": {"psnr": round(plain["psnr"], 3), "ssim": round(plain["ssim"], 4)}},
        "TinySet+": {"x2": {"psnr": round(plus["psnr"], 3), "ssim": round(plus["ssim"], 4)}},
    }
    assert plus["psnr"] != plain["psnr"]

    card = (folder / "README.md").read_text()
    for text in (
        "license: mit",
        "- Steps: 40",
        "edsr-lib train --model edsr_baseline_x2 --steps 40 --resume`",
        "started 2 times",
        "T91/small.png (60x60)",
        "cpu, 1 thread, 1 process; 40 steps in 20 s of training (2.00 steps/s); 16.9 min wall clock",
        f"| TinySet | x2 | {plain['psnr']:.2f} / {plain['ssim']:.4f} | {plus['psnr']:.2f} / {plus['ssim']:.4f} |",
        f"`{digest}`",
        "(`best_ema/`) of step 40",
    ):
        assert text in card, text
    # one card, built from sections: the run's details extend the card's own Training section
    headings = [line[3:] for line in card.splitlines() if line.startswith("## ")]
    assert headings == ["Usage", "Training", "Results", "Comparison", "License", "Citation"]
    training = card[card.index("## Training\n") : card.index("## Results\n")]
    assert training.index("- Steps: 40") < training.index("- Weights: the EMA weights")
    # the training curve: the validation records only
    curve = [json.loads(line) for line in (folder / "training_log.jsonl").read_text().splitlines()]
    assert [(r["step"], r["train_s"]) for r in curve] == [(20, 10.0), (40, 20.0)]
    assert curve[1]["val"]["ema"]["x2"]["psnr"] == 21.0

    # the folder loads as the variant with the very same weights
    loaded = edsr_lib.create_model(VARIANT, weights=folder)
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert torch.equal(loaded(x), ema(x))
    # and the printed cfg finds the file the way a shipped one is found, checking its sha256
    monkeypatch.setattr(_hub, "_shipped_weights", lambda: fake_run["out"])
    model = edsr_lib.create_model(VARIANT)
    hub.load_pretrained(model, PretrainedCfg(**{**entry, **found}, architecture=VARIANT, tag=TAG))
    with torch.no_grad():
        assert torch.equal(model.eval()(x), ema(x))


def test_which_and_ensemble_sets(
    tool: ModuleType, fake_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert tool.main(_args(fake_run, "--which", "best", "--no-ensemble")) == 0
    cfg = _released(capsys.readouterr().out, fake_run["out"])
    assert cfg["steps"] == 20
    assert list(cfg["metrics"]) == ["TinySet"]
    loaded = edsr_lib.create_model(VARIANT, weights=fake_run["out"] / NAME)
    assert torch.equal(loaded.head.weight, fake_run["raw"].head.weight)
    with pytest.raises(ValueError, match="--ensemble-sets names sets not scored: Set5"):
        tool.main(_args(fake_run, "--ensemble-sets", "Set5"))


def test_refuses_what_it_cannot_release(tool: ModuleType, fake_run: dict[str, Any]) -> None:
    run = fake_run["run"]
    with pytest.raises(FileNotFoundError, match="final_ema does not exist; the run has: best_ema, best"):
        tool.main(_args(fake_run, "--which", "final_ema"))
    hub.save_pretrained(edsr_lib.create_model(VARIANT, n_resblocks=1, n_feats=8), run / "best_ema")
    with pytest.raises(ValueError, match="n_resblocks=1"):
        tool.main(_args(fake_run, "--which", "best_ema"))
    lines = (run / "log.jsonl").read_text().splitlines()
    (run / "log.jsonl").write_text("\n".join(line for line in lines if '"end"' not in line))
    (run / "final").mkdir()
    with pytest.raises(ValueError, match="no 'end' record"):
        tool.main(_args(fake_run, "--which", "final"))
    with pytest.raises(FileNotFoundError, match=r"has no log\.jsonl"):
        tool.main([str(run / "best"), "--variant", VARIANT, "--tag", TAG])


def test_release_writes_data_never_python_source(
    tool: ModuleType, fake_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sources = {p: p.read_bytes() for p in (REPO_ROOT / "edsr_lib").rglob("*.py")}
    assert tool.main(_args(fake_run, "--no-ensemble")) == 0
    first = _released(capsys.readouterr().out, fake_run["out"])
    # again with other weights: the data file is replaced, the Python source never touched
    assert tool.main(_args(fake_run, "--which", "best", "--no-ensemble")) == 0
    again = _released(capsys.readouterr().out, fake_run["out"])
    assert again["steps"] == 20 and first["steps"] == 40
    assert again["sha256"] != first["sha256"]
    long = PretrainedCfg(sha256="ab" * 32, license="mit", description="word " * 40)
    entry = tool.cfg_entry("m.t", long)
    assert all(len(line) <= 120 for line in entry.splitlines())
    call = ast.parse("{" + entry + "}", mode="eval").body.values[0]
    assert {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}["description"] == long.description
    assert {p: p.read_bytes() for p in (REPO_ROOT / "edsr_lib").rglob("*.py")} == sources
    assert not hasattr(tool, "ast")


def test_paths_of_this_machine_are_made_portable(
    tool: ModuleType, fake_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    data = tool.DATASETS_DIR
    command = f"edsr-lib train --train-dir {data}/T91/HR --init-from {tool.REPO_ROOT}/runs/x2/best --val-dir val"
    assert tool.portable(command) == "edsr-lib train --train-dir $DATA/T91/HR --init-from runs/x2/best --val-dir val"
    assert tool.absolute_paths(tool.portable(command)) == []
    assert tool.absolute_paths("see https://edsr-lib.readthedocs.io/a/b and /elsewhere/data/T91") == [
        "/elsewhere/data/T91"
    ]
    # in a release: the card and pretrained.json name $DATA, and the card says what it is
    log = fake_run["run"] / "log.jsonl"
    log.write_text(log.read_text().replace("--steps 40", f"--steps 40 --train-dir {data}/T91/HR"))
    assert tool.main(_args(fake_run, "--no-ensemble")) == 0
    released = _released(capsys.readouterr().out, fake_run["out"])
    assert released["training_command"].startswith(
        "edsr-lib train --model edsr_baseline_x2 --steps 40 --train-dir $DATA/T91/HR"
    )
    card = (fake_run["out"] / NAME / "README.md").read_text()
    assert tool.PATHS_LINE in card and str(data) not in card


def test_card_names_the_initialisation_precision_and_notes(
    tool: ModuleType, fake_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    run = fake_run["run"]
    config = json.loads((run / "config.json").read_text())
    source = run.parent / "source"
    hub.save_pretrained(edsr_lib.create_model(VARIANT), source)
    config |= {"init_from": [str(source), "no/such/folder"], "amp": "bf16", "channels_last": True}
    (run / "config.json").write_text(json.dumps(config))
    note = "The schedule was shortened at step 20."
    assert tool.main(_args(fake_run, "--no-ensemble", "--note", note)) == 0
    card = (fake_run["out"] / NAME / "README.md").read_text()
    digest = hub.sha256sum(source / "model.safetensors")
    assert f"- Initialisation: from `{source}` (sha256 `{digest}`) and `no/such/folder` through" in card
    assert "- Precision: bfloat16 autocast; weights, gradients and optimiser state in float32; channels_last" in card
    assert f"- {note}\n" in card
    # without init_from and amp, a float32 run says so and names no initialisation
    (run / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k not in ("init_from", "amp")}))
    assert tool.main(_args(fake_run, "--no-ensemble")) == 0
    card = (fake_run["out"] / NAME / "README.md").read_text()
    assert "Initialisation" not in card and "- Precision: float32; channels_last memory format (on cpu)." in card


def test_each_family_is_held_against_its_own_paper_numbers(tool: ModuleType) -> None:
    metrics = {"Set5": {"x2": {"psnr": 37.6, "ssim": 0.96}, "x4": {"psnr": 31.4, "ssim": 0.88}}}
    mdsr = "\n".join(tool.comparison_lines(metrics, "mdsr"))
    assert "0.51 dB below the paper's MDSR (about 38.11 dB, DIV2K)" in mdsr
    assert "1.10 dB below the paper's MDSR (about 32.50 dB" in mdsr
    assert "MDSR, paper (DIV2K)" in tool.score_table(metrics, "mdsr")[0]
    baseline = "\n".join(tool.comparison_lines(metrics, "mdsr_baseline"))
    assert "0.39 dB below the paper's EDSR-baseline (about 37.99 dB" in baseline
    assert "x4" in baseline and "EDSR-baseline (about" not in baseline.split("x4")[1]  # no x4 baseline number
    assert "32.46" in "\n".join(tool.score_table(metrics, "edsr_x4"))


def test_float16_release_scores_what_it_ships(
    tool: ModuleType, fake_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert tool.main(_args(fake_run, "--no-ensemble", "--dtype", "float16")) == 0
    cfg = _released(capsys.readouterr().out, fake_run["out"])
    folder = fake_run["out"] / NAME
    tensors, _ = _hub.read_weights(folder / "model.safetensors")
    assert {v.dtype for v in tensors.values()} == {torch.float16}
    shipped = edsr_lib.create_model(VARIANT, weights=folder)
    result = edsr_lib.evaluate(shipped, fake_run["set"], 2)
    assert cfg["metrics"]["TinySet"]["x2"] == {"psnr": round(result["psnr"], 3), "ssim": round(result["ssim"], 4)}
    assert "- Storage: the tensors are stored in float16" in (folder / "README.md").read_text()


def test_many_left_out_images_are_counted_not_named(tool: ModuleType, fake_run: dict[str, Any]) -> None:
    for i in range(4):  # five images under 96x96 in all; the log's 1 image at x2 still agrees
        _png(fake_run["set"].parent / "T91" / "HR" / f"tiny{i}.png", 50, 40, 20 + i)
    text = tool.training_data_text(tool.read_run(fake_run["run"]), [2])
    assert text == "T91 (6 images); at x2, the 5 T91 images smaller than a 96x96 HR patch were left out"


def test_weights_for_photos_reuse_given_scores_and_are_held_against_a_tag(
    tool: ModuleType, fake_run: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--scores (tools/score_degraded.py's file): the clean set is not scored again, the degraded scores join the
    metrics; --compare puts every score beside the other tag's; --for-input reaches the entry and the card."""
    given = {
        "TinySet": {"x2": {"psnr": 30.0, "ssim": 0.9}},
        "TinySet_jpeg50": {"x2": {"psnr": 28.0, "ssim": 0.8}},
        "Other_jpeg50": {"x2": {"psnr": 27.0, "ssim": 0.7}},  # a set this release does not report
    }
    scores = fake_run["run"].parent / "scores.json"
    scores.write_text(json.dumps(given))
    other = PretrainedCfg(
        metrics={"TinySet_jpeg50": {"x2": {"psnr": 27.5, "ssim": 0.75}}}, architecture=VARIANT, tag="t"
    )
    monkeypatch.setattr(edsr_lib, "get_pretrained_cfg", lambda name: other)
    monkeypatch.setattr(tool, "evaluate", lambda *a, **k: pytest.fail("a set with given scores was scored again"))
    args = _args(fake_run, "--no-ensemble", "--scores", str(scores), "--compare", other.name, "--for-input", "real")
    assert tool.main(args) == 0
    cfg = _released(capsys.readouterr().out, fake_run["out"])
    assert cfg["metrics"] == {key: given[key] for key in ("TinySet", "TinySet_jpeg50")}
    assert cfg["for_input"] == "real" and "fine-tuned for JPEG and noisy photos" in cfg["description"]
    card = (fake_run["out"] / NAME / "README.md").read_text()
    assert f"## Against {other.name}" in card
    assert "| TinySet | jpeg 50 | x2 | 28.00 / 0.8000 | 27.50 / 0.7500 | +0.50 dB |" in card
    assert "| TinySet, jpeg 50 | 28.00 / 0.8000 |" in card  # the results table names the input
