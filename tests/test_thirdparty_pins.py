"""The third-party pretrained configs name what the Hub publishes, and say whose the weights and scores are.

What the Hub publishes for super-image's EDSR files, read from the Hub's own pages
(repository tree at ``main``, each file's page with its "Git LFS Details", the commit
history, the model cards), is recorded below by hand; the rules then sweep every
registered config that names a third-party file. A config for a file the table does not
know fails, so a new tag comes with its Hub reading.
"""

from __future__ import annotations

import re

import pytest

import edsr_lib
from edsr_lib.convert import LAYOUTS

#: (repository, file) -> what the Hub's pages show. ``head``: the commit ``main`` pointed at when read
#: (tree page "History: N commits", latest first); ``sha256``: the file page's "Git LFS Details"
#: (``None`` where no stored page shows it); ``size``: the size the pages print.
HUB_PAGES: dict[tuple[str, str], dict[str, str | None]] = {
    # https://huggingface.co/eugenesiow/edsr-base/tree/main: 11 commits, head d622f68 "Add update README with
    # generalised fixes."; the x2 and x4 files date from 967fc29 "Initial commit.", x3 from 98503f9.
    ("eugenesiow/edsr-base", "pytorch_model_2x.pt"): {
        "head": "d622f68a86f11af7c1c6add1a8fa3790a1173d97",
        "sha256": "b709bea0d3e3a7a1c84eb1eaa6e5e777f176edcfca00b3b5acde5320eb630211",  # blob/d44aba7.../2x
        "size": "5.51 MB",
    },
    ("eugenesiow/edsr-base", "pytorch_model_3x.pt"): {
        "head": "d622f68a86f11af7c1c6add1a8fa3790a1173d97",
        "sha256": "27a09b477d3b9531e2a0e6747a103a8c619c0daac9f4ee704828e335bdb034cd",  # blob/d622f68.../3x
        "size": "6.25 MB",
    },
    ("eugenesiow/edsr-base", "pytorch_model_4x.pt"): {
        "head": "d622f68a86f11af7c1c6add1a8fa3790a1173d97",
        "sha256": "9302a679cf3e656a8aefd4ae7cfae4dd86ca60b2e1c50fbe9e06dde9767d32ad",  # blob/main/4x
        "size": "6.1 MB",
    },
    # https://huggingface.co/eugenesiow/edsr/commits/main: 8f214a5 "Add x3 model." (head), f54a5c9 "Add x2
    # model.", 93f0ee6 "Initial commit." (the x4 file), 725267d.
    ("eugenesiow/edsr", "pytorch_model_2x.pt"): {
        "head": "8f214a52f8160f7024a2ae73e3122b14bc36b9e8",
        "sha256": "1d2a734b033e4119598ab4308058d2d09f994ab9ce442c81888bd0d318e6abc9",  # blob/f54a5c9.../2x
        "size": "163 MB",
    },
    ("eugenesiow/edsr", "pytorch_model_3x.pt"): {
        "head": "8f214a52f8160f7024a2ae73e3122b14bc36b9e8",
        "sha256": None,  # no stored page shows its LFS details: the pinned commit identifies it
        "size": "175 MB",
    },
    ("eugenesiow/edsr", "pytorch_model_4x.pt"): {
        "head": "8f214a52f8160f7024a2ae73e3122b14bc36b9e8",
        "sha256": None,
        "size": "172 MB",
    },
}

#: The scores the model cards (and super-image's README leaderboard) print, PSNR/SSIM per set and scale.
CARD_SCORES = {
    "eugenesiow/edsr-base": {
        "Set5": {"x2": (38.02, 0.9607), "x3": (35.01, 0.9402), "x4": (32.12, 0.8947)},
        "Set14": {"x2": (33.66, 0.9180), "x3": (31.01, 0.8583), "x4": (28.72, 0.7845)},
        "B100": {"x2": (33.77, 0.9254), "x3": (29.63, 0.8190), "x4": (28.50, 0.7644)},  # the card's BSD100
        "Urban100": {"x2": (32.04, 0.9276), "x3": (29.19, 0.8722), "x4": (26.02, 0.7832)},
    },
    "eugenesiow/edsr": {
        "Set5": {"x2": (38.19, 0.9612), "x3": (35.31, 0.9421), "x4": (32.5, 0.8986)},
        "Set14": {"x2": (33.99, 0.9215), "x3": (31.18, 0.862), "x4": (28.92, 0.7899)},
        "B100": {"x2": (33.89, 0.9266), "x3": (29.77, 0.8224), "x4": (28.62, 0.7689)},
        "Urban100": {"x2": (32.68, 0.9331), "x3": (29.75, 0.8825), "x4": (26.53, 0.7995)},
    },
}

