"""Every pretrained config, checked by rule (torchvision's ``test_schema_meta_validation`` pattern).

One test per ``arch.tag`` of ``list_pretrained()``: the fields its kind needs, the metrics
schema, the one-line description against ``pretrained.json``, and, for the files the package
ships, the sha256, the config and the parameter count against the registered variant. One test
per architecture says which tag is the default. No release's numbers appear here: a tag
released tomorrow is checked by the same rules.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources

import pytest
from safetensors import safe_open

import edsr_lib
from edsr_lib import PretrainedCfg
from edsr_lib._card import ordered_metrics
from edsr_lib._files import sha256sum
from edsr_lib._pretrained import INPUTS
from edsr_lib.convert import LAYOUTS
from edsr_lib.ops.degrade import split_metric_key
from edsr_lib.weights import PROVENANCE_FIELDS, PROVENANCE_NAME
from edsr_lib.weights import int8 as shipped_int8

CFGS = {cfg.name: cfg for cfg in edsr_lib.list_pretrained()}
ARCHS = edsr_lib.list_models(pretrained=True, include_tags=False)
WEIGHTS = resources.files("edsr_lib.weights")
SHA256 = re.compile(r"[0-9a-f]{64}")
COMMIT = re.compile(r"[0-9a-f]{40}")
#: A float32 file holds 4 bytes per parameter and a little more (names, mean shifts, headers); download
#: sizes are given as the Hub's pages round them, to three figures (half a percent).
BYTES_PER_PARAMETER = (4.0 * 0.995, 4.2)


@cache
def _variant(arch: str) -> edsr_lib.SRModel:
    """The registered variant, built once (its config, scales and parameter count are the reference)."""
    return edsr_lib.create_model(arch)


def _own_tags(arch: str) -> list[PretrainedCfg]:
    return [cfg for cfg in edsr_lib.list_pretrained(arch) if cfg.architecture == arch and not cfg.third_party]


def test_there_is_something_to_check() -> None:
    assert CFGS and ARCHS


@pytest.mark.parametrize("name", CFGS)
def test_fields_of_each_kind(name: str) -> None:
    cfg = CFGS[name]
    assert cfg.architecture in edsr_lib.list_models() and cfg.tag and cfg.name == f"{cfg.architecture}.{cfg.tag}"
    assert cfg.has_weights and cfg.license and cfg.training_data and cfg.metrics and cfg.description
    assert cfg.file is None  # a local copy is an overlay for one call, never a registered config
    if cfg.third_party:  # someone else's file on the Hub: pinned to a commit, converted on load, attributed
        assert cfg.layout in LAYOUTS and cfg.package_file is None
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", cfg.hf_hub_id), cfg.hf_hub_id
        assert COMMIT.fullmatch(cfg.revision or ""), "a third-party file is pinned to a commit"
        assert cfg.sha256 is None or SHA256.fullmatch(cfg.sha256)
        assert cfg.attribution and cfg.metrics_source and cfg.download_size
        assert cfg.training_command is None and cfg.steps is None
    else:  # the library's own: on the Hub under edsr-lib/<arch.tag>, pinned by sha256, with how it was made
        assert cfg.hf_hub_id == f"edsr-lib/{name}" and cfg.filename == "model.safetensors"
        assert SHA256.fullmatch(cfg.sha256 or ""), "the library's own weights are pinned by sha256"
        assert cfg.layout is None and cfg.attribution is None and cfg.metrics_source is None
        assert isinstance(cfg.steps, int) and cfg.steps > 0
        assert cfg.training_command.startswith("edsr-lib train --model ")


@pytest.mark.parametrize("name", CFGS)
def test_metrics_schema(name: str) -> None:
    cfg, model = CFGS[name], _variant(CFGS[name].architecture)
    keys = {f"x{s}" for s in model.scales}
    assert "Set5" in cfg.metrics
    if not cfg.third_party:  # measured by edsr-lib evaluate at every scale the model serves
        assert set(cfg.metrics["Set5"]) == keys
    for set_name, per_scale in cfg.metrics.items():
        assert re.fullmatch(r"[A-Za-z0-9_]+\+?", set_name), set_name
        assert per_scale and set(per_scale) <= keys, (set_name, per_scale)
        base, degraded = split_metric_key(set_name)
        # clean input scores above 0.5 SSIM; heavily degraded input may not (t528 x4 on B100, noise 15: 0.494)
        lowest_ssim = 0.5 if degraded is None else 0.3
        for scores in per_scale.values():
            assert set(scores) == {"psnr", "ssim"}
            assert isinstance(scores["psnr"], float) and 20.0 < scores["psnr"] < 50.0
            assert isinstance(scores["ssim"], float) and lowest_ssim < scores["ssim"] <= 1.0
        plain = cfg.metrics.get(set_name.rstrip("+"), {})
        if set_name.endswith("+"):  # self-ensemble, beside the plain scores it improves on
            assert set(per_scale) <= set(plain)
        if degraded is not None:  # degraded input, beside the clean scores of the same set, and below them
            clean = cfg.metrics.get(base, {})
            assert set(per_scale) <= set(clean), set_name
            for scale, scores in per_scale.items():
                assert scores["psnr"] < clean[scale]["psnr"], (set_name, scale)


@pytest.mark.parametrize("name", CFGS)
def test_description_says_what_pretrained_json_says(name: str) -> None:
    cfg = CFGS[name]
    first = f"x{_variant(cfg.architecture).scales[0]}"
    score = f"Set5 {first}: {cfg.metrics['Set5'][first]['psnr']:.2f} dB"
    assert "\n" not in cfg.description and len(cfg.description) < 240
    if cfg.third_party:
        assert cfg.description.startswith(f"{cfg.hf_hub_id} {first} ")
        assert cfg.filename in cfg.description
        assert cfg.description.endswith(f"{score} (publisher's score)")
    else:
        provenance = json.loads(WEIGHTS.joinpath(name, PROVENANCE_NAME).read_text(encoding="utf-8"))
        assert set(provenance) == set(PROVENANCE_FIELDS)
        sets = provenance["training_data"].split(" (")[0]
        assert cfg.description.startswith(f"{cfg.architecture} "), "it names the variant"
        assert f" on {sets}, " in cfg.description, "it names the training sets"
        assert f"{provenance['steps']:,} steps" in cfg.description, "and the steps of the weights kept"
        assert cfg.description.endswith(f"; {score}")


@pytest.mark.parametrize("name", [n for n, cfg in CFGS.items() if not cfg.third_party])
def test_own_folder_matches_the_variant(name: str) -> None:
    """The folder of the library's own tag: its config rebuilds the variant, its file is the pinned one."""
    cfg, model = CFGS[name], _variant(CFGS[name].architecture)
    folder = WEIGHTS.joinpath(name)
    assert folder.joinpath("README.md").is_file()
    assert json.loads(folder.joinpath("config.json").read_text(encoding="utf-8")) == model.config
    if not cfg.package_file:
        return  # Hub-only (replaced weights): the config and card stay, the file is on the Hub
    assert cfg.package_file == f"{name}/{cfg.filename}"
    with resources.as_file(WEIGHTS.joinpath(cfg.package_file)) as path:
        assert sha256sum(path) == cfg.sha256
        with safe_open(path, "pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (not a dict)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == expected
    assert sum(_numel(s) for s in shapes.values()) == model.num_parameters()


@pytest.mark.parametrize("name", [n for n, cfg in CFGS.items() if not cfg.third_party])
def test_each_card_shows_every_score_it_holds(name: str) -> None:
    """The card's Results table has a row for every metrics key, in the tables' order, and every "Against" row
    its gap: a score added later (``tools/score_degraded.py --write``) reaches the text (``tools/refresh_cards.py``).
    """
    cfg = CFGS[name]
    card = WEIGHTS.joinpath(name, "README.md").read_text(encoding="utf-8")
    results = card.split("\n## Results\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ", 1)[0].removeprefix("| ") for line in results.splitlines() if line.startswith("| ")]
    expected = [(f"{s}, {d.describe()}" if d else s) for s, d in map(split_metric_key, ordered_metrics(cfg.metrics))]
    assert rows[1:] == expected  # after the header row
    found = re.search(r"^## Against (\S+)$", card, re.MULTILINE)
    if found:
        other = edsr_lib.get_pretrained_cfg(found[1]).metrics
        shared = sum(len(set(per) & set(other.get(key, {}))) for key, per in cfg.metrics.items() if key[-1] != "+")
        against = card.split(found[0], 1)[1].split("\n## ", 1)[0]
        assert sum(line.endswith(" dB |") for line in against.splitlines()) == shared


