"""``hubconf.py``: ``torch.hub.load(<clone>, name, source="local")`` for every registered model, from a clean clone.

The clone is ``git clone`` of this repository with the working tree's uncommitted changes laid
over it (so the test checks what would be committed), run in a fresh interpreter without
PYTHONPATH and offline: ``edsr_lib`` must come from the clone, and weights the package ships
must load from it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import edsr_lib

REPO_ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

_PROBE = """
import hashlib, json, sys, torch
clone = sys.argv[1]
# torch.hub.list and torch.hub.help read GitHub repositories only: list the entries as they do
sys.path.insert(0, clone)
import hubconf
sys.path.remove(clone)
entries = sorted(n for n in dir(hubconf) if callable(getattr(hubconf, n)) and not n.startswith("_"))
out = {"entries": entries, "models": {}}
for name in entries:
    model = torch.hub.load(clone, name, source="local", trust_repo=True, verbose=False)
    record = {"class": type(model).__name__, "params": sum(p.numel() for p in model.parameters())}
    try:
        trained = torch.hub.load(clone, name, source="local", trust_repo=True, verbose=False, pretrained=True)
    except Exception as error:  # a tag whose weights are only on the Hub: offline, that must be a clear refusal
        record["refused"] = f"{type(error).__name__}: {error}"
    else:
        digest = hashlib.sha256()
        for key, value in sorted(trained.state_dict().items()):
            digest.update(key.encode() + value.float().numpy().tobytes())
        record["tag"] = trained.pretrained_cfg.tag
        record["digest"] = digest.hexdigest()
        record["eval"] = not trained.training
    out["models"][name] = record
import edsr_lib
out["file"] = edsr_lib.__file__
out["doc"] = hubconf.mdsr.__doc__
print(json.dumps(out))
"""


def _git(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run(["git", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _digest(model: torch.nn.Module) -> str:
    import hashlib

    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode() + value.float().numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("needs a git checkout of the repository")
    target = tmp_path_factory.mktemp("hub") / "edsr-lib"
    _git("clone", "--quiet", "--no-hardlinks", REPO_ROOT, target, cwd=REPO_ROOT)
    changed = _git("ls-files", "-z", "--modified", "--others", "--exclude-standard", cwd=REPO_ROOT).split("\0")
    for name in filter(None, changed):
        if (REPO_ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, target / name)
    for name in filter(None, _git("ls-files", "-z", "--deleted", cwd=REPO_ROOT).split("\0")):
        (target / name).unlink(missing_ok=True)
    return target


def test_every_registered_model_loads_through_torch_hub_from_a_clean_clone(clone: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TORCH_HOME")}
    env |= {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "torch")}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(clone)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])

    assert Path(out["file"]).resolve().is_relative_to(clone.resolve()), out["file"]
    assert out["entries"] == edsr_lib.list_models()  # one entry per registered model, nothing else
    assert "pretrained=True loads mdsr." in out["doc"]
    for name, record in out["models"].items():
        model = edsr_lib.create_model(name)
        assert record["class"] == type(model).__name__
        assert record["params"] == sum(p.numel() for p in model.parameters())
        cfg = edsr_lib.get_pretrained_cfg(name) if edsr_lib.list_models(name, pretrained=True) else None
        if cfg is not None and cfg.package_file:
            assert "refused" not in record, f"{name}: {record.get('refused')}"
            assert record["tag"] == cfg.tag and record["eval"]
            assert record["digest"] == _digest(edsr_lib.create_model(name, pretrained=True)), name
        else:  # weights on the Hub only (or none): offline, the refusal names the problem
            assert "refused" in record, f"{name} loaded weights offline that the package does not ship"
            assert "HF_HUB_OFFLINE" in record["refused"] or "no pretrained weights" in record["refused"]


def test_a_tag_picks_other_weights(clone: Path) -> None:
    shipped = [c for c in edsr_lib.list_pretrained() if c.package_file]
    assert shipped, "the package ships no weights"
    cfg = shipped[-1]
    model = torch.hub.load(str(clone), cfg.architecture, source="local", trust_repo=True, pretrained=True, tag=cfg.tag)
    assert model.pretrained_cfg.tag == cfg.tag
    assert _digest(model) == _digest(edsr_lib.create_model(f"{cfg.architecture}.{cfg.tag}", pretrained=True))
