"""TF32: named where float32 work runs in it, and off where two float32 computations are compared."""

from __future__ import annotations

import pytest
import torch

from edsr_lib._device import full_float32, uses_tf32


def test_uses_tf32_follows_cudnns_setting_on_cuda_only() -> None:
    assert torch.backends.cudnn.allow_tf32  # PyTorch's default
    assert uses_tf32("cuda") and uses_tf32(torch.device("cuda", 0))
    assert not uses_tf32("cpu")


def test_full_float32_turns_tf32_off_inside_and_restores_it_even_on_error() -> None:
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    with full_float32():
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        assert not uses_tf32("cuda")
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == saved
    with pytest.raises(RuntimeError, match="inside"), full_float32():
        raise RuntimeError("inside")
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == saved


def test_the_onnx_check_compares_in_full_float32(tmp_path, monkeypatch) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    import numpy as np

    import edsr_lib
    from edsr_lib import export

    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).eval()
    seen: list[bool] = []
    model.register_forward_pre_hook(lambda *args: seen.append(torch.backends.cudnn.allow_tf32))

    class Session:  # stands in for onnxruntime: answers with the model's own output
        def __init__(self, *args, **kwargs):
            pass

        def run(self, names, feeds):
            with torch.no_grad():
                return [model(torch.from_numpy(next(iter(feeds.values())))).numpy().astype(np.float32)]

    monkeypatch.setattr(onnxruntime, "InferenceSession", Session)
    onnx = pytest.importorskip("onnx")
    io = [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1, 3, "h", "w"]) for n in ("lr", "sr")]
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["lr"], ["sr"])], "io", io[:1], io[1:])
    onnx.save(onnx.helper.make_model(graph), tmp_path / "io.onnx")  # only its inputs and outputs are read
    assert export.max_onnx_error(tmp_path / "io.onnx", model) == 0
    assert False in seen  # the PyTorch side ran with TF32 off (a CUDA model would differ by ~1e-3 in TF32)
