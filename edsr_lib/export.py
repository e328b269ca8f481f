"""Export a model to ONNX (dynamic batch, height and width) or to NCNN (for upscayl and the NCNN-Vulkan programs).

A graph takes only tensors, so a model is exported at one scale: :class:`FixedScale`
wraps it (for MDSR, one file per scale). The exported graph is the fused model
(:meth:`~edsr_lib.SRModel.fuse`), which equals the unfused one to float rounding.

ONNX needs the optional extra ``onnx`` (``pip install "edsr-lib[onnx]"``: onnx, onnxscript
for PyTorch's exporter, onnxruntime for the check). NCNN needs the extra ``ncnn``
(``pip install "edsr-lib[ncnn]"``: pnnx converts, the ncnn package checks the files).

Both exporters check what they are given before any work, as :func:`edsr_lib.upscale` does:
a model whose weights hold NaN or infinity is refused (:func:`~edsr_lib.inference.check_finite_weights`),
an ONNX opset the exporter cannot write is refused (:func:`check_opset`), and a target that is
a folder (ONNX) or a file (NCNN) is refused. A comparison with PyTorch never passes on a NaN
or infinite output. Nothing is left behind by a failed export: no file, no folder it made.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import os
import re
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ._device import full_float32
from ._files import atomic_folder, atomic_move, atomic_path
from ._hub import check_finite_weights
from .models import SRModel

__all__ = [
    "BF16_OPSET",
    "EXPORTERS",
    "IO_NAMES",
    "MIN_OPSET",
    "ONNX_PRECISIONS",
    "ONNX_TOLERANCE",
    "FixedScale",
    "check_opset",
    "export_ncnn",
    "export_onnx",
    "max_ncnn_error",
    "max_onnx_error",
    "ncnn_name",
]

#: Name of the graph's input (float32 ``N x C x H x W`` in [0, 1]) and output.
INPUT_NAME, OUTPUT_NAME = "lr", "sr"
#: Blob names of an NCNN file: realesrgan-ncnn-vulkan looks up ``data`` and ``output``; upscayl
#: prefers them (and falls back to pnnx's ``in0``/``out0``).
NCNN_INPUT, NCNN_OUTPUT = "data", "output"
#: How upscayl reads a model's scale from its file name: the first of these factors whose
#: ``x<n>`` or ``<n>x`` occurs in the name, else 4.
_UPSCAYL_SCALES = (1, 2, 3, 4, 8, 16)
#: The oldest ONNX opset the exporter can write these graphs in: PyTorch's exporter writes opset 18
#: and converts it; below 15, ONNX's converter has no adapter for the graph's ``Shape`` operators.
MIN_OPSET = 15
#: Largest difference allowed between an exported file's output and PyTorch's, on [0, 1].
_ONNX_TOLERANCE, _NCNN_TOLERANCE = 1e-4, 1e-3
#: ``io_names`` of :func:`export_onnx`: the input and output names, and whether the batch is fixed at 1.
#: ``community`` is the convention of the GPU upscalers (chaiNNer's and ComfyUI's TensorRT nodes,
#: vs-mlrt): ``input``/``output``, ``1 x 3 x H x W`` with the height and width dynamic.
IO_NAMES: dict[str, tuple[str, str, bool]] = {
    "edsr": (INPUT_NAME, OUTPUT_NAME, False),
    "community": ("input", "output", True),
}
#: ``precision`` of :func:`export_onnx`: the dtype of the weights and activations, and of the graph's input
#: and output. An fp16 file takes and gives float16 (what fp16 ONNX means to TensorRT and its users); a bf16
#: file takes and gives float32 (few programs feed bfloat16, and bfloat16's 8 bits of mantissa would round
#: [0, 1] to about one 8-bit level), casting to bfloat16 inside.
ONNX_PRECISIONS: dict[str, tuple[torch.dtype, torch.dtype]] = {
    "fp32": (torch.float32, torch.float32),
    "fp16": (torch.float16, torch.float16),
    "bf16": (torch.bfloat16, torch.float32),
}
#: How far an exported ONNX file may be from the float32 PyTorch model (largest absolute difference on [0, 1]
#: outputs of random inputs) before :func:`export_onnx` refuses it. fp16 and bf16 were measured on every shipped
#: model at every scale (docs/speed.md, "fp16 and bf16 ONNX"): at most 1.2e-3 (fp16, a third of an 8-bit level)
#: and 1.6e-2 (bf16, four levels); the tolerances are about twice that.
ONNX_TOLERANCE: dict[str, float] = {"fp32": _ONNX_TOLERANCE, "fp16": 3e-3, "bf16": 3e-2}
#: ``exporter`` of :func:`export_onnx`: PyTorch's exporter (``torch.export``, its default since 2.9), and its
#: older TorchScript tracer, deprecated but some 30 times quicker to run (0.3 s against 10 s for EDSR-baseline
#: x2 on 2 Zen 3 cores): the runtimes' first export on a new machine uses it where PyTorch still has it.
EXPORTERS = ("dynamo", "torchscript")
#: The first ONNX opset whose Conv (and the arithmetic around it) takes bfloat16.
BF16_OPSET = 22
#: The exporter's loggers: they report each opset conversion (with a traceback when it fails).
_EXPORTER_LOGGERS = ("torch.onnx", "onnxscript", "onnx_ir")


class FixedScale(nn.Module):
    """A model bound to one scale, whose ``forward`` takes only the image (for export).

    Args:
        model: The model.
        scale: One of its scales; may be omitted for a single-scale model.
    """

    def __init__(self, model: SRModel, scale: int | None = None) -> None:
        super().__init__()
        self.scale = model.resolve_scale(scale)
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale ``x`` (float NCHW in [0, 1]) by :attr:`scale`."""
        return self.model(x, scale=self.scale)


