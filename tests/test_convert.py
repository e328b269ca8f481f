"""Third-party checkpoints: state dicts built in each layout convert back to the same model.

Each layout is written by a helper in ``convert_reference.py`` that renames a library
state dict by hand (not with the converter's tables), and each converted model is compared
with an independent functional re-implementation of that layout's forward pass. Files
written by the real packages are in ``test_convert_packages.py``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from convert_reference import (
    DIV2K,
    close,
    mean_shifts,
    reference_basicsr,
    reference_edsr_pytorch,
    reference_mdsr,
    to_basicsr,
    to_edsr_pytorch,
    to_edsr_pytorch_mdsr,
    to_super_image,
)
from safetensors.torch import save_file

import edsr_lib
from edsr_lib import EDSR, MDSR
from edsr_lib.cli import main
from edsr_lib.convert import (
    OFFICIAL_CHECKPOINTS,
    AmbiguousLayoutError,
    OfficialCheckpoint,
    convert,
    detect,
    identify_file,
    load_state_dict,
)


def _same_weights(model: torch.nn.Module, original: torch.nn.Module) -> None:
    got, want = model.state_dict(), original.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(1, 3, 6, 7)


def _small_edsr(scale: int, **kwargs) -> EDSR:
    return EDSR(scale=scale, n_resblocks=2, n_feats=8, **kwargs)


# -------------------------------------------------------------------- EDSR-PyTorch
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_official_edsr_baseline_converts_back(scale: int, x: torch.Tensor, tmp_path: Path) -> None:
    original = edsr_lib.create_model(f"edsr_baseline_x{scale}").eval()
    sd = to_edsr_pytorch(original)
    path = tmp_path / "edsr.pt"
    torch.save(sd, path)

    model = convert(path, layout="edsr-pytorch")
    spec = model.conversion
    assert (spec.layout, spec.architecture, spec.scales) == ("edsr-pytorch", "edsr", (scale,))
    assert model.config == original.config
    assert model.num_parameters() == original.num_parameters()
    assert sorted(spec.absorbed) == ["add_mean.bias", "add_mean.weight", "sub_mean.bias", "sub_mean.weight"]
    assert len([k for k in sd if k.startswith("tail.0.") and k.endswith(".weight")]) == (2 if scale == 4 else 1)
    _same_weights(model, original)
    with torch.no_grad():
        y = model(x)
        assert torch.equal(y, original(x))
        close(y, reference_edsr_pytorch(sd, x * 255, scale) / 255)
    assert y.shape == (1, 3, 6 * scale, 7 * scale)


@pytest.mark.parametrize("order", [(2, 3, 4), (4, 2, 3)])
def test_official_mdsr_baseline_branches_follow_their_upsamplers(order: tuple[int, ...], x: torch.Tensor) -> None:
    original = edsr_lib.create_model("mdsr_baseline").eval()
    sd = to_edsr_pytorch_mdsr(original, order)
    spec = detect(sd)
    assert (spec.layout, spec.architecture, spec.scales) == ("edsr-pytorch", "mdsr", (2, 3, 4))
    assert spec.key_map[f"upsample.{order.index(3)}.0.weight"] == "upsample.x3.0.weight"
    assert spec.key_map[f"pre_process.{order.index(4)}.1.body.2.bias"] == "pre_process.x4.1.body.2.bias"
    model = spec.load(sd)
    assert model.config == original.config
    _same_weights(model, original)
    with torch.no_grad():
        for branch, scale in enumerate(order):
            y = model(x, scale=scale)
            assert torch.equal(y, original(x, scale=scale))
            close(y, reference_mdsr(sd, x * 255, branch, scale) / 255)


def test_official_large_edsr_gets_residual_scaling_from_its_size() -> None:
    with torch.device("meta"):  # 40 M parameters: shapes are all detection needs
        original = edsr_lib.create_model("edsr_x2")
        sd = to_edsr_pytorch(original)
    sd.update(mean_shifts(255.0 * torch.tensor(DIV2K)))
    spec = detect(sd, layout="edsr-pytorch")
    assert spec.kwargs["res_scale"] == 0.1
    assert {"architecture": "edsr", **spec.kwargs} == {k: v for k, v in original.config.items() if k in spec.kwargs} | {
        "architecture": "edsr"
    }
    assert any("0.1 assumed" in note for note in spec.notes)
    assert detect(sd, layout="edsr-pytorch", res_scale=0.5).kwargs["res_scale"] == 0.5


def test_official_mean_shift_values_are_carried_into_the_config(x: torch.Tensor) -> None:
    original = _small_edsr(2).eval()
    # trained in [0, 1] (--rgb_range 1): the bias is the DIV2K mean itself
    sd = to_edsr_pytorch(original, shift=torch.tensor(DIV2K))
    spec = detect(sd, layout="edsr-pytorch")
    assert spec.kwargs["rgb_range"] == 1.0
    assert spec.kwargs["rgb_mean"] == list(DIV2K)
    with torch.no_grad():
        close(spec.load(sd)(x), reference_edsr_pytorch(sd, x, 2))

    # another dataset's mean: carried, and said so
    sd = to_edsr_pytorch(original, shift=255.0 * torch.tensor([0.5, 0.4, 0.3]))
    spec = detect(sd, layout="edsr-pytorch")
    assert spec.kwargs["rgb_range"] == 255.0
    assert spec.kwargs["rgb_mean"] == pytest.approx([0.5, 0.4, 0.3], abs=1e-7)
    assert any("rgb_mean" in note for note in spec.notes)
    with torch.no_grad():
        close(spec.load(sd)(x), reference_edsr_pytorch(sd, x * 255, 2) / 255)


# ------------------------------------------------------------------------- BasicSR
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_basicsr_prefers_params_ema(scale: int, x: torch.Tensor, tmp_path: Path) -> None:
    original = _small_edsr(scale).eval()
    ema = to_basicsr(original)
    noise = {k: torch.randn_like(v) for k, v in ema.items()}
    path = tmp_path / "basicsr.pth"
    torch.save({"params": noise, "params_ema": ema}, path)

    model = convert(path)
    spec = model.conversion
    assert (spec.layout, spec.architecture, spec.scales) == ("basicsr", "edsr", (scale,))
    assert any("params_ema" in note for note in spec.notes)
    assert any("img_range" in note for note in spec.notes)
    assert model.config == original.config
    _same_weights(model, original)
    with torch.no_grad():
        assert torch.equal(model(x), original(x))
        close(model(x), reference_basicsr(ema, x, scale))


def test_basicsr_mean_tensor_and_range_override(x: torch.Tensor) -> None:
    mean = (0.5, 0.45, 0.4)
    original = _small_edsr(2, rgb_mean=mean, rgb_range=1.0).eval()
    sd = to_basicsr(original)
    sd["mean"] = torch.tensor(mean).view(1, 3, 1, 1)
    spec = detect(sd, rgb_range=1.0)
    assert spec.kwargs["rgb_mean"] == pytest.approx(list(mean))
    assert spec.absorbed == ("mean",)
    with torch.no_grad():
        close(spec.load(sd)(x), reference_basicsr(sd, x, 2, img_range=1.0, mean=mean))
    with pytest.raises(ValueError, match="rgb_mean cannot be set"):
        detect(sd, rgb_mean=DIV2K)


def test_data_parallel_prefix_and_wrappers_are_removed(tmp_path: Path) -> None:
    sd = to_basicsr(_small_edsr(2))
    path = tmp_path / "dp.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}, path)
    loaded = load_state_dict(path)
    assert loaded.keys() == sd.keys()
    assert all(torch.equal(loaded[k], sd[k]) for k in sd)
    notes = convert(path).conversion.notes
    assert "unwrapped 'state_dict'" in notes
    assert "stripped the 'module.' prefix of DataParallel" in notes

    torch.save({"model": sd}, path)
    assert load_state_dict(path).keys() == sd.keys()


def test_safetensors_files_are_read(tmp_path: Path, x: torch.Tensor) -> None:
    original = _small_edsr(3).eval()
    path = tmp_path / "edsr.safetensors"
    save_file(to_basicsr(original), str(path))
    with torch.no_grad():
        assert torch.equal(convert(path)(x), original(x))


# --------------------------------------------------------------------- super-image
def test_super_image_is_recognised_by_its_config(x: torch.Tensor, tmp_path: Path) -> None:
    original = _small_edsr(2, rgb_range=1.0, rgb_mean=(0.0, 0.0, 0.0)).eval()
    sd = to_super_image(original)
    path = tmp_path / "pytorch_model_2x.pt"
    torch.save(sd, path)
    config = {"model_type": "EDSR", "scale": 2, "n_resblocks": 2, "n_feats": 8, "n_colors": 3, "res_scale": 1}
    (tmp_path / "config.json").write_text(json.dumps({**config, "rgb_range": 255, "data_parallel": False}))

    model = convert(path)
    spec = model.conversion
    assert (spec.layout, spec.architecture, spec.scales) == ("super-image", "edsr", (2,))
    assert (spec.kwargs["rgb_range"], spec.kwargs["rgb_mean"]) == (1.0, [0.0, 0.0, 0.0])
    assert not any("res_scale is stored in no checkpoint" in note for note in spec.notes)  # read from config.json
    _same_weights(model, original)
    with torch.no_grad():
        assert torch.equal(model(x), original(x))
        close(model(x), reference_edsr_pytorch(sd, x, 2, mean_shift=False))

    (tmp_path / "config.json").write_text(json.dumps({**config, "n_feats": 64}))
    with pytest.raises(ValueError, match="n_feats 64"):
        convert(path)


def test_super_image_layout_can_be_forced(x: torch.Tensor) -> None:
    original = _small_edsr(4, rgb_range=1.0, rgb_mean=(0.0, 0.0, 0.0)).eval()
    sd = to_super_image(original)
    with pytest.raises(AmbiguousLayoutError, match=r"edsr-pytorch.*super-image.*layout='edsr-pytorch'") as err:
        detect(sd)  # the same key names: tensors cannot tell
    assert err.value.layouts == ("edsr-pytorch", "super-image", "torchsr")
    assert err.value.specs["super-image"].kwargs["rgb_range"] == 1.0
    assert err.value.specs["edsr-pytorch"].kwargs["rgb_range"] == 255.0
    spec = detect(sd, layout="super-image")
    with torch.no_grad():
        close(spec.load(sd)(x), reference_edsr_pytorch(sd, x, 4, mean_shift=False))
    with pytest.raises(ValueError, match="MdsrModel"):
        detect(to_edsr_pytorch_mdsr(MDSR(n_resblocks=1, n_feats=8)), layout="super-image")


# ------------------------------------------------------------------------ refusals
@pytest.fixture
def official_sd() -> dict[str, torch.Tensor]:
    return to_edsr_pytorch(_small_edsr(2))


def test_refuses_a_missing_key(official_sd: dict[str, torch.Tensor]) -> None:
    del official_sd["body.1.body.2.bias"]
    with pytest.raises(ValueError, match=r"edsr-pytorch layout.*missing keys: body\.1\.body\.2\.bias"):
        detect(official_sd)
    del official_sd["sub_mean.bias"]
    with pytest.raises(ValueError, match=r"missing keys: .*sub_mean\.bias"):
        detect(official_sd)


def test_refuses_an_extra_key(official_sd: dict[str, torch.Tensor]) -> None:
    official_sd["body.1.body.1.running_mean"] = torch.zeros(8)
    with pytest.raises(ValueError, match=r"unexpected keys: body\.1\.body\.1\.running_mean"):
        detect(official_sd)


def test_refuses_a_wrong_shape(official_sd: dict[str, torch.Tensor]) -> None:
    official_sd["body.0.body.0.weight"] = torch.zeros(8, 8, 5, 5)
    with pytest.raises(ValueError, match=r"wrong shapes or dtypes: body\.0\.body\.0\.weight \(8, 8, 5, 5\)"):
        detect(official_sd)


def test_refuses_an_unsupported_upsampler(official_sd: dict[str, torch.Tensor]) -> None:
    official_sd["tail.0.0.weight"] = torch.zeros(8 * 16, 8, 3, 3)  # one x4 pixel shuffle: not EDSR's upsampler
    official_sd["tail.0.0.bias"] = torch.zeros(8 * 16)
    with pytest.raises(ValueError, match=r"unsupported upsampler at tail\.0\.\*: 16F"):
        detect(official_sd)


def test_refuses_an_unknown_layout() -> None:
    with pytest.raises(ValueError, match="unknown layout"):
        detect({"encoder.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="edsr-lib's own format"):
        detect(_small_edsr(2).state_dict())
    with pytest.raises(ValueError, match="unknown layout 'keras'"):
        detect(to_basicsr(_small_edsr(2)), layout="keras")
    with pytest.raises(ValueError, match="key names are basicsr's"):
        detect(to_basicsr(_small_edsr(2)), layout="edsr-pytorch")


def test_refuses_mean_shifts_it_cannot_represent(official_sd: dict[str, torch.Tensor]) -> None:
    bad_std = dict(official_sd, **{"sub_mean.weight": official_sd["sub_mean.weight"] / 0.5})
    with pytest.raises(ValueError, match="rgb_std"):
        detect(bad_std, layout="edsr-pytorch")
    disagree = dict(official_sd, **{"add_mean.bias": official_sd["add_mean.bias"] + 1})
    with pytest.raises(ValueError, match="different means"):
        detect(disagree, layout="edsr-pytorch")
    # super-image never applies its mean shifts, so it reads them: that one layout can is no licence to pick it
    with pytest.raises(AmbiguousLayoutError, match=r"edsr-pytorch and torchsr \(alike\).*cannot read it.*rgb_std"):
        detect(bad_std)
    assert detect(bad_std, layout="super-image").kwargs["rgb_range"] == 1.0


def test_layouts_that_read_alike_are_no_ambiguity() -> None:
    original = edsr_lib.create_model("mdsr_baseline")
    spec = detect(to_edsr_pytorch_mdsr(original))  # MDSR's names are EDSR-PyTorch's alone
    assert spec.layout == "edsr-pytorch" and not any("alike" in note for note in spec.notes)
    sd = to_edsr_pytorch(_small_edsr(2))
    with pytest.raises(AmbiguousLayoutError) as err:
        detect(sd)
    assert err.value.specs["torchsr"].kwargs == err.value.specs["edsr-pytorch"].kwargs
    # the torchSR reading is fixed at 255: a [0, 1] EDSR-PyTorch file is another model there
    sd = to_edsr_pytorch(_small_edsr(2), shift=torch.tensor(DIV2K))
    with pytest.raises(AmbiguousLayoutError) as err:
        detect(sd)
    assert err.value.specs["edsr-pytorch"].kwargs["rgb_range"] == 1.0
    assert err.value.specs["torchsr"].kwargs["rgb_range"] == 255.0
    with pytest.raises(ValueError, match="rgb_range cannot be set for this torchsr checkpoint"):
        detect(sd, layout="torchsr", rgb_range=1.0)


def test_refuses_overrides_of_what_the_tensors_fix(official_sd: dict[str, torch.Tensor]) -> None:
    with pytest.raises(ValueError, match="n_feats cannot be set"):
        detect(official_sd, n_feats=16)


# ------------------------------------------------------------------ reading files
def test_unreadable_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        load_state_dict(tmp_path / "absent.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="weights_only"):
        load_state_dict(garbage)
    pickled = tmp_path / "module.pt"
    torch.save(torch.nn.Conv2d(1, 1, 1), pickled)  # a pickled module, not a state dict
    with pytest.raises(ValueError, match="never unpickles"):
        load_state_dict(pickled)
    bad_safetensors = tmp_path / "bad.safetensors"
    bad_safetensors.write_bytes(b"0123456789abcdef")
    with pytest.raises(ValueError, match="with safetensors"):
        load_state_dict(bad_safetensors)
    not_a_dict = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], not_a_dict)
    with pytest.raises(ValueError, match="found a list"):
        load_state_dict(not_a_dict)
    torch.save({"epoch": 3, "lr": 1e-4}, not_a_dict)
    with pytest.raises(ValueError, match=r"non-tensor entries epoch \(int\)"):
        load_state_dict(not_a_dict)


# -------------------------------------------------------------- official files
def test_official_table_names_match_digests_and_variants() -> None:
    by_name = {entry.filename: entry for entry in OFFICIAL_CHECKPOINTS.values()}
    assert len(by_name) == 8
    assert by_name["edsr_baseline_x2-1bc95232.pt"].sha256 == (
        "1bc9523228fdc3b0a5ddb0d7062001e22b31bbb398ae09cfdefb97e8ee06e171"
    )
    assert by_name["edsr_baseline_x2-1bc95232.pt"].size == 5_490_680
    assert by_name["mdsr-4a78bedf.pt"].variant == "mdsr"
    assert OFFICIAL_CHECKPOINTS["a00cab12f80c2a7cf0a15c3b9fcae3cfe9273121e8942692303e5010d1dca5ef"].variant == (
        "mdsr_baseline"
    )
    for digest, entry in OFFICIAL_CHECKPOINTS.items():
        stem, prefix = entry.filename.removesuffix(".pt").rsplit("-", 1)
        assert digest == entry.sha256 and digest.startswith(prefix)
        assert entry.variant == stem and edsr_lib.is_model(stem)
        assert entry.full_digest == (entry.size is not None)


def _register_as_official(monkeypatch: pytest.MonkeyPatch, path: Path, variant: str, prefix_only: bool = False):
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    key = digest[:8] if prefix_only else digest
    entry = OfficialCheckpoint(f"{variant}-{digest[:8]}.pt", variant, key)
    monkeypatch.setattr("edsr_lib.convert.official.OFFICIAL_CHECKPOINTS", {key: entry})
    return entry


@pytest.mark.parametrize("prefix_only", [False, True])
def test_official_files_are_recognised_by_digest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str], prefix_only: bool
) -> None:
    path = tmp_path / "weights.pt"
    torch.save(to_edsr_pytorch(edsr_lib.create_model("edsr_baseline_x2")), path)
    assert identify_file(path) is None
    entry = _register_as_official(monkeypatch, path, "edsr_baseline_x2", prefix_only)
    assert identify_file(path) == entry
    model = convert(path)
    assert model.variant == "edsr_baseline_x2"
    assert model.conversion.official == entry
    assert model.conversion.notes[0].startswith(f"recognised official checkpoint {entry.filename}")
    assert main(["convert", str(path), str(tmp_path / "out")]) == 0
    assert f"official file: {entry.filename} (edsr_baseline_x2)" in capsys.readouterr().out


def test_official_file_must_hold_its_variant(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(to_edsr_pytorch(edsr_lib.create_model("edsr_baseline_x2")), path)
    _register_as_official(monkeypatch, path, "edsr_baseline_x3")
    with pytest.raises(ValueError, match=r"official .* does not hold edsr_baseline_x3: scale 2 \(expected 3\)"):
        convert(path)


def test_requested_variant_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(to_edsr_pytorch(_small_edsr(2)), path)
    with pytest.raises(ValueError, match=r"does not hold edsr_baseline_x2: n_resblocks 2 \(expected 16\)"):
        convert(path, layout="edsr-pytorch", variant="edsr_baseline_x2")
    with pytest.raises(ValueError, match="architecture 'edsr'"):
        convert(path, layout="edsr-pytorch", variant="mdsr_baseline")


# ---------------------------------------------------------- library format and CLI
def test_convert_writes_the_library_format(tmp_path: Path, x: torch.Tensor) -> None:
    original = edsr_lib.create_model("edsr_baseline_x4").eval()
    src = tmp_path / "edsr_baseline_x4.pt"
    torch.save(to_edsr_pytorch(original), src)
    convert(src, tmp_path / "out", layout="edsr-pytorch")
    assert json.loads((tmp_path / "out" / "config.json").read_text()) == original.config
    reloaded = edsr_lib.from_pretrained(tmp_path / "out")
    with torch.no_grad():
        assert torch.equal(reloaded(x), original(x))


def test_cli_convert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "mdsr.pt"
    torch.save({"params": to_edsr_pytorch_mdsr(edsr_lib.create_model("mdsr_baseline"))}, src)
    assert main(["convert", str(src), str(tmp_path / "out"), "--variant", "mdsr_baseline"]) == 0
    out = capsys.readouterr().out
    assert "layout:        edsr-pytorch" in out
    assert "MDSR x2, x3, x4: 16 blocks, 64 features" in out
    assert "parameters:    3,227,203" in out
    assert "official file: not recognised" in out
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "out" / "config.json").read_text())["scales"] == [2, 3, 4]


def test_cli_convert_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00" * 10)
    assert main(["convert", str(garbage), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edsr-lib convert: error: cannot read") and "\n" not in err

    sd = to_edsr_pytorch(_small_edsr(2))
    sd["extra.weight"] = torch.zeros(1)
    src = tmp_path / "extra.pt"
    torch.save(sd, src)
    assert main(["convert", str(src), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "unexpected keys: extra.weight" in err and "\n" not in err
    assert not (tmp_path / "out").exists()
