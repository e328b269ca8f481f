"""Weights I/O: the library's format, pretrained resolution (package, cache, Hub) and its errors.

No test touches the network: the Hub is reached only through a cache built in a temporary
folder with ``HF_HUB_OFFLINE=1``, or through mocks.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from unittest import mock

import huggingface_hub
import pytest
import torch
from huggingface_hub import ModelCard
from huggingface_hub.errors import LocalEntryNotFoundError

import edsr_lib
from edsr_lib import _files, _hub, hub, registry
from edsr_lib.hub import InvalidWeightsError, WeightsNotFoundError
from edsr_lib.ops.degrade import split_metric_key
from edsr_lib.registry import PretrainedCfg

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO_ID = "edsr-lib-test/edsr_baseline_x2"


def _outputs(model: torch.nn.Module, scale: int) -> torch.Tensor:
    x = torch.rand(1, 3, 6, 7, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model.eval()(x, scale=scale)


def _populate_cache(cache: Path, repo_id: str, files: dict[str, Path]) -> Path:
    """Lay out a Hugging Face cache entry for ``repo_id`` holding ``files`` (name -> source)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for name, source in files.items():
        (snapshot / name).write_bytes(source.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not offline, so the Hub step runs (each test using this mocks the download)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def saved(tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    """A randomly initialised EDSR-baseline x2 and the folder it was saved to."""
    model = edsr_lib.create_model("edsr_baseline_x2")
    return model, model.save_pretrained(tmp_path / "saved")


def _use_cfg(monkeypatch: pytest.MonkeyPatch, **fields: object) -> PretrainedCfg:
    cfg = PretrainedCfg(architecture="edsr_baseline_x2", tag="test", **fields)
    monkeypatch.setitem(registry.pretrained_cfgs, "edsr_baseline_x2", {"test": cfg})
    return cfg


# ------------------------------------------------------------------- save / from_pretrained
@pytest.mark.parametrize(("name", "scales"), [("edsr_baseline_x2", (2,)), ("mdsr_baseline", (2, 3, 4))])
def test_round_trip_gives_identical_outputs(tmp_path: Path, name: str, scales: tuple[int, ...]) -> None:
    model = edsr_lib.create_model(name)
    model.save_pretrained(tmp_path)
    loaded = edsr_lib.from_pretrained(tmp_path)
    assert type(loaded) is type(model)
    assert not loaded.training
    assert loaded.config == model.config
    for scale in scales:
        assert torch.equal(_outputs(loaded, scale), _outputs(model, scale))


def test_half_precision_file_loads_into_a_float32_model(tmp_path: Path) -> None:
    model = edsr_lib.create_model("mdsr_baseline")
    model.save_pretrained(tmp_path / "fp32")
    model.save_pretrained(tmp_path / "fp16", dtype=torch.float16)
    tensors, _ = _hub.read_weights(tmp_path / "fp16" / "model.safetensors")
    assert {v.dtype for v in tensors.values()} == {torch.float16}
    size = {d: (tmp_path / d / "model.safetensors").stat().st_size for d in ("fp32", "fp16")}
    assert size["fp16"] < 0.51 * size["fp32"]
    loaded = edsr_lib.from_pretrained(tmp_path / "fp16")
    for (key, value), (_, mine) in zip(loaded.state_dict().items(), model.state_dict().items(), strict=True):
        assert value.dtype == torch.float32, key
        assert torch.equal(value, mine.half().float()), key
    with pytest.raises(ValueError, match=r"floating-point dtype, not torch\.int8"):
        model.save_pretrained(tmp_path / "int", dtype=torch.int8)


def test_saved_files(saved: tuple[torch.nn.Module, Path]) -> None:
    model, folder = saved
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config == {
        "architecture": "edsr",
        "scale": 2,
        "n_resblocks": 16,
        "n_feats": 64,
        "res_scale": 1.0,
        "rgb_range": 255.0,
        "rgb_mean": [0.4488, 0.4371, 0.404],
        "n_colors": 3,
        "kernel_size": 3,
        "block": "resblock",
        "upsampler": "upsampler",
    }
    assert hub.load_config(folder) == config
    from safetensors import safe_open

    with safe_open(folder / "model.safetensors", framework="pt") as f:
        assert f.metadata()["architecture"] == "edsr"
        assert f.metadata()["format"] == "pt"
        assert set(f.keys()) == set(model.state_dict())
    # the umask decides the permissions, as for any new file (not the 0o600 of a private temp file)
    (folder / "plain").write_bytes(b"")
    assert stat.S_IMODE((folder / "model.safetensors").stat().st_mode) == stat.S_IMODE(
        (folder / "plain").stat().st_mode
    )


def test_model_card_written_when_given(tmp_path: Path) -> None:
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8)
    model.save_pretrained(tmp_path, model_card="# card\n")
    assert (tmp_path / "README.md").read_text() == "# card\n"


def test_failed_write_keeps_previous_file_and_leaves_no_temp(
    saved: tuple[torch.nn.Module, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, folder = saved
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    other = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=2)

    def fail(fd: int) -> None:  # the temp file is fully written, the rename has not happened
        raise OSError("disk full")

    monkeypatch.setattr(_files.os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        other.save_pretrained(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_fused_model_is_refused(tmp_path: Path) -> None:
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).fuse()
    with pytest.raises(ValueError, match="fused"):
        model.save_pretrained(tmp_path)
    assert not any(tmp_path.iterdir())
    with pytest.raises(ValueError, match="before fusing"):
        hub.load_pretrained(model, None, weights=tmp_path)


def test_from_pretrained_missing_folder_and_bad_id(tmp_path: Path, offline: None) -> None:
    with pytest.raises(WeightsNotFoundError, match=r"has no config\.json"):
        edsr_lib.from_pretrained(tmp_path)
    with pytest.raises(WeightsNotFoundError, match="neither a local folder nor a Hugging Face Hub repository id"):
        edsr_lib.from_pretrained(tmp_path / "does" / "not" / "exist")
    with pytest.raises(
        WeightsNotFoundError, match=r"nothing/config\.json is not in the Hugging Face cache .*HF_HUB_OFFLINE=1"
    ):
        edsr_lib.from_pretrained("edsr-lib-test/nothing", cache_dir=tmp_path / "cache")


def test_from_pretrained_of_cached_hub_repo(tmp_path: Path, offline: None) -> None:
    model = edsr_lib.create_model("mdsr_baseline")
    folder = model.save_pretrained(tmp_path / "saved")
    cache = tmp_path / "cache"
    _populate_cache(cache, "edsr-lib-test/mdsr_baseline", {n: folder / n for n in ("config.json", "model.safetensors")})
    loaded = edsr_lib.from_pretrained("edsr-lib-test/mdsr_baseline", cache_dir=cache)
    assert isinstance(loaded, edsr_lib.MDSR)
    assert torch.equal(_outputs(loaded, 4), _outputs(model, 4))


def test_unknown_architecture_in_config(saved: tuple[torch.nn.Module, Path]) -> None:
    _, folder = saved
    (folder / "config.json").write_text(json.dumps({"architecture": "rcan", "scale": 2}))
    with pytest.raises(InvalidWeightsError, match="architecture 'rcan'; known: edsr, mdsr"):
        edsr_lib.from_pretrained(folder)


# --------------------------------------------------------------------- explicit weights
def test_create_model_with_weights_folder_and_file(saved: tuple[torch.nn.Module, Path]) -> None:
    model, folder = saved
    from_folder = edsr_lib.create_model("edsr_baseline_x2", weights=folder)
    from_file = edsr_lib.create_model("edsr_baseline_x2", weights=folder / "model.safetensors")
    assert not from_folder.training
    expected = _outputs(model, 2)
    assert torch.equal(_outputs(from_folder, 2), expected)
    assert torch.equal(_outputs(from_file, 2), expected)


def test_mismatched_config_gives_clear_error(tmp_path: Path) -> None:
    edsr_lib.create_model("edsr_baseline_x2", n_resblocks=2).save_pretrained(tmp_path)
    with pytest.raises(InvalidWeightsError, match=r"n_resblocks=2 in the file but 16 in the model") as err:
        edsr_lib.create_model("edsr_baseline_x2", weights=tmp_path)
    assert "config.json" in str(err.value)


def test_mismatched_tensors_give_clear_error(tmp_path: Path) -> None:
    edsr_lib.create_model("edsr_baseline_x2", n_resblocks=2).save_pretrained(tmp_path)
    file = tmp_path / "model.safetensors"
    with pytest.raises(InvalidWeightsError) as err:
        edsr_lib.create_model("edsr_baseline_x2", weights=file)
    message = str(err.value)
    assert str(file) in message
    assert "missing keys: body.2.body.0.weight" in message
    assert "(and " in message  # only the first few keys are listed
    edsr_lib.create_model("edsr_baseline_x2", n_feats=32).save_pretrained(tmp_path)
    with pytest.raises(InvalidWeightsError, match=r"wrong shapes: head\.weight \(32, 3, 3, 3\) in the file"):
        edsr_lib.create_model("edsr_baseline_x2", weights=file)


def test_weights_of_other_architecture(tmp_path: Path) -> None:
    edsr_lib.create_model("mdsr_baseline").save_pretrained(tmp_path)
    with pytest.raises(InvalidWeightsError, match="holds 'mdsr' weights, not 'edsr'"):
        edsr_lib.create_model("edsr_baseline_x2", weights=tmp_path / "model.safetensors")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupted_safetensors_gives_clear_error(saved: tuple[torch.nn.Module, Path], damage: str) -> None:
    _, folder = saved
    file = folder / "model.safetensors"
    data = file.read_bytes()
    file.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x00garbage" * 100, "empty": b""}[damage])
    with pytest.raises(InvalidWeightsError, match="not a valid safetensors file") as err:
        edsr_lib.create_model("edsr_baseline_x2", weights=folder)
    assert str(file) in str(err.value)


def test_missing_and_foreign_weights_files(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        edsr_lib.create_model("edsr_baseline_x2", weights=tmp_path / "nope.safetensors")
    with pytest.raises(WeightsNotFoundError, match=r"has no model\.safetensors"):
        edsr_lib.create_model("edsr_baseline_x2", weights=tmp_path)
    (tmp_path / "edsr.pt").write_bytes(b"x")
    with pytest.raises(InvalidWeightsError, match="edsr-lib convert"):
        edsr_lib.create_model("edsr_baseline_x2", weights=tmp_path / "edsr.pt")


# ------------------------------------------------------------- pretrained=True resolution
def test_pretrained_through_populated_cache_offline(
    saved: tuple[torch.nn.Module, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None
) -> None:
    model, folder = saved
    file = folder / "model.safetensors"
    _use_cfg(monkeypatch, hf_hub_id=REPO_ID, sha256=hashlib.sha256(file.read_bytes()).hexdigest())
    cache = tmp_path / "cache"
    _populate_cache(cache, REPO_ID, {"model.safetensors": file})
    loaded = edsr_lib.create_model("edsr_baseline_x2", pretrained=True, cache_dir=cache)
    assert loaded.pretrained_cfg.tag == "test"
    assert not loaded.training
    assert torch.equal(_outputs(loaded, 2), _outputs(model, 2))


def test_pretrained_with_empty_cache_offline_lists_what_was_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None
) -> None:
    _use_cfg(monkeypatch, hf_hub_id=REPO_ID, sha256="0" * 64)
    cache = tmp_path / "empty-cache"
    with pytest.raises(WeightsNotFoundError) as err:
        edsr_lib.create_model("edsr_baseline_x2", pretrained=True, cache_dir=cache)
    message = str(err.value)
    assert "edsr_baseline_x2.test" in message
    assert "package: no shipped copy" in message
    assert f"cache: {REPO_ID}/model.safetensors not in {cache}" in message
    assert "hub: offline (HF_HUB_OFFLINE=1)" in message


def test_offline_from_the_environment_alone_skips_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, online: None
) -> None:
    _use_cfg(monkeypatch, hf_hub_id=REPO_ID)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # set after huggingface_hub read its constants
    with (
        mock.patch.object(_hub, "hf_hub_download", side_effect=LocalEntryNotFoundError("not cached")) as download,
        pytest.raises(WeightsNotFoundError, match=r"hub: offline"),
    ):
        edsr_lib.create_model("edsr_baseline_x2", pretrained=True, cache_dir=tmp_path)
    assert [c.kwargs["local_files_only"] for c in download.call_args_list] == [True]


def test_pretrained_with_wrong_sha256(
    saved: tuple[torch.nn.Module, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None
) -> None:
    _, folder = saved
    file = folder / "model.safetensors"
    _use_cfg(monkeypatch, hf_hub_id=REPO_ID, sha256="ab" * 32)
    snapshot = _populate_cache(tmp_path / "cache", REPO_ID, {"model.safetensors": file})
    with pytest.raises(InvalidWeightsError) as err:
        edsr_lib.create_model("edsr_baseline_x2", pretrained=True, cache_dir=tmp_path / "cache")
    message = str(err.value)
    assert str(snapshot / "model.safetensors") in message
    assert "ab" * 32 in message
    assert hub.sha256sum(file) in message
    assert "corrupted or different weights" in message


def test_shipped_copy_comes_before_the_cache(
    saved: tuple[torch.nn.Module, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None
) -> None:
    model, folder = saved
    shipped = tmp_path / "package"
    (shipped / "edsr_baseline_x2.test").mkdir(parents=True)
    (shipped / "edsr_baseline_x2.test" / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    monkeypatch.setattr(_hub, "_shipped_weights", lambda: shipped)
    _use_cfg(monkeypatch, hf_hub_id=REPO_ID, package_file="edsr_baseline_x2.test/model.safetensors")
    with mock.patch.object(_hub, "hf_hub_download") as download:
        loaded = edsr_lib.create_model("edsr_baseline_x2", pretrained=True, cache_dir=tmp_path / "cache")
    download.assert_not_called()
    assert torch.equal(_outputs(loaded, 2), _outputs(model, 2))


def test_explicit_weights_come_before_everything_and_are_checked_against_a_named_tag(
    saved: tuple[torch.nn.Module, Path], monkeypatch: pytest.MonkeyPatch, offline: None
) -> None:
    model, folder = saved
    _use_cfg(monkeypatch, hf_hub_id=REPO_ID, sha256=hub.sha256sum(folder / "model.safetensors"))
    with mock.patch.object(_hub, "hf_hub_download") as download:
        loaded = edsr_lib.create_model("edsr_baseline_x2.test", weights=folder)
    download.assert_not_called()
    assert loaded.pretrained_cfg.tag == "test"
    assert torch.equal(_outputs(loaded, 2), _outputs(model, 2))
    _use_cfg(monkeypatch, hf_hub_id=REPO_ID, sha256="cd" * 32)
    with pytest.raises(InvalidWeightsError, match="corrupted or different weights"):
        edsr_lib.create_model("edsr_baseline_x2.test", weights=folder)


def test_hub_download_is_the_last_resort(
    saved: tuple[torch.nn.Module, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, online: None
) -> None:
    model, folder = saved
    _use_cfg(monkeypatch, hf_hub_id=REPO_ID)

    def fake_download(repo_id: str, filename: str, *, local_files_only: bool, **kwargs: object) -> str:
        assert (repo_id, filename, kwargs["cache_dir"]) == (REPO_ID, "model.safetensors", tmp_path)
        if local_files_only:
            raise LocalEntryNotFoundError("not in the cache")
        return str(folder / filename)

    with mock.patch.object(_hub, "hf_hub_download", side_effect=fake_download) as download:
        loaded = edsr_lib.create_model("edsr_baseline_x2", pretrained=True, cache_dir=tmp_path)
    assert [c.kwargs["local_files_only"] for c in download.call_args_list] == [True, False]
    assert torch.equal(_outputs(loaded, 2), _outputs(model, 2))


def test_failed_download_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, online: None) -> None:
    _use_cfg(monkeypatch, hf_hub_id=REPO_ID)
    with (
        mock.patch.object(_hub, "hf_hub_download", side_effect=LocalEntryNotFoundError("connection refused")),
        pytest.raises(WeightsNotFoundError, match=r"hub: download of .* failed \(connection refused\)"),
    ):
        edsr_lib.create_model("edsr_baseline_x2", pretrained=True, cache_dir=tmp_path)


# ----------------------------------------------------------------- push_to_hub, model card
def test_push_to_hub_creates_repo_and_uploads_the_folder() -> None:
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8)
    uploaded: dict[str, bytes] = {}

    def upload_folder(*, repo_id: str, folder_path: str, commit_message: str) -> mock.Mock:
        uploaded.update({p.name: p.read_bytes() for p in Path(folder_path).iterdir()})
        return mock.Mock(commit_url=f"https://huggingface.co/{repo_id}/commit/{COMMIT}")

    with mock.patch.object(_hub, "HfApi") as api_cls:
        api = api_cls.return_value
        api.create_repo.return_value = huggingface_hub.RepoUrl("https://huggingface.co/org/edsr-tiny")
        api.upload_folder.side_effect = upload_folder
        url = model.push_to_hub("org/edsr-tiny", private=True, token="hf_x", commit_message="weights")
    assert url == f"https://huggingface.co/org/edsr-tiny/commit/{COMMIT}"
    api_cls.assert_called_once_with(token="hf_x")
    api.create_repo.assert_called_once_with("org/edsr-tiny", private=True, exist_ok=True)
    assert api.upload_folder.call_args.kwargs["commit_message"] == "weights"
    assert sorted(uploaded) == ["README.md", "config.json", "model.safetensors"]
    assert json.loads(uploaded["config.json"]) == model.config
    assert 'edsr_lib.from_pretrained("org/edsr-tiny")' in uploaded["README.md"].decode()


def test_push_to_hub_refuses_fused_model() -> None:
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).fuse()
    with mock.patch.object(_hub, "HfApi") as api_cls, pytest.raises(ValueError, match="fused"):
        model.push_to_hub("org/x")
    api_cls.assert_not_called()


def test_model_card_front_matter_usage_and_metrics() -> None:
    cfg = PretrainedCfg(
        hf_hub_id="edsr-lib/edsr_baseline_x2",
        license="mit",
        training_data="T91 + BSD200 (291 images), bicubic x2",
        training_command="edsr-lib train --model edsr_baseline_x2",
        steps=300_000,
        metrics={"Set5": {"x2": {"psnr": 37.512, "ssim": 0.95871}}, "Set14": {"x2": {"psnr": 33.0}}},
        architecture="edsr_baseline_x2",
        tag="t291",
    )
    model = edsr_lib.create_model("edsr_baseline_x2")
    text = hub.model_card(model, cfg, base_model="edsr-lib/other")
    card = ModelCard(text)
    assert card.data.license == "mit"
    assert card.data.library_name == "edsr-lib"
    assert card.data.tags[:2] == ["super-resolution", "edsr"]
    assert card.data.datasets == ["T91", "BSD200"]
    assert card.data.base_model == "edsr-lib/other"
    assert 'edsr_lib.create_model("edsr_baseline_x2.t291", pretrained=True)' in card.text
    assert "1,369,859 parameters" in card.text
    assert "- Steps: 300,000" in card.text
    assert "`edsr-lib train --model edsr_baseline_x2`" in card.text
    assert "| set | x2 |" in card.text
    assert "| Set5 | 37.51 / 0.9587 |" in card.text
    assert "| Set14 | 33.00 |" in card.text


def test_model_card_of_multi_scale_model_orders_scales() -> None:
    cfg = PretrainedCfg(
        metrics={"Set5": {"x4": {"psnr": 31.0}, "x2": {"psnr": 37.0}, "x3": {"psnr": 33.0}}},
        architecture="mdsr_baseline",
        tag="t",
    )
    text = hub.model_card(edsr_lib.create_model("mdsr_baseline"), cfg)
    assert "| set | x2 | x3 | x4 |" in text
    assert "| Set5 | 37.00 | 33.00 | 31.00 |" in text
    assert "license: unknown" in text


def test_sha256sum_matches_hashlib(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 + 17)
    (tmp_path / "f").write_bytes(data)
    assert hub.sha256sum(tmp_path / "f", chunk_size=1000) == hashlib.sha256(data).hexdigest()


def test_model_card_results_are_structured_and_parse_back() -> None:
    metrics = {
        "Set5": {"x2": {"psnr": 37.512, "ssim": 0.95871}, "x4": {"psnr": 31.1}},
        "Set5+": {"x2": {"psnr": 37.6}},
    }
    cfg = PretrainedCfg(license="mit", metrics=metrics, architecture="mdsr_baseline", tag="t")
    card = ModelCard(hub.model_card(edsr_lib.create_model("mdsr_baseline"), cfg))
    assert card.data.model_name == "mdsr_baseline.t"
    assert card.data.pipeline_tag == "image-to-image"
    assert card.data.library_name == "edsr-lib"
    assert card.data.license == "mit"
    assert "arxiv:1707.02921" in card.data.tags
    assert "[arXiv:1707.02921](https://arxiv.org/abs/1707.02921)" in card.text
    got = {
        (r.dataset_type, r.dataset_config, r.metric_type, r.metric_args["self_ensemble"]): r.metric_value
        for r in card.data.eval_results
    }
    assert got == {
        ("Set5", "bicubic_x2", "psnr", False): 37.512,
        ("Set5", "bicubic_x2", "ssim", False): 0.9587,
        ("Set5", "bicubic_x4", "psnr", False): 31.1,
        ("Set5", "bicubic_x2", "psnr", True): 37.6,
    }
    assert {r.task_type for r in card.data.eval_results} == {"image-to-image"}
    assert {r.metric_args["crop_border"] for r in card.data.eval_results} == {2, 4}
    assert "model-index:" in str(card)


def test_model_card_is_built_from_sections_in_one_order() -> None:
    cfg = PretrainedCfg(
        license="mit", steps=10, metrics={"Set5": {"x2": {"psnr": 37.0}}}, architecture="edsr_baseline_x2", tag="t"
    )
    model = edsr_lib.create_model("edsr_baseline_x2")
    sections = {"Comparison": "| a | b |\n|---|---|", "Training": "- Weights: step 10.\n", "Notes": "Read me."}
    text = hub.model_card(model, cfg, sections=sections)
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["Usage", "Training", "Results", "Comparison", "Notes", "License", "Citation"]
    training = text[text.index("## Training\n") : text.index("## Results\n")]
    assert training == "## Training\n\n- Steps: 10\n\n- Weights: step 10.\n\n"
    assert "## Comparison\n\n| a | b |\n|---|---|\n\n## Notes\n\nRead me.\n\n## License\n" in text
    # a section the card lacks (no training data here) is the given text alone
    assert "## Training\n\n- Weights: x\n\n## License" in hub.model_card(
        model,
        PretrainedCfg(license="mit", architecture="edsr_baseline_x2", tag="t"),
        sections={"Training": "- Weights: x"},
    )
    assert hub.model_card(model, cfg, sections={}) == hub.model_card(model, cfg)
    with pytest.raises(ValueError, match="License section is the card's own"):
        hub.model_card(model, cfg, sections={"License": "GPL"})


def test_model_card_without_metrics_has_no_model_index() -> None:
    text = hub.model_card(edsr_lib.create_model("edsr_baseline_x2"))
    assert "model-index" not in text
    assert ModelCard(text).data.eval_results is None


_WEIGHTS_DIR = Path(edsr_lib.__file__).parent / "weights"


@pytest.mark.parametrize(
    "name", [n for n in edsr_lib.list_models(pretrained=True) if (_WEIGHTS_DIR / n / "README.md").is_file()]
)
def test_shipped_cards_carry_the_registry_results(name: str) -> None:
    """Each card in the package (weights shipped or Hub-only) is what model_card_data makes of its config."""
    cfg = edsr_lib.get_pretrained_cfg(name)
    card = ModelCard.load(_WEIGHTS_DIR / name / "README.md")
    model = edsr_lib.create_model(cfg.architecture)
    assert card.data.to_dict() == hub.model_card_data(model, cfg).to_dict()
    results = {
        (r.dataset_type, r.dataset_config, r.metric_type, r.metric_args["self_ensemble"]): r.metric_value
        for r in card.data.eval_results
    }
    for metrics_key, per_scale in cfg.metrics.items():
        set_name, degraded = split_metric_key(metrics_key)  # scores on degraded LR: another config of the set
        config = f"bicubic_{degraded.key}" if degraded is not None else "bicubic"
        for scale, scores in per_scale.items():
            for metric, value in scores.items():
                key = (set_name.removesuffix("+"), f"{config}_{scale}", metric, set_name.endswith("+"))
                assert results[key] == pytest.approx(value, abs=5e-5)
    assert f"arXiv:{hub.PAPER_ARXIV_ID}" in card.text
    assert card.data.license and card.data.license != "unknown"
    headings = [line[3:] for line in card.text.splitlines() if line.startswith("## ")]
    assert len(headings) == len(set(headings)) and "Training details" not in headings, headings


def _populate_revision(cache: Path, repo_id: str, commit: str, file: Path) -> None:
    snapshot = cache / f"models--{repo_id.replace('/', '--')}" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(file.read_bytes())


def test_pretrained_revision_is_passed_to_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None
) -> None:
    """The cache holds two commits; the one the config pins is loaded, main otherwise."""
    old, new = edsr_lib.create_model("edsr_baseline_x2"), edsr_lib.create_model("edsr_baseline_x2")
    old_file = old.save_pretrained(tmp_path / "old") / "model.safetensors"
    new_file = new.save_pretrained(tmp_path / "new") / "model.safetensors"
    cache = tmp_path / "cache"
    _populate_cache(cache, REPO_ID, {"model.safetensors": new_file})  # main -> COMMIT
    pinned = "fedcba9876543210fedcba9876543210fedcba98"
    _populate_revision(cache, REPO_ID, pinned, old_file)

    _use_cfg(monkeypatch, hf_hub_id=REPO_ID, revision=pinned, sha256=hub.sha256sum(old_file))
    loaded = edsr_lib.create_model("edsr_baseline_x2", pretrained=True, cache_dir=cache)
    assert torch.equal(_outputs(loaded, 2), _outputs(old, 2))
    assert loaded.pretrained_cfg.revision == pinned

    _use_cfg(monkeypatch, hf_hub_id=REPO_ID, sha256=hub.sha256sum(new_file))
    loaded = edsr_lib.create_model("edsr_baseline_x2", pretrained=True, cache_dir=cache)
    assert torch.equal(_outputs(loaded, 2), _outputs(new, 2))

    absent = "1" * 40
    _use_cfg(monkeypatch, hf_hub_id=REPO_ID, revision=absent)
    with pytest.raises(WeightsNotFoundError, match=f"model.safetensors at revision {absent} not in"):
        edsr_lib.create_model("edsr_baseline_x2", pretrained=True, cache_dir=cache)


def test_pretrained_revision_reaches_the_download(
    saved: tuple[torch.nn.Module, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, online: None
) -> None:
    _, folder = saved
    _use_cfg(monkeypatch, hf_hub_id=REPO_ID, revision="v1.0")

    def fake_download(repo_id: str, filename: str, *, local_files_only: bool, **kwargs: object) -> str:
        if local_files_only:
            raise LocalEntryNotFoundError("not in the cache")
        return str(folder / filename)

    with mock.patch.object(_hub, "hf_hub_download", side_effect=fake_download) as download:
        edsr_lib.create_model("edsr_baseline_x2", pretrained=True, cache_dir=tmp_path)
    assert [c.kwargs["revision"] for c in download.call_args_list] == ["v1.0", "v1.0"]


# ------------------------------------------------------------------ a name, a folder or a file
def test_resolve_weights_tells_a_name_a_folder_and_a_file_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8)
    model.save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"

    folder = hub.resolve_weights(tmp_path / "m")
    assert (folder.kind, folder.weights_file, folder.cfg) == ("folder", weights, None)
    assert folder.sha256() == hub.sha256sum(weights)
    assert folder.state_dict().keys() == model.state_dict().keys()
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        assert torch.equal(folder.load_model()(x), model.eval()(x))
        # a model.safetensors beside its config.json stands for the folder
        assert torch.equal(hub.resolve_weights(str(weights)).load_model()(x), model(x))

    lone = tmp_path / "lone.safetensors"
    lone.write_bytes(weights.read_bytes())
    found = hub.resolve_weights(lone)
    assert found.kind == "file" and found.sha256() == folder.sha256()
    assert torch.equal(found.state_dict()["head.weight"], model.state_dict()["head.weight"])
    with pytest.raises(ValueError, match=r"lone\.safetensors is a file, which does not say what model"):
        found.load_model()
    (tmp_path / "c.pt").write_bytes(b"x")
    with pytest.raises(InvalidWeightsError, match=r"c\.pt is not a \.safetensors file"):
        hub.resolve_weights(tmp_path / "c.pt").state_dict()

    named = hub.resolve_weights("edsr_baseline_x2")
    cfg = registry.get_pretrained_cfg("edsr_baseline_x2")
    assert named.kind == "pretrained" and named.cfg == cfg and named.weights_file is None
    assert named.sha256() == cfg.sha256
    shipped = edsr_lib.create_model("edsr_baseline_x2", pretrained=True).state_dict()
    assert all(torch.equal(shipped[k], v) for k, v in named.state_dict().items())
    assert named.state_dict().keys() == shipped.keys()

    # an existing path wins over a model name
    monkeypatch.chdir(tmp_path)
    model.save_pretrained(tmp_path / "edsr_baseline_x2")
    assert hub.resolve_weights("edsr_baseline_x2").kind == "folder"


def test_resolve_weights_errors_name_the_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="'no_such_model' is neither a registered model name nor a folder"):
        hub.resolve_weights("no_such_model")
    with pytest.raises(WeightsNotFoundError, match=r"has no model\.safetensors"):
        hub.resolve_weights(tmp_path)
    monkeypatch.setitem(registry.pretrained_cfgs, "edsr_x2", {})
    with pytest.raises(WeightsNotFoundError, match="edsr_x2 has no pretrained weights"):
        hub.resolve_weights("edsr_x2")
    with pytest.raises(WeightsNotFoundError, match="no pretrained tag 'nope'"):
        hub.resolve_weights("edsr_baseline_x2.nope")


def test_diff_state_dicts() -> None:
    expected = {"a": torch.zeros(2, 3), "b": torch.Size([4]), "c": None, "d": torch.zeros(1)}
    found = {"a": torch.zeros(3, 2), "b": torch.zeros(4), "c": torch.zeros(7), "e": torch.zeros(1)}
    diff = hub.diff_state_dicts(expected, found)
    assert diff.missing == ["d"] and diff.unexpected == ["e"]
    assert diff.wrong_shapes == [("a", (3, 2), (2, 3))]
    assert diff
    fixed = {k: v for k, v in found.items() if k != "e"} | {"a": torch.zeros(2, 3), "d": torch.ones(1)}
    assert not hub.diff_state_dicts(expected, fixed)


def test_a_config_edited_by_hand_is_refused_not_silently_wrong(tmp_path: Path) -> None:
    """rgb_range shapes no tensor: only the config recorded beside the weights shows it was changed."""
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8)
    folder = model.save_pretrained(tmp_path / "saved")
    config = json.loads((folder / "config.json").read_text())
    config["rgb_range"] = 1.0
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(edsr_lib.hub.InvalidWeightsError, match=r"rgb_range=255\.0 when saved but 1\.0 now"):
        edsr_lib.from_pretrained(folder)
    config["rgb_range"] = 255.0  # restored: loads again
    (folder / "config.json").write_text(json.dumps(config))
    assert edsr_lib.from_pretrained(folder).config["rgb_range"] == 255.0
