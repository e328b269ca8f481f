"""OpenVINO runs without its telemetry: a ``--backend openvino`` run writes nothing outside the cache and the outputs.

OpenVINO's telemetry (``openvino_telemetry``, which ``import openvino`` imports, started by its
conversion tool ``ov.convert_model`` and by NNCF) treats a missing consent file as consent: it
writes ``~/intel/openvino_ga_cid`` and ``~/intel/stats`` and sends usage data. The library
converts its ONNX exports with the runtime's own reader instead, so the telemetry never starts.
Each check runs the command in a fresh interpreter with ``HOME`` pointed at an empty folder,
and lists what appeared there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT

import edsr_lib
from edsr_lib import backends
from edsr_lib.inference import cpu_has_native_bf16
from edsr_lib.io import write_image

pytestmark = pytest.mark.skipif("openvino" not in backends.installed_runtimes(), reason="needs openvino")

#: Run a command of the CLI, then say whether OpenVINO's telemetry package was imported (``import openvino``
#: imports it, and starts it, unless it cannot be imported).
_PROBE = """
import sys
from edsr_lib.cli import main
status = main(sys.argv[1:])
print("telemetry imported:", "openvino_telemetry" in sys.modules)
sys.exit(status)
"""


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("extra", [[], pytest.param(["--bf16"], id="bf16")])
def test_an_openvino_run_writes_nothing_outside_the_cache_and_the_outputs(tmp_path: Path, extra: list[str]) -> None:
    if extra and not cpu_has_native_bf16():
        pytest.skip("bf16 runs through OpenVINO only on a CPU with native bf16, which this CPU lacks")
    edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).save_pretrained(tmp_path / "model")
    write_image(tmp_path / "photo.png", np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8))
    home, cache = tmp_path / "home", tmp_path / "cache"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CACHE_HOME", "CI", "TF_BUILD", "JENKINS_URL")}
    env |= {
        "HOME": str(home),
        "EDSR_LIB_CACHE": str(cache),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    args = ["upscale", str(tmp_path / "photo.png"), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "model")]
    for _ in range(2):  # the export, then the cached file
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, *args, "--backend", "openvino", *extra],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        assert "telemetry imported: False" in done.stdout
        assert _files_under(home) == []  # no ~/intel, nothing at all
    assert sorted(p.suffix for p in (cache / "runtimes").iterdir()) == [".bin", ".json", ".xml"]  # the IR, its digests


# ---------------------------------------------------------------- the runtime cache is verified (#30 item 1)
def _zeros_in(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 4 : len(data) // 4 + 4096] = bytes(4096)  # the same size: only a digest sees it
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _random(path: Path) -> None:
    path.write_bytes(np.random.default_rng(1).integers(0, 256, path.stat().st_size, dtype=np.uint8).tobytes())


@pytest.mark.parametrize(
    ("suffix", "damage"),
    [(".bin", _zeros_in), (".bin", _truncate), (".xml", _truncate), (".bin", _random), (".sha256.json", Path.unlink)],
)
def test_a_damaged_cached_file_is_removed_exported_again_and_named_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, damage: object
) -> None:
    monkeypatch.setenv("EDSR_LIB_CACHE", str(tmp_path / "cache"))
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).eval()
    x = torch.rand(1, 3, 17, 13)
    backend = backends.get_backend("openvino")
    first = backend.load(model, 2, "fp32")
    target = first.path.with_name(first.path.stem + suffix) if suffix != ".xml" else first.path
    damage(target)
    with pytest.warns(RuntimeWarning, match="damaged") as caught:
        again = backend.load(model, 2, "fp32")
    assert len(caught) == 1 and target.name in str(caught[0].message)
    with torch.no_grad():
        assert (again(x) - model(x)).abs().max().item() <= 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # intact again: loaded without a word
        backend.load(model, 2, "fp32")


def test_an_unwritable_cache_stops_a_runtime_before_any_file_and_auto_falls_back_to_pytorch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from edsr_lib.cli import main

    (tmp_path / "a_file").write_bytes(b"")
    monkeypatch.setenv("EDSR_LIB_CACHE", str(tmp_path / "a_file"))  # works as root too, unlike a read-only folder
    edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).save_pretrained(tmp_path / "model")
    for name in ("a.png", "b.png"):
        write_image(tmp_path / "in" / name, np.random.default_rng(0).integers(0, 256, (9, 8, 3), dtype=np.uint8))
    common = [str(tmp_path / "in"), "--model", str(tmp_path / "model")]
    assert main(["upscale", *common, "-o", str(tmp_path / "ov"), "--backend", "openvino"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "EDSR_LIB_CACHE" in err and "cannot be written" in err
    assert not (tmp_path / "ov").exists()  # said before any file
    assert main(["upscale", *common, "-o", str(tmp_path / "auto"), "--backend", "auto"]) == 0
    err = capsys.readouterr().err
    assert err.count("EDSR_LIB_CACHE") == 1 and "runs PyTorch" in err  # one note for the whole job
    assert main(["upscale", *common, "-o", str(tmp_path / "torch")]) == 0
    for name in ("a_x2.png", "b_x2.png"):
        assert (tmp_path / "auto" / name).read_bytes() == (tmp_path / "torch" / name).read_bytes()