#: The licence both model cards declare (``license: apache-2.0`` in their front matter).
CARD_LICENSE = "apache-2.0"

THIRD_PARTY = [cfg for cfg in edsr_lib.list_pretrained() if cfg.layout is not None]


def test_the_div2k_tags_are_registered() -> None:
    names = {cfg.name for cfg in THIRD_PARTY}
    for scale in (2, 3, 4):
        assert {f"edsr_x{scale}.div2k", f"edsr_baseline_x{scale}.div2k"} <= names
        # the large EDSR's only (so default) tag; the baseline's shipped tag stays its default
        assert edsr_lib.get_pretrained_cfg(f"edsr_x{scale}").tag == "div2k"
        default = edsr_lib.get_pretrained_cfg(f"edsr_baseline_x{scale}")
        assert default.package_file and default.layout is None


def _megabytes(size: str) -> float:
    number, unit = size.split()
    return float(number) * {"MB": 1e6, "kB": 1e3}[unit]


@pytest.mark.parametrize("cfg", THIRD_PARTY, ids=lambda cfg: cfg.name)
def test_pins_are_what_the_hub_publishes(cfg: edsr_lib.PretrainedCfg) -> None:
    page = HUB_PAGES.get((cfg.hf_hub_id, cfg.filename))
    assert page is not None, f"{cfg.name}: record what the Hub publishes for {cfg.hf_hub_id}/{cfg.filename}"
    assert cfg.revision == page["head"] and re.fullmatch(r"[0-9a-f]{40}", cfg.revision), cfg.name
    assert cfg.sha256 == page["sha256"], cfg.name
    assert cfg.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", cfg.sha256)
    shown = _megabytes(page["size"])
    assert cfg.download_size is not None and abs(cfg.download_size - shown) <= 0.005 * shown, cfg.name
    assert cfg.layout in LAYOUTS and cfg.package_file is None


@pytest.mark.parametrize("cfg", THIRD_PARTY, ids=lambda cfg: cfg.name)
def test_scores_licence_and_attribution_are_the_publishers(cfg: edsr_lib.PretrainedCfg) -> None:
    scale = re.fullmatch(r"pytorch_model_(\d)x\.pt", cfg.filename).group(1)
    card = CARD_SCORES[cfg.hf_hub_id]
    assert cfg.metrics == {
        name: {f"x{scale}": {"psnr": psnr, "ssim": ssim}}
        for name, per_scale in card.items()
        for psnr, ssim in [per_scale[f"x{scale}"]]
    }
    assert cfg.metrics_source and "publisher" in cfg.metrics_source, "the scores are marked as theirs"
    assert cfg.license == CARD_LICENSE
    for who in ("super-image", "DIV2K", "Lim"):
        assert who in cfg.attribution, (cfg.name, who)
    assert "DIV2K" in cfg.training_data


@pytest.mark.parametrize("cfg", THIRD_PARTY, ids=lambda cfg: cfg.name)
def test_each_tag_has_a_model_card_saying_whose_it_is(cfg: edsr_lib.PretrainedCfg) -> None:
    import torch
    from huggingface_hub import ModelCard

    from edsr_lib.hub import model_card

    with torch.device("meta"):
        model = edsr_lib.create_model(cfg.architecture)
    card = ModelCard(model_card(model, cfg))
    assert card.data.license == cfg.license
    source = card.text.split("## Source", 1)[1].split("\n## ", 1)[0]
    assert f"[{cfg.hf_hub_id}]" in source and cfg.revision in source and cfg.filename in source
    assert (cfg.sha256 or "not published") in source
    license_text = card.text.split("## License", 1)[1]
    assert cfg.attribution in license_text
    results = card.text.split("## Results", 1)[1].split("\n## ", 1)[0]
    assert cfg.metrics_source in results and "has not measured them" in results
    assert all(r.source_name and "Publisher" in r.source_name for r in card.data.eval_results)
    assert f'from_pretrained("{cfg.hf_hub_id}"' not in card.text  # that repository is not in the library's format
