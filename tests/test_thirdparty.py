"""Third-party pretrained weights: downloaded, checked before reading, converted exactly once, then safetensors.

The files are written by the real super-image package (``tests/super_image_hub.py``) and
laid out in an offline Hugging Face cache under the real repository and file names, at
the revision the tags pin. They hold random weights, so their sha256 is not the one the
Hub publishes: where a tag pins a sha256, the tests overlay the file's own
(``pretrained_cfg_overlay={"sha256": ...}``), as the issue's check says.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from unittest import mock

import huggingface_hub
import pytest
import torch
from conftest import REPO_ROOT
from super_image_hub import SuperImageFile, edsr_file, populate

import edsr_lib
from edsr_lib.convert import export_state_dict
from edsr_lib.convert import pretrained as thirdparty
from edsr_lib.hub import InvalidWeightsError, WeightsNotFoundError
from edsr_lib.registry import get_pretrained_cfg

#: At most this far from super-image's own forward pass, on [0, 1].
TOLERANCE = 1e-5


@pytest.fixture
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty, offline Hugging Face cache (``tmp/hub``) and assets cache (``tmp/assets``)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_ASSETS_CACHE", str(tmp_path / "assets"))
    return tmp_path / "hub"


def _cached(name: str, cache: Path, tmp: Path, seed: int = 0) -> SuperImageFile:
    """A super-image file for tag ``name``, in the cache at the repository, file and revision the tag pins."""
    cfg = get_pretrained_cfg(name)
    scale = int(cfg.filename.removeprefix("pytorch_model_").removesuffix("x.pt"))
    file = edsr_file(cfg.hf_hub_id, scale, tmp / f"{name}-{seed}", seed=seed)
    populate(cache, cfg.hf_hub_id, cfg.revision, {cfg.filename: file.data})
    return file


def _own_sha(file: SuperImageFile) -> dict[str, str]:
    return {"sha256": file.sha256}


def _load(name: str, cache: Path, **kwargs: object) -> torch.nn.Module:
    return edsr_lib.create_model(name, pretrained=True, cache_dir=cache, **kwargs)


def _check_equal(model: torch.nn.Module, file: SuperImageFile, scale: int) -> None:
    x = torch.rand(1, 3, 5, 4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours = model(x)
    theirs = file.forward(x)
    assert ours.shape == (1, 3, 5 * scale, 4 * scale)
    assert (ours - theirs).abs().max().item() <= TOLERANCE


# ------------------------------------------------------------------ conversion equals super-image
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_baseline_equals_super_image(caches: Path, tmp_path: Path, scale: int) -> None:
    name = f"edsr_baseline_x{scale}.div2k"
    file = _cached(name, caches, tmp_path)
    model = _load(name, caches, pretrained_cfg_overlay=_own_sha(file))
    _check_equal(model, file, scale)
    assert model.pretrained_cfg.name == name and model.pretrained_cfg.layout == "super-image"
    # what the file implies, not the variant's defaults: super-image feeds [0, 1] with no mean shift
    assert model.config["rgb_range"] == 1.0 and model.config["rgb_mean"] == [0.0, 0.0, 0.0]


@pytest.mark.slow
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_large_edsr_equals_super_image(caches: Path, tmp_path: Path, scale: int) -> None:
    """The 40 M-parameter EDSR: x3 and x4 have no sha256 on the Hub page, so the pinned commit identifies them."""
    name = f"edsr_x{scale}.div2k"
    file = _cached(name, caches, tmp_path)
    cfg = get_pretrained_cfg(name)
    model = _load(name, caches, pretrained_cfg_overlay=_own_sha(file) if cfg.sha256 else None)
    _check_equal(model, file, scale)
    assert model.config["n_resblocks"] == 32 and model.config["res_scale"] == 0.1


# --------------------------------------------------------------------------------- read once
def _forbid_unpickling(monkeypatch: pytest.MonkeyPatch) -> mock.Mock:
    guard = mock.Mock(side_effect=AssertionError("something was unpickled"))
    for owner, name in ((torch, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(owner, name, guard)
    return guard


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> mock.Mock:
    """Fail the test if anything unpickles (torch.load, pickle.load or pickle.loads)."""
    return _forbid_unpickling(monkeypatch)


def test_second_load_never_unpickles(caches: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "edsr_baseline_x2.div2k"
    file = _cached(name, caches, tmp_path)
    overlay = _own_sha(file)
    loaded = []
    real_load = torch.load

    def spy(*args: object, **kwargs: object) -> object:
        loaded.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    with monkeypatch.context() as first:  # the first load converts: it unpickles once, with weights_only=True
        first.setattr(torch, "load", spy)
        model = _load(name, caches, pretrained_cfg_overlay=overlay)
    assert loaded == [True]
    no_unpickling = _forbid_unpickling(monkeypatch)
    again = _load(name, caches, pretrained_cfg_overlay=overlay)
    no_unpickling.assert_not_called()
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    # the converted copy is found by the pinned sha256 alone: the original may even be gone from the cache
    for blob in caches.rglob("blobs/*"):
        blob.unlink()
    _check_equal(_load(name, caches, pretrained_cfg_overlay=overlay), file, 2)
    folder = thirdparty.find_converted(model.pretrained_cfg)
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "## Conversion" in card and "stripped the 'module.' prefix of DataParallel" in card
    assert "`rgb_range=1.0`" in card and "instead of the variant's defaults" in card
    assert folder is not None and {p.name for p in folder.iterdir()} == {
        "model.safetensors",
        "config.json",
        "README.md",
        thirdparty.SOURCE_NAME,
    }


def test_a_damaged_converted_copy_is_converted_again(caches: Path, tmp_path: Path) -> None:
    name = "edsr_baseline_x3.div2k"
    file = _cached(name, caches, tmp_path)
    overlay = _own_sha(file)
    _load(name, caches, pretrained_cfg_overlay=overlay)
    (weights,) = (tmp_path / "assets").rglob("model.safetensors")
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)  # same size, other bytes: safetensors would not see it
    _check_equal(_load(name, caches, pretrained_cfg_overlay=overlay), file, 3)


# ------------------------------------------------------------------------------ refused unread
def test_wrong_sha256_is_refused_before_unpickling(caches: Path, tmp_path: Path, no_unpickling: mock.Mock) -> None:
    name = "edsr_baseline_x2.div2k"
    _cached(name, caches, tmp_path)  # random weights: not the file whose sha256 the tag pins
    cfg = get_pretrained_cfg(name)
    with pytest.raises(InvalidWeightsError) as err:
        _load(name, caches)
    message = str(err.value)
    assert "\n" not in message
    for part in (name, f"{cfg.hf_hub_id}/{cfg.filename}", cfg.sha256, "not read", "download it again"):
        assert part in message, part
    no_unpickling.assert_not_called()
    assert not (tmp_path / "assets").exists() or not list((tmp_path / "assets").rglob("model.safetensors"))


def test_a_corrupted_download_of_an_unpinned_file_is_refused(
    caches: Path, tmp_path: Path, no_unpickling: mock.Mock
) -> None:
    """With no sha256 pinned, the cached blob must still hash to the LFS sha256 the Hub named it by."""
    name = "edsr_baseline_x4.div2k"
    file = _cached(name, caches, tmp_path)
    (blob,) = caches.rglob("blobs/*")
    middle = len(file.data) // 2
    blob.write_bytes(file.data[:middle] + bytes([file.data[middle] ^ 1]) + file.data[middle + 1 :])
    with pytest.raises(InvalidWeightsError, match="a corrupted download, not read"):
        _load(name, caches, pretrained_cfg_overlay={"sha256": None})
    no_unpickling.assert_not_called()


def test_a_file_of_another_variant_is_refused(caches: Path, tmp_path: Path) -> None:
    base = edsr_file("eugenesiow/edsr-base", 2, tmp_path / "base")
    local = tmp_path / "pytorch_model_2x.pt"
    local.write_bytes(base.data)
    with pytest.raises(InvalidWeightsError, match=r"edsr_x2\.div2k: .* does not hold edsr_x2: n_resblocks=16"):
        _load("edsr_x2.div2k", caches, pretrained_cfg_overlay={"file": str(local), "sha256": None})


def test_constructor_values_that_contradict_the_file_are_refused(caches: Path, tmp_path: Path) -> None:
    name = "edsr_baseline_x2.div2k"
    file = _cached(name, caches, tmp_path)
    with pytest.raises(ValueError, match=r"weights need rgb_range=1\.0; rgb_range=255 cannot hold them"):
        _load(name, caches, pretrained_cfg_overlay=_own_sha(file), rgb_range=255)


# -------------------------------------------------------------------------- offline and overlays
@pytest.mark.parametrize(
    ("name", "offline_tag"),
    # what works offline instead: the shipped default of a variant at the same scale
    [
        ("edsr_x4.div2k", get_pretrained_cfg("edsr_baseline_x4").name),
        ("edsr_baseline_x2.div2k", get_pretrained_cfg("edsr_baseline_x2").name),
    ],
)
def test_offline_message_says_what_is_needed(caches: Path, name: str, offline_tag: str) -> None:
    cfg = get_pretrained_cfg(name)
    with pytest.raises(WeightsNotFoundError) as err:
        _load(name, caches)
    message = str(err.value)
    assert "\n" not in message
    size = f"{cfg.download_size / 1e6:,.1f} MB"
    for part in (name, f"{cfg.hf_hub_id}/{cfg.filename}", size, "HF_HUB_OFFLINE=1", "hf download", offline_tag):
        assert part in message, part
    assert "works offline" in message and "pretrained_cfg_overlay={'file': PATH}" in message


def test_overlay_a_local_copy_is_checked_against_the_pinned_sha256(caches: Path, tmp_path: Path) -> None:
    name = "edsr_baseline_x2.div2k"
    file = edsr_file("eugenesiow/edsr-base", 2, tmp_path / "w")
    local = tmp_path / "copy" / "pytorch_model_2x.pt"
    local.parent.mkdir()
    local.write_bytes(file.data)
    with pytest.raises(InvalidWeightsError, match=f"{local} has sha256 {file.sha256}"):
        _load(name, caches, pretrained_cfg_overlay={"file": str(local)})
    # even once the pinned file's conversion is cached, a local copy is what it is: hashed, never assumed
    pinned = _cached(name, caches, tmp_path, seed=1)
    _load(name, caches, pretrained_cfg_overlay=_own_sha(pinned))
    with pytest.raises(InvalidWeightsError, match=f"{local} has sha256 {file.sha256}"):
        _load(name, caches, pretrained_cfg_overlay={"file": str(local), "sha256": pinned.sha256})
    model = _load(name, caches, pretrained_cfg_overlay={"file": str(local), "sha256": file.sha256})
    _check_equal(model, file, 2)
    assert model.pretrained_cfg.file == str(local)
    assert get_pretrained_cfg(name).file is None, "an overlay is for one call"


def test_overlay_refuses_unknown_keys(caches: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown keys nope; it can set .*hf_hub_id"):
        _load("edsr_baseline_x2.div2k", caches, pretrained_cfg_overlay={"nope": 1})


def test_weights_file_from_super_image_is_converted(caches: Path, tmp_path: Path) -> None:
    """``weights=`` a super-image file (its config.json beside says so) converts it as a tag's file is."""
    file = edsr_file("eugenesiow/edsr-base", 3, tmp_path / "folder")
    local = tmp_path / "folder" / "pytorch_model_3x.pt"
    local.write_bytes(file.data)
    model = edsr_lib.create_model("edsr_baseline_x3", weights=local)
    _check_equal(model, file, 3)
    assert model.pretrained_cfg.file == str(local)


