"""int8: the shipped int8 models keep issue #21's rule, run inside ``upscale`` and are refused where they cannot run."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

import edsr_lib
from edsr_lib import backends
from edsr_lib.backends import BackendError
from edsr_lib.cli import main
from edsr_lib.io import read_image, write_image
from edsr_lib.weights import int8 as shipped_int8

SHIPPED = shipped_int8.shipped_models()
BY_NAME = [pytest.param(m, id=f"{m.record.source}-x{m.record.scale}") for m in SHIPPED]
#: The tests that run an int8 model need OpenVINO and a CPU where int8 is offered.
runs_int8 = pytest.mark.skipif(
    "openvino" not in backends.installed_runtimes() or not backends.cpu_info().flags.get("AVX2"),
    reason="int8 runs in OpenVINO on an x86 CPU with AVX2",
)


def _model(found: shipped_int8.Int8Model) -> edsr_lib.SRModel:
    return edsr_lib.create_model(found.record.source, pretrained=True).eval()


def _photo_like(height: int, width: int) -> torch.Tensor:
    """Smooth shading, soft edges and sensor noise: what the calibration crops look like, locally."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    base = torch.stack([0.3 + 0.4 * xx, 0.2 + 0.5 * yy, 0.6 - 0.3 * xx * yy])
    disc = torch.sigmoid((0.25 - ((xx - 0.5) ** 2 + (yy - 0.5) ** 2).sqrt()) * 40)
    image = base * (1 - 0.5 * disc) + 0.02 * torch.randn(3, height, width, generator=torch.Generator().manual_seed(0))
    return image.clamp(0, 1)[None]


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).mean()))


@pytest.mark.parametrize("found", BY_NAME)
def test_each_shipped_int8_model_belongs_to_shipped_weights_and_keeps_the_rule(
    found: shipped_int8.Int8Model,
) -> None:
    record, folder = found.record, found.xml.parent
    model = _model(found)
    assert folder.name == shipped_int8.folder_name(record.scale) and record.scale in model.scales
    assert folder.parent.name == record.source
    assert record.weights_sha256 == backends.weights_sha256(model)  # made from exactly these weights
    assert record.command.startswith("python benchmarks/bench_int8.py") and "--save" in record.command
    # calibrated and validated on training crops, never on a set the rule scores
    assert not any(name in str(record.recipe) for name in (*shipped_int8.RULE_SETS, "Urban100", "DIV2K_valid"))
    assert {"nncf", "openvino"} <= set(record.versions)
    assert record.measurements, "an int8 model ships with at least one measurement"
    for measurement in record.measurements:
        assert shipped_int8.rule_problems(measurement) == [], measurement["cpu"]


def test_the_rule() -> None:
    passing = {
        "seconds": {"int8": 1.0, "openvino fp32": 1.4, "torch fp32": 2.0},
        "psnr": {name: {"fp32": 30.0, "int8": 29.96} for name in shipped_int8.RULE_SETS},
    }
    assert shipped_int8.rule_problems(passing) == []
    slow = passing | {"seconds": {"int8": 1.0, "openvino fp32": 1.2, "torch fp32": 2.0}}
    assert shipped_int8.rule_problems(slow) == ["1.20x the fastest fp32 path (openvino fp32), below 1.3x"]
    costly = passing | {"psnr": passing["psnr"] | {"Set14": {"fp32": 30.0, "int8": 29.9}}}
    assert shipped_int8.rule_problems(costly) == ["0.100 dB lost on Set14, above 0.05 dB"]
    partial = passing | {"psnr": {"Set5": passing["psnr"]["Set5"]}}
    assert shipped_int8.rule_problems(partial) == ["no PSNR on Set14", "no PSNR on B100"]
    assert shipped_int8.rule_problems({}) == ["no int8 and fp32 times"] + [
        f"no PSNR on {name}" for name in shipped_int8.RULE_SETS
    ]


