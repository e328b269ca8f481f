"""The weights shipped in the package: found offline with an empty Hugging Face cache, as good as their cards say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import edsr_lib
from edsr_lib.published import VDSR

#: VDSR, trained on the same 291 images as the shipped weights: Set5 PSNR, the bar every shipped model clears.
VDSR_SET5 = {int(scale[1:]): psnr for scale, (psnr, _) in VDSR["Set5"].items()}

_SCORE_ALL = """
import json, sys
import edsr_lib
scores = {}
for name in edsr_lib.list_models(pretrained=True):
    if not edsr_lib.get_pretrained_cfg(name).package_file:
        continue  # a Hub-only tag (replaced weights): not in the package
    model = edsr_lib.create_model(name, pretrained=True)
    scores[name] = {s: edsr_lib.evaluate(model, sys.argv[1], s, protocol="benchmark")["psnr"] for s in model.scales}
print(json.dumps(scores))
"""


@pytest.mark.slow
@pytest.mark.datasets
def test_every_shipped_model_beats_vdsr_on_set5_offline(datasets_dir: Path, tmp_path: Path) -> None:
    shipped = [n for n in edsr_lib.list_models(pretrained=True) if edsr_lib.get_pretrained_cfg(n).package_file]
    assert shipped, "no pretrained weights are registered"
    # a fresh process, so that huggingface_hub reads the offline switch and the empty cache at import
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    env.pop("HF_HUB_CACHE", None)
    env.pop("HUGGINGFACE_HUB_CACHE", None)
    done = subprocess.run(
        [sys.executable, "-c", _SCORE_ALL, str(datasets_dir / "Set5")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    scores = json.loads(done.stdout.splitlines()[-1])
    assert sorted(scores) == sorted(shipped)
    assert not (tmp_path / "hf_home").exists() or not any((tmp_path / "hf_home").rglob("*.safetensors"))
    for name, per_scale in scores.items():
        card = edsr_lib.get_pretrained_cfg(name).metrics["Set5"]
        for scale, psnr in per_scale.items():
            assert psnr > VDSR_SET5[int(scale)], f"{name} x{scale}: {psnr:.3f} dB on Set5, VDSR {VDSR_SET5[int(scale)]}"
            # and the number the card and the registry publish is the one the weights reach
            assert psnr == pytest.approx(card[f"x{scale}"]["psnr"], abs=0.005), (name, scale)