def _require(module: str, extra: str = "onnx") -> None:
    try:
        __import__(module)
    except ImportError:
        raise ImportError(f'{extra.upper()} export needs {module}: pip install "edsr-lib[{extra}]"') from None


def check_opset(opset: int | None) -> int | None:
    """Refuse an ONNX opset the exporter cannot write (before any work); returns it.

    The exporter writes :data:`MIN_OPSET` up to the newest opset of the installed ``onnx``
    package; ``None`` stands for the exporter's default.

    Raises:
        ImportError: If the ``onnx`` extra is not installed.
        ValueError: For an opset outside that range.
    """
    if opset is None:
        return None
    _require("onnx")
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"ONNX opset {opset!r} cannot be written: the exporter writes opsets {MIN_OPSET} to {newest}")
    return opset


def _written_opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(os.fspath(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _refuse_error(error: float, tolerance: float, what: str) -> None:
    """Raise unless ``error`` (a comparison with PyTorch) is within ``tolerance``; NaN and infinity never pass."""
    if math.isfinite(error) and error <= tolerance:
        return
    if math.isnan(error) or math.isinf(error):
        raise RuntimeError(
            f"{what} checked against PyTorch: an output holds NaN or infinite values, or has another shape; "
            "nothing was written"
        )
    raise RuntimeError(
        f"{what} checked against PyTorch: the outputs differ by up to {error:.3g} (more than {tolerance:g}); "
        "nothing was written"
    )


def _max_difference(got: np.ndarray, expected: np.ndarray) -> float:
    """Largest absolute difference; ``inf`` for another shape, NaN when either side holds NaN or infinity."""
    if got.shape != expected.shape:
        return float("inf")
    if not (np.isfinite(got).all() and np.isfinite(expected).all()):
        return float("nan")
    return float(np.abs(got - expected).max()) if got.size else 0.0


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporter's progress and its loggers' reports for the duration (a library call is quiet)."""
    loggers = [logging.getLogger(name) for name in _EXPORTER_LOGGERS]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)


@contextlib.contextmanager
def _folder_for(folder: Path):
    """Make ``folder`` (and missing parents) for the block; the folders made are removed again if it raises."""
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise FileExistsError(f"{folder} is a file, not a folder: cannot write into it") from None
    except OSError as err:
        raise OSError(f"cannot make the folder {folder}: {err.strerror or err}") from None
    try:
        yield folder
    except BaseException:
        for path in made:  # the deepest first
            with contextlib.suppress(OSError):
                path.rmdir()
        raise


def _export_copy(model: SRModel, scale: int | None) -> FixedScale:
    """A fused CPU copy of ``model`` bound to ``scale``, for the exporters."""
    return FixedScale(copy.deepcopy(model).cpu().requires_grad_(False).fuse(), model.resolve_scale(scale)).eval()


class _Float32Layer(nn.Module):
    """A layer kept in float32 in a half-precision graph: its input is cast up, its output stays float32.

    The fused tail convolution carries ``1 / rgb_range`` in its weights (see
    :meth:`~edsr_lib.SRModel.fuse`); in float16 about 40% of them would fall below the
    smallest normal number (docs/speed.md). It maps the features to the three colours, so
    float32 there costs little.
    """

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the layer in float32."""
        return self.layer(x.float())


class _Precision(nn.Module):
    """A fused model in ``dtype`` (its last convolution in float32), cast from and to ``io_dtype`` at its ends."""

    def __init__(self, wrapper: FixedScale, dtype: torch.dtype, io_dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype, self.io_dtype = dtype, io_dtype
        self.wrapper = wrapper.to(dtype)
        tail = getattr(wrapper.model, "tail_module", None)  # the last convolution, where the model declares one
        if dtype != torch.float32 and tail is not None:
            setattr(wrapper.model, tail, _Float32Layer(getattr(wrapper.model, tail)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale ``x`` (``io_dtype``, NCHW in [0, 1]) in ``dtype``."""
        return self.wrapper(x.to(self.dtype)).to(self.io_dtype)


def export_onnx(
    model: SRModel,
    path: str | os.PathLike[str],
    scale: int | None = None,
    *,
    opset: int | None = None,
    check: bool = True,
    precision: str = "fp32",
    io_names: str = "edsr",
    exporter: str = "dynamo",
) -> Path:
    """Write ``model`` at ``scale`` as an ONNX file with dynamic batch, height and width.

    The graph maps input ``"lr"`` (float32 ``N x C x H x W`` in [0, 1]) to output ``"sr"``
    (``N x C x sH x sW``, not clamped). The file is written atomically.

    Args:
        model: The model (not modified: a fused copy is exported).
        path: The ``.onnx`` file to write.
        scale: The scale to export; required for a multi-scale model.
        opset: ONNX opset, from :data:`MIN_OPSET` to the newest the ``onnx`` package knows
            (:func:`check_opset`); default the exporter's.
        check: Run the file on two input sizes and raise unless it matches the float32
            PyTorch model within :data:`ONNX_TOLERANCE` for its precision (see
            :func:`max_onnx_error`): with onnxruntime, or for bf16, which onnxruntime's CPU
            provider has no kernels for, with ONNX's reference evaluator (``onnx.reference``:
            NumPy with bfloat16 arrays).
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"`` (:data:`ONNX_PRECISIONS`): the weights
            and activations in that precision, except the last convolution, which stays in
            float32; an fp16 file's input and output are float16, a bf16 file's float32. A bf16
            file is written in opset :data:`BF16_OPSET` (or the later one asked for).
        io_names: ``"edsr"`` (``lr``/``sr``, dynamic batch) or ``"community"``
            (``input``/``output``, ``1 x C x H x W``: the GPU upscalers' convention), see
            :data:`IO_NAMES`.
        exporter: ``"dynamo"`` (PyTorch's exporter) or ``"torchscript"`` (its older tracer,
            much quicker to run, deprecated; fp32 in its own opset only), see :data:`EXPORTERS`.

    Returns:
        The path written.

    Raises:
        ImportError: If the ``onnx`` extra is not installed.
        ValueError: If ``scale`` is not one of the model's scales, ``precision`` or ``io_names``
            is unknown, the opset cannot be written (for bf16: is below :data:`BF16_OPSET`),
            ``path`` is a folder, or the weights hold NaN or infinity
            (:class:`~edsr_lib.inference.NonFiniteError`).
        RuntimeError: If the exporter wrote another opset than ``opset``, or the check fails
            (nothing is written then).
    """
    _require("onnxscript")
    if precision not in ONNX_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(ONNX_PRECISIONS)}, not {precision!r}")
    if io_names not in IO_NAMES:
        raise ValueError(f"io_names must be one of {', '.join(IO_NAMES)}, not {io_names!r}")
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {', '.join(EXPORTERS)}, not {exporter!r}")
    if exporter == "torchscript" and (precision != "fp32" or opset is not None):
        raise ValueError("exporter='torchscript' writes fp32 files in its own opset only")
    scale = model.resolve_scale(scale)
    check_opset(opset)
    if precision == "bf16":
        if opset is not None and opset < BF16_OPSET:
            raise ValueError(f"a bf16 file needs opset {BF16_OPSET} or later (ONNX's Conv takes bfloat16 from there)")
        opset = opset or BF16_OPSET
    check_finite_weights(model)
    path = Path(path)
    if path.is_dir():
        example = path / f"model_x{scale}.onnx"
        raise IsADirectoryError(f"{path} is a folder: pass the .onnx file to write, e.g. {example}")
    dtype, io_dtype = ONNX_PRECISIONS[precision]
    input_name, output_name, batch_of_one = IO_NAMES[io_names]
    wrapper = _export_copy(model, scale)
    graph: nn.Module = wrapper if precision == "fp32" else _Precision(wrapper, dtype, io_dtype).eval()
    example = torch.rand(1, model.n_colors, 32, 32).to(io_dtype)
    dims = {2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    if not batch_of_one:
        dims[0] = torch.export.Dim("batch")
    with _folder_for(path.parent), atomic_path(path) as tmp:
        if exporter == "torchscript":
            _trace_export(graph, example, tmp, input_name, output_name, batch_of_one)
        else:
            with _quiet_exporter():
                torch.onnx.export(
                    graph,
                    (example,),
                    tmp,
                    input_names=[input_name],
                    output_names=[output_name],
                    dynamic_shapes={"x": dims},
                    opset_version=opset,
                    external_data=False,
                    dynamo=True,
                )
        if opset is not None and (written := _written_opset(tmp)) != opset:
            # the exporter keeps its own opset, with a logged warning, where a conversion fails
            raise RuntimeError(f"the exporter could not convert this model to ONNX opset {opset} (it made {written})")
        if check:
            runtime = "reference" if precision == "bf16" else "onnxruntime"
            error = max_onnx_error(tmp, model, scale, runtime=runtime)
            _refuse_error(error, ONNX_TOLERANCE[precision], f"the ONNX file for {path}")
    return path


def _trace_export(
    graph: nn.Module, example: torch.Tensor, path: Path, input_name: str, output_name: str, batch_of_one: bool
) -> None:
    """Write ``graph`` with PyTorch's TorchScript exporter: the height and width (and batch) dynamic."""
    axes = {2: "height", 3: "width"} | ({} if batch_of_one else {0: "batch"})
    # the shape checks of SRModel.forward are constants in a trace, as they are in the graph: the tracer's
    # warnings about them, and its own deprecation, say nothing to a user of the file
    with warnings.catch_warnings(), _quiet_exporter():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            graph,
            (example,),
            os.fspath(path),
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: axes, output_name: {k: f"out_{v}" for k, v in axes.items()}},
            dynamo=False,
        )


def max_onnx_error(
    path: str | os.PathLike[str],
    model: SRModel,
    scale: int | None = None,
    shapes: tuple[tuple[int, int, int, int], ...] = ((1, 3, 32, 32), (2, 3, 19, 45)),
    *,
    runtime: str = "onnxruntime",
) -> float:
    """Largest absolute difference between the ONNX file's outputs and the float32 PyTorch model's, on random inputs.

    The file's input and output names and its input dtype are read from the file; a file
    whose batch is fixed at 1 (``io_names="community"``) runs each shape with batch 1.

    Args:
        path: The ONNX file.
        model: The PyTorch model it was exported from.
        scale: The exported scale.
        shapes: Input shapes to try (different sizes check that height and width are dynamic).
        runtime: ``"onnxruntime"`` (its CPU provider) or ``"reference"`` (ONNX's reference
            evaluator, ``onnx.reference``: NumPy, slow, but it runs bfloat16, for which
            onnxruntime's CPU provider has no kernels).

    Returns:
        The difference; ``inf`` when a shape differs, NaN when either output holds NaN or
        infinity (so that no ``error <= tolerance`` test passes on it).
    """
    _require("onnx")
    import onnx

    if runtime == "onnxruntime":
        _require("onnxruntime")
        import onnxruntime

        run = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"]).run
    elif runtime == "reference":
        from onnx.reference import ReferenceEvaluator

        run = ReferenceEvaluator(os.fspath(path)).run
    else:
        raise ValueError(f"runtime must be 'onnxruntime' or 'reference', not {runtime!r}")
    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    (graph_input,), (graph_output,) = graph.input, graph.output
    input_dtype = onnx.helper.tensor_dtype_to_np_dtype(graph_input.type.tensor_type.elem_type)
    batch = graph_input.type.tensor_type.shape.dim[0].dim_value or None  # None: a dynamic batch

    scale = model.resolve_scale(scale)
    generator = torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    error = 0.0
    for shape in shapes:
        x = torch.rand((batch or shape[0], model.n_colors, *shape[2:]), generator=generator)
        (onnx_out,) = run([graph_output.name], {graph_input.name: x.numpy().astype(input_dtype)})
        onnx_out = onnx_out.astype(np.float32)
        with torch.inference_mode(), full_float32():  # a CUDA model in TF32 would differ by ~1e-3
            expected = model(x.to(device), scale=scale).cpu().numpy()
        difference = _max_difference(onnx_out, expected)
        if not math.isfinite(difference):
            return difference
        error = max(error, difference)
    return error


def _upscayl_scale(name: str) -> int:
    return next((s for s in _UPSCAYL_SCALES if f"x{s}" in name or f"{s}x" in name), 4)


def ncnn_name(name: str, scale: int) -> str:
    """The file stem for an NCNN model: ``name`` with ``_x<scale>`` added unless it already says its scale.

    upscayl reads a custom model's scale from its file name (the first of x1/1x, x2/2x,
    x3/3x, x4/4x, x8/8x, x16/16x in it, else 4), so the stem must make that rule give
    ``scale``.

    Raises:
        ValueError: If ``name`` holds another scale's mark that upscayl would read first.
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
    if _upscayl_scale(stem) != scale or (scale == 4 and f"x{scale}" not in stem and f"{scale}x" not in stem):
        stem = f"{stem}_x{scale}"
    if _upscayl_scale(stem) != scale:
        raise ValueError(
            f"upscayl would read scale {_upscayl_scale(stem)} from the name {stem!r} (it looks for x1, x2, x3, x4, "
            f"x8, x16 in that order); choose a name without that mark"
        )
    return stem


def _rename_blobs(param: str) -> str:
    """Rename pnnx's blobs ``in0`` and ``out0`` to :data:`NCNN_INPUT` and :data:`NCNN_OUTPUT`."""
    names = {"in0": NCNN_INPUT, "out0": NCNN_OUTPUT}
    lines = param.splitlines()
    # line 0 is the magic number, line 1 the layer and blob counts; then one layer a line:
    # type, name, input count, output count, inputs, outputs, then key=value parameters
    for i in range(2, len(lines)):
        fields = lines[i].split()
        if len(fields) < 4:
            continue
        n_blobs = int(fields[2]) + int(fields[3])
        blobs = [names.get(b, b) for b in fields[4 : 4 + n_blobs]]
        lines[i] = " ".join([fields[0], fields[1], *fields[2:4], *blobs, *fields[4 + n_blobs :]])
    return "\n".join(lines) + "\n"


def export_ncnn(
    model: SRModel,
    output: str | os.PathLike[str],
    scale: int | None = None,
    *,
    name: str | None = None,
    check: bool = True,
) -> tuple[Path, Path]:
    """Write ``model`` at ``scale`` as an NCNN model (``<name>.param`` and ``<name>.bin``) for upscayl and its kin.

    The files follow what upscayl and realesrgan-ncnn-vulkan expect of an upscaling model:
    input blob ``data`` and output blob ``output`` (:data:`NCNN_INPUT`, :data:`NCNN_OUTPUT`),
    RGB float in [0, 1] in and out, any image size; the file name carries the scale the way
    upscayl reads it (:func:`ncnn_name`). pnnx converts a trace of the fused model; both files
    are written atomically (the ``.bin`` first). The weights are stored in float32; the
    Vulkan programs convert them to fp16 when they load them.

    Args:
        model: The model (not modified: a fused copy is exported).
        output: A folder (created if needed) or a ``.param`` path whose stem names the files.
        scale: The scale to export; required for a multi-scale model.
        name: The file stem in a folder; default the model's variant name (for a registered
            model with weights) or its architecture, with ``_x<scale>`` added when needed.
        check: Run the files with the ``ncnn`` package on two input sizes and raise unless they
            match PyTorch within 1e-3 on [0, 1] (see :func:`max_ncnn_error`).

    Returns:
        The ``.param`` and ``.bin`` paths written.

    Raises:
        ImportError: If the ``ncnn`` extra is not installed.
        ValueError: If ``scale`` is not one of the model's scales, the name would tell upscayl
            another scale, or the weights hold NaN or infinity
            (:class:`~edsr_lib.inference.NonFiniteError`).
        FileExistsError: If ``output`` (not a ``.param`` path) is a file.
        RuntimeError: If pnnx fails or the check fails (nothing is written then).
    """
    _require("pnnx", "ncnn")
    import pnnx

    scale = model.resolve_scale(scale)
    check_finite_weights(model)
    output = Path(output)
    if output.suffix == ".param":
        if name is not None:
            raise ValueError(f"name= names the files in a folder; {output} names them already")
        folder, stem = output.parent, ncnn_name(output.stem, scale)
    else:
        cfg = model.pretrained_cfg
        folder = output
        stem = ncnn_name(name or (cfg.architecture if cfg and cfg.architecture else model.architecture), scale)
    wrapper = _export_copy(model, scale)
    n = model.n_colors
    with _folder_for(folder), tempfile.TemporaryDirectory(prefix=".ncnn-", dir=folder) as tmp:
        work = Path(tmp)
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            # the trace is of one fixed graph (no data-dependent branches): its warnings are noise
            warnings.simplefilter("ignore")
            torch.jit.trace(wrapper, torch.rand(1, n, 32, 32)).save(str(work / "model.pt"))
        outputs = {key: work / f"model.{key}" for key in ("pnnxparam", "pnnxbin", "pnnxpy", "pnnxonnx", "ncnnpy")}
        outputs |= {"ncnnparam": work / "model.param", "ncnnbin": work / "model.bin"}
        command = [
            pnnx.EXEC_PATH,
            str(work / "model.pt"),
            f"inputshape=[1,{n},32,32]f32",
            f"inputshape2=[1,{n},48,40]f32",  # a second size: height and width stay free
            "fp16=0",
            *(f"{key}={path}" for key, path in outputs.items()),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not outputs["ncnnparam"].is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"pnnx could not convert the model (exit {done.returncode}): {' / '.join(tail)}")
        param = outputs["ncnnparam"]
        param.write_text(_rename_blobs(param.read_text()))
        if check:
            _refuse_error(max_ncnn_error(param, model, scale), _NCNN_TOLERANCE, f"the NCNN files for {folder / stem}")
        written = folder / f"{stem}.param", folder / f"{stem}.bin"
        for source, target in ((outputs["ncnnbin"], written[1]), (param, written[0])):
            atomic_move(source, target)
    return written


def max_ncnn_error(
    param: str | os.PathLike[str],
    model: SRModel,
    scale: int | None = None,
    shapes: tuple[tuple[int, int], ...] = ((32, 32), (19, 45)),
) -> float:
    """Largest absolute difference between the ``ncnn`` package's output and PyTorch's, on random inputs.

    NCNN runs on the CPU in float32 (no Vulkan, no fp16 or bf16 storage), through the
    blobs ``data`` and ``output``; the ``.bin`` is the file beside ``param``.

    Args:
        param: The ``.param`` file.
        model: The PyTorch model it was exported from.
        scale: The exported scale.
        shapes: Input heights and widths to try.

    Returns:
        The difference; ``inf`` when the files do not load or a shape differs, NaN when
        either output holds NaN or infinity.
    """
    _require("ncnn", "ncnn")
    import ncnn

    scale = model.resolve_scale(scale)
    param = Path(param)
    net = ncnn.Net()
    for option in ("use_vulkan_compute", "use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic"):
        setattr(net.opt, option, False)
    net.opt.use_bf16_storage = False
    if net.load_param(str(param)) != 0 or net.load_model(str(param.with_suffix(".bin"))) != 0:
        return float("inf")
    generator = torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    error = 0.0
    for height, width in shapes:
        x = torch.rand(1, model.n_colors, height, width, generator=generator)
        extractor = net.create_extractor()
        pixels = np.ascontiguousarray(x[0].numpy())  # ncnn.Mat borrows this memory: it must outlive the extraction
        extractor.input(NCNN_INPUT, ncnn.Mat(pixels))
        status, out = extractor.extract(NCNN_OUTPUT)
        got = np.array(out)
        del pixels
        with torch.inference_mode():
            expected = model(x.to(device), scale=scale)[0].cpu().numpy()
        if status != 0:
            return float("inf")
        difference = _max_difference(got, expected)
        if not math.isfinite(difference):
            return difference
        error = max(error, difference)
    return error


# --------------------------------------------------------------------------------------------- ExecuTorch


#: Largest difference allowed between an ExecuTorch file's output and PyTorch's, on [0, 1] (measured: 2.4e-6).
_EXECUTORCH_TOLERANCE = 1e-4


def export_executorch(
    model: SRModel,
    path: str | os.PathLike[str],
    scale: int | None = None,
    *,
    max_size: int = 512,
    check: bool = True,
) -> Path:
    """Write ``model`` at ``scale`` as an ExecuTorch program (``.pte``) delegated to XNNPACK, for mobile apps.

    `ExecuTorch <https://pytorch.org/executorch>`_ runs PyTorch programs on phones and edge
    devices; its XNNPACK delegate runs the convolutions on the CPU's vector units. The
    program is the fused model, lowered with ``to_edge_transform_and_lower`` and the XNNPACK
    partitioner, in float32. Its one method, ``forward``, maps a float32 ``1 x C x H x W``
    tensor in [0, 1] (``H`` and ``W`` from 1 to ``max_size``) to ``1 x C x sH x sW`` (not
    clamped). ExecuTorch plans its memory for the largest input, so a larger ``max_size``
    costs memory on the device: tile larger images, as :func:`edsr_lib.upscale` does. Needs
    the extra ``executorch`` (``pip install "edsr-lib[executorch]"``).

    Args:
        model: The model (not modified: a fused copy is exported).
        path: The ``.pte`` file to write (atomically).
        scale: The scale to export; required for a multi-scale model.
        max_size: The largest input height and width the program takes.
        check: Run the program with ExecuTorch's Python runtime on two input sizes and raise
            unless it matches PyTorch within 1e-4 (see :func:`max_executorch_error`).

    Returns:
        The path written.

    Raises:
        ImportError: If the ``executorch`` extra is not installed.
        ValueError: If ``scale`` is not one of the model's scales, ``max_size`` is below 32,
            ``path`` is a folder, or the weights hold NaN or infinity.
        RuntimeError: If the check fails (nothing is written then).
    """
    _require("executorch", "executorch")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    scale = model.resolve_scale(scale)
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 32:
        raise ValueError(
            f"max_size must be an integer of at least 32 (the size the program is traced at), not {max_size!r}"
        )
    check_finite_weights(model)
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder: pass the .pte file to write, e.g. {path / f'model_x{scale}.pte'}")
    wrapper = _export_copy(model, scale)
    example = torch.rand(1, model.n_colors, 32, 32)
    dims = {2: torch.export.Dim("height", min=1, max=max_size), 3: torch.export.Dim("width", min=1, max=max_size)}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the lowering's deprecation notices are about its own internals
        program = torch.export.export(wrapper, (example,), dynamic_shapes={"x": dims})
        buffer = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer
    if check:
        _refuse_error(max_executorch_error(buffer, model, scale), _EXECUTORCH_TOLERANCE, f"the ExecuTorch file {path}")
    with _folder_for(path.parent), atomic_path(path) as tmp:
        tmp.write_bytes(buffer)
    return path


def max_executorch_error(
    program: bytes | str | os.PathLike[str],
    model: SRModel,
    scale: int | None = None,
    shapes: tuple[tuple[int, int], ...] = ((32, 32), (19, 45)),
) -> float:
    """Largest absolute difference between ExecuTorch's output (its Python runtime, XNNPACK) and PyTorch's.

    Args:
        program: The ``.pte`` file, or its contents.
        model: The PyTorch model it was exported from.
        scale: The exported scale.
        shapes: Input heights and widths to try (batch 1).

    Returns:
        The difference; ``inf`` when a shape differs, NaN when either output holds NaN or infinity.
    """
    _require("executorch", "executorch")
    from executorch.runtime import Runtime

    scale = model.resolve_scale(scale)
    data = program if isinstance(program, bytes) else Path(program).read_bytes()
    method = Runtime.get().load_program(data).load_method("forward")
    generator = torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    error = 0.0
    for height, width in shapes:
        x = torch.rand(1, model.n_colors, height, width, generator=generator)
        (got,) = method.execute([x])
        with torch.inference_mode(), full_float32():
            expected = model(x.to(device), scale=scale).cpu().numpy()
        difference = _max_difference(got.numpy(), expected)
        if not math.isfinite(difference):
            return difference
        error = max(error, difference)
    return error


# --------------------------------------------------------------------------------------------- Core ML


#: The Core ML model's input and output names, and the oldest OS that runs its ML program.
COREML_INPUT, COREML_OUTPUT, COREML_TARGET = "input", "output", "iOS16"


def export_coreml(
    model: SRModel,
    path: str | os.PathLike[str],
    scale: int | None = None,
    *,
    precision: str = "fp16",
    max_size: int = 2048,
    check: bool = True,
) -> Path:
    """Write ``model`` at ``scale`` as a Core ML package (``.mlpackage``, an ML program) for Apple devices.

    coremltools converts a trace of the fused model. The input ``input`` is a float32
    ``1 x C x H x W`` tensor in [0, 1] (``H`` and ``W`` from 1 to ``max_size``), the output
    ``output`` float32 ``1 x C x sH x sW`` (not clamped). In ``"fp16"`` (the default, what the
    Neural Engine runs) every operation computes in float16 except the last convolution, which
    stays in float32 for the reason given in docs/speed.md; ``"fp32"`` keeps all in float32
    (the GPU and CPU only). The package needs iOS 16 / macOS 13 or later. Needs the extra
    ``coreml`` (``pip install "edsr-lib[coreml]"``).

    Core ML runs only on Apple systems: elsewhere ``check`` validates what can be read
    without running it (:func:`check_coreml`); on macOS it also runs the package and compares
    it with PyTorch.

    Args:
        model: The model (not modified: a fused copy is exported).
        path: The ``.mlpackage`` folder to make (it must not exist; it appears whole or not at all).
        scale: The scale to export; required for a multi-scale model.
        precision: ``"fp16"`` or ``"fp32"``.
        max_size: The largest input height and width.
        check: Validate the package (and on macOS run it) before it is put in place.

    Returns:
        The path written.

    Raises:
        ImportError: If the ``coreml`` extra is not installed.
        ValueError: For an unknown ``precision``, a ``max_size`` below 32, or weights that hold
            NaN or infinity.
        FileExistsError: If ``path`` exists.
        RuntimeError: If the check fails.
    """
    _require("coremltools", "coreml")
    with _quiet_coremltools():  # on import it reports the untested torch and scikit-learn versions
        import coremltools as ct

    if precision not in ("fp16", "fp32"):
        raise ValueError(f"precision must be 'fp16' or 'fp32' for Core ML, not {precision!r}")
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 32:
        raise ValueError(f"max_size must be an integer of at least 32, not {max_size!r}")
    scale = model.resolve_scale(scale)
    check_finite_weights(model)
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists: remove it or choose another name (a .mlpackage is a folder)")
    wrapper = _export_copy(model, scale)
    example = torch.rand(1, model.n_colors, 32, 32)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the trace is of one fixed graph: its warnings are noise
        traced = torch.jit.trace(wrapper, example)
    size = ct.RangeDim(lower_bound=1, upper_bound=max_size, default=64)
    n_colors = model.n_colors
    # every operation in float16 but the last convolution, the one whose output has the image's channels
    compute = (
        ct.precision.FLOAT32
        if precision == "fp32"
        else ct.transform.FP16ComputePrecision(
            op_selector=lambda op: not (op.op_type == "conv" and op.outputs[0].shape[1] == n_colors)
        )
    )
    with _quiet_exporter(), _quiet_coremltools(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = ct.convert(
            traced,
            inputs=[ct.TensorType(name=COREML_INPUT, shape=ct.Shape((1, n_colors, size, size)), dtype=np.float32)],
            outputs=[ct.TensorType(name=COREML_OUTPUT, dtype=np.float32)],
            convert_to="mlprogram",
            minimum_deployment_target=getattr(ct.target, COREML_TARGET),
            compute_precision=compute,
        )
    converted.short_description = f"{type(model).__name__} x{scale} (edsr-lib): RGB in [0, 1], 1x{n_colors}xHxW"
    with _folder_for(path.parent), tempfile.TemporaryDirectory(prefix=".coreml-", dir=path.parent) as tmp:
        package = Path(tmp) / path.name
        converted.save(os.fspath(package))
        if check:
            problems = check_coreml(package, model, scale, max_size=max_size, precision=precision)
            if problems:
                raise RuntimeError(f"the Core ML package for {path}: {'; '.join(problems)}; nothing was written")
        with atomic_folder(path) as out:  # the package is a folder: published whole or not at all
            for child in package.iterdir():
                child.rename(out / child.name)
    return path


@contextlib.contextmanager
def _quiet_coremltools():
    """Silence coremltools' progress bars and its logger (it reports each pass) for the duration."""
    log = logging.getLogger("coremltools")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        log.setLevel(level)


def check_coreml(
    package: str | os.PathLike[str],
    model: SRModel,
    scale: int | None = None,
    *,
    max_size: int = 2048,
    precision: str = "fp16",
) -> list[str]:
    """What is wrong with a Core ML package written by :func:`export_coreml` (empty when nothing is).

    Everywhere: the package's spec loads; it is an ML program for iOS 16 / macOS 13; its one
    input is ``input``, float32 ``1 x C x H x W`` with ``H`` and ``W`` from 1 to ``max_size``;
    its one output ``output`` is float32; it holds as many convolutions as the fused model,
    in float16 except the last (``precision="fp16"``). On macOS, where Core ML runs, the
    package is also run on two input sizes and compared with PyTorch (within 1e-4 in fp32,
    within 3e-3 in fp16, the tolerances of the ONNX files).

    Args:
        package: The ``.mlpackage`` folder.
        model: The PyTorch model it was exported from.
        scale: The exported scale.
        max_size: The largest input height and width it should take.
        precision: ``"fp16"`` or ``"fp32"``, as exported.
    """
    _require("coremltools", "coreml")
    import coremltools as ct

    scale = model.resolve_scale(scale)
    problems: list[str] = []
    try:
        spec = ct.utils.load_spec(os.fspath(package))
    except Exception as err:  # a package coremltools cannot read: say so, whatever the reason
        return [f"its spec does not load ({type(err).__name__}: {err})"]
    if spec.WhichOneof("Type") != "mlProgram":
        problems.append(f"it is a {spec.WhichOneof('Type')}, not an ML program")
    if spec.specificationVersion < ct.target.iOS16:
        problems.append(f"its specification version {spec.specificationVersion} is older than iOS 16's")
    description = spec.description
    inputs, outputs = list(description.input), list(description.output)
    array = ct.proto.FeatureTypes_pb2.ArrayFeatureType
    if [i.name for i in inputs] != [COREML_INPUT] or [o.name for o in outputs] != [COREML_OUTPUT]:
        problems.append(f"its inputs/outputs are {[i.name for i in inputs]}/{[o.name for o in outputs]}")
    else:
        tensor = inputs[0].type.multiArrayType
        ranges = [(r.lowerBound, r.upperBound) for r in tensor.shapeRange.sizeRanges]
        if tensor.dataType != array.FLOAT32 or outputs[0].type.multiArrayType.dataType != array.FLOAT32:
            problems.append("its input or output is not float32")
        if ranges != [(1, 1), (model.n_colors, model.n_colors), (1, max_size), (1, max_size)]:
            problems.append(f"its input takes the shapes {ranges}, not 1 x {model.n_colors} x [1, {max_size}]^2")
    (block,) = spec.mlProgram.functions["main"].block_specializations.values()
    convolutions = [op for op in block.operations if op.type == "conv"]
    n_conv = sum(isinstance(m, nn.Conv2d) for m in _export_copy(model, scale).modules())
    if len(convolutions) != n_conv:
        problems.append(f"it holds {len(convolutions)} convolutions, the fused model {n_conv}")
    elif precision == "fp16":
        float16 = ct.proto.MIL_pb2.DataType.FLOAT16
        dtypes = [op.outputs[0].type.tensorType.dataType for op in convolutions]
        if dtypes[:-1] != [float16] * (n_conv - 1) or dtypes[-1] == float16:
            problems.append("its convolutions are not float16 with the last one float32")
    if not problems and ct.utils._is_macos():  # Core ML itself runs only on Apple systems
        problems += _run_coreml(package, model, scale, ONNX_TOLERANCE[precision])
    return problems


def _run_coreml(package: str | os.PathLike[str], model: SRModel, scale: int, tolerance: float) -> list[str]:
    """Run the package with Core ML (macOS only) on two sizes; a problem when it differs from PyTorch."""
    import coremltools as ct

    loaded = ct.models.MLModel(os.fspath(package))
    generator = torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    for height, width in ((32, 32), (19, 45)):
        x = torch.rand(1, model.n_colors, height, width, generator=generator)
        got = loaded.predict({COREML_INPUT: x.numpy()})[COREML_OUTPUT]
        with torch.inference_mode(), full_float32():
            expected = model(x.to(device), scale=scale).cpu().numpy()
        difference = _max_difference(np.asarray(got, dtype=np.float32), expected)
        if not difference <= tolerance:
            return [f"Core ML's output differs from PyTorch's by up to {difference:.3g} (more than {tolerance:g})"]
    return []