def test_a_folder_added_to_the_search_path_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "mine.t1" / shipped_int8.folder_name(3)
    folder.mkdir(parents=True)
    (folder / "model.xml").write_text("<net/>")
    (folder / "model.bin").write_bytes(b"")
    shipped_int8.write_record(folder, shipped_int8.Int8Record("mine.t1", 3, "ab" * 32, "python make.py"))
    assert shipped_int8.find("ab" * 32, 3) is None
    monkeypatch.setattr(shipped_int8, "search_path", [tmp_path])
    found = shipped_int8.find("ab" * 32, 3)
    assert found is not None and found.xml == folder / "model.xml" and found.record.source == "mine.t1"
    assert shipped_int8.find("ab" * 32, 2) is None  # another scale
    for shipped in SHIPPED[:1]:  # an added folder comes before the package: another recipe for shipped weights
        key = shipped.record.weights_sha256, shipped.record.scale
        theirs = tmp_path / shipped.record.source / shipped_int8.folder_name(key[1])
        theirs.mkdir(parents=True)
        for name in ("model.xml", "model.bin", "int8.json"):
            (theirs / name).write_bytes((shipped.xml.parent / name).read_bytes())
        assert shipped_int8.find(*key).xml == theirs / "model.xml"
    (folder / "int8.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="is not an int8 record"):
        shipped_int8.read_record(folder)


@runs_int8
@pytest.mark.parametrize("found", BY_NAME)
def test_int8_runs_inside_upscale_close_to_fp32_and_tiles_like_one_pass(found: shipped_int8.Int8Model) -> None:
    model, scale = _model(found), found.record.scale
    x = _photo_like(90, 110)
    fp32 = edsr_lib.upscale(model, x, scale, tile=None)
    whole = edsr_lib.upscale(model, x, scale, tile=None, int8=True)
    tiled = edsr_lib.upscale(model, x, scale, tile=40, batch_size=3, int8=True)
    assert whole.shape == fp32.shape and whole.dtype == torch.float32
    assert (whole - fp32).abs().max().item() > 0 and _psnr(whole, fp32) > 40  # quantised, and close
    # synthetic graphics (saturated flat colours, black and white rings) stray further, as docs/speed.md says
    graphics = edsr_lib.io.to_tensor(read_image(Path(__file__).parents[1] / "examples" / "data" / "sample.png"))
    assert (
        _psnr(
            edsr_lib.upscale(model, graphics[:, :3], scale, int8=True), edsr_lib.upscale(model, graphics[:, :3], scale)
        )
        > 30
    )
    # the windows overlap by the receptive radius: the same pixels to float rounding, where the unquantised parts
    # run in fp32; where they run in bf16 (a CPU with native bf16), a rounding flip inside moves a pixel by a
    # bf16 step, as bf16 itself does (docs/speed.md: at most four 8-bit levels on noise)
    tolerance = 3e-2 if edsr_lib.inference.cpu_has_native_bf16() else 1e-5
    assert (tiled - whole).abs().max().item() <= tolerance
    runtime = backends.load_runtime(model, scale, "openvino", "int8")
    assert runtime.precision == "int8" and runtime.path == found.xml  # the shipped file, never an export
    # "auto" with int8 is OpenVINO: no other runtime runs it
    assert (edsr_lib.upscale(model, x, scale, tile=None, int8=True, backend="auto") - whole).abs().max() == 0


@runs_int8
@pytest.mark.parametrize("native_bf16", [True, False])
def test_int8_runs_its_unquantised_parts_in_bf16_where_the_cpu_has_it(
    native_bf16: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openvino as ov
    import openvino.properties.hint as hints

    asked = []

    class Spy(ov.Core):
        def compile_model(self, model: object, device: str, config: dict) -> object:
            asked.append(config[hints.inference_precision])
            return super().compile_model(model, device, config)

    monkeypatch.setattr(ov, "Core", Spy)
    monkeypatch.setattr(backends.openvino, "cpu_has_native_bf16", lambda: native_bf16)
    found = SHIPPED[0]
    backends.get_backend("openvino").compile(found.xml, "int8")
    backends.get_backend("openvino").compile(found.xml, "fp32")
    # as OpenVINO alone does on such a CPU (the fastest int8 there); fp32 stays fp32
    assert asked == [ov.Type.bf16 if native_bf16 else ov.Type.f32, ov.Type.f32]


@runs_int8
def test_what_int8_cannot_do_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    tiny = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).eval()
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(BackendError, match=r"these weights at x2 have none; int8 models: ") as err:
        edsr_lib.upscale(tiny, x, int8=True)
    assert "\n" not in str(err.value)
    for asked, message in (
        ({"backend": "torch"}, "int8 runs with backend='openvino'"),
        ({"backend": "onnxruntime"}, "does not run int8"),
        ({"half": "bf16"}, "two precisions"),
    ):
        monkeypatch.setattr(edsr_lib.inference, "resolve_half", lambda half, device: torch.bfloat16 if half else None)
        with pytest.raises(BackendError, match=message):
            edsr_lib.upscale(tiny, x, int8=True, **asked)
    monkeypatch.setattr(backends.openvino, "cpu_info", lambda: backends.CPUInfo("an ARM CPU", {"AVX2": False}))
    with pytest.raises(BackendError, match="x86 CPUs with AVX2"):
        edsr_lib.upscale(tiny, x, int8=True)


@runs_int8
def test_the_command_line_runs_int8_and_refuses_weights_without_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not SHIPPED:
        pytest.skip("no int8 model is shipped")
    found = SHIPPED[0]
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 40 * 52).reshape(40, 52, 1)
    write_image(tmp_path / "a.png", np.clip(ramp + rng.normal(0, 8, (40, 52, 3)), 0, 255).astype(np.uint8))
    args = ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model", found.record.source]
    assert main([*args, "--scale", str(found.record.scale), "--int8"]) == 0
    written = read_image(tmp_path / "out" / f"a_x{found.record.scale}.png")
    expected = edsr_lib.upscale(_model(found), read_image(tmp_path / "a.png"), found.record.scale, int8=True)
    np.testing.assert_array_equal(written, expected)

    torch.manual_seed(0)
    edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).save_pretrained(tmp_path / "mine")
    capsys.readouterr()
    mine = ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "mine_out"), "--model", str(tmp_path / "mine")]
    assert main([*mine, "--int8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "int8 is offered only for weights" in err
    assert not list((tmp_path / "mine_out").glob("*.png"))  # refused before any file
    with pytest.raises(SystemExit) as exit_:  # one precision at a time
        main([*mine, "--int8", "--bf16"])
    assert exit_.value.code == 2 and "argument --bf16: not allowed with argument --int8" in capsys.readouterr().err


def _bench_int8() -> ModuleType:
    """benchmarks/bench_int8.py, whose ``measure`` makes the measurements that int8.json records."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_int8.py"
    spec = importlib.util.spec_from_file_location("bench_int8", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name while the classes are made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


@pytest.mark.slow
@pytest.mark.datasets
@runs_int8
@pytest.mark.parametrize("found", BY_NAME)
def test_int8_keeps_the_rule_measured_again_on_this_machine(found: shipped_int8.Int8Model, datasets_dir: Path) -> None:
    """The rule of int8.py, on a measurement made here and now, not on the figures stored in int8.json.

    The same measurement as ``bench_int8.py --measure`` (speed against every fp32 path, alternated,
    best of 5; PSNR on each of RULE_SETS), judged by the same :func:`rule_problems`.
    """
    model, scale = _model(found), found.record.scale
    bench = _bench_int8()
    args = argparse.Namespace(size=256, repeats=5, sets=",".join(shipped_int8.RULE_SETS), datasets=str(datasets_dir))
    measurement = bench.measure(model, scale, args, "tests/test_int8.py")  # prints its figures (shown on failure)
    assert set(measurement["psnr"]) == set(shipped_int8.RULE_SETS)
    assert shipped_int8.rule_problems(measurement) == [], measurement
