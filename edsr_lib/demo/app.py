"""The page to try the models: ``edsr-lib demo``, and the Hugging Face Space built from the same code.

Drop or pick an image, choose a model, its weights and (for MDSR) the scale, run it (the
progress bar follows the tiles), compare before and after with a slider at full
resolution and download the result: the file that ``edsr-lib upscale`` writes, byte for
byte, because the page reads, upscales and writes with the same functions
(:func:`edsr_lib.io.load_image`, :func:`edsr_lib.upscale`, :func:`edsr_lib.io.write_image`):
EXIF orientation applied, the ICC profile, EXIF and DPI kept, gray stays gray and alpha is
kept. The upload is taken as a file, never re-encoded by the browser or by Gradio.

One job runs at a time per process; the others wait in Gradio's queue, whose position the
page shows. Inputs over the limits of :class:`Limits` are refused with one line, and so is
every error: the page shows no traceback. Needs the ``demo`` extra
(``pip install "edsr-lib[demo]"``, Gradio 6).

Nothing leaves the machine: Gradio's analytics and version check, and the Hub's telemetry,
are off, and the page uses the system's fonts rather than Google's.

Example:
    >>> from edsr_lib.demo import launch
    >>> launch(host="127.0.0.1", port=7860)  # doctest: +SKIP
"""

from __future__ import annotations

import os

# Gradio reads these when a Blocks is made and when it launches; set before it is imported all the same.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import errno
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch
from gradio.utils import get_upload_folder
from PIL import Image

from .._device import resolve_device, resolve_half
from .._files import missing_folders, remove_empty_folders
from .._signals import sigterm_as_interrupt
from ..inference import Upscaler, load_model
from ..io import (
    AnyImage,
    ImageReadError,
    array_to_image,
    carry_metadata,
    default_target,
    image_to_array,
    load_image,
    read_image,
    write_image,
)
from ..jobs import expand_suffix, make_job
from ..registry import create_model, list_pretrained

__all__ = ["FORMATS", "SAMPLE_IMAGE", "Limits", "build_demo", "launch", "model_choices", "run_upscale"]

#: The package's sample image, offered as the page's example.
SAMPLE_IMAGE = Path(__file__).resolve().parent / "sample.png"
#: Output format label -> (format of :data:`edsr_lib.io.OUTPUT_FORMATS`, 16 bits per channel). All lossless.
FORMATS: dict[str, tuple[str, bool]] = {
    "PNG": ("png", False),
    "PNG, 16 bits per channel": ("png", True),
    "TIFF": ("tif", False),
}
#: The command line's default suffix, so that the download has the name ``edsr-lib upscale`` gives it.
_SUFFIX = "_x{scale}"
#: Results older than this are deleted from the demo's work folder (seconds).
_KEEP_RESULTS = 3600.0
#: Jobs that may wait in the queue beside the one that runs.
_QUEUE_SIZE = 16
#: Gradio's cache cleaning: every 10 minutes, the files older than the results' hour.
_DELETE_CACHE = (600, int(_KEEP_RESULTS))


@dataclass(frozen=True)
class Limits:
    """What the page accepts: inputs over either limit are refused with a one-line message.

    Attributes:
        max_megapixels: Largest input, in millions of pixels (width times height).
        max_file_mb: Largest upload, in megabytes (10**6 bytes).
    """

    max_megapixels: float = 2.0
    max_file_mb: float = 20.0

    def __post_init__(self) -> None:
        if not self.max_megapixels > 0 or not self.max_file_mb > 0:
            raise ValueError(
                f"the limits must be positive, got {self.max_megapixels:g} megapixels and {self.max_file_mb:g} MB"
            )

    @property
    def max_bytes(self) -> int:
        """``max_file_mb`` in bytes."""
        return int(self.max_file_mb * 1e6)

    def check(self, path: Path) -> None:
        """Refuse a file over the limits, reading only its header.

        Raises:
            ValueError: Naming the limit and the file's size.
        """
        size = path.stat().st_size
        if size > self.max_bytes:
            raise ValueError(f"the file has {size / 1e6:.1f} MB; this page takes files up to {self.max_file_mb:g} MB")
        try:
            with Image.open(path) as img:
                width, height = img.size
        except (OSError, Image.DecompressionBombError) as exc:
            raise ImageReadError(f"cannot read the image: {exc}") from None
        if width * height > self.max_megapixels * 1e6:
            raise ValueError(
                f"the image has {width}x{height} pixels ({width * height / 1e6:.1f} megapixels); this page takes "
                f"images up to {self.max_megapixels:g} megapixels"
            )