@pytest.mark.parametrize("model", shipped_int8.shipped_models(), ids=lambda m: m.xml.parent.parent.name)
def test_each_int8_model_is_on_its_weights_card(model: shipped_int8.Int8Model) -> None:
    """The card of the weights an int8 model was made from says where it is, how it was made, and what it costs."""
    card = WEIGHTS.joinpath(model.record.source, "README.md").read_text(encoding="utf-8")
    assert "\n## int8\n" in card, "run tools/refresh_cards.py"
    section = card.split("\n## int8\n", 1)[1].split("\n## ", 1)[0]
    assert shipped_int8.folder_name(model.record.scale) in section and model.record.command in section
    assert all(line in section for line in shipped_int8.card_lines(model.record))
    assert len(model.record.measurements) == section.count("\n  - on ")


def test_tables_order_by_set_then_clean_ensemble_degraded() -> None:
    metrics = {
        key: {"x2": {"psnr": 30.0, "ssim": 0.9}}
        for key in ("Set14_noise5", "Set5_jpeg50", "Set14", "Set5+", "Set5", "Set5_jpeg30", "Set14+")
    }
    assert list(ordered_metrics(metrics)) == [
        "Set14",
        "Set14+",
        "Set14_noise5",
        "Set5",
        "Set5+",
        "Set5_jpeg30",
        "Set5_jpeg50",
    ]
    assert list(ordered_metrics(metrics, ["Set5", "Set14"]))[:3] == ["Set5", "Set5+", "Set5_jpeg30"]


