"""ONNX and NCNN export: onnxruntime and ncnn match PyTorch, with dynamic shapes, for EDSR and each MDSR scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import edsr_lib
from edsr_lib.cli import main
from edsr_lib.export import (
    MIN_OPSET,
    FixedScale,
    export_ncnn,
    export_onnx,
    max_ncnn_error,
    max_onnx_error,
    ncnn_name,
)

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def tiny_mdsr() -> edsr_lib.MDSR:
    torch.manual_seed(0)
    return edsr_lib.create_model("mdsr_baseline", n_resblocks=2, n_feats=8).eval()


def test_fixed_scale_binds_the_scale(tiny_mdsr: edsr_lib.MDSR) -> None:
    x = torch.rand(1, 3, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(FixedScale(tiny_mdsr, 4)(x), tiny_mdsr(x, scale=4))
    with pytest.raises(ValueError, match="scales"):
        FixedScale(tiny_mdsr)


@pytest.mark.parametrize("scale", [2, pytest.param(3, marks=pytest.mark.slow), pytest.param(4, marks=pytest.mark.slow)])
def test_mdsr_exports_per_scale_and_matches_pytorch(tiny_mdsr: edsr_lib.MDSR, tmp_path: Path, scale: int) -> None:
    path = export_onnx(tiny_mdsr, tmp_path / f"mdsr_x{scale}.onnx", scale)
    assert [p.name for p in tmp_path.iterdir()] == [f"mdsr_x{scale}.onnx"]  # no temporary or data file left
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 13, 29)
    (out,) = session.run(["sr"], {"lr": x.numpy()})
    assert out.shape == (2, 3, 13 * scale, 29 * scale)
    with torch.no_grad():
        expected = tiny_mdsr(x, scale=scale)
    assert (torch.from_numpy(out) - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize("io_names", ["edsr", "community"])
def test_the_torchscript_exporter_writes_the_same_graph_quickly(
    tiny_mdsr: edsr_lib.MDSR, tmp_path: Path, io_names: str
) -> None:
    with torch.inference_mode():  # as the runtimes export inside a ComfyUI node
        path = export_onnx(tiny_mdsr, tmp_path / "m.onnx", 3, exporter="torchscript", io_names=io_names)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    for shape in ((1, 3, 11, 7), (1, 3, 20, 33)) if io_names == "community" else ((2, 3, 11, 7), (1, 3, 20, 33)):
        x = torch.rand(shape)
        (out,) = session.run(None, {name: x.numpy()})
        with torch.no_grad():
            assert (torch.from_numpy(out) - tiny_mdsr(x, scale=3)).abs().max().item() <= 1e-4
    with pytest.raises(ValueError, match="fp32 files in its own opset only"):
        export_onnx(tiny_mdsr, tmp_path / "h.onnx", 2, exporter="torchscript", precision="fp16")
    with pytest.raises(ValueError, match="exporter must be one of dynamo, torchscript"):
        export_onnx(tiny_mdsr, tmp_path / "x.onnx", 2, exporter="jit")


def test_the_check_catches_a_different_model(tiny_mdsr: edsr_lib.MDSR, tmp_path: Path) -> None:
    path = export_onnx(tiny_mdsr, tmp_path / "m.onnx", 2, check=False)
    other = edsr_lib.create_model("mdsr_baseline", n_resblocks=2, n_feats=8)
    assert max_onnx_error(path, tiny_mdsr, 2) <= 1e-4
    assert max_onnx_error(path, other, 2) > 1e-2


def test_cli_exports_a_saved_edsr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = edsr_lib.create_model("edsr_baseline_x3", n_resblocks=2, n_feats=8)
    model.save_pretrained(tmp_path / "m")
    assert main(["export-onnx", str(tmp_path / "m"), str(tmp_path / "out" / "e.onnx")]) == 0
    assert "x3" in capsys.readouterr().out
    assert max_onnx_error(tmp_path / "out" / "e.onnx", model, 3) <= 1e-4
    assert not model.fused


def test_cli_needs_a_scale_for_mdsr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edsr_lib.create_model("mdsr_baseline", n_resblocks=1, n_feats=8).save_pretrained(tmp_path / "m")
    assert main(["export-onnx", str(tmp_path / "m"), str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "--scale" in err and "scale=" not in err  # the command line's spelling, not the API's
    assert "2, 3, 4" in err
    assert not (tmp_path / "m.onnx").exists()


# ---------------------------------------------------------------------------- NCNN (upscayl, realesrgan-ncnn-vulkan)
def _ncnn_run(param: Path, x: torch.Tensor) -> torch.Tensor:
    """Run the files with the real ncnn package, through the blob names the NCNN-Vulkan programs use."""
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = False
    net.opt.use_bf16_storage = False
    assert net.load_param(str(param)) == 0
    assert net.load_model(str(param.with_suffix(".bin"))) == 0
    assert list(net.input_names()) == ["data"] and list(net.output_names()) == ["output"]
    extractor = net.create_extractor()
    pixels = np.ascontiguousarray(x[0].numpy())  # ncnn.Mat borrows this memory: it must outlive the extraction
    extractor.input("data", ncnn.Mat(pixels))
    status, out = extractor.extract("output")
    assert status == 0
    return torch.from_numpy(np.array(out))[None]


@pytest.mark.slow
def test_ncnn_files_run_in_ncnn_like_pytorch(tiny_mdsr: edsr_lib.MDSR, tmp_path: Path) -> None:
    pytest.importorskip("pnnx")
    param, weights = export_ncnn(tiny_mdsr, tmp_path / "models", 3)
    assert (param.name, weights.name) == ("mdsr_x3.param", "mdsr_x3.bin")  # no weights: the architecture names it
    assert sorted(p.name for p in param.parent.iterdir()) == [weights.name, param.name]  # nothing else left
    for shape in ((1, 3, 21, 34), (1, 3, 40, 17)):  # any size, not only the traced one
        x = torch.rand(shape)
        with torch.no_grad():
            expected = tiny_mdsr(x, scale=3)
        assert (_ncnn_run(param, x) - expected).abs().max().item() <= 1e-3
    assert max_ncnn_error(param, tiny_mdsr, 3) <= 1e-3
    other = edsr_lib.create_model("mdsr_baseline", n_resblocks=2, n_feats=8)
    assert max_ncnn_error(param, other, 3) > 1e-2


def test_ncnn_names_carry_the_scale_as_upscayl_reads_it() -> None:
    assert ncnn_name("edsr_baseline_x2", 2) == "edsr_baseline_x2"
    assert ncnn_name("mdsr_baseline", 3) == "mdsr_baseline_x3"
    assert ncnn_name("mdsr_baseline", 4) == "mdsr_baseline_x4"  # 4 is upscayl's default, said anyway
    assert ncnn_name("my photos/model", 2) == "my_photos_model_x2"
    with pytest.raises(ValueError, match="upscayl would read scale 2"):
        ncnn_name("model_x2", 3)  # upscayl looks for x2 before x3


@pytest.mark.slow
def test_cli_exports_ncnn_to_a_param_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pnnx")
    pytest.importorskip("ncnn")
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8)
    model.save_pretrained(tmp_path / "m")
    assert main(["export", "--format", "ncnn", str(tmp_path / "m"), str(tmp_path / "models" / "mine.param")]) == 0
    assert "blobs data/output" in capsys.readouterr().out
    assert max_ncnn_error(tmp_path / "models" / "mine_x2.param", model, 2) <= 1e-3


def test_cli_export_onnx_is_export_with_format_onnx(tmp_path: Path) -> None:
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8)
    model.save_pretrained(tmp_path / "m")
    assert main(["export", str(tmp_path / "m"), str(tmp_path / "a.onnx"), "--no-check"]) == 0
    assert max_onnx_error(tmp_path / "a.onnx", model, 2) <= 1e-4


# ---------------------------------------------------------------------------- what export refuses (#30 item 3)
def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def nan_folder(tmp_path: Path) -> Path:
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8)
    with torch.no_grad():
        model.body[0].body[0].weight[0, 0, 0, 0] = float("nan")
    model.save_pretrained(tmp_path / "nan")
    return tmp_path / "nan"


@pytest.mark.parametrize(
    ("fmt", "check"),
    [("onnx", True), ("onnx", False), pytest.param("ncnn", True, marks=pytest.mark.slow), ("ncnn", False)],
)
def test_nan_weights_are_refused_before_export(
    nan_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, check: bool
) -> None:
    if fmt == "ncnn":
        pytest.importorskip("pnnx")
    out = tmp_path / "out" / ("nan.onnx" if fmt == "onnx" else "models")
    args = ["export", "--format", fmt, str(nan_folder), str(out), *([] if check else ["--no-check"])]
    assert main(args) == 2
    assert "NaN or infinite" in _one_line_error(capsys)
    assert not (tmp_path / "out").exists()  # no file, and not the folder made for it


def test_a_comparison_never_passes_on_nan(tmp_path: Path) -> None:
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8)
    path = export_onnx(model, tmp_path / "m.onnx", check=False)
    broken = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8)
    broken.load_state_dict(model.state_dict())
    assert max_onnx_error(path, broken) <= 1e-4
    with torch.no_grad():
        broken.tail.bias.fill_(float("nan"))  # PyTorch's side is NaN, the file's is not
    error = max_onnx_error(path, broken)
    assert not error <= 1e-4


@pytest.mark.slow
def test_an_ncnn_comparison_never_passes_on_nan(tmp_path: Path) -> None:
    pytest.importorskip("pnnx")
    pytest.importorskip("ncnn")
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8)
    param, _ = export_ncnn(model, tmp_path, check=False)
    with torch.no_grad():
        model.tail.bias.fill_(float("nan"))
    assert not max_ncnn_error(param, model) <= 1e-3


@pytest.mark.parametrize("opset", [7, 14, 99, -1])
def test_an_opset_the_exporter_cannot_write_is_refused_in_one_line_before_exporting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, opset: int
) -> None:
    edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).save_pretrained(tmp_path / "m")

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the exporter ran")

    monkeypatch.setattr(torch.onnx, "export", never)
    assert main(["export", str(tmp_path / "m"), str(tmp_path / "o.onnx"), "--opset", str(opset)]) == 2
    err = _one_line_error(capsys)
    assert f"opset {opset} cannot be written" in err and "Traceback" not in err
    assert not (tmp_path / "o.onnx").exists()


@pytest.mark.parametrize("opset", [pytest.param(MIN_OPSET, marks=pytest.mark.slow), 20, "newest"])
def test_each_offered_opset_is_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str], opset: int | str) -> None:
    onnx = pytest.importorskip("onnx")
    opset = onnx.defs.onnx_opset_version() if opset == "newest" else opset
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8)
    path = export_onnx(model, tmp_path / "m.onnx", opset=opset)
    assert [o.version for o in onnx.load(path).opset_import if o.domain == ""] == [opset]
    assert capsys.readouterr().err == ""  # the exporter's own reports of the conversion are not a user's business


def test_an_opset_the_exporter_fails_to_convert_to_is_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("edsr_lib.export.MIN_OPSET", 7)  # the exporter then keeps its own opset for 7
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8)
    with pytest.raises(RuntimeError, match="could not convert this model to ONNX opset 7"):
        export_onnx(model, tmp_path / "m.onnx", opset=7)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_as_out_is_refused_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).save_pretrained(tmp_path / "m")
    (tmp_path / "out").mkdir()
    assert main(["export", str(tmp_path / "m"), str(tmp_path / "out")]) == 2
    err = _one_line_error(capsys)
    assert f"{tmp_path / 'out'} is a folder" in err and ".tmp" not in err
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where no file can be made")
def test_an_unwritable_target_is_named_not_the_temporary_file(capsys: pytest.CaptureFixture[str]) -> None:
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8)
    with pytest.raises(OSError, match=r"^cannot write /proc/x\.onnx: ") as caught:
        export_onnx(model, "/proc/x.onnx")
    assert ".tmp" not in str(caught.value)


def test_ncnn_out_that_is_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pnnx")
    edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).save_pretrained(tmp_path / "m")
    (tmp_path / "afile").write_bytes(b"x")
    assert main(["export", "--format", "ncnn", str(tmp_path / "m"), str(tmp_path / "afile")]) == 2
    assert "afile is a file, not a folder" in _one_line_error(capsys)
    assert (tmp_path / "afile").read_bytes() == b"x"


def test_a_failed_ncnn_export_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pnnx = pytest.importorskip("pnnx")
    monkeypatch.setattr(pnnx, "EXEC_PATH", "false")  # pnnx fails
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8)
    with pytest.raises(RuntimeError, match="pnnx could not convert"):
        export_ncnn(model, tmp_path / "new" / "models")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--format", "ncnn", "--opset", "17"], "--opset applies to --format onnx"),
        (["--name", "mine"], "--name applies to --format ncnn"),
    ],
)
def test_an_option_the_format_does_not_use_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], says: str
) -> None:
    edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).save_pretrained(tmp_path / "m")
    assert main(["export", str(tmp_path / "m"), str(tmp_path / "o"), *extra]) == 2
    assert says in _one_line_error(capsys)
    assert not (tmp_path / "o").exists()
