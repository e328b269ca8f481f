"""The model registry and its timm bridge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch

import edsr_lib
import edsr_lib.timm_bridge  # timm's way: importing it registers the models in timm
import edsr_lib.weights
from edsr_lib import registry
from edsr_lib.registry import PretrainedCfg

ALL = [
    "edsr_baseline_x2",
    "edsr_baseline_x3",
    "edsr_baseline_x4",
    "edsr_x2",
    "edsr_x3",
    "edsr_x4",
    "mdsr",
    "mdsr_baseline",
]


def test_list_models() -> None:
    assert edsr_lib.list_models() == ALL
    assert edsr_lib.list_models("edsr*") == ALL[:6]
    assert edsr_lib.list_models("*baseline*") == [
        "edsr_baseline_x2",
        "edsr_baseline_x3",
        "edsr_baseline_x4",
        "mdsr_baseline",
    ]
    assert edsr_lib.list_models(["mdsr", "edsr_x4"]) == ["edsr_x4", "mdsr"]


def test_create_model_by_family_and_scale() -> None:
    model = edsr_lib.create_model("edsr_baseline", scale=3)
    assert model.variant == "edsr_baseline_x3" and model.scale == 3
    with pytest.raises(ValueError, match=r"edsr_baseline has no variant for scale 5; its scales: \(2, 3, 4\)"):
        edsr_lib.create_model("edsr_baseline", scale=5)


def test_create_model_overrides() -> None:
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=2, res_scale=0.5)
    assert len(model.body) == 3 and model.config["res_scale"] == 0.5


def test_unknown_model_suggests_names() -> None:
    with pytest.raises(ValueError, match="did you mean edsr_baseline_x2"):
        edsr_lib.create_model("edsr_basline_x2")


def test_no_pretrained_weights_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._pretrained_cfgs, "edsr_x4", {})
    with pytest.raises(ValueError, match="edsr_x4 has no pretrained weights"):
        edsr_lib.create_model("edsr_x4", pretrained=True)


def test_pretrained_cfgs_are_data(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = PretrainedCfg(hf_hub_id="org/x", architecture="edsr_x2", tag="a")
    monkeypatch.setitem(
        registry._pretrained_cfgs, "edsr_x2", {"a": cfg, "b": PretrainedCfg(architecture="edsr_x2", tag="b")}
    )
    assert edsr_lib.get_pretrained_cfg("edsr_x2") is cfg  # first tag is the default
    assert edsr_lib.get_pretrained_cfg("edsr_x2.b").tag == "b"
    assert cfg.name == "edsr_x2.a" and cfg.has_weights
    assert "edsr_x2.a" in edsr_lib.list_models(pretrained=True)
    assert "edsr_x2.b" not in edsr_lib.list_models(pretrained=True)  # says nowhere where its weights are
    with pytest.raises(ValueError, match="no pretrained tag 'c'; its tags: a, b"):
        edsr_lib.get_pretrained_cfg("edsr_x2.c")


def test_shipped_cfgs_are_completed_from_their_name_and_folder() -> None:
    cfg = edsr_lib.get_pretrained_cfg("edsr_baseline_x2.t528")
    assert cfg.hf_hub_id == "edsr-lib/edsr_baseline_x2.t528"  # "edsr-lib/" + arch.tag
    assert cfg.package_file == "edsr_baseline_x2.t528/model.safetensors"
    assert cfg.filename == "model.safetensors"
    # provenance and scores come from edsr_lib/weights/edsr_baseline_x2.t528/pretrained.json
    assert cfg.steps == 1250 and cfg.metrics["Set5"]["x2"]["psnr"] == 37.686
    assert "--train-dir .data/split/train/T91 .data/split/train/BSD200" in cfg.training_command
    # and so for a replaced, Hub-only tag, whose folder keeps pretrained.json and the card
    old = edsr_lib.get_pretrained_cfg("edsr_baseline_x2.t291")
    assert old.hf_hub_id == "edsr-lib/edsr_baseline_x2.t291" and old.package_file is None
    assert old.steps == 12000 and old.metrics["Set5"]["x2"]["psnr"] == 37.657
    assert "--train-dir $DATA/T91/HR $DATA/BSD200/HR" in old.training_command
    for shipped in edsr_lib.list_pretrained():  # weights of this library's own: its training says how it made them
        assert shipped.metrics and (shipped.training_command or shipped.third_party), shipped.name
    # the default tag of every architecture with weights of its own ships in the package (third-party files
    # are downloaded); replaced weights (the t291 weights replaced by t528) keep their config and card but are Hub-only
    for name in edsr_lib.list_models(pretrained=True, include_tags=False):
        cfgs = [cfg for cfg in edsr_lib.list_pretrained(name) if cfg.architecture == name]
        if any(not cfg.third_party for cfg in cfgs):
            assert edsr_lib.get_pretrained_cfg(name).package_file, name
    assert edsr_lib.get_pretrained_cfg("mdsr_baseline").tag == "t528"
    assert edsr_lib.get_pretrained_cfg("mdsr_baseline.t291").package_file is None
    for name in ("edsr_baseline_x2", "edsr_baseline_x3", "edsr_baseline_x4"):
        assert edsr_lib.get_pretrained_cfg(name).tag == "t528"
        assert edsr_lib.get_pretrained_cfg(f"{name}.t291").package_file is None


def test_provenance_has_one_owner(tmp_path: Path) -> None:
    twice = PretrainedCfg(hf_hub_id="edsr-lib/", steps=5)
    with pytest.raises(ValueError, match=r"steps belong in edsr_lib/weights/edsr_baseline_x2\.t291/pretrained\.json"):
        registry._complete_cfg(twice, "edsr_baseline_x2", "t291")
    (tmp_path / "m.t").mkdir()
    (tmp_path / "m.t" / "pretrained.json").write_text(json.dumps({"steps": 1, "score": 2}))
    with pytest.raises(ValueError, match=r"keys among training_data, .*; unknown: score"):
        edsr_lib.weights.shipped("m.t", root=tmp_path)
    (tmp_path / "m.t" / "pretrained.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        edsr_lib.weights.shipped("m.t", root=tmp_path)
    assert edsr_lib.weights.shipped("nothing.here", root=tmp_path) == {}


def test_register_model_refuses_a_duplicate() -> None:
    def edsr_x2(pretrained: bool = False, **kwargs: object) -> None: ...

    with pytest.raises(ValueError, match="already registered"):
        edsr_lib.register_model(edsr_x2)


def test_models_are_in_timms_registry() -> None:
    assert timm.list_models("edsr*") == ALL[:6]
    assert set(timm.list_models("mdsr*")) == {"mdsr", "mdsr_baseline"}
    model = timm.create_model("edsr_baseline_x2")
    assert isinstance(model, edsr_lib.EDSR) and model.num_parameters() == 1_369_859
    model = timm.create_model("mdsr_baseline", n_resblocks=2)
    assert len(model.body) == 3
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 3, 4, 4), scale=4).shape == (1, 3, 16, 16)


def test_timm_pretrained_goes_through_edsr_lib(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    sentinel = torch.nn.Identity()

    def fake_create_model(name: str, pretrained: bool = False, **kwargs: object) -> torch.nn.Module:
        seen.update(name=name, pretrained=pretrained, **kwargs)
        return sentinel

    monkeypatch.setattr(registry, "create_model", fake_create_model)
    assert timm.create_model("edsr_baseline_x3.t291", pretrained=True) is sentinel
    assert seen["name"] == "edsr_baseline_x3.t291" and seen["pretrained"] is True