@pytest.mark.parametrize("name", [n for n, cfg in CFGS.items() if cfg.third_party])
def test_third_party_download_size_fits_the_parameter_count(name: str) -> None:
    cfg = CFGS[name]
    per_parameter = cfg.download_size / _variant(cfg.architecture).num_parameters()
    assert BYTES_PER_PARAMETER[0] <= per_parameter <= BYTES_PER_PARAMETER[1], per_parameter


@pytest.mark.parametrize("arch", ARCHS)
def test_default_tag(arch: str) -> None:
    """The default tag of a variant with weights of its own is for clean input, ships in the package, and none of
    its own clean-input tags scores better.

    Its other own clean-input tags (replaced weights) are Hub-only; the tags for other input (``real``: photos)
    ship beside it; third-party files are downloaded, never shipped.
    """
    default = edsr_lib.get_pretrained_cfg(arch)
    own = _own_tags(arch)
    if not own:
        assert default.third_party
        return
    assert not default.third_party and default.package_file and default.for_input == "clean"
    shipped = [cfg.name for cfg in own if cfg.package_file]
    assert shipped == [default.name] + [cfg.name for cfg in own if cfg.for_input != "clean"]
    first = f"x{_variant(arch).scales[0]}"
    best = max(cfg.metrics["Set5"][first]["psnr"] for cfg in own if cfg.for_input == "clean")
    assert default.metrics["Set5"][first]["psnr"] == best


@pytest.mark.parametrize("name", [n for n, cfg in CFGS.items() if cfg.for_input != "clean"])
def test_weights_for_other_input_say_so_and_score_it(name: str) -> None:
    """A tag for degraded input (photos) is scored on it, beside the default tag's scores on the same input."""
    cfg = CFGS[name]
    assert cfg.for_input in INPUTS and not cfg.third_party
    default = edsr_lib.get_pretrained_cfg(cfg.architecture)
    degraded = [key for key in cfg.metrics if split_metric_key(key)[1] is not None]
    assert degraded, "scores on degraded input"
    assert any(key in default.metrics for key in degraded), "the default tag scored on the same input"
    card = WEIGHTS.joinpath(name, "README.md").read_text(encoding="utf-8")
    assert f"For {INPUTS[cfg.for_input]}" in card and f"Against {default.name}" in card


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
