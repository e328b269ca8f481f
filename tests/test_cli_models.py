"""``edsr-lib models``: the models, then every set of pretrained weights with where it lives, size, licence, scores."""

from __future__ import annotations

import itertools

import pytest

import edsr_lib
from edsr_lib._pretrained import INPUTS
from edsr_lib.cli import main
from edsr_lib.cli.models import PUBLISHER_NOTE, SCORE_SET
from edsr_lib.weights import int8, shipped_size


def _weights_rows(out: str) -> dict[str, list[str]]:
    weights = out.split("\n\n", 1)[1]
    lines = weights.splitlines()
    header = lines[0]
    starts = [
        header.index(title) for title in ("where", "size", "int8", "licence", f"{SCORE_SET} PSNR", "scores by", "for")
    ]
    rows = {}
    for line in lines[1:]:
        if line.startswith("* "):
            continue
        bounds = [0, *starts, len(line)]
        rows[line.split()[0]] = [line[a:b].strip() for a, b in itertools.pairwise(bounds)][1:]
    return rows


def test_models_lists_every_set_of_weights(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    rows = _weights_rows(out)
    cfgs = [cfg for cfg in edsr_lib.list_pretrained() if cfg.has_weights]
    assert sorted(rows) == sorted(cfg.name for cfg in cfgs)
    for cfg in cfgs:
        where, size, quantised, licence, scores, whose, for_input = rows[cfg.name]
        assert for_input == cfg.for_input and f"* for {for_input}: {INPUTS[for_input]}" in out, cfg.name
        int8_scales = sorted(m.record.scale for m in int8.shipped_models() if m.record.source == cfg.name)
        assert quantised == (", ".join(f"x{s}" for s in int8_scales) or "-"), cfg.name
        if cfg.package_file:
            assert where == "package" and size == f"{shipped_size(cfg.package_file) / 1e6:.1f} MB", cfg.name
        else:
            assert where.startswith(f"hub {cfg.hf_hub_id}"), cfg.name
            if cfg.revision:
                assert where.endswith(f"@{cfg.revision[:7]}"), cfg.name
            if cfg.download_size:
                assert size == f"{cfg.download_size / 1e6:.1f} MB", cfg.name
        assert licence == cfg.license, cfg.name
        for scale, values in cfg.metrics.get(SCORE_SET, {}).items():
            assert f"{scale} {values['psnr']:.2f}" in scores, cfg.name
        assert whose == ("publisher*" if cfg.metrics_source else "edsr-lib"), cfg.name
    assert (PUBLISHER_NOTE in out) == any(cfg.metrics_source for cfg in cfgs)


def test_models_pattern_filters_both_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "edsr_x4"]) == 0
    out = capsys.readouterr().out
    assert set(_weights_rows(out)) == {cfg.name for cfg in edsr_lib.list_pretrained("edsr_x4") if cfg.has_weights}
    assert main(["models", "nothing*"]) == 0
    assert "no model matches 'nothing*'" in capsys.readouterr().out