def model_choices() -> dict[str, list[str]]:
    """Every registered model with weights and its tags, the default tag first: ``{"mdsr": ["t291"], ...}``."""
    choices: dict[str, list[str]] = {}
    for cfg in list_pretrained():
        if cfg.has_weights and cfg.architecture and cfg.tag:
            choices.setdefault(cfg.architecture, []).append(cfg.tag)
    return choices


def _scales(name: str) -> list[int]:
    with torch.device("meta"):  # shapes only, no weights
        return list(create_model(name).scales)


def _bf16_runs(device: torch.device) -> bool:
    try:
        resolve_half("bf16", device)
    except ValueError:
        return False
    return True


def _display(path: str | os.PathLike[str]) -> Image.Image:
    """An 8-bit copy of an image file for the slider, read as the library reads files (the download keeps all bits)."""
    array = read_image(path)
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)


def _to_16_bits(image: AnyImage) -> np.ndarray:
    """The pixels with 16 bits per channel, so that the model's output is rounded to 16 bits, not 8."""
    array = image_to_array(image)
    if array.dtype == np.uint8:
        array = array.astype(np.uint16) * 257  # 8-bit level v is 16-bit level 257 v: the same value
    return array


def run_upscale(
    path: str | os.PathLike[str],
    model: str,
    tag: str,
    scale: int | None,
    *,
    self_ensemble: bool = False,
    bf16: bool = False,
    output_format: str = "PNG",
    device: torch.device | str | None = None,
    out_dir: str | os.PathLike[str],
    limits: Limits = Limits(),
    progress: bool = False,
) -> tuple[AnyImage, AnyImage, Path]:
    """Upscale one image file as the page does, and write the result as ``edsr-lib upscale`` would.

    Args:
        path: The uploaded image file.
        model: A registered model with weights (``"edsr_baseline_x2"``).
        tag: Its weights' tag (``"t528"``).
        scale: The scale: one of the model's (needed for a multi-scale model such as MDSR;
            ``None`` for a single-scale one). Any other is refused, never replaced.
        self_ensemble: Average over the eight flips and rotations.
        bf16: Run in bfloat16 (where the device runs it natively).
        output_format: One of :data:`FORMATS`.
        device: Where the model runs; default the accelerator, else the CPU.
        out_dir: The folder to write ``<stem>_x<scale>.<format>`` in (the name ``edsr-lib upscale`` gives).
        limits: What is refused.
        progress: Show a tqdm bar over the tiles (the page follows it).

    Returns:
        The image read (upright), the upscaled image and the file written.

    Raises:
        ValueError: For input over the limits, an unknown format, a file that is not an
            image, weights that cannot be found, or anything :func:`edsr_lib.upscale` refuses.
    """
    if output_format not in FORMATS:
        raise ValueError(f"unknown output format {output_format!r}; choose one of {', '.join(map(repr, FORMATS))}")
    source = Path(path)
    limits.check(source)
    image = load_image(source)
    file_format, sixteen = FORMATS[output_format]
    sixteen = sixteen and image.mode not in ("I", "F")  # 32-bit and float images keep their own precision
    pixels = _to_16_bits(image) if sixteen else image
    net = load_model(f"{model}.{tag}", cache=True)  # kept between runs
    if scale is None and len(net.scales) > 1:
        raise ValueError(f"{model} serves the scales {', '.join(map(str, net.scales))}: choose one")
    if scale is not None and scale not in net.scales:  # never another scale than the one asked for
        served = ", ".join(f"x{s}" for s in net.scales)
        raise ValueError(f"{model} does not upscale x{scale}; it serves {served}")
    upscaler = Upscaler(
        net,
        scale=scale,
        self_ensemble=self_ensemble,
        precision="bf16" if bf16 else None,
        device=resolve_device(device),
        progress=progress,
    )
    factor = upscaler.factor
    job = make_job(source, out_dir, suffix=expand_suffix(_SUFFIX, factor), format=file_format)  # the CLI's name
    result = upscaler(pixels)
    if sixteen:
        result = carry_metadata(image, array_to_image(result), factor)
    target = default_target(job.target, result.mode) if file_format == "png" else job.target  # as the CLI does
    write_image(target, result)
    return image, result, target


