"""The model registry and its timm bridge."""

from __future__ import annotations

import json
import re
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
    monkeypatch.setitem(registry.pretrained_cfgs, "edsr_x4", {})
    with pytest.raises(ValueError, match="edsr_x4 has no pretrained weights"):
        edsr_lib.create_model("edsr_x4", pretrained=True)


def test_pretrained_cfgs_are_data(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = PretrainedCfg(hf_hub_id="org/x", architecture="edsr_x2", tag="a")
    monkeypatch.setitem(
        registry.pretrained_cfgs, "edsr_x2", {"a": cfg, "b": PretrainedCfg(architecture="edsr_x2", tag="b")}
    )
    assert edsr_lib.get_pretrained_cfg("edsr_x2") is cfg  # first tag is the default
    assert edsr_lib.get_pretrained_cfg("edsr_x2.b").tag == "b"
    assert cfg.name == "edsr_x2.a" and cfg.has_weights
    assert "edsr_x2.a" in edsr_lib.list_models(pretrained=True)
    assert "edsr_x2.b" not in edsr_lib.list_models(pretrained=True)  # says nowhere where its weights are
    with pytest.raises(ValueError, match="no pretrained tag 'c'; its tags: a, b"):
        edsr_lib.get_pretrained_cfg("edsr_x2.c")


#: The library's own tags (not third-party files): each has a folder in edsr_lib/weights/.
OWN = [cfg for cfg in edsr_lib.list_pretrained() if not cfg.third_party]


@pytest.mark.parametrize("cfg", OWN, ids=[cfg.name for cfg in OWN])
def test_own_cfgs_are_completed_from_their_name_and_folder(cfg: PretrainedCfg) -> None:
    assert cfg.hf_hub_id == f"edsr-lib/{cfg.name}"  # "edsr-lib/" + arch.tag
    assert cfg.filename == "model.safetensors"
    # provenance and scores come from edsr_lib/weights/<arch.tag>/pretrained.json, and the file where it ships
    found = edsr_lib.weights.shipped(cfg.name)
    assert {k: getattr(cfg, k) for k in found} == found
    assert sorted(found) == sorted(
        {*edsr_lib.weights.PROVENANCE_FIELDS, *(["package_file"] if cfg.package_file else [])}
    )
    assert cfg.package_file in (None, f"{cfg.name}/model.safetensors")


def test_provenance_has_one_owner(tmp_path: Path) -> None:
    twice = PretrainedCfg(hf_hub_id="edsr-lib/", steps=5)
    own = OWN[0]
    with pytest.raises(ValueError, match=rf"steps belong in edsr_lib/weights/{re.escape(own.name)}/pretrained\.json"):
        registry.complete_cfg(twice, own.architecture, own.tag)
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
    # a tag that is not the default one, so that timm must pass it on
    tagged = next(
        cfg.name for cfg in edsr_lib.list_pretrained() if cfg != edsr_lib.get_pretrained_cfg(cfg.architecture)
    )
    assert timm.create_model(tagged, pretrained=True) is sentinel
    assert seen["name"] == tagged and seen["pretrained"] is True