def test_download_goes_through_huggingface_hub_at_the_pinned_revision(
    caches: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Online, a miss in the cache downloads through huggingface_hub with the pinned revision and the cache."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    name = "edsr_baseline_x2.div2k"
    cfg = get_pretrained_cfg(name)
    file = edsr_file(cfg.hf_hub_id, 2, tmp_path / "w")
    calls = []

    def download(repo_id: str, filename: str, *, local_only: bool, **kwargs: object) -> Path:
        calls.append((repo_id, filename, local_only, kwargs))
        if local_only:
            raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
        return populate(caches, repo_id, str(kwargs["revision"]), {filename: file.data}) / filename

    monkeypatch.setattr(thirdparty, "hub_download", download)
    _check_equal(_load(name, caches, pretrained_cfg_overlay=_own_sha(file)), file, 2)
    assert [(c[2], c[3]["revision"], c[3]["cache_dir"]) for c in calls] == [
        (True, cfg.revision, caches),
        (False, cfg.revision, caches),
    ]


# ------------------------------------------------------------------------- super-image's MDSR
#: super-image's MDSR repositories (from the Hub): same file names as its EDSR ones.
MDSR_REPOS = {"eugenesiow/mdsr": False, "eugenesiow/mdsr-bam": True}


@pytest.mark.parametrize("repo", MDSR_REPOS)
def test_super_image_mdsr_is_refused_by_overlay_weights_and_convert(
    caches: Path, tmp_path: Path, repo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from super_image_hub import mdsr_file

    from edsr_lib.cli import main
    from edsr_lib.convert import SUPER_IMAGE_MDSR

    file = mdsr_file(2, tmp_path / "written", bam=MDSR_REPOS[repo])
    revision = "0" * 40
    populate(caches, repo, revision, {"pytorch_model_2x.pt": file.data, "config.json": file.config})
    overlay = {"hf_hub_id": repo, "revision": revision, "sha256": file.sha256}
    with pytest.raises(InvalidWeightsError) as err:
        _load("edsr_baseline_x2.div2k", caches, pretrained_cfg_overlay=overlay)
    assert f"{repo}/pytorch_model_2x.pt" in str(err.value) and SUPER_IMAGE_MDSR in str(err.value)

    local = tmp_path / "alone" / "pytorch_model_2x.pt"  # no config.json beside: the key names tell
    local.parent.mkdir()
    local.write_bytes(file.data)
    with pytest.raises(InvalidWeightsError, match="not the paper's MDSR") as err:
        edsr_lib.create_model("mdsr_baseline", weights=local)
    assert SUPER_IMAGE_MDSR in str(err.value)

    for source in (local, tmp_path / "written" / "pytorch_model_2x.pt"):
        if not source.exists():
            source.write_bytes(file.data)  # beside super-image's config.json, which says MDSR
        assert main(["convert", str(source), str(tmp_path / "out")]) == 2
        message = capsys.readouterr().err.strip()
        assert SUPER_IMAGE_MDSR in message and "\n" not in message and "Traceback" not in message
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_no_network_gives_the_offline_message_too(caches: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not marked offline, but the Hub cannot be reached: the same line, with the download's error."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    def unreachable(repo_id: str, filename: str, *, local_only: bool, **kwargs: object) -> Path:
        if local_only:
            raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
        raise OSError("Failed to resolve 'huggingface.co'")

    monkeypatch.setattr(thirdparty, "hub_download", unreachable)
    with pytest.raises(WeightsNotFoundError) as err:
        _load("edsr_x2.div2k", caches)
    message = str(err.value)
    shipped = get_pretrained_cfg("edsr_baseline_x2").name
    for part in ("eugenesiow/edsr/pytorch_model_2x.pt", "163.0 MB", "Failed to resolve", "hf download", shipped):
        assert part in message, part


def test_timm_loads_a_div2k_tag_with_an_overlay(caches: Path, tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    import edsr_lib.timm_bridge  # noqa: F401  (registers the models in timm)

    name = "edsr_baseline_x4.div2k"
    file = _cached(name, caches, tmp_path)
    model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=_own_sha(file), cache_dir=caches)
    _check_equal(model, file, 4)
    assert "div2k" in timm.list_pretrained("edsr_x4*")[0]


def test_paths_that_read_only_the_librarys_format_refuse_a_third_party_tag_clearly(
    caches: Path, tmp_path: Path
) -> None:
    """``train --init-from`` and other readers of safetensors get one line saying how to load these weights."""
    from edsr_lib.hub import resolve_weights

    name = "edsr_baseline_x2.div2k"
    _cached(name, caches, tmp_path)
    with pytest.raises(InvalidWeightsError, match=r"third-party file .* edsr_lib\.create_model\('edsr_baseline_x2"):
        resolve_weights(name).state_dict()


def test_overlay_a_mirror_is_checked_against_the_pinned_sha256(caches: Path, tmp_path: Path) -> None:
    name = "edsr_baseline_x3.div2k"
    cfg = get_pretrained_cfg(name)
    file = edsr_file(cfg.hf_hub_id, 3, tmp_path / "w")
    populate(caches, "mirror/edsr-base", cfg.revision, {cfg.filename: file.data})
    model = _load(name, caches, pretrained_cfg_overlay={"hf_hub_id": "mirror/edsr-base", "sha256": file.sha256})
    _check_equal(model, file, 3)
    assert model.pretrained_cfg.hf_hub_id == "mirror/edsr-base"
    with pytest.raises(InvalidWeightsError, match=f"mirror/edsr-base/{cfg.filename}@{cfg.revision} has sha256"):
        _load(name, caches, pretrained_cfg_overlay={"hf_hub_id": "mirror/edsr-base"})  # the pinned sha256 stays


def test_a_bare_file_of_ambiguous_layout_says_how_to_name_it(caches: Path, tmp_path: Path) -> None:
    """EDSR-PyTorch's key names are also super-image's: with no config.json beside, the layout must be named."""
    file = edsr_file("eugenesiow/edsr-base", 2, tmp_path / "w")
    bare = tmp_path / "bare" / "weights.pt"
    bare.parent.mkdir()
    bare.write_bytes(file.data)
    with pytest.raises(InvalidWeightsError, match=r"fit 3 layouts .*pretrained_cfg_overlay=\{'layout': \.\.\.\}"):
        edsr_lib.create_model("edsr_baseline_x2", weights=bare)
    # named, on a tag of the library's own weights: the overlay's file and layout replace the shipped copy
    model = edsr_lib.create_model(
        get_pretrained_cfg("edsr_baseline_x2").name,  # the default tag: the library's own, shipped
        pretrained=True,
        pretrained_cfg_overlay={"file": str(bare), "layout": "super-image", "sha256": None},
    )
    _check_equal(model, file, 2)


# --------------------------------------------------------------- convert --to of a third-party tag (#30 item 4)
def _fresh_cli(args: list[str], hub_cache: Path, assets: Path) -> subprocess.CompletedProcess[str]:
    """``edsr-lib ARGS`` in a new interpreter, as a user runs it: only what that command imports is imported."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(hub_cache),
        "HF_ASSETS_CACHE": str(assets),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run([sys.executable, "-m", "edsr_lib", *args], capture_output=True, text=True, env=env)


def test_convert_to_of_a_third_party_tag_offline_gives_its_one_line(caches: Path, tmp_path: Path) -> None:
    done = _fresh_cli(["convert", "--to", "torchsr", "edsr_x2", str(tmp_path / "t.pt")], caches, tmp_path / "assets")
    assert done.returncode == 2, done.stderr
    message = done.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    cfg = get_pretrained_cfg("edsr_x2")
    for part in (cfg.name, f"{cfg.hf_hub_id}/{cfg.filename}", "HF_HUB_OFFLINE=1", "hf download"):
        assert part in message, part
    assert not (tmp_path / "t.pt").exists()


@pytest.mark.slow
def test_convert_to_of_a_third_party_tag_writes_what_create_model_loads(caches: Path, tmp_path: Path) -> None:
    """x3 is pinned by commit only (no sha256 on the Hub page): a super-image file of random weights stands for it."""
    name = "edsr_x3.div2k"
    _cached(name, caches, tmp_path)
    done = _fresh_cli(["convert", "--to", "torchsr", name, str(tmp_path / "t.pt")], caches, tmp_path / "assets")
    assert done.returncode == 0, done.stderr
    written = torch.load(tmp_path / "t.pt", weights_only=True)
    expected = export_state_dict(_load(name, caches), "torchsr").state_dict
    assert written.keys() == expected.keys()
    for key, tensor in expected.items():
        assert torch.equal(written[key], tensor), key
