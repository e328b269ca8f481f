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
from ._files import atomic_move, atomic_path
from ._hub import check_finite_weights
from .models import SRModel

__all__ = [
    "MIN_OPSET",
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


def export_onnx(
    model: SRModel,
    path: str | os.PathLike[str],
    scale: int | None = None,
    *,
    opset: int | None = None,
    check: bool = True,
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
        check: Run the file with onnxruntime on two input sizes and raise unless it matches
            PyTorch within 1e-4 (see :func:`max_onnx_error`).

    Returns:
        The path written.

    Raises:
        ImportError: If the ``onnx`` extra is not installed.
        ValueError: If ``scale`` is not one of the model's scales, the opset cannot be
            written, ``path`` is a folder, or the weights hold NaN or infinity
            (:class:`~edsr_lib.inference.NonFiniteError`).
        RuntimeError: If the exporter wrote another opset than ``opset``, or the check fails
            (nothing is written then).
    """
    _require("onnxscript")
    scale = model.resolve_scale(scale)
    check_opset(opset)
    check_finite_weights(model)
    path = Path(path)
    if path.is_dir():
        example = path / f"model_x{scale}.onnx"
        raise IsADirectoryError(f"{path} is a folder: pass the .onnx file to write, e.g. {example}")
    wrapper = _export_copy(model, scale)
    example = torch.rand(1, model.n_colors, 32, 32)
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    with _folder_for(path.parent), atomic_path(path) as tmp:
        with _quiet_exporter():
            torch.onnx.export(
                wrapper,
                (example,),
                tmp,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes={"x": dims},
                opset_version=opset,
                external_data=False,
                dynamo=True,
            )
        if opset is not None and (written := _written_opset(tmp)) != opset:
            # the exporter keeps its own opset, with a logged warning, where a conversion fails
            raise RuntimeError(f"the exporter could not convert this model to ONNX opset {opset} (it made {written})")
        if check:
            _refuse_error(max_onnx_error(tmp, model, scale), _ONNX_TOLERANCE, f"the ONNX file for {path}")
    return path


def max_onnx_error(
    path: str | os.PathLike[str],
    model: SRModel,
    scale: int | None = None,
    shapes: tuple[tuple[int, int, int, int], ...] = ((1, 3, 32, 32), (2, 3, 19, 45)),
) -> float:
    """Largest absolute difference between onnxruntime and PyTorch outputs on random inputs.

    Args:
        path: The ONNX file.
        model: The PyTorch model it was exported from.
        scale: The exported scale.
        shapes: Input shapes to try (different sizes check that height and width are dynamic).

    Returns:
        The difference; ``inf`` when a shape differs, NaN when either output holds NaN or
        infinity (so that no ``error <= tolerance`` test passes on it).
    """
    _require("onnxruntime")
    import onnxruntime

    scale = model.resolve_scale(scale)
    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    error = 0.0
    for shape in shapes:
        x = torch.rand((shape[0], model.n_colors, *shape[2:]), generator=generator)
        (onnx_out,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})
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
