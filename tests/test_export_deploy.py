"""The files for the places upscalers run: fp16 and bf16 ONNX in the GPU upscalers' conventions, ExecuTorch, Core ML.

Each file is run by its runtime here and compared with the float32 PyTorch model, except Core
ML, which runs only on Apple systems: its package is validated as far as Linux allows (the
spec loads; inputs, outputs, shapes and precisions are as documented).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import edsr_lib
from edsr_lib.export import (
    BF16_OPSET,
    ONNX_TOLERANCE,
    check_coreml,
    export_coreml,
    export_executorch,
    export_onnx,
    max_executorch_error,
    max_onnx_error,
)

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed")


@pytest.fixture(scope="module")
def model() -> edsr_lib.SRModel:
    """A small EDSR with trained-looking weights: random, then the fused tail's 1/255 makes them tiny."""
    torch.manual_seed(0)
    return edsr_lib.create_model("edsr_baseline_x2", n_resblocks=2, n_feats=16).eval()


def _tensor_types(path: Path) -> tuple[dict, dict, dict[str, int]]:
    graph = onnx.load(str(path)).graph
    (i,), (o,) = graph.input, graph.output

    def describe(v: onnx.ValueInfoProto) -> dict:
        dims = [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
        return {"name": v.name, "dtype": v.type.tensor_type.elem_type, "dims": dims}

    return describe(i), describe(o), {t.name: t.data_type for t in graph.initializer}


def _conv_weight_dtypes(path: Path) -> list[int]:
    """The dtype of each Conv's weight, in graph order (through a Cast where one feeds it)."""
    graph = onnx.load(str(path)).graph
    initializers = {t.name: t.data_type for t in graph.initializer}
    produced = {out: node for node in graph.node for out in node.output}
    dtypes = []
    for node in (n for n in graph.node if n.op_type == "Conv"):
        weight = node.input[1]
        if weight in initializers:
            dtypes.append(initializers[weight])
        else:  # a cast of an initializer
            cast = produced[weight]
            dtypes.append(next(a.i for a in cast.attribute if a.name == "to"))
    return dtypes


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_onnx_in_the_community_conventions(model: edsr_lib.SRModel, tmp_path: Path, precision: str) -> None:
    path = export_onnx(model, tmp_path / "m.onnx", precision=precision, io_names="community")
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    half = {"fp16": onnx.TensorProto.FLOAT16, "bf16": onnx.TensorProto.BFLOAT16}[precision]
    io_dtype = onnx.TensorProto.FLOAT16 if precision == "fp16" else onnx.TensorProto.FLOAT
    inp, out, _ = _tensor_types(path)
    assert inp == {"name": "input", "dtype": io_dtype, "dims": [1, 3, "height", "width"]}
    assert out["name"] == "output" and out["dtype"] == io_dtype and out["dims"][:2] == [1, 3]
    # every convolution in the half precision but the last, which stays in float32
    convs = _conv_weight_dtypes(path)
    n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert len(convs) == n_conv and convs[:-1] == [half] * (n_conv - 1) and convs[-1] == onnx.TensorProto.FLOAT
    if precision == "bf16":
        opset = next(o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx"))
        assert opset >= BF16_OPSET
    runtime = "reference" if precision == "bf16" else "onnxruntime"
    error = max_onnx_error(path, model, shapes=((1, 3, 24, 24), (1, 3, 13, 29)), runtime=runtime)
    assert 0 < error <= ONNX_TOLERANCE[precision]  # rounded, so not exact, but within the tolerance


@pytest.mark.slow
def test_fp16_onnx_is_half_the_size_and_runs_in_onnxruntime_at_any_size(
    model: edsr_lib.SRModel, tmp_path: Path
) -> None:
    import onnxruntime

    fp32 = export_onnx(model, tmp_path / "fp32.onnx")
    fp16 = export_onnx(model, tmp_path / "fp16.onnx", precision="fp16")  # lr/sr, dynamic batch

    def weight_bytes(path: Path) -> int:
        return sum(len(t.raw_data) for t in onnx.load(str(path)).graph.initializer)

    assert weight_bytes(fp16) < 0.55 * weight_bytes(fp32)  # half, but for the float32 last convolution
    session = onnxruntime.InferenceSession(str(fp16), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 17, 23)
    (sr,) = session.run(["sr"], {"lr": x.numpy().astype(np.float16)})
    assert sr.dtype == np.float16 and sr.shape == (2, 3, 34, 46)
    with torch.inference_mode():
        expected = model(x, scale=2).numpy()
    assert np.abs(sr.astype(np.float32) - expected).max() <= ONNX_TOLERANCE["fp16"]


@pytest.mark.slow
def test_bf16_onnx_runs_in_openvino_in_bfloat16(model: edsr_lib.SRModel, tmp_path: Path) -> None:
    ov = pytest.importorskip("openvino", reason="the openvino extra is not installed")
    path = export_onnx(model, tmp_path / "bf16.onnx", precision="bf16", io_names="community")
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
    x = torch.rand(1, 3, 21, 30)
    (sr,) = compiled(x.numpy()).values()
    with torch.inference_mode():
        expected = model(x, scale=2).numpy()
    assert np.abs(sr - expected).max() <= ONNX_TOLERANCE["bf16"]


def test_a_bf16_file_below_opset_22_and_unknown_choices_are_refused(model: edsr_lib.SRModel, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"bf16 file needs opset {BF16_OPSET}"):
        export_onnx(model, tmp_path / "m.onnx", precision="bf16", opset=18)
    with pytest.raises(ValueError, match="precision must be one of fp32, fp16, bf16"):
        export_onnx(model, tmp_path / "m.onnx", precision="int8")
    with pytest.raises(ValueError, match="io_names must be one of edsr, community"):
        export_onnx(model, tmp_path / "m.onnx", io_names="chainner")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_executorch_file_runs_in_executorch_and_matches_pytorch(model: edsr_lib.SRModel, tmp_path: Path) -> None:
    pytest.importorskip("executorch", reason="the executorch extra is not installed")
    from executorch.runtime import Runtime

    path = export_executorch(model, tmp_path / "m.pte", max_size=64)
    assert 0 <= max_executorch_error(path, model, shapes=((7, 9), (64, 40))) <= 1e-4
    method = Runtime.get().load_program(path).load_method("forward")
    x = torch.rand(1, 3, 11, 13)
    (sr,) = method.execute([x])
    with torch.inference_mode():
        torch.testing.assert_close(sr, model(x, scale=2), atol=1e-4, rtol=0)
    # the XNNPACK delegate holds the work: the program names it
    assert b"XnnpackBackend" in path.read_bytes()
    with pytest.raises(ValueError, match="max_size must be an integer of at least 32"):
        export_executorch(model, tmp_path / "n.pte", max_size=8)


@pytest.mark.slow
def test_coreml_package_is_valid_as_far_as_linux_allows(model: edsr_lib.SRModel, tmp_path: Path) -> None:
    pytest.importorskip("coremltools", reason="the coreml extra is not installed")
    path = export_coreml(model, tmp_path / "m.mlpackage", max_size=512)
    assert path.is_dir() and (path / "Manifest.json").is_file()
    assert check_coreml(path, model, max_size=512) == []
    assert check_coreml(path, model, max_size=1024) == [
        "its input takes the shapes [(1, 1), (3, 3), (1, 512), (1, 512)], not 1 x 3 x [1, 1024]^2"
    ]
    fp32 = export_coreml(model, tmp_path / "fp32.mlpackage", precision="fp32", max_size=512)
    assert check_coreml(fp32, model, max_size=512, precision="fp32") == []
    assert check_coreml(fp32, model, max_size=512) == ["its convolutions are not float16 with the last one float32"]
    with pytest.raises(FileExistsError, match="exists: remove it or choose another name"):
        export_coreml(model, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp32.mlpackage", "m.mlpackage"]  # no temporary left


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edsr_lib", "export", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_cli_writes_fp16_community_onnx(tmp_path: Path) -> None:
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8)
    model.save_pretrained(tmp_path / "tiny")
    done = _cli("tiny", "tiny_fp16.onnx", "--precision", "fp16", "--io-names", "community", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "fp16, input/output, 1x3xHxW" in done.stdout and "within 0.003" in done.stdout
    inp, out, _ = _tensor_types(tmp_path / "tiny_fp16.onnx")
    assert (inp["name"], out["name"], inp["dtype"]) == ("input", "output", onnx.TensorProto.FLOAT16)


@pytest.mark.slow  # a process each: the CLI's imports take seconds
@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (("--format", "ncnn", "--precision", "fp16"), "--format ncnn writes --precision fp32"),
        (("--format", "executorch", "--precision", "bf16"), "--format executorch writes --precision fp32"),
        (("--format", "coreml", "--precision", "bf16"), "--format coreml writes --precision fp16 or fp32"),
        (("--format", "coreml", "--io-names", "community"), "--io-names applies to --format onnx"),
        (
            (
                "--max-size",
                "256",
            ),
            "--max-size applies to --format coreml or executorch; onnx takes any size",
        ),
        (("--format", "executorch", "--opset", "18"), "--opset applies to --format onnx, not executorch"),
    ],
)
def test_cli_refuses_options_the_format_does_not_use(tmp_path: Path, args: tuple[str, ...], refusal: str) -> None:
    done = _cli("edsr_baseline_x2", "out.x", *args, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1] == f"edsr-lib export: error: {refusal}"
    assert not list(tmp_path.iterdir())
