"""OpenVINO, on the CPU: fp32, bf16 (on a CPU with native bf16) and the int8 models shipped for the weights.

OpenVINO's own default on a CPU with native bf16 is bf16: this backend always states the
precision, so ``"fp32"`` means fp32. int8 runs, through OpenVINO, the int8 model shipped
for the model's weights (:mod:`edsr_lib.weights.int8`: quantised by NNCF, measured within
0.05 dB of fp32 and at least 1.3x faster), on an x86 CPU with AVX2; it is never exported on
the fly. The optional extra: ``pip install "edsr-lib[openvino]"``.

OpenVINO's telemetry is off wherever the library calls OpenVINO. ``import openvino`` starts
it (its conversion tool, ``openvino.tools.ovc``, sends an "import" event, and ``ov.convert_model``
a session), and it treats a missing consent file as consent: it writes ``~/intel/openvino_ga_cid``
and ``~/intel/stats`` and sends usage data to Google Analytics. :func:`telemetry_off` makes the
telemetry package unimportable while OpenVINO (or NNCF) is imported, so both fall back to their
own stubs, which send and write nothing; the ONNX exports are converted with the runtime's own
reader, not ``ov.convert_model``. Where the program imported OpenVINO before the library did,
its telemetry is as that program left it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._device import cpu_has_native_bf16
from .base import BackendError
from .cache import FileBackend
from .machine import cpu_info, threads

__all__ = ["OpenVINOBackend", "import_openvino", "keep_ends_float32", "telemetry_off"]

_TELEMETRY = "openvino_telemetry"


@contextlib.contextmanager
def telemetry_off() -> Iterator[None]:
    """Import OpenVINO (or NNCF) inside this block and its telemetry stays off: nothing is sent or written.

    OpenVINO's tools and NNCF import ``openvino_telemetry`` when they are imported and fall
    back to a stub that does nothing where it cannot be imported; for the duration of the
    block it cannot. Afterwards the modules imported keep their stub.
    """
    if _TELEMETRY in sys.modules:  # imported already, by the program: its choice stands
        yield
        return
    sys.modules[_TELEMETRY] = None  # type: ignore[assignment]  (Python's mark for "cannot be imported")
    try:
        yield
    finally:
        if sys.modules.get(_TELEMETRY, ...) is None:
            del sys.modules[_TELEMETRY]


def import_openvino() -> Any:
    """The ``openvino`` module, imported with its telemetry off (:func:`telemetry_off`)."""
    with telemetry_off():
        import openvino

    return openvino


class OpenVINOBackend(FileBackend):
    """``"openvino"``: an OpenVINO IR (``.xml`` and ``.bin``) converted from the ONNX export."""

    name = "openvino"
    precisions = ("fp32", "bf16", "int8")
    package = "openvino"
    suffix = ".xml"
    #: Files since the float32 marks of :func:`keep_ends_float32` (older cached files lack them).
    revision = "f2"

    def check(self, precision: str, device: torch.device) -> None:
        """See :meth:`~edsr_lib.backends.Backend.check`; bf16 needs native bf16, int8 an x86 CPU with AVX2."""
        super().check(precision, device)
        if precision == "bf16" and not cpu_has_native_bf16():
            raise BackendError(
                "bfloat16 needs a CPU with native bf16 (AVX-512 BF16 or AMX), which this CPU lacks; use fp32 here"
            )
        if precision == "int8" and not cpu_info().flags.get("AVX2"):
            raise BackendError(
                "int8 is offered on x86 CPUs with AVX2, where it was measured faster than fp32; this CPU has no AVX2"
            )

    def save(self, onnx_path: Path, folder: Path) -> Path:
        """Convert the ONNX file to ``model.xml`` and ``model.bin`` in ``folder`` (weights kept in fp32).

        The ends of the network are marked to run in float32 under the bf16 hint (:func:`keep_ends_float32`).
        """
        ov = import_openvino()
        from openvino._offline_transformations import apply_fused_names_cleanup, apply_moc_transformations

        # what ov.convert_model does to an ONNX file, without ov.convert_model: that is OpenVINO's conversion tool,
        # whose telemetry sends usage data and writes ~/intel unless a consent file there says no (see the module)
        converted = ov.Core().read_model(os.fspath(onnx_path))
        apply_moc_transformations(converted, cf=False, smart_reshape=True)
        apply_fused_names_cleanup(converted)
        keep_ends_float32(converted)
        ov.save_model(converted, folder / "model.xml", compress_to_fp16=False)
        return folder / "model.xml"

    def files(self, path: Path) -> tuple[Path, ...]:
        """The ``.bin`` first, then the ``.xml``: an ``.xml`` in the cache always has its ``.bin``."""
        return (path.with_suffix(".bin"), path)

    def compile(self, path: Path, precision: str) -> Callable[[np.ndarray], np.ndarray]:
        """Compile the IR for the CPU with the precision stated, in latency mode, one request per thread."""
        ov = import_openvino()
        import openvino.properties as props
        import openvino.properties.hint as hints

        # int8: the quantised operations run in int8 whatever the hint; the rest in bf16 where the CPU has it
        # natively (OpenVINO's own default there: 5.89x plain PyTorch against 4.71x with an f32 hint on Zen 5),
        # else fp32
        bf16 = precision == "bf16" or (precision == "int8" and cpu_has_native_bf16())
        config = {
            hints.inference_precision: ov.Type.bf16 if bf16 else ov.Type.f32,
            hints.performance_mode: hints.PerformanceMode.LATENCY,
            props.inference_num_threads: threads(),
        }
        compiled = ov.Core().compile_model(os.fspath(path), "CPU", config)
        local = threading.local()  # a request holds its buffers: one per thread, reused from call to call

        def run(x: np.ndarray) -> np.ndarray:
            request = getattr(local, "request", None)
            if request is None:
                request = local.request = compiled.create_infer_request()
            request.infer({0: x}, share_inputs=True)
            return request.get_output_tensor(0).data.copy()

        return run


def keep_ends_float32(model: Any) -> None:
    """Mark the ops from the input to the first convolution, and from the last one to the output, as float32.

    ``model`` is an ``openvino.Model``. Under the bf16 inference hint OpenVINO otherwise
    rounds them to bf16: the 8-bit input levels (``x - mean`` loses up to half a level) and
    the output mean held in the tail's bias (0.4488 becomes 0.4492), which made bf16 output
    0.02-0.07 grey levels brighter than fp32 on average; marked, the mean difference is under
    0.01 levels and the largest a third, for about 2% of the time (PyTorch's side:
    :func:`edsr_lib.backends.pytorch.float32_ends`). The mark is OpenVINO's ``precise``
    attribute (what ``disable_fp16_compression`` sets), which the CPU plugin honours for bf16
    too once it reads it from a saved file. fp32 runs are unchanged.
    """

    def consumers(node: Any) -> list[Any]:
        return [i.get_node() for out in node.outputs() for i in out.get_target_inputs()]

    def producers(node: Any) -> list[Any]:
        return [i.get_source_output().get_node() for i in node.inputs()]

    for start, step in ((model.get_parameters(), consumers), (model.get_results(), producers)):
        seen, todo = set(), list(start)
        while todo:
            node = todo.pop()
            if node.get_type_name() == "Constant" or node.get_friendly_name() in seen:
                continue
            seen.add(node.get_friendly_name())
            node.get_rt_info()["precise_0"] = ""
            if node.get_type_name() != "Convolution":
                todo.extend(step(node))