def _prune(folder: Path, older_than: float) -> None:
    now = time.time()
    for run in folder.iterdir():
        if run.is_dir() and now - run.stat().st_mtime > older_than:
            shutil.rmtree(run, ignore_errors=True)


def _one_line(exc: BaseException, folders: tuple[Path, ...] = ()) -> str:
    """The error in one line, each path inside ``folders`` (Gradio's and the page's) shown by its file name only."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for folder in folders:
        for spelling in dict.fromkeys((str(folder), str(folder.resolve()))):
            text = re.sub(re.escape(spelling) + r"[/\\][^\s'\"]*", lambda m: Path(m[0]).name, text)
    if isinstance(exc, MemoryError):
        return f"out of memory: {text}" if str(exc) else "out of memory"
    return text if isinstance(exc, ValueError | OSError) else f"{type(exc).__name__}: {text}"


def _takes_any_value(component: Any) -> Any:
    """``component`` handing any value an API call sends to the event function, which refuses a wrong one in one line.

    Gradio's own check of a dropdown's value against the page's first choices would refuse
    MDSR at x3 (the first model serves x2 only) and print a traceback on the console. (Set
    on the instance: a subclass would make Gradio write a ``.pyi`` file beside this module.)
    """
    component.preprocess = lambda payload: payload
    return component


def _scale_value(scale: Any) -> int | None:
    """The scale an API call gave (an int, ``"3"`` or ``3.0``), or ``None``; anything else is refused."""
    if scale is None or scale == "":
        return None
    try:
        number = float(scale)
    except (TypeError, ValueError):
        raise ValueError(f"the scale must be a whole number, got {scale!r}") from None
    if not number.is_integer():
        raise ValueError(f"the scale must be a whole number, got {scale!r}")
    return int(number)


def build_demo(limits: Limits = Limits(), device: torch.device | str | None = None) -> gr.Blocks:
    """The page, as a Gradio ``Blocks`` with its queue set up (one job at a time); call ``launch()`` on it.

    Prefer :func:`launch`, which also sets Gradio's upload limit to ``limits.max_file_mb`` and
    removes every file of the session (uploads, results, Gradio's copies) when the server stops.
    The results are written to a folder inside Gradio's (``GRADIO_TEMP_DIR``); Gradio deletes
    its files older than an hour as the page runs.

    Args:
        limits: What the page refuses.
        device: Where the models run; default the accelerator, else the CPU.
    """
    device = resolve_device(device)
    choices = model_choices()
    if not choices:
        raise ValueError("no registered model has weights")
    first = "edsr_baseline_x2" if "edsr_baseline_x2" in choices else next(iter(choices))
    gradio_folder = Path(get_upload_folder())
    gradio_folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="edsr-lib-demo-", dir=gradio_folder))
    hidden = (gradio_folder, work)  # error lines name a file, not Gradio's temporary path to it

    def refuse(exc: BaseException) -> gr.Error:
        return gr.Error(_one_line(exc, hidden), duration=None, print_exception=False)

    def on_model(name: str) -> tuple[Any, Any]:
        scales = _scales(name)
        return (
            gr.Dropdown(choices=choices[name], value=choices[name][0]),
            gr.Dropdown(choices=scales, value=max(scales), visible=len(scales) > 1),
        )

    def on_upload(path: str | None) -> Any:
        if not path:
            return None
        try:
            limits.check(Path(path))
            before = _display(path)
        except (ValueError, OSError) as exc:
            raise refuse(exc) from None
        return (before, before)

    def on_run(
        path: str | None,
        name: str,
        tag: str,
        scale: int | None,
        self_ensemble: bool,
        bf16: bool,
        output_format: str,
        progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 (Gradio's way to ask for a bar)
    ) -> tuple[Any, str, str]:
        if not path:
            raise gr.Error("drop or pick an image first", duration=None, print_exception=False)
        try:  # an API call may send any value: each is checked here, in one line
            if name not in choices:
                raise ValueError(f"unknown model {name!r}; the page offers {', '.join(choices)}")
            if tag not in choices[name]:
                raise ValueError(f"{name} has no weights {tag!r}; it has {', '.join(choices[name])}")
            scale = _scale_value(scale)  # run_upscale refuses a scale the model does not serve
        except ValueError as exc:
            raise refuse(exc) from None
        _prune(work, _KEEP_RESULTS)
        out_dir = Path(tempfile.mkdtemp(dir=work))
        start = time.perf_counter()
        progress(0, desc="upscaling")
        try:
            source, result, target = run_upscale(
                path,
                name,
                tag,
                scale,
                self_ensemble=self_ensemble,
                bf16=bf16,
                output_format=output_format,
                device=device,
                out_dir=out_dir,
                limits=limits,
                progress=True,
            )
        except Exception as exc:  # every failure is one line on the page, never a traceback
            shutil.rmtree(out_dir, ignore_errors=True)
            raise refuse(exc) from None
        after = _display(target)  # the file written: what the download holds
        before = _display(path).resize(after.size, Image.Resampling.BICUBIC)
        seconds = time.perf_counter() - start
        info = (
            f"{source.width}x{source.height} → {result.width}x{result.height} with `{name}.{tag}` on {device} "
            f"in {seconds:.1f} s; left: bicubic, right: {name}"
        )
        return (before, after), str(target), info

    # Gradio deletes the files it keeps for the page (uploads, its copies of results) once an hour old
    with gr.Blocks(title="edsr-lib", analytics_enabled=False, delete_cache=_DELETE_CACHE) as demo:
        gr.Markdown(
            "# edsr-lib: EDSR and MDSR super-resolution\n"
            "Drop an image, pick a model, run it, and drag the slider to compare. "
            f"Images up to {limits.max_megapixels:g} megapixels and {limits.max_file_mb:g} MB; "
            "one job runs at a time, the others wait in the queue."
        )
        with gr.Row():
            with gr.Column():
                image = gr.File(label="Image", file_types=["image"], type="filepath", elem_id="input-image")
                with gr.Row():
                    model = _takes_any_value(gr.Dropdown(list(choices), value=first, label="Model", elem_id="model"))
                    tag = _takes_any_value(
                        gr.Dropdown(choices[first], value=choices[first][0], label="Weights", elem_id="tag")
                    )
                    scales = _scales(first)
                    scale = _takes_any_value(
                        gr.Dropdown(scales, value=max(scales), label="Scale", visible=len(scales) > 1, elem_id="scale")
                    )
                with gr.Row():
                    ensemble = gr.Checkbox(label="Self-ensemble (8x slower, about +0.1 dB)", elem_id="ensemble")
                    bf16 = gr.Checkbox(
                        label="bfloat16", visible=_bf16_runs(device), info="native on this device", elem_id="bf16"
                    )
                output_format = _takes_any_value(
                    gr.Radio(list(FORMATS), value="PNG", label="Download as", elem_id="format")
                )
                run = gr.Button("Upscale", variant="primary", elem_id="run")
                gr.Examples([[str(SAMPLE_IMAGE)]], inputs=[image], label="Example")
            with gr.Column():
                slider = gr.ImageSlider(
                    label="Before (bicubic) | after",
                    type="pil",
                    format="png",
                    interactive=False,
                    max_height=720,
                    elem_id="slider",
                )
                info = gr.Markdown(elem_id="info")
                result = gr.File(label="Download", interactive=False, elem_id="result")
        model.change(on_model, inputs=model, outputs=[tag, scale], api_visibility="private")
        image.change(on_upload, inputs=image, outputs=slider, api_visibility="private")
        run.click(
            on_run,
            inputs=[image, model, tag, scale, ensemble, bf16, output_format],
            outputs=[slider, result, info],
            api_name="upscale",
            concurrency_limit=1,
            concurrency_id="upscale",
        )
    demo.queue(max_size=_QUEUE_SIZE, default_concurrency_limit=1)
    return demo


def launch(
    host: str | None = None,
    port: int | None = None,
    *,
    share: bool = False,
    limits: Limits = Limits(),
    device: torch.device | str | None = None,
    **launch_kwargs: Any,
) -> None:
    """Build the page and serve it until interrupted (Ctrl-C or SIGTERM); then remove every file it made.

    Gradio's files for this page (uploads, its copies of the results) and the results go to a
    folder of their own inside Gradio's (``GRADIO_TEMP_DIR``, else ``<temp>/gradio``), which
    is removed when the server stops: a session leaves nothing behind.

    Args:
        host: The address to listen on; default Gradio's (``GRADIO_SERVER_NAME``, else
            127.0.0.1; a Space sets 0.0.0.0).
        port: The port; default Gradio's (``GRADIO_SERVER_PORT``, else the first free from 7860).
        share: Also serve through a public ``gradio.live`` link (this reaches the network).
        limits: What the page refuses; the upload limit is Gradio's too.
        device: Where the models run; default the accelerator, else the CPU.
        **launch_kwargs: Passed to ``gradio.Blocks.launch``.

    Raises:
        OSError: If the port is taken, in one line saying how to choose another.
    """
    fonts = {"font": ["ui-sans-serif", "system-ui", "sans-serif"], "font_mono": ["ui-monospace", "monospace"]}
    options: dict[str, Any] = {
        "theme": gr.themes.Default(**fonts),  # the system's fonts: the page fetches nothing from elsewhere
        "max_file_size": limits.max_bytes,
        **launch_kwargs,
    }
    root = Path(get_upload_folder())
    made = missing_folders(root)
    root.mkdir(parents=True, exist_ok=True)
    there = set(root.iterdir())  # Gradio adds empty folders of its own at the top (vibe_edit_history)
    own = Path(tempfile.mkdtemp(prefix="edsr-lib-demo-", dir=root))
    saved = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(own)  # read by Gradio's components and server as they are made
    try:
        with sigterm_as_interrupt():
            page = build_demo(limits, device)
            try:
                page.launch(server_name=host, server_port=port, share=share, **options)
            except OSError as exc:
                if "Cannot find empty port" not in str(exc):
                    raise
                wanted = port or os.environ.get("GRADIO_SERVER_PORT") or "7860 and the ports after it"
                raise OSError(
                    errno.EADDRINUSE,
                    f"port {wanted} is in use (another edsr-lib demo?); choose another with --port (port= in Python)",
                ) from None
            finally:
                page.close()
    finally:
        if saved is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = saved
        shutil.rmtree(own, ignore_errors=True)
        for added in set(root.iterdir()) - there:
            remove_empty_folders([added])
        remove_empty_folders(made)
